"""The `features` stage on Spark: features per piece of the input, cut flow, balance, split, scale, write.

    OUT/train/        Parquet, shuffled      (compact: label, hlf, particles; anchor: HLF_input, GRU_input, encoded_label, label)
    OUT/test/         Parquet
    OUT/metadata.json feature names, scaler parameters, cut flow per class, counts, seeds, options, versions

1. One Spark task per piece of the ingested dataset (`ingested.py`: whole row groups) reads it with
   pyarrow, computes the features and the event key, counts the cut flow, and writes the selected
   events to a temporary `_selected/` with the feature arrays packed as bytes: the nested input never
   enters the JVM, and the later passes shuffle flat rows.
2. Balance and split on Spark, on a narrow (label, hash, row id) projection.
3. Scalers from the training split; 4. scaled layouts written by the tasks (`io.arrow_writer`).

Sampling is by a seeded hash of each event's content (`keys.py`), not by row position, so the same
input and seed give the same datasets whatever the partitioning or the number of executors (identical
events, e.g. from copied files, are told apart by their row id). Undersampling and the train/test split
take exact per-class counts: the k-th smallest (hash, row id) of each class is the threshold.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from topotrigger import __version__
from topotrigger.config import FeaturesConfig
from topotrigger.errors import InputError, MissingInputError, OutputExistsError, input_error_in
from topotrigger.features import ingested, layouts
from topotrigger.features.arrow import collections_of, feature_columns, packed, unpacked
from topotrigger.features.kernels import definitions as d
from topotrigger.features.kernels.events import compute
from topotrigger.features.keys import event_keys, seeded
from topotrigger.features.scaling import Moments, Scaler
from topotrigger.io.arrow_writer import TaskOutput, commit, committed_files, filesystem, prepare, write_parquet
from topotrigger.io.hadoop import HadoopFS, discard
from topotrigger.io.versions import software_versions

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

COMPUTED_SCHEMA = "label int, sample string, key bigint, cut tinyint, hlf array<float>, particles array<array<float>>"


@dataclass
class FeaturesResult:
    out: str
    cutflow: dict[str, dict[str, int]]
    counts: dict[str, dict[str, int]]
    seconds: float
    events_in: int


# ---- functions run on executors (module level, so they pickle by reference) -------------------

def _cast(batch_columns: dict[str, pa.Array], schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(list(batch_columns.values()), list(batch_columns)).cast(schema)


def compute_batches(batches: Iterator[pa.RecordBatch], options: dict[str, bool], schema: pa.Schema,
                    extra: tuple[str, ...] = ()) -> Iterator[pa.RecordBatch]:
    opts = d.FeatureOptions(**options)
    for batch in batches:
        collections = collections_of(batch)
        features = compute(collections, opts)
        labels = batch.column("label").to_numpy(zero_copy_only=False)
        keys = pa.array(event_keys(collections, labels, batch.column("sample")))
        yield _cast({"label": batch.column("label"), "sample": batch.column("sample"), "key": keys,
                     **feature_columns(features), **{name: batch.column(name) for name in extra}}, schema)


SELECTED = pa.schema([("label", pa.int32()), ("sample", pa.string()), ("key", pa.int64()), ("rid", pa.int64()),
                      ("h", pa.int64()), ("s", pa.int64()), ("hlf", pa.binary()), ("particles", pa.binary())])


def select_task(pieces: Iterator[ingested.Piece], root: str, options: dict[str, bool], seed: int) -> Iterator[dict[str, Any]]:
    """One Spark task: features of its pieces; the selected events go to `root` with their sampling hash
    `h` and shuffling hash `s`, the cut flow to the driver."""
    opts = d.FeatureOptions(**options)
    output = TaskOutput(root, compression="lz4")  # read back once or twice, then deleted: speed over size
    flow: dict[tuple[int, int], int] = {}
    try:
        for piece in pieces:
            for batch in ingested.read(piece):
                collections = collections_of(batch)
                features = compute(collections, opts)
                labels = batch.column("label").to_numpy(zero_copy_only=False)
                codes, n = np.unique(labels.astype(np.int64) * 16 + features.cut, return_counts=True)
                for code, count in zip(codes.tolist(), n.tolist()):
                    flow[divmod(code, 16)] = flow.get(divmod(code, 16), 0) + count
                final = np.flatnonzero(features.cut == d.CUT_FINAL)
                if not len(final):
                    continue
                keys = event_keys(collections, labels, batch.column("sample"))[final]
                output.write(pa.RecordBatch.from_arrays(
                    [pa.array(labels[final].astype(np.int32)), batch.column("sample").take(final), pa.array(keys),
                     batch.column("rid").take(final), pa.array(seeded(keys, seed)), pa.array(seeded(keys, seed + 1)),
                     packed(features.hlf[final], np.ones(len(final))),
                     packed(features.particles, features.counts[final])], schema=SELECTED))
    except BaseException:
        output.abort()
        raise
    yield {"files": output.close(), "flow": [(label, cut, count) for (label, cut), count in flow.items()]}


def _arrays(batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    hlf = pc.list_flatten(batch.column("hlf")).to_numpy(zero_copy_only=False).reshape(-1, d.N_HLF)
    col = batch.column("particles")
    counts = pc.list_value_length(col).to_numpy(zero_copy_only=False).astype(np.int64)
    particles = pc.list_flatten(pc.list_flatten(col)).to_numpy(zero_copy_only=False).reshape(-1, d.N_PARTICLE_FEATURES)
    return hlf, particles, counts


def _packed_arrays(batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    hlf, _ = unpacked(batch.column("hlf"), d.N_HLF)
    particles, counts = unpacked(batch.column("particles"), d.N_PARTICLE_FEATURES)
    return hlf, particles, counts


def _at_or_before(label: np.ndarray, h: np.ndarray, rid: np.ndarray,
                  thresholds: dict[int, tuple[int, int] | None]) -> np.ndarray:
    """Rows at or before their class's (h, rid) threshold (numpy twin of the Spark condition in `features`)."""
    keep = np.zeros(len(label), dtype=bool)
    for lab, t in thresholds.items():
        if t is not None:
            keep |= (label == lab) & ((h < t[0]) | ((h == t[0]) & (rid <= t[1])))
    return keep


def moments_task(paths: Iterator[str], root: str, keep: dict[int, Any], test: dict[int, Any]) -> Iterator[Moments]:
    """Moments of the training events in some `_selected` files, read in the task (no JVM)."""
    fs, _ = filesystem(root)
    total: Moments | None = None
    for path in paths:
        for batch in pq.ParquetFile(path, filesystem=fs).iter_batches(batch_size=10_000, columns=["label", "h", "rid", "hlf", "particles"]):
            label, h, rid = (batch.column(c).to_numpy(zero_copy_only=False) for c in ("label", "h", "rid"))
            train = _at_or_before(label, h, rid, keep) & ~_at_or_before(label, h, rid, test)
            rows = np.flatnonzero(train)
            if not len(rows):
                continue
            hlf, particles, _ = _packed_arrays(batch.select(["hlf", "particles"]).take(pa.array(rows)))
            part = Moments.of(hlf, particles)
            total = part if total is None else total.merge(part)
    if total is not None:
        yield total


def transform_batch(batch: pa.RecordBatch, scaler: dict[str, Any], layout: str, schema: pa.Schema) -> pa.RecordBatch:
    """Selected events (packed, unscaled) -> the output layout, scaled."""
    scale = Scaler(**scaler)
    build = layouts.anchor if layout == "anchor" else layouts.compact
    hlf, particles, counts = _packed_arrays(batch)
    labels = batch.column("label").to_numpy(zero_copy_only=False)
    return _cast(build(labels, scale.transform_hlf(hlf), scale.transform_particles(particles, counts), counts), schema)


# ---- driver side ------------------------------------------------------------------------------

def read_ingested(spark: "SparkSession", path: str, fs: HadoopFS) -> "DataFrame":
    if not fs.exists(path):
        raise MissingInputError(f"input not found: {path}")
    try:
        events = spark.read.parquet(path)
    except Exception as exc:  # AnalysisException: not Parquet, empty directory...
        raise InputError(f"{path} is not an ingested Parquet dataset ({str(exc).splitlines()[0][:200]})") from None
    from pyspark.sql.pandas.types import to_arrow_schema

    ingested.check_schema(to_arrow_schema(events.schema), has_label_dir=False, where=path)
    return events


def _spark_schema_arrow(spark: "SparkSession", ddl: str) -> tuple[Any, pa.Schema]:
    from pyspark.sql.pandas.types import to_arrow_schema
    from pyspark.sql.types import _parse_datatype_string

    struct = _parse_datatype_string(ddl)
    return struct, to_arrow_schema(struct)


def compute_features(spark: "SparkSession", keyed: "DataFrame", options: d.FeatureOptions,
                     extra: tuple[str, ...] = ()) -> "DataFrame":
    """Unscaled features and the cut-flow step reached, per event of `keyed` (collections, label, sample,
    key); the `extra` columns of `keyed` pass through."""
    ddl = ", ".join([COMPUTED_SCHEMA] + [f"{name} {keyed.schema[name].dataType.simpleString()}" for name in extra])
    struct, arrow_schema = _spark_schema_arrow(spark, ddl)
    task = functools.partial(compute_batches, options=asdict(options), schema=arrow_schema, extra=extra)
    return keyed.mapInArrow(task, struct)


def manifest_digest(manifest: dict[str, Any]) -> str:
    """A digest of an input manifest, independent of its formatting."""
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


def cutflow_table(rows: list[tuple[int, int, int]], label_names: dict[int, str]) -> dict[str, dict[str, int]]:
    """{class: {step: events reaching at least that step}} from (label, last step reached, count)."""
    table: dict[str, dict[str, int]] = {}
    for label in sorted({r[0] for r in rows}):
        reached = [0] * len(d.CUT_NAMES)
        for lab, cut, count in rows:
            if lab == label:
                for step in range(cut + 1):
                    reached[step] += count
        table[label_names.get(label, str(label))] = dict(zip(d.CUT_NAMES, reached))
    return table


def features(cfg: FeaturesConfig, input_path: str, out: str, spark: "SparkSession", overwrite: bool = False,
             options: d.FeatureOptions = d.FeatureOptions()) -> FeaturesResult:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    start = time.perf_counter()
    input_path = input_path if "://" in input_path else os.path.abspath(input_path)
    out = out if "://" in out else os.path.abspath(out)
    fs = HadoopFS(spark, out)
    if fs.exists(out) and not overwrite:
        raise OutputExistsError(f"output {out} exists; pass --overwrite to replace it")
    pieces = ingested.plan(input_path)
    label_names: dict[int, str] = {}
    manifest_sha256 = None
    manifest_path = f"{input_path}/_manifest.json"
    if fs.exists(manifest_path):
        manifest = json.loads(fs.read_text(manifest_path))
        manifest_sha256 = manifest_digest(manifest)
        label_names = {f["label"]: f["sample"] for f in manifest.get("inputs", [])}

    tmp = f"{out.rstrip('/')}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        timings: dict[str, float] = {}
        mark = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal mark
            now = time.perf_counter()
            timings[name] = round(now - mark, 3)
            mark = now

        # 1. Features of every event in the tasks; the selected ones kept on disk for the passes below.
        task = functools.partial(select_task, root=f"{tmp}/_selected", options=asdict(options), seed=cfg.seed)
        prepare(f"{tmp}/_selected")
        try:
            reports = spark.sparkContext.parallelize(pieces, len(pieces)).mapPartitions(task).collect()
        except Exception as exc:
            user = input_error_in(exc)
            if user is not None:
                raise user from None
            raise
        commit(f"{tmp}/_selected", [f for r in reports for f in r["files"]])
        flow_rows = [row for r in reports for row in r["flow"]]
        lap("select_and_compute")

        cutflow = cutflow_table(flow_rows, label_names)
        events_in = sum(r[2] for r in flow_rows)
        per_class: dict[int, int] = {}
        for label, cut, count in flow_rows:
            per_class[label] = per_class.get(label, 0) + (count if cut == d.CUT_FINAL else 0)
        if not per_class or min(per_class.values()) == 0:
            raise InputError(f"no event of {input_path} passes the selection: nothing to train on")
        selected = spark.read.parquet(f"{tmp}/_selected")

        # 2. Balance and split with exact per-class counts: thresholds on a seeded content hash.
        keep = {lab: (min(per_class.values()) if cfg.balance == "undersample" else n) for lab, n in per_class.items()}
        n_test = {lab: int(round(cfg.test_fraction * k)) for lab, k in keep.items()}
        ranks = (selected.select("label", "h", "rid")
                 .withColumn("rank", F.row_number().over(Window.partitionBy("label").orderBy("h", "rid"))))
        wanted = [(lab, k) for lab, k in keep.items()] + [(lab, k) for lab, k in n_test.items() if k > 0]
        condition = functools.reduce(lambda a, b: a | b, [(F.col("label") == lab) & (F.col("rank") == k) for lab, k in wanted])
        cuts = {(r.label, r["rank"]): (r.h, r.rid) for r in ranks.where(condition).collect()}
        keep_h = {lab: cuts[(lab, k)] for lab, k in keep.items()}
        test_h = {lab: cuts.get((lab, k)) for lab, k in n_test.items()}

        def below(thresholds: dict[int, tuple[int, int] | None]):
            """Rows at or before each class's threshold in (h, rid) order."""
            terms = [(F.col("label") == lab) & ((F.col("h") < t[0]) | ((F.col("h") == t[0]) & (F.col("rid") <= t[1])))
                     for lab, t in thresholds.items() if t is not None]
            return functools.reduce(lambda a, b: a | b, terms) if terms else F.lit(False)

        kept = selected.where(below(keep_h))
        test = kept.where(below(test_h))
        train = kept.where(~below(test_h))
        lap("cutflow_balance_split")

        # 3. Scalers from the training split only, in tasks reading the selected events' files.
        files = committed_files(f"{tmp}/_selected")
        task = functools.partial(moments_task, root=f"{tmp}/_selected", keep=keep_h, test=test_h)
        parts = spark.sparkContext.parallelize(files, max(1, len(files))).mapPartitions(task).collect()
        if not parts:
            raise InputError(f"no training event left in {input_path} after the split")
        scaler = Scaler.fit(functools.reduce(Moments.merge, parts), per_event=cfg.per_event_standardisation)
        lap("fit_scalers")

        # 4. Scaled datasets; the training set in a seeded random order.
        ddl = layouts.ANCHOR_SCHEMA if cfg.layout == "anchor" else layouts.COMPACT_SCHEMA
        _, o_arrow = _spark_schema_arrow(spark, ddl)
        transform = functools.partial(transform_batch, scaler=scaler.to_dict(), layout=cfg.layout, schema=o_arrow)
        # A seeded random order without a global sort: hash-partitioned on the shuffling hash, sorted within.
        n_out = max(1, len(files))
        shuffled = train.repartition(n_out, "s").sortWithinPartitions("s").select("label", "hlf", "particles")
        batch_key = "spark.sql.execution.arrow.maxRecordsPerBatch"
        user_batch = spark.conf.get(batch_key, None)
        if cfg.layout == "anchor":
            # 801 × 19 doubles per event: keep Arrow batches small so a task's memory stays bounded.
            spark.conf.set(batch_key, "500")
        write_parquet(shuffled, f"{tmp}/train", transform=transform)
        lap("write_train")
        ordered_test = test.repartition(n_out, "s").sortWithinPartitions("label", "h", "rid")
        write_parquet(ordered_test.select("label", "hlf", "particles"), f"{tmp}/test", transform=transform)
        lap("write_test")
        if user_batch is None:
            spark.conf.unset(batch_key)
        else:
            spark.conf.set(batch_key, user_batch)

        counts = {}
        for split in ("train", "test"):
            rows = spark.read.parquet(f"{tmp}/{split}").groupBy("label").count().collect()
            counts[split] = {label_names.get(r.label, str(r.label)): r["count"] for r in sorted(rows)}
        seconds = time.perf_counter() - start
        metadata = {
            "stage": "features",
            "code_version": __version__,
            "input": input_path,
            "input_manifest_sha256": manifest_sha256,
            "layout": cfg.layout,
            "hlf_names": list(d.HLF_NAMES),
            "particle_names": list(d.PARTICLE_NAMES),
            "max_particles": d.MAX_PARTICLES,
            "label_names": {str(k): v for k, v in sorted(label_names.items())},
            "scaler": scaler.to_dict(),
            "cutflow": cutflow,
            "counts": counts,
            "seeds": {"balance_split": cfg.seed, "shuffle": cfg.seed + 1},
            "settings": cfg.model_dump(mode="json"),
            "options": asdict(options),
            "particle_order": "decreasing dR from the lepton (the lepton last)",
            "seconds": seconds,
            "timings_s": timings,
            "software": software_versions(),
        }
    except BaseException:
        discard(spark, fs, tmp)  # a failed run leaves nothing behind
        raise
    fs.delete(f"{tmp}/_selected")
    fs.write_text(f"{tmp}/metadata.json", json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    if fs.exists(out):
        fs.delete(out)
    fs.rename(tmp, out)
    return FeaturesResult(out, cutflow, counts, seconds, events_in)
