"""The Spark data source `root`: `spark.read.format("root").option("tree", "Delphes").load(paths)`.

Thin glue over `plan` (driver side: expand paths, scan files, pack partitions) and `reader`
(executor side: entry ranges -> Arrow batches). Options:

    files           JSON list of files, used as given (no expansion)
    plan            JSON list of partitions, each a list of {path, start, stop} slices (skips the scan)
    tree            TTree/RNTuple name (default "Delphes")
    recursive       descend into directories (default true)
    branches        comma-separated names or globs (`EFlowTrack.*`, `Jet`, `MissingET.MET`)
    collections     JSON {collection: [fields]}: read exactly these, with naming variants and aliases
    nested          true (default): `C.F`/`C_F` branches as one `C: array<struct<F, ...>>` column;
                    false: one array column per branch (`Jet.PT` -> `Jet_PT: array<float>`), which
                    Spark turns into rows several times faster than structs
    partitionBytes  target uncompressed bytes per partition (default 128 MiB)
    partitionEntries  entries per partition (overrides partitionBytes; opens every file to count)
    partitionMaxEntries  at most this many entries per partition (default 1000000), estimated from sizes
    minPartitions    smaller partitions (down to 4 MiB) where fewer would leave task slots idle; pass the
                     session's default parallelism (default 1: partitions of partitionBytes)
    stepEntries     entries decompressed at a time inside a task (bounds memory; default 50000)
    onBadFile       stop (default) or skip
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
from pyspark.sql.datasource import DataSource, DataSourceReader, InputPartition
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import StructType

from topotrigger.errors import InputError
from topotrigger.ingest import plan, reader
from topotrigger.ingest import schema as plan_schema
from topotrigger.ingest.paths import expand

DEFAULT_PARTITION_BYTES = 128 * 1024 * 1024


class RootPartition(InputPartition):
    def __init__(self, slices: list[dict[str, Any]]) -> None:
        super().__init__(slices)
        self.slices = slices


def _paths(options: dict[str, str]) -> list[str]:
    if "files" in options:  # an explicit, already expanded list (what the ingest stage passes)
        return list(json.loads(options["files"]))
    if "paths" in options:  # .load([a, b]) hands Spark's path list over as JSON
        paths = json.loads(options["paths"])
    elif "path" in options:
        paths = [options["path"]]
    else:
        raise ValueError("no input path given to the root data source: use .load(path or list of paths)")
    return expand(paths, recursive=options.get("recursive", "true").lower() != "false")


def _columns_from_options(options: dict[str, str], first_file: str, tree: str,
                          strict: bool = True) -> list[plan_schema.Column]:
    if "collections" in options:
        wanted: dict[str, list[str]] = json.loads(options["collections"])
        handle, obj = reader.open_tree(first_file, tree)
        with handle:
            resolved = reader.resolve_columns(obj, [plan_schema.Column(c, None, tuple((f, "float64") for f in fields))
                                                    for c, fields in wanted.items()], first_file)
            dtypes = {b.name: b.dtype for b in plan_schema.branches_of(obj) if b.jagged}
        fields_of = {c: m for c, m in resolved.items() if isinstance(m, dict)}  # collections, not flat branches
        for c, mapping in fields_of.items():
            odd = [b for b in mapping.values() if b not in dtypes]
            if odd:
                raise InputError(f"branch {odd[0]} of {c} is not a list of numbers per entry in {first_file}")
        return [plan_schema.Column(c, None, tuple((f, dtypes[b]) for f, b in fields_of[c].items()),
                                   sources=tuple(fields_of[c].values())) for c in wanted]
    patterns = [p.strip() for p in options.get("branches", "").split(",") if p.strip()] or None
    handle, obj = reader.open_tree(first_file, tree)
    with handle:
        try:
            return plan_schema.infer_columns(obj, patterns, strict, options.get("nested", "true").lower() != "false")
        except KeyError as exc:
            raise InputError(f"branch {exc.args[0]} not found in {first_file}") from None


def _lower(options: Any) -> dict[str, str]:
    # Spark treats option names case-insensitively; a plain dict would not.
    return {str(k).lower(): v for k, v in dict(options).items()}


def _count(options: dict[str, str], name: str, default: int) -> int:
    """A positive whole-number option; a bad value is one clear error, not a ValueError from the task."""
    value = options.get(name.lower(), default)
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        raise InputError(f"option {name} must be a positive whole number, not {value!r}")
    return number


class RootDataSource(DataSource):
    @classmethod
    def name(cls) -> str:
        return "root"

    def _tree(self) -> str:
        return self.options.get("tree", "Delphes")

    def schema(self) -> StructType:
        options = _lower(self.options)
        files = _paths(options)
        return plan_schema.spark_schema(_columns_from_options(options, files[0], self._tree()), never_null=True)

    def reader(self, schema: StructType) -> "RootReader":
        # The schema (inferred or the user's) has Spark names only: take each value's branch name in the
        # first file from the inferred plan (reads no entries).
        options = _lower(self.options)
        first = json.loads(options["plan"])[0][0]["path"] if "plan" in options else _paths(options)[0]
        known = _columns_from_options(options, first, self._tree(), strict=False)
        columns = plan_schema.with_sources(plan_schema.from_spark_schema(schema), known)
        return RootReader(options, schema, columns)


class RootReader(DataSourceReader):
    def __init__(self, options: dict[str, str], spark_schema: StructType,
                 columns: list[plan_schema.Column] | None = None) -> None:
        self.options = options
        self.tree = options.get("tree", "Delphes")
        self.columns_json = plan_schema.to_json(columns or plan_schema.from_spark_schema(spark_schema))
        self.arrow_schema = to_arrow_schema(spark_schema)
        self.step = _count(options, "stepEntries", 50_000)
        self.on_bad_file = options.get("onbadfile", "stop")

    def partitions(self) -> list[RootPartition]:
        if "plan" in self.options:  # partitions planned by the caller
            return [RootPartition(slices) for slices in json.loads(self.options["plan"])]
        files = _paths(self.options)
        columns = plan_schema.from_json(self.columns_json)
        target = _count(self.options, "partitionBytes", DEFAULT_PARTITION_BYTES)
        entries = self.options.get("partitionentries")
        slots = _count(self.options, "minPartitions", 1)
        if entries:  # exact entry counts need every file opened here
            infos, _ = plan.scan(files, self.tree, columns, self.on_bad_file)
            parts = plan.make_partitions(infos, target, _count(self.options, "partitionEntries", 1), slots)
        else:  # sizes on disk and the first file's compression ratio; bad files are found by the tasks
            first = plan.first_readable(files, self.tree, columns, self.on_bad_file)
            sizes = {f: (first.size if f == first.path else plan.file_size(f)) for f in files}
            parts = plan.plan_by_size(sizes, plan.expansion_of(first), target, plan.entries_per_byte(first),
                                      _count(self.options, "partitionMaxEntries", plan.MAX_ENTRIES), slots)
        return [RootPartition(p.to_dict()["slices"]) for p in parts]

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        # Spark calls read() once with a bare InputPartition when partitions() returned none.
        slices = getattr(partition, "slices", None)
        if not slices:
            return
        columns = plan_schema.from_json(self.columns_json)
        for batch in reader.read_slices(slices, self.tree, columns, self.step, self.on_bad_file):
            yield batch.cast(self.arrow_schema)


def register(spark: Any) -> None:
    """Make `spark.read.format("root")` available in this session (idempotent)."""
    spark.dataSource.register(RootDataSource)
