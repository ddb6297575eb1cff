"""Scalers fitted on the training split: HLF min-max to [0, 1], particle features standardised per
feature over real (unpadded) particles; or the 2019 per-event standardisation. Pure NumPy."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass
class Moments:
    """Mergeable partial statistics of one pass over a part of the training data."""

    hlf_min: np.ndarray
    hlf_max: np.ndarray
    n: float
    total: np.ndarray
    total_sq: np.ndarray

    @classmethod
    def of(cls, hlf: np.ndarray, particles: np.ndarray) -> "Moments":
        p = particles.astype(np.float64)
        empty = hlf.shape[0] == 0
        return cls(np.full(hlf.shape[1], np.inf) if empty else hlf.min(axis=0).astype(np.float64),
                   np.full(hlf.shape[1], -np.inf) if empty else hlf.max(axis=0).astype(np.float64),
                   float(p.shape[0]), p.sum(axis=0), (p * p).sum(axis=0))

    def merge(self, other: "Moments") -> "Moments":
        return Moments(np.minimum(self.hlf_min, other.hlf_min), np.maximum(self.hlf_max, other.hlf_max),
                       self.n + other.n, self.total + other.total, self.total_sq + other.total_sq)


@dataclass
class Scaler:
    hlf_min: list[float]
    hlf_max: list[float]
    particle_mean: list[float]
    particle_std: list[float]
    per_event: bool = False

    @classmethod
    def fit(cls, moments: Moments, per_event: bool = False) -> "Scaler":
        mean = moments.total / max(moments.n, 1.0)
        var = np.maximum(moments.total_sq / max(moments.n, 1.0) - mean * mean, 0.0)
        std = np.sqrt(var)
        std[std == 0] = 1.0   # constant features (e.g. a flag never set) stay unscaled
        return cls(moments.hlf_min.tolist(), moments.hlf_max.tolist(), mean.tolist(), std.tolist(), per_event)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def transform_hlf(self, hlf: np.ndarray) -> np.ndarray:
        lo, hi = np.asarray(self.hlf_min), np.asarray(self.hlf_max)
        span = np.where(hi > lo, hi - lo, 1.0)
        scaled: np.ndarray = ((hlf - lo) / span).astype(np.float32)
        return scaled

    def inverse_hlf(self, scaled: np.ndarray) -> np.ndarray:
        """The HLF in physical units again (for plots of scaled datasets)."""
        lo, hi = np.asarray(self.hlf_min), np.asarray(self.hlf_max)
        unscaled: np.ndarray = scaled * np.where(hi > lo, hi - lo, 1.0) + lo
        return unscaled

    def transform_particles(self, particles: np.ndarray, counts: np.ndarray) -> np.ndarray:
        if not self.per_event:  # in float32, in place: the arrays are the bulk of the data
            out = np.array(particles, dtype=np.float32)
            out -= np.asarray(self.particle_mean, dtype=np.float32)
            out /= np.asarray(self.particle_std, dtype=np.float32)
            return out
        return standardise_per_event(particles, counts)


def standardise_per_event(particles: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The 2019 scaling: each event's particle features standardised with that event's own mean/std."""
    if particles.shape[0] == 0:
        return particles.astype(np.float32)
    event = np.repeat(np.arange(len(counts)), counts)
    n = np.maximum(counts, 1)[:, None].astype(np.float64)
    total = np.zeros((len(counts), particles.shape[1]))
    total_sq = np.zeros_like(total)
    np.add.at(total, event, particles)
    np.add.at(total_sq, event, particles.astype(np.float64) ** 2)
    mean = total / n
    std = np.sqrt(np.maximum(total_sq / n - mean**2, 0.0))
    std[std == 0] = 1.0
    scaled: np.ndarray = ((particles - mean[event]) / std[event]).astype(np.float32)
    return scaled
