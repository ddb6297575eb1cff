"""Fixed-size input vectors for the Spark models, from either training layout.

`hlf`: the scaled HLF. `hlf+summary`: the HLF, the number of particles, and the mean and standard
deviation over the event's particles of each (scaled) particle feature: 14 + 1 + 2 × 19 = 53.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from topotrigger.features.kernels.definitions import N_HLF, N_PARTICLE_FEATURES
from topotrigger.train.data import ANCHOR, COMPACT, decode, detect_layout

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

N_SUMMARY = 1 + 2 * N_PARTICLE_FEATURES


def width(inputs: str) -> int:
    return N_HLF + (N_SUMMARY if inputs == "hlf+summary" else 0)


def summary(particles: np.ndarray, counts: np.ndarray) -> np.ndarray:
    n = len(counts)
    event = np.repeat(np.arange(n), counts)
    safe = np.maximum(counts, 1)[:, None]
    total = np.zeros((n, particles.shape[1]))
    np.add.at(total, event, particles)
    mean = total / safe
    squares = np.zeros_like(total)
    np.add.at(squares, event, (particles - mean[event]) ** 2)
    return np.concatenate([counts[:, None].astype(np.float64), mean, np.sqrt(squares / safe)], axis=1)


def vector_batches(batches: Iterator[pa.RecordBatch], layout: str, inputs: str, keys: list[str],
                   schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        events = decode(pa.Table.from_batches([batch]), layout, inputs == "hlf+summary")
        values = events.hlf.astype(np.float64)
        if inputs == "hlf+summary":
            values = np.concatenate([values, summary(events.particles, events.counts)], axis=1)
        flat = pa.array(values.reshape(-1))
        columns = {k: batch.column(k) for k in keys}
        columns["x"] = pa.ListArray.from_arrays(pa.array(np.arange(0, values.size + 1, values.shape[1], dtype=np.int32)), flat)
        columns["label"] = pa.array(events.labels.astype(np.float64))
        yield pa.RecordBatch.from_arrays(list(columns.values()), list(columns)).cast(schema)


def vectors(df: "DataFrame", inputs: str, keys: tuple[str, ...] = ()) -> "DataFrame":
    """`df` (a training layout) → keys, `features` (an ML vector) and `label` (double)."""
    from pyspark.ml.functions import array_to_vector
    from pyspark.sql import functions as F

    from topotrigger.runtime.spark import schemas

    layout = detect_layout(pa.schema([pa.field(n, pa.null()) for n in df.columns]), "input")
    needed = [c for c in (COMPACT if layout == "compact" else ANCHOR) if c not in keys]
    types = {f.name: f.dataType.simpleString() for f in df.schema.fields}
    struct, arrow_schema = schemas(", ".join([f"{k} {types[k]}" for k in keys] + ["x array<double>", "label double"]))
    task = functools.partial(vector_batches, layout=layout, inputs=inputs, keys=list(keys), schema=arrow_schema)
    out = df.select(*keys, *needed).mapInArrow(task, struct)
    return out.select(*keys, array_to_vector(F.col("x")).alias("features"), "label")
