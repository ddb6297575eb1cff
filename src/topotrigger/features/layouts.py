"""The two output layouts of a training dataset (docs/architecture.md), built from scaled arrays."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from topotrigger.features.arrow import fixed_list, particle_records
from topotrigger.features.kernels.definitions import MAX_PARTICLES, N_CLASSES, N_PARTICLE_FEATURES, PARTICLE_NAMES

# A particle is a record of its 19 named features: Parquet stores each as its own column, which
# compresses better and writes 1.5x faster than a list of 19 unnamed floats (docs/performance.md).
PARTICLE_STRUCT = f"struct<{', '.join(f'{name}: float' for name in PARTICLE_NAMES)}>"
COMPACT_SCHEMA = f"label int, hlf array<float>, particles array<{PARTICLE_STRUCT}>"
ANCHOR_SCHEMA = "HLF_input array<double>, GRU_input array<array<double>>, encoded_label array<double>, label int"


def required(schema: pa.Schema, names: tuple[str, ...] = ("label", "hlf", "particles")) -> pa.Schema:
    """`schema` with the columns `names` declared without nulls at every level (lists, their records and
    values), which they never hold: Parquet then writes and reads them without definition levels for
    nulls, 15 % faster (docs/performance.md). Readers see the same values either way."""
    def strict(kind: pa.DataType) -> pa.DataType:
        if pa.types.is_list(kind):
            return pa.list_(pa.field(kind.value_field.name, strict(kind.value_type), nullable=False))
        if pa.types.is_struct(kind):
            return pa.struct([pa.field(f.name, strict(f.type), nullable=False) for f in kind])
        return kind

    return pa.schema([pa.field(f.name, strict(f.type), nullable=False) if f.name in names else f for f in schema],
                     metadata=schema.metadata)


def compact(labels: np.ndarray, hlf: np.ndarray, columns: np.ndarray, counts: np.ndarray) -> dict[str, pa.Array]:
    """`columns`: the particle features as one array per feature (features × particles, float32;
    `kernels.columns.scaled_columns`), particles event after event."""
    return {"label": pa.array(labels.astype(np.int32)), "hlf": fixed_list(hlf.astype(np.float32)),
            "particles": particle_records(columns, counts)}


def pad(particles: np.ndarray, counts: np.ndarray, length: int = MAX_PARTICLES) -> np.ndarray:
    """(events, length, features) zero-padded at the end of each sequence."""
    out = np.zeros((len(counts), length, particles.shape[1]), dtype=np.float64)
    event = np.repeat(np.arange(len(counts)), counts)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]) if len(counts) else np.zeros(0, dtype=np.int64)
    position = np.arange(len(event)) - np.repeat(starts, counts)
    out[event, position] = particles
    return out


def anchor(labels: np.ndarray, hlf: np.ndarray, particles: np.ndarray, counts: np.ndarray) -> dict[str, pa.Array]:
    """The public 2020 layout: HLF_input (14 doubles), GRU_input (801 × 19, zero-padded), one-hot label."""
    padded = pad(particles, counts)
    n = len(labels)
    steps = fixed_list(padded.reshape(n * MAX_PARTICLES, N_PARTICLE_FEATURES))
    gru = pa.ListArray.from_arrays(pa.array(np.arange(0, n * MAX_PARTICLES + 1, MAX_PARTICLES, dtype=np.int32)), steps)
    return {"HLF_input": fixed_list(hlf.astype(np.float64)), "GRU_input": gru,
            "encoded_label": fixed_list(np.eye(N_CLASSES)[labels].astype(np.float64)),
            "label": pa.array(labels.astype(np.int32))}
