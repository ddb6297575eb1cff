"""Synthetic training-layout datasets: three classes separable in HLF and in one particle feature."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from topotrigger.features import layouts
from topotrigger.features.kernels.columns import scaled_columns


def synthetic_events(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Three classes that differ in their HLF means and in one particle feature; event i has hlf[0] = i."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    hlf = rng.normal(size=(n, 14)).astype(np.float32) + labels[:, None] * 0.8
    hlf[:, 0] = np.arange(n) / 1000.0  # an id (x 1000), to check that every event is seen once
    particles = []
    for label in labels:
        count = int(rng.integers(1, 40))
        p = rng.normal(size=(count, 19)).astype(np.float32)
        p[:, 4] += label * 1.0
        particles.append(p)
    return hlf, labels, particles


def write_compact(path: Path, n: int, seed: int, row_group: int = 64, unnamed: bool = False) -> None:
    """The compact layout as `features` writes it; `unnamed`: particles as list<list<float>>, as
    datasets were written before the particle features were named."""
    hlf, labels, particles = synthetic_events(n, seed)
    if unnamed:
        table = pa.table({"label": pa.array(labels, pa.int32()),
                          "hlf": pa.array(list(hlf), pa.list_(pa.float32())),
                          "particles": pa.array([list(p) for p in particles], pa.list_(pa.list_(pa.float32())))})
    else:
        rows = np.concatenate(particles)
        table = pa.table(layouts.compact(labels, hlf, scaled_columns(rows), np.array([len(p) for p in particles])))
    path.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path / "part-0.parquet", row_group_size=row_group)
