"""The `ingest` stage: class directories of ROOT files -> Parquet partitioned by label, with a manifest.

Order of work, so that nothing is written unless it can be finished: expand and label inputs, plan
partitions from the sizes on disk (one file is opened on the driver to measure the compression ratio),
then one Spark task per partition reads its entry ranges with uproot and writes them with pyarrow
into a temporary directory (`io.arrow_writer.TaskOutput`): the events never pass through the JVM,
which on these nested columns cost more than reading them (docs/performance.md). The driver commits
the files the successful task attempts reported, adds `_manifest.json` (the leading underscore keeps it
out of every Parquet reader's way, like Spark's `_SUCCESS`), and renames the directory into place.
A bad file stops the job (the temporary directory is removed) or, with `skip`, is listed with its
reason and contributes no rows.

The same reader serves `spark.read.format("root")` (`source.py`) for interactive use.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from topotrigger.config import IngestConfig
from topotrigger.errors import InputError, UserError, carry_user_errors, user_errors_from_tasks
from topotrigger.features.arrow import collections_of
from topotrigger.features.ingested import FINITE
from topotrigger.features.kernels.events import non_finite
from topotrigger.ingest import cross_sections, plan
from topotrigger.ingest.paths import expand
from topotrigger.ingest.reader import read_slices
from topotrigger.ingest.schema import Column, from_json, spark_schema, to_json
from topotrigger.io import storage
from topotrigger.io.arrow_writer import TaskOutput, commit, prepare
from topotrigger.io.delphes import PIPELINE_COLLECTIONS
from topotrigger.io.provenance import PROVENANCE
from topotrigger.io.storage import redact
from topotrigger.io.versions import software_versions
from topotrigger.runtime.tasks import default_parallelism, run_tasks

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

# Entries decompressed at a time in a task: bounds its memory whatever the file size.
STEP_ENTRIES = 50_000

# The types the pipeline stores (Delphes floats are float32; BTag is unsigned in ROOT, long in Spark).
_FIELD_TYPES = {"PID": "int32", "Charge": "int32", "BTag": "int64"}


def pipeline_columns() -> list[Column]:
    return [Column(c, None, tuple((f, _FIELD_TYPES.get(f, "float32")) for f in fields))
            for c, fields in PIPELINE_COLLECTIONS.items()]


def pipeline_schema() -> "StructType":
    """The pipeline's columns as Spark declares them: the values a ROOT file holds are never null."""
    return spark_schema(pipeline_columns(), never_null=True)


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


def scan_on_spark(spark: "SparkSession", paths: list[str], tree: str, on_bad_file: str) -> tuple[list[plan.FileInfo], list[dict[str, str]]]:
    """Scan files in Spark tasks: opening a TTree costs ~0.2 s of Python, which adds up over many files."""
    if len(paths) <= 4:
        return plan.scan(paths, tree, pipeline_columns(), on_bad_file)
    columns_json = to_json(pipeline_columns())
    slices = min(len(paths), 4 * default_parallelism(spark))
    results = run_tasks(spark, paths, functools.partial(scan_files, tree=tree, columns_json=columns_json), slices)
    return plan.sort_out(paths, results, on_bad_file)


def scan_files(paths: Iterator[str], tree: str, columns_json: str) -> Iterator[Any]:
    """Spark task body: the scan of each file of the group."""
    columns = from_json(columns_json)
    for path in paths:
        yield plan.try_scan_file(path, tree, columns)


def read_events(spark: "SparkSession", infos: list[plan.FileInfo], tree: str, partition_bytes: int,
                partition_entries: int | None = None) -> "DataFrame":
    """The pipeline collections of already-scanned files as a DataFrame, through the `root` data source."""
    parts = plan.make_partitions(infos, partition_bytes, partition_entries)
    return (spark.read.format("root").schema(pipeline_schema()).option("tree", tree)
            .option("plan", json.dumps([p.to_dict()["slices"] for p in parts])).load())


def output_schema() -> pa.Schema:
    """What Spark would write for the data source's rows, their provenance (file, entry, event number),
    `sample` (label is the directory) and FINITE (whether all the event's input floats are finite).
    The pipeline's values are required, as a ROOT file holds them: a Parquet reader then decodes no
    definition levels but the lists' (the features stage reads every event twice and reads these
    files ≈ 1.6× faster so)."""
    from pyspark.sql.pandas.types import to_arrow_schema

    schema = to_arrow_schema(pipeline_schema())
    for f in PROVENANCE:
        schema = schema.append(f)
    return schema.append(pa.field("sample", pa.string())).append(pa.field(FINITE, pa.bool_(), nullable=False))


MANIFEST = "_manifest.json"
# lz4 over byte-stream-split floats: files as small as zstd over plain floats (0.1–2 % more), which the features
# stage, reading every event twice, reads a third faster (docs/performance.md).
WRITER: dict[str, Any] = {"compression": "lz4", "split_floats": True}


@carry_user_errors
def ingest_task(items: Iterator[dict[str, Any]], root: str, tree: str, columns_json: str, schema: pa.Schema,
                step: int, on_bad_file: str) -> Iterator[dict[str, Any]]:
    """One Spark task: read its partitions' entry ranges and write them as Parquet under `root`."""
    columns = from_json(columns_json)
    output = TaskOutput(root, "label", **WRITER)
    read_schema = schema.remove(schema.get_field_index(FINITE))  # what the files hold; FINITE is computed
    seen: dict[str, int] = {}
    bad: dict[str, str] = {}
    try:
        for item in items:
            for batch in read_slices(item["slices"], tree, columns, step, on_bad_file, seen, bad, provenance=True):
                sample = pa.repeat(pa.scalar(item["sample"], pa.string()), batch.num_rows)
                batch = pa.RecordBatch.from_arrays([*batch.columns, sample], schema=batch.schema.append(schema.field("sample")))
                output.write(_finite(_required(batch, read_schema), schema.field(FINITE)), value=item["label"])
    except BaseException:
        output.abort()
        raise
    yield {"files": output.close(), "entries": seen, "bad": bad}


def _required(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """The batch in the output schema; a pipeline value the file leaves missing (an RNTuple option type) is
    an error naming the file and the column, never a null the features would read as a number."""
    try:
        return batch.cast(schema)
    except (pa.ArrowInvalid, ValueError):
        names = [n for n in PIPELINE_COLLECTIONS if _has_nulls(batch.column(n))]
        if not names:
            raise
        raise InputError(f"{redact(batch.column('source_file')[0].as_py())}: {', '.join(names)} has missing (null) values, "
                         "which the pipeline's columns cannot hold") from None


def _finite(batch: pa.RecordBatch, field: pa.Field) -> pa.RecordBatch:
    """`batch` and its FINITE column (`field`), from the values as written (a double too large for
    float32 is infinite once cast)."""
    bad = non_finite(collections_of(batch), batch.num_rows)
    return batch.append_column(field, pa.array(~bad))


def _has_nulls(array: pa.Array) -> bool:
    if array.null_count:
        return True
    if pa.types.is_list(array.type) or pa.types.is_large_list(array.type):
        return _has_nulls(array.flatten())
    if pa.types.is_struct(array.type):
        return any(_has_nulls(array.field(i)) for i in range(array.type.num_fields))
    return False


def _plan(spark: "SparkSession", cfg: IngestConfig, by_sample: dict[str, list[str]]
          ) -> tuple[list[plan.Partition], list[str], dict[str, str], dict[str, int]]:
    """Partitions, with the sample each belongs to, the files the planning found unreadable, and the
    sizes on disk it looked up (for the manifest)."""
    all_files = [f for paths in by_sample.values() for f in paths]
    slots = default_parallelism(spark)  # small inputs are cut finer so that every task slot reads
    parts: list[plan.Partition] = []
    samples: list[str] = []
    bad: dict[str, str] = {}
    sizes: dict[str, int] = {}
    if cfg.partition_entries:  # exact entry counts: every file is opened once before the read
        for sample, paths in by_sample.items():
            good, skipped = scan_on_spark(spark, paths, cfg.tree, cfg.on_bad_file)
            bad |= {b["path"]: b["reason"] for b in skipped}
            sizes |= {i.path: i.size for i in good}
            new = plan.make_partitions(good, cfg.partition_bytes, cfg.partition_entries, slots)
            parts += new
            samples += [sample] * len(new)
        return parts, samples, bad, sizes
    first = plan.first_readable(all_files, cfg.tree, pipeline_columns(), cfg.on_bad_file)
    expansion = plan.expansion_of(first)
    sizes = {f: (first.size if f == first.path else plan.file_size(f)) for f in all_files}
    total = sum(max(size, 0) for size in sizes.values()) * expansion
    for sample, paths in by_sample.items():
        here = {f: sizes[f] for f in paths}
        new = plan.plan_by_size(here, expansion, cfg.partition_bytes, plan.entries_per_byte(first),
                                min_partitions=slots, total_bytes=total)
        parts += new
        samples += [sample] * len(new)
    return parts, samples, bad, sizes


def ingest(cfg: IngestConfig, inputs: list[str], out: str, spark: "SparkSession", overwrite: bool = False,
           label: int | None = None) -> IngestResult:
    start = time.perf_counter()
    out = storage.absolute(out)
    storage.check_output(out, overwrite, MANIFEST)
    files = expand(inputs)
    by_sample = label_files(files, cfg.label_map, label)
    # label_files has refused every sample that is neither in the label map nor given a --label.
    labels: dict[str, int] = {sample: cfg.label_map.get(sample, label if label is not None else -1) for sample in by_sample}
    parts, samples, bad, sizes = _plan(spark, cfg, by_sample)
    items = [{"sample": sample, "label": labels[sample], "slices": part.to_dict()["slices"]}
             for part, sample in zip(parts, samples)]

    with storage.staged_output(out, overwrite, MANIFEST, spark) as staged:
        task = functools.partial(ingest_task, root=staged.uri, tree=cfg.tree, columns_json=to_json(pipeline_columns()),
                                 schema=output_schema(), step=STEP_ENTRIES, on_bad_file=cfg.on_bad_file)
        prepare(staged.uri)
        with user_errors_from_tasks():
            reports = run_tasks(spark, items, task)
        entries: dict[str, int] = {}
        for report in reports:
            entries |= report["entries"]
            bad |= report["bad"]
        if not set(entries) - set(bad):
            raise InputError("no readable input file: " + "; ".join(list(bad.values())[:3]))
        written = commit(staged.uri, [f for r in reports for f in r["files"]], "label")

        skipped = [{"path": redact(path), "reason": reason} for path, reason in sorted(bad.items())]
        counts: dict[int, int] = {}
        file_records = []
        for sample, paths in by_sample.items():
            value = labels[sample]
            good = [p for p in paths if p in entries and p not in bad]
            if not good:
                continue
            counts[value] = counts.get(value, 0) + sum(entries[p] for p in good)
            file_records += [{"path": redact(p), "sample": sample, "label": value, "entries": entries[p],
                              "bytes": sizes.get(p, -1)} for p in good]
        if {str(k): v for k, v in counts.items() if v} != written:  # every entry of every good file, once
            raise RuntimeError(f"ingest wrote {written} rows per label, the inputs hold {counts}")
        seconds = time.perf_counter() - start
        storage.write_json(staged.path(MANIFEST), {
            "stage": "ingest",
            "settings": cfg.model_dump(mode="json"),
            "inputs": file_records,
            "skipped": skipped,
            "counts": {str(k): v for k, v in sorted(counts.items())},
            # The cross-section of the events each sample's files hold (pb), where generate recorded it.
            "cross_sections": cross_sections.from_generator(
                {s: [p for p in paths if p in entries and p not in bad] for s, paths in by_sample.items()}),
            "schema": json.loads(pipeline_schema().add("source_file", "string").add("source_entry", "long")
                                 .add("event_number", "long").add("label", "integer").add("sample", "string").json()),
            "seconds": seconds,
            "software": software_versions(),
        })
    return IngestResult(out, counts, file_records, skipped, seconds)
