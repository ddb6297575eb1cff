"""The feature contract on the Arrow side: one decoder from the stored columns to NumPy for every reader.

Training datasets store the HLF as `list<float>` (or, in the public 2020 files, Spark ML vectors:
`struct<type, size, indices, values>`) and the particles as a ragged list of records of the 19 named
features (compact layout; `list<list<float>>` before they were named) or as an 801-row zero-padded
list (anchor layout). Training, evaluation, predict and the Spark models
all go through these functions, with the sizes of `kernels.definitions`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from topotrigger.errors import InputError, MissingInputError
from topotrigger.features.kernels.columns import rows_of
from topotrigger.features.kernels.definitions import N_CLASSES, N_HLF, N_PARTICLE_FEATURES, PARTICLE_NAMES
from topotrigger.io import storage


def _array(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def fixed_rows(column: pa.ChunkedArray | pa.Array, width: int, name: str) -> np.ndarray:
    """(n, width) float32 from list<number> or a Spark ML vector struct<type, size, indices, values>."""
    column = _array(column)
    if pa.types.is_struct(column.type):
        kind = column.field("type").to_numpy(zero_copy_only=False)
        values, indices = column.field("values"), column.field("indices")
        out = np.zeros((len(column), width), dtype=np.float32)
        dense = np.flatnonzero(kind == 1)
        if len(dense):
            out[dense] = pc.list_flatten(values.take(dense)).to_numpy(zero_copy_only=False).reshape(len(dense), width)
        sparse = np.flatnonzero(kind == 0)  # sparse vectors (e.g. one-hot labels)
        if len(sparse):
            taken = values.take(sparse)
            at = np.repeat(sparse, pc.list_value_length(taken).to_numpy(zero_copy_only=False))
            cols = pc.list_flatten(indices.take(sparse)).to_numpy(zero_copy_only=False)
            out[at, cols] = pc.list_flatten(taken).to_numpy(zero_copy_only=False)
        return out
    flat = pc.list_flatten(column).to_numpy(zero_copy_only=False).astype(np.float32)
    if flat.size != len(column) * width:
        raise InputError(f"column {name} has {flat.size // max(len(column), 1)} values per row, expected {width}")
    rows: np.ndarray = flat.reshape(len(column), width)
    return rows


def ragged_rows(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(all rows × 19 float32, rows per event) of a compact `particles` column: list<struct> of the
    named features, or list<list<float>> (datasets written before the features were named)."""
    column = _array(column)
    counts = pc.list_value_length(column).to_numpy(zero_copy_only=False).astype(np.int64)
    records = pc.list_flatten(column)
    if pa.types.is_struct(records.type):
        names = [records.type.field(i).name for i in range(records.type.num_fields)]
        if names != list(PARTICLE_NAMES):
            raise InputError(f"particles has the fields {', '.join(names)}; expected {', '.join(PARTICLE_NAMES)}")
        columns = np.stack([f.to_numpy(zero_copy_only=False) for f in records.flatten()]) if len(records) else \
            np.zeros((N_PARTICLE_FEATURES, 0), np.float32)
        return rows_of(columns), counts
    flat = pc.list_flatten(records).to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    if flat.size != len(records) * N_PARTICLE_FEATURES:
        raise InputError(f"particles has {flat.size // max(len(records), 1)} values per particle, expected {N_PARTICLE_FEATURES}")
    return flat.reshape(-1, N_PARTICLE_FEATURES), counts


def padded_rows(column: pa.ChunkedArray | pa.Array, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(real rows × 19, rows per event) of a zero-padded sequence column (the anchor layout's GRU_input):
    zero rows at the end of each sequence are padding."""
    column = _array(column)
    n = len(column)
    steps = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    padded = pc.list_flatten(pc.list_flatten(column)).to_numpy(zero_copy_only=False).astype(np.float32)
    if len(steps) and (np.any(steps != steps[0]) or padded.size != n * steps[0] * N_PARTICLE_FEATURES):
        raise InputError(f"GRU_input of {where} is not a fixed {N_PARTICLE_FEATURES}-feature padded sequence")
    padded = padded.reshape(n, int(steps[0]) if n else 0, N_PARTICLE_FEATURES)
    real = np.any(padded != 0, axis=2)
    counts = np.where(real.any(axis=1), real.shape[1] - np.argmax(real[:, ::-1], axis=1), 0).astype(np.int64)
    return padded[np.arange(padded.shape[1])[None, :] < counts[:, None]], counts


def hlf_rows(column: pa.ChunkedArray | pa.Array, name: str = "hlf") -> np.ndarray:
    return fixed_rows(column, N_HLF, name)


def one_hot_labels(column: pa.ChunkedArray | pa.Array, name: str = "encoded_label") -> np.ndarray:
    labels: np.ndarray = np.argmax(fixed_rows(column, N_CLASSES, name), axis=1).astype(np.int64)
    return labels


def dataset_metadata(data_dir: str, splits: tuple[str, ...] = ("train",)) -> dict[str, Any]:
    """A training dataset's metadata.json ({} for datasets without one, e.g. the public 2020 files),
    after checking that the directory and the `splits` exist."""
    if not storage.exists(data_dir):
        raise MissingInputError(f"dataset directory not found: {storage.redact(data_dir)}")
    for split in splits:
        if not storage.exists(storage.join(data_dir, split)):
            raise InputError(f"{storage.redact(data_dir)} has no {split}/ split: is it the output of `topotrigger features`?")
    path = storage.join(data_dir, "metadata.json")
    metadata: dict[str, Any] = storage.read_json(path) if storage.exists(path) else {}
    hlf, particles = metadata.get("hlf_names"), metadata.get("particle_names")
    if (hlf and len(hlf) != N_HLF) or (particles and len(particles) != N_PARTICLE_FEATURES):
        raise InputError(f"{storage.redact(data_dir)} has {len(hlf or [])} HLF and {len(particles or [])} particle "
                         f"features; the models take {N_HLF} and {N_PARTICLE_FEATURES}")
    return metadata
