"""Scalers fitted on the training split: HLF min-max to [0, 1], particle features standardised per
feature over real (unpadded) particles; or the 2019 per-event standardisation, over the real
particles or (`legacy_padding`, the 2019 code) over all 801 rows, zero rows sorted in. NumPy and the
column kernel."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from topotrigger.features.kernels.columns import gather_rows, row_moments, scaled_columns
from topotrigger.features.kernels.definitions import HLF_INDEX, MAX_PARTICLES, PARTICLE_INDEX


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
        # Summed in float64 without a float64 copy of the rows (a few hundred MB per task).
        return cls(*_hlf_range(hlf), float(particles.shape[0]), particles.sum(axis=0, dtype=np.float64),
                   np.einsum("ij,ij->j", particles, particles, dtype=np.float64))

    @classmethod
    def of_events(cls, hlf: np.ndarray, particles: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> "Moments":
        """`of` the events whose HLF are `hlf` and whose particle rows are `particles[starts[i]:][:counts[i]]`."""
        return cls(*_hlf_range(hlf), float(np.sum(counts)), *row_moments(particles, starts, counts))

    def merge(self, other: "Moments") -> "Moments":
        return Moments(np.minimum(self.hlf_min, other.hlf_min), np.maximum(self.hlf_max, other.hlf_max),
                       self.n + other.n, self.total + other.total, self.total_sq + other.total_sq)


def _hlf_range(hlf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per HLF, (min, max) in float64; (inf, −inf) without events, which `merge` leaves to the others."""
    if hlf.shape[0] == 0:
        return np.full(hlf.shape[1], np.inf), np.full(hlf.shape[1], -np.inf)
    return hlf.min(axis=0).astype(np.float64), hlf.max(axis=0).astype(np.float64)


@dataclass
class Scaler:
    hlf_min: list[float]
    hlf_max: list[float]
    particle_mean: list[float]
    particle_std: list[float]
    per_event: bool = False
    legacy_padding: bool = False

    @classmethod
    def fit(cls, moments: Moments, per_event: bool = False, legacy_padding: bool = False) -> "Scaler":
        mean = moments.total / max(moments.n, 1.0)
        var = np.maximum(moments.total_sq / max(moments.n, 1.0) - mean * mean, 0.0)
        std = np.sqrt(var)
        std[std == 0] = 1.0   # constant features (e.g. a flag never set) stay unscaled
        return cls(moments.hlf_min.tolist(), moments.hlf_max.tolist(), mean.tolist(), std.tolist(), per_event,
                   legacy_padding)

    def transform(self, hlf: np.ndarray, particles: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(scaled HLF, scaled particle rows, rows per event) of unscaled features."""
        if self.legacy_padding:
            rows = padded_2019(particles, counts, hlf[:, HLF_INDEX["LepEta"]], hlf[:, HLF_INDEX["LepPhi"]])
            return self.transform_hlf(hlf), rows, np.full(len(counts), MAX_PARTICLES, dtype=counts.dtype)
        return self.transform_hlf(hlf), self.transform_particles(particles, counts), counts

    def transform_columns(self, hlf: np.ndarray, particles: np.ndarray, counts: np.ndarray,
                          starts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`transform` with the particle features as one array per feature (features × rows), what the
        compact layout stores: scaling and transposing in one pass over the rows. With `starts`, the
        events' rows are `particles[starts[i]:][:counts[i]]` (gathered in the same pass)."""
        if self.per_event or self.legacy_padding:
            if starts is not None:
                particles = gather_rows([(particles, starts, counts)])
            hlf, rows, counts = self.transform(hlf, particles, counts)
            return hlf, scaled_columns(rows), counts
        return self.transform_hlf(hlf), scaled_columns(particles, np.asarray(self.particle_mean, dtype=np.float32),
                                                       np.asarray(self.particle_std, dtype=np.float32),
                                                       None if starts is None else (starts, counts)), counts

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


def padded_2019(particles: np.ndarray, counts: np.ndarray, lep_eta: np.ndarray, lep_phi: np.ndarray) -> np.ndarray:
    """The 2019 GRU input, float32 (events × 801 rows, 19): each event's rows (in decreasing ΔR from the
    lepton) with 801 − n zero rows placed where their own ΔR = √(η_lep² + φ_lep²) sorts them (after
    real rows of equal ΔR, as the 2019 code's stable sort of its list put them), then every column
    standardised over all 801 rows (population std; a constant column only centred, as scikit-learn)."""
    n = len(counts)
    out = np.zeros((n, MAX_PARTICLES, particles.shape[1]), dtype=np.float64)
    if n == 0:
        return out.reshape(0, particles.shape[1]).astype(np.float32)
    event = np.repeat(np.arange(n), counts)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    step = np.arange(len(event)) - starts[event]
    eta, phi = particles[:, PARTICLE_INDEX["Eta"]].astype(np.float64), particles[:, PARTICLE_INDEX["Phi"]].astype(np.float64)
    le, lp = lep_eta.astype(np.float64), lep_phi.astype(np.float64)
    dphi = np.mod(lp[event] - phi + np.pi, 2 * np.pi) - np.pi
    dr = np.sqrt((le[event] - eta) ** 2 + dphi**2)
    zero_dr = np.sqrt(le**2 + (np.mod(lp + np.pi, 2 * np.pi) - np.pi) ** 2)
    before = np.bincount(event, weights=dr >= zero_dr[event], minlength=n).astype(np.int64)  # rows ahead of the zeros
    place = np.where(step < before[event], step, step + (MAX_PARTICLES - counts)[event])
    out[event, place] = particles
    mean = out.mean(axis=1, keepdims=True)
    std = np.sqrt(((out - mean) ** 2).mean(axis=1, keepdims=True))
    std[std < 10 * np.finfo(np.float64).eps] = 1.0
    scaled: np.ndarray = ((out - mean) / std).astype(np.float32).reshape(n * MAX_PARTICLES, particles.shape[1])
    return scaled
