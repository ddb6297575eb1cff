"""The `ingest` stage: class directories of ROOT files -> Parquet partitioned by label, with a manifest.

Order of work, so that nothing is written unless it can be finished: expand and label inputs, scan
every file (bad ones stop the job, or are listed and skipped), then let the Spark tasks write into a
temporary directory (`io.arrow_writer`: pyarrow in the tasks, committed by the driver, about twice
as fast as Spark's row-based writer on these nested columns), add `_manifest.json` (the leading underscore
keeps it out of every Parquet reader's way, like Spark's `_SUCCESS`), and rename the directory into
place.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from topotrigger.config import IngestConfig
from topotrigger.errors import InputError, OutputExistsError, UserError
from topotrigger.ingest import plan
from topotrigger.ingest.paths import expand, redact
from topotrigger.ingest.schema import Column, from_json, spark_schema, to_json
from topotrigger.io.delphes import PIPELINE_COLLECTIONS
from topotrigger.io.arrow_writer import write_parquet
from topotrigger.io.hadoop import HadoopFS
from topotrigger.io.versions import software_versions

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# The types the pipeline stores (Delphes floats are float32; BTag is unsigned in ROOT, long in Spark).
_FIELD_TYPES = {"PID": "int32", "Charge": "int32", "BTag": "int64"}


def pipeline_columns() -> list[Column]:
    return [Column(c, None, tuple((f, _FIELD_TYPES.get(f, "float32")) for f in fields))
            for c, fields in PIPELINE_COLLECTIONS.items()]


@dataclass
class IngestResult:
    out: str
    counts: dict[int, int]
    files: list[dict[str, Any]]
    skipped: list[dict[str, str]]
    seconds: float


def sample_of(path: str, label_map: dict[str, int]) -> str | None:
    """The nearest enclosing directory whose name is a class in `label_map`."""
    parts = PurePosixPath(path.split("://", 1)[-1]).parts[:-1]
    for name in reversed(parts):
        if name in label_map:
            return name
    return None


def label_files(files: list[str], label_map: dict[str, int], label: int | None) -> dict[str, list[str]]:
    by_sample: dict[str, list[str]] = {}
    for f in files:
        sample = sample_of(f, label_map)
        if sample is None:
            if label is None:
                raise UserError(f"cannot tell the class of {redact(f)}: no enclosing directory is one of "
                                f"{', '.join(sorted(label_map))}; pass --label N or --label-map")
            sample = PurePosixPath(f).parent.name or "sample"
        by_sample.setdefault(sample, []).append(f)
    return by_sample


def _output_uri(out: str) -> str:
    return out if "://" in out else os.path.abspath(out)


def _input_error(exc: Exception) -> InputError | None:
    """The user's data error inside a failed Spark job, if that is what it was."""
    match = re.search(r"topotrigger\.errors\.InputError: ([^\n]+)", str(exc))
    return InputError(match.group(1)) if match else None


def scan_on_spark(spark: "SparkSession", paths: list[str], tree: str, on_bad_file: str) -> tuple[list[plan.FileInfo], list[dict[str, str]]]:
    """Scan files in Spark tasks: opening a TTree costs ~0.2 s of Python, which adds up over many files."""
    if len(paths) <= 4:
        return plan.scan(paths, tree, pipeline_columns(), on_bad_file)
    columns_json = to_json(pipeline_columns())
    slices = min(len(paths), 4 * spark.sparkContext.defaultParallelism)
    results = (spark.sparkContext.parallelize(paths, slices)
               .map(lambda p: plan.try_scan_file(p, tree, from_json(columns_json))).collect())
    return plan.sort_out(paths, results, on_bad_file)


def read_events(spark: "SparkSession", infos: list[plan.FileInfo], tree: str, partition_bytes: int,
                partition_entries: int | None = None) -> "DataFrame":
    """The pipeline collections of already-scanned files, partitioned by size."""
    parts = plan.make_partitions(infos, partition_bytes, partition_entries)
    return (spark.read.format("root").schema(spark_schema(pipeline_columns())).option("tree", tree)
            .option("plan", json.dumps([p.to_dict()["slices"] for p in parts])).load())


def ingest(cfg: IngestConfig, inputs: list[str], out: str, spark: "SparkSession", overwrite: bool = False,
           label: int | None = None) -> IngestResult:
    from pyspark.sql import functions as F

    start = time.perf_counter()
    out = _output_uri(out)
    fs = HadoopFS(spark, out)
    if fs.exists(out) and not overwrite:
        raise OutputExistsError(f"output {redact(out)} exists; pass --overwrite to replace it")

    files = expand(inputs)
    by_sample = label_files(files, cfg.label_map, label)
    infos: dict[str, list[plan.FileInfo]] = {}
    skipped: list[dict[str, str]] = []
    for sample, paths in by_sample.items():
        good, bad = scan_on_spark(spark, paths, cfg.tree, cfg.on_bad_file)
        skipped += bad
        if good:
            infos[sample] = good
    if not infos:
        raise InputError("no readable input file: " + "; ".join(b["reason"] for b in skipped[:3]))

    frames = []
    for sample, good in infos.items():
        value = cfg.label_map.get(sample, label)
        df = read_events(spark, good, cfg.tree, cfg.partition_bytes, cfg.partition_entries)
        frames.append(df.withColumn("label", F.lit(value).cast("int")).withColumn("sample", F.lit(sample)))
    events = frames[0]
    for frame in frames[1:]:
        events = events.unionByName(frame)

    tmp = f"{out.rstrip('/')}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        write_parquet(events, tmp, partition_column="label")
    except Exception as exc:
        fs.delete(tmp)
        user = _input_error(exc)
        if user is not None:
            raise user from None
        raise

    counts: dict[int, int] = {}
    file_records = []
    for sample, good in infos.items():
        value = cfg.label_map.get(sample, label)
        counts[value] = counts.get(value, 0) + sum(i.entries for i in good)
        file_records += [{"path": redact(i.path), "sample": sample, "label": value, "entries": i.entries,
                          "bytes": i.size} for i in good]
    seconds = time.perf_counter() - start
    manifest = {
        "stage": "ingest",
        "settings": cfg.model_dump(mode="json"),
        "inputs": file_records,
        "skipped": skipped,
        "counts": {str(k): v for k, v in sorted(counts.items())},
        "schema": json.loads(events.schema.json()),
        "seconds": seconds,
        "software": software_versions(),
    }
    fs.write_text(f"{tmp}/_manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    if fs.exists(out):
        fs.delete(out)
    fs.rename(tmp, out)
    return IngestResult(out, counts, file_records, skipped, seconds)
