"""Particle rows (one row of 19 features per particle) to one array per feature and back (Numba).

The compact training layout stores a particle as a record of 19 named floats, which Parquet keeps as
19 columns; the kernels and the models work on rows. NumPy's transposing copy of such an array costs
8–20 ns per value (it strides through memory); these loops read one side in order and cost ≈ 2.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def _rows(columns: np.ndarray, out: np.ndarray) -> None:
    for r in range(columns.shape[1]):
        for f in range(columns.shape[0]):
            out[r, f] = columns[f, r]


@numba.njit(cache=True)
def _scaled_columns_of(rows: np.ndarray, starts: np.ndarray, counts: np.ndarray, mean: np.ndarray, std: np.ndarray,
                       out: np.ndarray) -> None:
    at = 0
    for e in range(len(starts)):
        for r in range(starts[e], starts[e] + counts[e]):
            for f in range(rows.shape[1]):
                # float32 throughout: the same two roundings as NumPy's `(rows - mean) / std` in float32
                out[f, at] = (rows[r, f] - mean[f]) / std[f]
            at += 1


def scaled_columns(rows: np.ndarray, mean: np.ndarray | None = None, std: np.ndarray | None = None,
                   events: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """(features × rows) float32 of `rows` (rows × features), each feature standardised as
    `(x - mean) / std` in float32 when `mean` and `std` are given, else copied as it is. With
    `events` = (starts, counts), only those events' rows, event after event (as `gather_rows`), in
    the same pass."""
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    width = rows.shape[1]
    mean = np.zeros(width, np.float32) if mean is None else np.asarray(mean, dtype=np.float32)
    std = np.ones(width, np.float32) if std is None else np.asarray(std, dtype=np.float32)
    if events is None:  # every row: one event of them all
        events = (np.zeros(1, np.int64), np.array([rows.shape[0]], np.int64))
    starts, counts = (np.ascontiguousarray(a, dtype=np.int64) for a in events)
    out = np.empty((width, int(counts.sum())), dtype=np.float32)
    _scaled_columns_of(rows, starts, counts, mean, std, out)
    return out


def rows_of(columns: np.ndarray) -> np.ndarray:
    """(rows × features) float32 of `columns` (features × rows)."""
    columns = np.ascontiguousarray(columns, dtype=np.float32)
    out = np.empty((columns.shape[1], columns.shape[0]), dtype=np.float32)
    _rows(columns, out)
    return out


@numba.njit(cache=True)
def _gather(rows: np.ndarray, starts: np.ndarray, counts: np.ndarray, out: np.ndarray) -> None:
    at = 0
    for e in range(len(starts)):
        n = counts[e]
        out[at:at + n] = rows[starts[e]:starts[e] + n]
        at += n


def gather_rows(sources: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> np.ndarray:
    """Per source (rows, starts, counts), the rows of the events that start at `starts` and hold
    `counts` rows each, event after event, source after source: one copy, where a take of each
    source's packed column and a concatenation of the takes made two."""
    total = sum(int(np.sum(counts)) for _, _, counts in sources)
    out = np.empty((total, sources[0][0].shape[1]), dtype=sources[0][0].dtype)
    at = 0
    for rows, starts, counts in sources:
        n = int(np.sum(counts))
        _gather(rows, np.ascontiguousarray(starts, dtype=np.int64), np.ascontiguousarray(counts, dtype=np.int64), out[at:at + n])
        at += n
    return out


@numba.njit(cache=True)
def _moments(rows: np.ndarray, starts: np.ndarray, counts: np.ndarray, total: np.ndarray, total_sq: np.ndarray) -> None:
    for e in range(len(starts)):
        for r in range(starts[e], starts[e] + counts[e]):
            for f in range(rows.shape[1]):
                x = np.float64(rows[r, f])
                total[f] += x
                total_sq[f] += x * x


def row_moments(rows: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(Σ x, Σ x²) per feature, in float64, over the rows of the events given as in `gather_rows`
    (without copying them), in the order given."""
    total = np.zeros(rows.shape[1])
    total_sq = np.zeros(rows.shape[1])
    _moments(np.ascontiguousarray(rows), np.ascontiguousarray(starts, dtype=np.int64),
             np.ascontiguousarray(counts, dtype=np.int64), total, total_sq)
    return total, total_sq
