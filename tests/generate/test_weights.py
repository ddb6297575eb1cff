"""The forced-decay weight of an event, on hand-made event records (no Pythia)."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from topotrigger.generate.pythia import forced_decay_weight

OPEN = {511: 0.2, 521: 0.25}


def record(particles: list[list[tuple[int, int, int]]]) -> ak.Array:
    """Events of (id, status, daughter1) rows, as Pythia's batch record names them."""
    return ak.Array([[{"id": i, "status": s, "daughter1": d} for i, s, d in event] for event in particles])


def test_each_decay_of_a_forced_hadron_weighs_by_its_open_fraction() -> None:
    prt = record([
        [(90, -11, 0), (511, -91, 3), (-521, -91, 4), (11, 1, 0), (13, 1, 0)],   # two forced decays
        [(90, -11, 0), (511, -92, 2), (-511, -91, 3), (11, 1, 0)],               # B0 oscillates, then decays once
        [(90, -11, 0), (531, -91, 2), (211, 1, 0)],                              # not forced
        [(90, -11, 0), (511, 1, 0)],                                             # undecayed: no decay, no weight
        [],
    ])
    assert forced_decay_weight(prt, OPEN) == pytest.approx([0.2 * 0.25, 0.2, 1.0, 1.0, 1.0])


def test_no_forced_hadrons_means_unit_weights() -> None:
    assert np.array_equal(forced_decay_weight(record([[(511, -91, 0)]]), {}), [1.0])
