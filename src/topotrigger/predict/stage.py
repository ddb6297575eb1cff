"""Batch inference on Spark: a saved model scores a dataset in `mapInArrow` tasks.

Inputs, told apart by their columns:
- a training-layout dataset (compact or the 2020 anchor layout), already selected and scaled;
- ingested events (the output of `ingest`): the selection and features run first, then the model's
  own saved scaling; events failing the selection get no score.

Output Parquet, one row per scored event: `file` and `row` (the input Parquet file path and row
index), where the input has them `source_file`, `source_entry` and `event_number` (`io.provenance`),
`label`, for ingested input also `sample` and `key` (the features stage's event hash), then
`score_<class>` per class and `predicted`. The model travels to the executors as bytes in the
task closure, so executors need no access to the model directory.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from topotrigger.errors import InputError, MissingInputError, carry_user_errors, user_errors_from_tasks
from topotrigger.features import contract
from topotrigger.features.kernels import definitions as d
from topotrigger.features.scaling import Scaler
from topotrigger.io import storage
from topotrigger.io.arrow_writer import write_parquet
from topotrigger.io.provenance import PROVENANCE
from topotrigger.io.versions import software_versions
from topotrigger.modeldir import Scorer, load_model, refuse_published
from topotrigger.runtime.spark import schemas
from topotrigger.train.data import ANCHOR, COMPACT, Events, decode

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession



@dataclass
class PredictResult:
    out: str
    layout: str
    events: int
    seconds: float


def _raw_events(batch: pa.RecordBatch, scaler: dict[str, Any]) -> Events:
    """Unscaled features of the features stage → the model's input, scaled as at training time."""
    hlf = contract.hlf_rows(batch.column("hlf"))
    particles, counts = contract.ragged_rows(batch.column("particles"))
    hlf, particles, counts = Scaler(**scaler).transform(hlf, particles, counts)
    return Events(hlf.astype(np.float32), particles.astype(np.float32), counts,
                  batch.column("label").to_numpy(zero_copy_only=False).astype(np.int64))


@carry_user_errors
def score_batches(batches: Iterator[pa.RecordBatch], info: dict[str, Any], weights: bytes, layout: str,
                  keys: list[str], classes: list[str], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """A Spark task: the model (as JSON-able info and weight bytes, no model directory needed) scores batches."""
    import torch

    from topotrigger.train.saved import SavedModel

    torch.set_num_threads(1)  # one task per core: Spark owns the parallelism
    saved = SavedModel.from_parts(info, weights)
    for batch in batches:
        if layout == "raw":
            events = _raw_events(batch, info["scaler"])
        else:
            events = decode(pa.Table.from_batches([batch]), layout, saved.uses_particles)
        scores = saved.probabilities(events)
        columns = {k: batch.column(k) for k in keys}
        columns.update({f"score_{c}": pa.array(scores[:, i]) for i, c in enumerate(classes)})
        columns["predicted"] = pa.array(np.argmax(scores, axis=1).astype(np.int32))
        yield pa.RecordBatch.from_arrays(list(columns.values()), list(columns)).cast(schema)


def scale_batches(batches: Iterator[pa.RecordBatch], scaler: dict[str, Any], keys: list[str],
                  schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """Unscaled features → the compact training layout with the model's scaling (for Spark models)."""
    from topotrigger.features import layouts
    from topotrigger.features.kernels.columns import scaled_columns

    for batch in batches:
        events = _raw_events(batch, scaler)
        columns = {k: batch.column(k) for k in keys}
        columns.update(layouts.compact(events.labels, events.hlf, scaled_columns(events.particles), events.counts))
        yield pa.RecordBatch.from_arrays(list(columns.values()), list(columns)).cast(schema)


def _spark_model_scores(df: "DataFrame", layout: str, keys: list[str], saved: Any, classes: list[str]) -> "DataFrame":
    from pyspark.sql import functions as F

    from topotrigger.features.layouts import COMPACT_SCHEMA

    passthrough = [k for k in keys if k != "label"]
    if layout == "raw":
        types = {f.name: f.dataType.simpleString() for f in df.schema.fields}
        struct, arrow_schema = schemas(", ".join([f"{k} {types[k]}" for k in passthrough] + [COMPACT_SCHEMA]))
        task = functools.partial(scale_batches, scaler=saved.info.scaler, keys=passthrough, schema=arrow_schema)
        df = df.mapInArrow(task, struct)
    scored = saved.score(df, tuple(passthrough))
    scores = [F.col("p")[i].cast("float").alias(f"score_{c}") for i, c in enumerate(classes)]
    predicted = (F.array_position(F.col("p"), F.array_max("p")) - 1).cast("int").alias("predicted")
    out: DataFrame = scored.select(*passthrough, F.col("label").cast("int").alias("label"), *scores, predicted).select(
        *keys, *[f"score_{c}" for c in classes], "predicted")
    return out


def _input(spark: "SparkSession", path: str, saved: Scorer) -> tuple["DataFrame", str, list[str]]:
    from pyspark.sql import functions as F

    if not storage.exists(path):
        raise MissingInputError(f"input not found: {storage.redact(path)}")
    try:
        df = spark.read.parquet(path)
    except Exception as exc:
        raise InputError(f"{path} is not a Parquet dataset ({str(exc).splitlines()[0][:200]})") from None
    position = [F.col("_metadata.file_path").alias("file"), F.col("_metadata.row_index").alias("row")]
    origin = [c for c in PROVENANCE.names if c in df.columns]  # the ROOT event each row came from
    return _classify(df.select("*", *position), saved, ["file", "row", *origin], path)


def _classify(df: "DataFrame", saved: Scorer, extra: list[str], where: str) -> tuple["DataFrame", str, list[str]]:
    """`df` as the scorer's input: a training layout, or ingested events run through the selection and
    features; `extra` columns travel along. Returns the frame, its layout and its key columns."""
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import to_arrow_schema

    from topotrigger.features import ingested
    from topotrigger.features.stage import compute_features
    from topotrigger.io.delphes import PIPELINE_COLLECTIONS

    names = set(df.columns)
    extra = [c for c in extra if c not in ("label", "sample", "key")]  # those come with every layout anyway
    for layout, needed in (("compact", COMPACT), ("anchor", ANCHOR)):
        if set(needed) <= names:
            label = [F.col("label")] if "label" in names else [F.lit(-1).alias("label")]
            if layout == "anchor" and "label" not in names:
                label = [F.expr("array_position(transform(encoded_label, x -> x = array_max(encoded_label)), true) - 1")
                         .cast("int").alias("label")]
            features = [c for c in needed if c != "label"]
            return df.select(*extra, *label, *features), layout, [*extra, "label"]
    if set(PIPELINE_COLLECTIONS) <= names:
        if not saved.info.scaler:
            raise InputError(f"model {saved.name} has no saved scaler: it cannot score ingested events")
        # Events read straight from ROOT files (the `root` source) carry no label or sample: none is known.
        if "label" not in names:
            df = df.withColumn("label", F.lit(-1))
        if "sample" not in names:
            df = df.withColumn("sample", F.lit(""))
        df = df.withColumn("label", F.col("label").cast("int"))
        ingested.check_schema(to_arrow_schema(df.schema), has_label_dir=False, where=where)
        options = d.FeatureOptions(**(saved.info.feature_options or {}))
        computed = compute_features(df.select(*PIPELINE_COLLECTIONS, "label", "sample", *extra), options,
                                    extra=tuple(extra))
        keys = [*extra, "label", "sample", "key"]
        selected = computed.where(F.col("cut") == d.CUT_FINAL).select(*keys, "hlf", "particles")
        return selected, "raw", keys
    raise InputError(f"{where} is neither a training dataset (columns {', '.join(COMPACT)} or {', '.join(ANCHOR)}) "
                     f"nor ingested events (columns {', '.join(PIPELINE_COLLECTIONS)})")


def _scored(df: "DataFrame", layout: str, keys: list[str], saved: Scorer) -> "DataFrame":
    """One row per event of `df`: the keys, `score_<class>` and `predicted`."""
    from topotrigger.train.saved import SavedModel

    classes = [c.replace(" ", "_") for c in saved.info.class_names()]
    types = {f.name: f.dataType.simpleString() for f in df.schema.fields}
    ddl = ", ".join([f"{k} {types[k]}" for k in keys] + [f"score_{c} float" for c in classes] + ["predicted int"])
    struct, arrow_schema = schemas(ddl)
    if isinstance(saved, SavedModel):
        scorer = functools.partial(score_batches, info=saved.info.model_dump(mode="json"), weights=saved.weights(),
                                   layout=layout, keys=keys, classes=classes, schema=arrow_schema)
        return df.mapInArrow(scorer, struct)
    return _spark_model_scores(df, layout, keys, saved, classes)


def scores(df: "DataFrame", model_dir: str, keep: list[str] | None = None) -> "DataFrame":
    """A saved model's scores for the events of a DataFrame you have (lazily: nothing runs until you act
    on the result). `df` holds ingested events (the pipeline collections, e.g. `spark.read.parquet` of an
    `ingest` output or `spark.read.format("root")`), which go through the selection, the features and the
    model's scaling first, or a training-layout dataset. `keep` names columns of `df` to carry along
    (event identifiers); the result has those, `label`, for ingested events `sample` and `key`, then
    `score_<class>` per class and `predicted`, one row per selected event."""
    refuse_published(model_dir, "scores()")
    saved = load_model(Path(model_dir))
    frame, layout, keys = _classify(df, saved, list(keep or []), "the DataFrame")
    return _scored(frame, layout, keys, saved)


MANIFEST = "_manifest.json"


def predict(model_dir: str, input_path: str, out: str, spark: "SparkSession", overwrite: bool = False) -> PredictResult:
    start = time.perf_counter()
    input_path, out = storage.absolute(input_path), storage.absolute(out)
    refuse_published(model_dir, "predict")
    saved = load_model(Path(model_dir))
    storage.check_output(out, overwrite, MANIFEST)
    df, layout, keys = _input(spark, input_path, saved)
    scored = _scored(df, layout, keys, saved)
    with storage.staged_output(out, overwrite, MANIFEST, spark) as staged:
        with user_errors_from_tasks():
            counts = write_parquet(scored, staged.uri)
        events = sum(counts.values())
        storage.write_json(staged.path(MANIFEST), {
            "stage": "predict", "model": str(Path(model_dir).resolve()), "model_name": saved.name,
            "input": input_path, "layout": layout, "events": events, "columns": scored.columns,
            "seconds": time.perf_counter() - start, "software": software_versions()})
    return PredictResult(out, layout, events, time.perf_counter() - start)
