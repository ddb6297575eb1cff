"""Inputs on which the published 2020 model's outputs were stored (tests/data/published_inclusive_2020_keras.txt,
computed by Keras 3 from the original file): every masking case the Keras Masking layer has."""

from __future__ import annotations

import numpy as np


def inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2020)
    n = 8
    gru = (0.3 * rng.normal(size=(n, 801, 19))).astype(np.float32)
    hlf = rng.uniform(size=(n, 14)).astype(np.float32)
    gru[1, 120:] = 0.0                  # zero rows at the end (the default recipe's padding)
    gru[2, ::3] = 0.0                   # zero rows in between: skipped, the state carried over
    gru[3, :700] = 0.0                  # zero rows first
    gru[4] = 0.0                        # no particle at all: the GRU state stays zero
    gru[5, :, 7:10] = 0.0               # zero columns only: no row is all zero, nothing is masked
    gru[6, 400] = 0.0                   # one zero row
    gru[7, 1:] = 0.0                    # one row
    return gru, hlf
