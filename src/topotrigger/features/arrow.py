"""Arrow <-> kernel arrays: ingested list<struct> columns in, feature columns out (no copies of values
beyond the dtype casts the kernels need)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from topotrigger.features.kernels.events import Collection, EventFeatures
from topotrigger.io.delphes import PIPELINE_COLLECTIONS


def collections_of(batch: pa.RecordBatch) -> dict[str, Collection]:
    out = {}
    for name, fields in PIPELINE_COLLECTIONS.items():
        column = batch.column(name)
        if column.null_count:
            column = pa.compute.fill_null(column, pa.scalar([], type=column.type))
        values = column.values
        out[name] = Collection(column.offsets.to_numpy(),
                               {f: values.field(f).to_numpy(zero_copy_only=False) for f in fields})
    return out


def nested_list(flat: np.ndarray, counts: np.ndarray, width: int) -> pa.ListArray:
    """list<list<float>>: per event `counts[i]` rows of `width` values taken from `flat` (rows × width)."""
    inner_offsets = pa.array(np.arange(0, flat.shape[0] * width + 1, width, dtype=np.int32))
    inner = pa.ListArray.from_arrays(inner_offsets, pa.array(np.ascontiguousarray(flat).reshape(-1)))
    outer_offsets = np.zeros(len(counts) + 1, dtype=np.int32)
    np.cumsum(counts, out=outer_offsets[1:])
    return pa.ListArray.from_arrays(pa.array(outer_offsets), inner)


def fixed_list(values: np.ndarray) -> pa.ListArray:
    """list<x> with the same length for every row, from a 2-D array."""
    n, width = values.shape
    offsets = pa.array(np.arange(0, n * width + 1, width, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(np.ascontiguousarray(values).reshape(-1)))


def feature_columns(features: EventFeatures) -> dict[str, pa.Array]:
    return {
        "cut": pa.array(features.cut),
        "hlf": fixed_list(features.hlf),
        "particles": nested_list(features.particles, features.counts, features.particles.shape[1]),
    }
