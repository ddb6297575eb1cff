"""Arrow <-> kernel arrays: ingested list<struct> columns in, feature columns out (no copies of values
beyond the dtype casts the kernels need)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa

from topotrigger.features.kernels.columns import scaled_columns
from topotrigger.features.kernels.definitions import PARTICLE_NAMES
from topotrigger.features.kernels.events import Collection, EventFeatures
from topotrigger.io.delphes import PIPELINE_COLLECTIONS


def collections_of(batch: pa.RecordBatch, inputs: Mapping[str, Sequence[str]] = PIPELINE_COLLECTIONS) -> dict[str, Collection]:
    out = {}
    for name, fields in inputs.items():
        column = batch.column(name)
        if column.null_count:
            column = pa.compute.fill_null(column, pa.scalar([], type=column.type))
        values = column.values
        out[name] = Collection(column.offsets.to_numpy(),
                               {f: values.field(f).to_numpy(zero_copy_only=False) for f in fields})
    return out


def particle_records(columns: np.ndarray, counts: np.ndarray) -> pa.ListArray:
    """list<struct<E, Px, ... Charge: float>>: per event `counts[i]` particles, from `columns`
    (features × particles, float32; `kernels.columns.scaled_columns`)."""
    offsets = np.zeros(len(counts) + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    records = pa.StructArray.from_arrays([pa.array(np.asarray(c, dtype=np.float32)) for c in columns], list(PARTICLE_NAMES))
    return pa.ListArray.from_arrays(pa.array(offsets), records)


def fixed_list(values: np.ndarray) -> pa.ListArray:
    """list<x> with the same length for every row, from a 2-D array."""
    n, width = values.shape
    offsets = pa.array(np.arange(0, n * width + 1, width, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(np.ascontiguousarray(values).reshape(-1)))


def feature_columns(features: EventFeatures) -> dict[str, pa.Array]:
    return {
        "cut": pa.array(features.cut),
        "hlf": fixed_list(features.hlf),
        "particles": particle_records(scaled_columns(features.particles), features.counts),
    }


def packed(rows: np.ndarray, counts: np.ndarray) -> pa.Array:
    """Each event's rows (`counts[i]` of them, float32 little-endian) as one binary value: the JVM moves
    and shuffles such a column as plain bytes, where list<list<float>> costs it per element."""
    rows = np.ascontiguousarray(rows, dtype="<f4")
    width = rows.shape[1] if rows.ndim == 2 else 1
    offsets = np.zeros(len(counts) + 1, dtype=np.int32)
    np.cumsum(np.asarray(counts, dtype=np.int64) * (4 * width), out=offsets[1:])
    return pa.Array.from_buffers(pa.binary(), len(counts), [None, pa.py_buffer(offsets), pa.py_buffer(rows)])


def unpacked(array: pa.Array, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows × width float32, rows per event) of a `packed` column, without copying the values."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    offset_type = np.int64 if pa.types.is_large_binary(array.type) else np.int32
    buffers = array.buffers()
    offsets = np.frombuffer(buffers[1], dtype=offset_type)[array.offset:array.offset + len(array) + 1]
    data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else np.zeros(0, np.uint8)
    rows = data[offsets[0]:offsets[-1]].view("<f4").reshape(-1, width)
    return rows, (np.diff(offsets) // (4 * width)).astype(np.int64)
