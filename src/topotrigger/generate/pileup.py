"""Vertices and pile-up as Delphes' PileUpMerger does them, from a library of minimum-bias events.

Delphes overlays events read at random from a pre-generated `MinBias.pileup` file; here each Python
worker generates such a library once (`library`, cached per seed and size: a Spark worker that runs
several tasks pays Pythia's start-up and the minimum-bias generation once) and overlays random draws
from it. Per event: the number of pile-up events is Poisson(⟨μ⟩); each drawn event is rotated by a
random φ and placed at its own vertex; the hard event gets a vertex of its own too. Vertex z follows the
card's `VertexDistributionFormula` (Gaussian, σ = 53 mm) within its `ZVertexSpread` (|z| ≤ 250 mm);
vertices stay on the beam axis. The library, the draws and the placements are all seeded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from topotrigger.generate import processes
from topotrigger.generate.detector import flat_columns

VERTEX_SIGMA_Z_MM = 53.0
VERTEX_MAX_Z_MM = 250.0
MAX_ETA = 5.3
FIELDS = ("pid", "charge", "visible", "px", "py", "pz", "e", "vx", "vy", "vz")


@dataclass
class PileUpLibrary:
    """Visible final-state particles of `len(counts)` minimum-bias events within |η| < MAX_ETA, flat."""

    columns: dict[str, np.ndarray]
    counts: np.ndarray
    offsets: np.ndarray

    @classmethod
    def generate(cls, seed: int, size: int) -> PileUpLibrary:
        from topotrigger.generate.pythia import PythiaSource

        source = PythiaSource(processes.minbias_settings(seed))
        parts: list[dict[str, np.ndarray]] = []
        counts: list[np.ndarray] = []
        made = 0
        while made < size:
            batch = source.batch(min(size - made, 500))
            columns, n = flat_columns(batch.particles)
            # Only what the detector can see: visible particles within its reach (|η| < 5 plus a margin
            # for the vertex spread; beyond, nothing is measured).
            pt = np.hypot(columns["px"], columns["py"])
            visible = columns["visible"].astype(bool) & (np.abs(np.arcsinh(columns["pz"] / np.maximum(pt, 1e-12))) < MAX_ETA)
            event = np.repeat(np.arange(len(n)), n)
            parts.append({k: columns[k][visible] for k in FIELDS})
            counts.append(np.bincount(event[visible], minlength=len(n)))
            made += len(n)
        flat = {k: np.concatenate([p[k] for p in parts]) for k in FIELDS}
        all_counts = np.concatenate(counts)
        return cls(flat, all_counts, np.concatenate([[0], np.cumsum(all_counts)[:-1]]))

    def __len__(self) -> int:
        return len(self.counts)


_LIBRARIES: dict[tuple[int, int], PileUpLibrary] = {}


def library(seed: int, size: int) -> PileUpLibrary:
    """The library for (seed, size), made once per process."""
    key = (seed, size)
    if key not in _LIBRARIES:
        _LIBRARIES.clear()  # one at a time: a worker serves one generate run
        _LIBRARIES[key] = PileUpLibrary.generate(seed, size)
    return _LIBRARIES[key]


def vertex_z(rng: np.random.Generator, n: int) -> np.ndarray:
    """Gaussian vertex z (mm) within the card's spread."""
    z = rng.normal(0.0, VERTEX_SIGMA_Z_MM, n)
    outside = np.abs(z) > VERTEX_MAX_Z_MM
    while outside.any():
        z[outside] = rng.normal(0.0, VERTEX_SIGMA_Z_MM, int(outside.sum()))
        outside = np.abs(z) > VERTEX_MAX_Z_MM
    return z


def _segments(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Indices start..start+length-1 of every segment, concatenated."""
    total = int(lengths.sum())
    begin = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(lengths) else np.zeros(0, np.int64)
    return np.asarray(np.arange(total) + np.repeat(starts - begin, lengths))


def place(hard: dict[str, np.ndarray], hard_counts: np.ndarray, rng: np.random.Generator, mean_pileup: float,
          minbias: PileUpLibrary | None) -> dict[str, np.ndarray]:
    """The particles of every event in the detector frame: the hard ones moved to their event's vertex,
    then (as a second block) those of the pile-up events, each at its own vertex. Adds `event`,
    `pileup` (bool) and `vertex_z` (the hard vertex of the particle's event)."""
    n_events = len(hard_counts)
    z_hard = vertex_z(rng, n_events)
    visible = np.asarray(hard["visible"]).astype(bool)  # neutrinos leave nothing: drop them here, once
    hard_event = np.repeat(np.arange(n_events), hard_counts)[visible]
    hard = {k: np.asarray(hard[k])[visible] for k in FIELDS}
    hard["vz"] = hard["vz"] + z_hard[hard_event]
    hard |= {"event": hard_event, "pileup": np.zeros(len(hard_event), bool)}
    if minbias is None or mean_pileup <= 0:
        return hard | {"vertex_z": z_hard[hard_event]}

    n_pileup = rng.poisson(mean_pileup, n_events)
    picks = rng.integers(0, len(minbias), int(n_pileup.sum()))
    angle = rng.uniform(-np.pi, np.pi, len(picks))
    z_pick = vertex_z(rng, len(picks))
    lengths = minbias.counts[picks]
    take = _segments(minbias.offsets[picks], lengths)
    pick_of = np.repeat(np.arange(len(picks)), lengths)
    pu = {k: minbias.columns[k][take] for k in FIELDS if k != "visible"} | {"visible": np.ones(len(take), bool)}
    cos, sin = np.cos(angle)[pick_of], np.sin(angle)[pick_of]
    for x, y in (("px", "py"), ("vx", "vy")):
        pu[x], pu[y] = pu[x] * cos - pu[y] * sin, pu[x] * sin + pu[y] * cos
    pu["vz"] = pu["vz"] + z_pick[pick_of]
    pu |= {"event": np.repeat(np.repeat(np.arange(n_events), n_pileup), lengths), "pileup": np.ones(len(take), bool)}
    out = {k: np.concatenate([hard[k], pu[k]]) for k in hard}
    return out | {"vertex_z": z_hard[out["event"]]}
