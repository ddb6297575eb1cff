"""Search spaces and the trials drawn from them (grid, seeded random, Optuna TPE).

A space maps each hyperparameter to the list of values to try. `batch_size`, `epochs` and `lr` are
training settings; every other name is a model hyperparameter (`train.models.DEFAULTS`).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np

from topotrigger.errors import ConfigError
from topotrigger.io.manifest import digest
from topotrigger.train.models import DEFAULTS, MODELS

TRAINING_KEYS = ("batch_size", "epochs", "lr")

# The 2019 HLF grid (243 points), as published with the 2019 study.
DEFAULT_SPACES: dict[str, dict[str, list[Any]]] = {
    "hlf": {"batch_size": [64, 100, 200], "epochs": [10, 30, 50], "nh1": [50, 100, 150], "nh2": [20, 50, 100],
            "nh3": [10, 20, 50]},
    "particle": {"batch_size": [64, 128], "epochs": [10], "lr": [1e-3, 3e-3], "hidden": [32, 50, 100],
                 "dropout": [0.1, 0.2, 0.3]},
    "inclusive": {"batch_size": [64, 128], "epochs": [10], "lr": [1e-3, 3e-3], "hidden": [32, 50, 100],
                  "dropout": [0.1, 0.2, 0.3], "dense": [25, 50]},
    "transformer": {"batch_size": [64, 128], "epochs": [10], "lr": [1e-3, 3e-3], "d_model": [16, 32, 64],
                    "layers": [1, 2, 3], "dropout": [0.0, 0.1]},
}


def load_space(model: str, spec: str | None) -> dict[str, list[Any]]:
    """The model's default space, or one given as a JSON object or a path to a JSON/TOML file."""
    if model not in MODELS:
        raise ConfigError(f"unknown model {model!r}; available: {', '.join(MODELS)}")
    if not spec:
        return DEFAULT_SPACES[model]
    path = Path(spec)
    try:
        if path.suffix == ".toml" and path.is_file():
            import tomllib

            space = tomllib.loads(path.read_text())
        else:
            space = json.loads(path.read_text() if path.is_file() else spec)
    except (ValueError, OSError) as exc:
        raise ConfigError(f"--space must be a JSON object or a JSON/TOML file of name -> list of values ({exc})") from None
    allowed = (*TRAINING_KEYS, *DEFAULTS[model])
    if not isinstance(space, dict) or not space:
        raise ConfigError("--space must map hyperparameter names to lists of values")
    for name, values in space.items():
        if name not in allowed:
            raise ConfigError(f"model {model} has no hyperparameter {name!r}; available: {', '.join(allowed)}")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"--space {name}: give a non-empty list of values")
    return space


def grid(space: dict[str, list[Any]]) -> list[dict[str, Any]]:
    names = sorted(space)
    return [dict(zip(names, values)) for values in itertools.product(*(space[n] for n in names))]


def random_trials(space: dict[str, list[Any]], n: int, seed: int) -> list[dict[str, Any]]:
    """`n` distinct grid points in a seeded random order (the whole grid if it is smaller)."""
    points = grid(space)
    order = np.random.default_rng(seed).permutation(len(points))
    return [points[i] for i in order[:n]]


def trial_id(params: dict[str, Any], context: dict[str, Any]) -> str:
    """Names a trial by everything that determines its result, so a rerun recognises finished trials."""
    return digest({"params": params, **context})[:16]


def split_params(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(training settings, model hyperparameters)."""
    return ({k: v for k, v in params.items() if k in TRAINING_KEYS},
            {k: v for k, v in params.items() if k not in TRAINING_KEYS})
