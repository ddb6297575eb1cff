"""Parquet written by the Spark tasks themselves (pyarrow), committed by the driver.

Spark's own Parquet writer converts every nested value through its row format, which dominates the
cost of writing deep `array<struct>` columns. Here each task attempt writes its Arrow batches straight
to `OUT/_attempts/<attempt>/` (`TaskOutput`) and reports the files it finished; once the job has
succeeded the driver moves exactly the reported files to their final names
(`OUT/<col>=<value>/part-NNNNN-<attempt>.parquet`, `commit`) and deletes `_attempts`, so files of
failed or speculative attempts never appear. Like Spark's commit protocol this only ever exposes
complete outputs, and the caller still renames the whole directory into place at the end.

`write_parquet` does this for a DataFrame (one `mapInArrow`); stages whose tasks produce the batches
themselves (ingest reads ROOT files, features reads Parquet) use `TaskOutput` and `commit` directly,
so their data never passes through the JVM.
"""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from topotrigger.io.storage import resolve

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

DICTIONARY_COLUMNS = ("sample", "label", "file")
STATISTICS_COLUMNS = ("sample", "label", "file", "row", "key")
REPORT_SCHEMA = "partition int, path string, value string, rows bigint"
_REPORT_ARROW = pa.schema([("partition", pa.int32()), ("path", pa.string()), ("value", pa.string()), ("rows", pa.int64())])


def _partition_id() -> int:
    from pyspark import TaskContext

    context = TaskContext.get()
    return context.partitionId() if context else 0


class TaskOutput:
    """The Parquet files of one task attempt, one per value of the partition column."""

    def __init__(self, root: str, column: str | None = None, compression: str = "zstd",
                 options: dict[str, Any] | None = None, partition: int | None = None, split_floats: bool = False) -> None:
        # The number the committed files are named and ordered by: the Spark partition's, unless a task
        # writes several outputs of one dataset and names each.
        self.partition = _partition_id() if partition is None else partition
        self.fs, base = resolve(root)
        self.column = column
        self.compression = compression
        # Dictionary encoding only where values repeat: on continuous floats (most of these files) it
        # writes a dictionary page as large as the data, and the files came out 1.5x bigger and slower.
        # Min/max statistics likewise only where readers filter on them: on millions of nested floats
        # they cost a quarter of the writing time and skip nothing.
        self.options = {"use_dictionary": list(DICTIONARY_COLUMNS), "write_statistics": list(STATISTICS_COLUMNS)} | (options or {})
        self.split_floats = split_floats
        self.directory = f"{base}/_attempts/{uuid.uuid4().hex}"
        # Not recursive: once the driver has removed a failed job's output, a task still running
        # (cancelled, not yet stopped) cannot bring the directory back.
        self.fs.create_dir(self.directory, recursive=False)
        self.writers: dict[str, tuple[pq.ParquetWriter, str]] = {}
        self.rows: dict[str, int] = {}

    def write(self, batch: pa.RecordBatch | pa.Table, value: Any = None) -> None:
        """Append `batch`; with a partition column, rows go to their value's file (or all to `value`)."""
        if self.column is None:
            groups = {"": batch}
        elif value is not None:
            groups = {str(value): batch}
        else:
            values = batch.column(self.column)
            groups = {str(v): batch.filter(pc.equal(values, v)).drop_columns([self.column])
                      for v in pc.unique(values).to_pylist()}
        for key, part in groups.items():
            if key not in self.writers:
                path = f"{self.directory}/{len(self.writers):03d}.parquet"
                split = {"use_byte_stream_split": float_columns(part.schema)} if self.split_floats else {}
                writer = pq.ParquetWriter(path, part.schema, filesystem=self.fs, compression=self.compression,
                                          **(self.options | split))
                self.writers[key] = (writer, path)
                self.rows[key] = 0
            if isinstance(part, pa.Table):
                self.writers[key][0].write_table(part)
            else:
                self.writers[key][0].write_batch(part)
            self.rows[key] += part.num_rows

    def close(self) -> list[dict[str, Any]]:
        """Close every file; the reports the driver's `commit` needs."""
        for writer, _ in self.writers.values():
            writer.close()
        return [{"partition": self.partition, "path": path, "value": key, "rows": self.rows[key]}
                for key, (_, path) in self.writers.items()]

    def abort(self) -> None:
        for writer, _ in self.writers.values():
            with contextlib.suppress(Exception):  # the task is failing anyway; its files are never committed
                writer.close()


def float_columns(schema: pa.Schema) -> list[str]:
    """The Parquet column paths of the float32 and float64 leaves of `schema` (lists of structs included),
    for the byte-stream-split encoding: it groups the floats' bytes by significance, and a fast codec
    then compresses them (lz4: files as small as plain zstd, read a third faster)."""
    def leaves(name: str, kind: pa.DataType) -> Iterator[str]:
        if pa.types.is_float32(kind) or pa.types.is_float64(kind):
            yield name
        elif pa.types.is_struct(kind):
            for child in kind.fields:
                yield from leaves(f"{name}.{child.name}", child.type)
        elif pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
            yield from leaves(f"{name}.list.element", kind.value_type)

    return [path for f in schema for path in leaves(f.name, f.type)]


def prepare(root: str) -> None:
    """Create `root/_attempts`, where the tasks' attempts write (call before starting the job)."""
    fs, base = resolve(root)
    fs.create_dir(f"{base}/_attempts", recursive=True)


def _write_task(batches: Iterator[pa.RecordBatch], root: str, column: str | None, compression: str,
                transform: Callable[[pa.RecordBatch], pa.RecordBatch] | None) -> Iterator[pa.RecordBatch]:
    output = TaskOutput(root, column, compression)
    try:
        for batch in batches:
            output.write(transform(batch) if transform else batch)
    except BaseException:
        output.abort()
        raise
    yield pa.RecordBatch.from_pylist(output.close(), schema=_REPORT_ARROW)


def commit(root: str, reports: Iterable[Any], partition_column: str | None = None) -> dict[str, int]:
    """Move the reported files into place, remove `_attempts`, mark `_SUCCESS`; rows per partition value."""
    fs, base = resolve(root)
    counts: dict[str, int] = {}
    fs.create_dir(base, recursive=True)
    rows = [r if isinstance(r, dict) else r.asDict() for r in reports]
    # Named by Spark partition, so readers list the files in the job's order.
    for report in sorted(rows, key=lambda r: (r["partition"], r["path"])):
        folder = f"{base}/{partition_column}={report['value']}" if partition_column else base
        fs.create_dir(folder, recursive=True)
        part = report["path"].rsplit("/", 1)[-1].removesuffix(".parquet")
        fs.move(report["path"], f"{folder}/part-{report['partition']:05d}-{part}.parquet")
        counts[report["value"]] = counts.get(report["value"], 0) + report["rows"]
    if fs.get_file_info(f"{base}/_attempts").type != pa.fs.FileType.NotFound:
        fs.delete_dir(f"{base}/_attempts")
    with fs.open_output_stream(f"{base}/_SUCCESS") as marker:
        marker.write(b"")
    return counts


def write_empty_parquet(uri: str, schema: pa.Schema) -> None:
    """A Parquet file with `schema` and no rows: an empty split that readers still recognise."""
    fs, path = resolve(uri)
    pq.write_table(schema.empty_table(), path, filesystem=fs)


def write_parquet(df: "DataFrame", root: str, partition_column: str | None = None, compression: str = "zstd",
                  transform: Callable[[pa.RecordBatch], pa.RecordBatch] | None = None) -> dict[str, int]:
    """Write `df` (each batch through `transform`, in the same task) under `root`, which must not exist
    yet; returns rows per partition value."""
    task = functools.partial(_write_task, root=root, column=partition_column, compression=compression,
                             transform=transform)
    prepare(root)
    return commit(root, df.mapInArrow(task, REPORT_SCHEMA).collect(), partition_column)
