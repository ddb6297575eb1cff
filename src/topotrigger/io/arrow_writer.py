"""Parquet written by the Spark tasks themselves (pyarrow), committed by the driver.

Spark's own Parquet writer converts every nested value through its row format, which dominates the
cost of writing deep `array<struct>` columns. Here each task writes its Arrow batches straight to
`OUT/_attempts/<attempt>/` and reports the files it finished; once the job has succeeded the driver
moves exactly the reported files to their final names (`OUT/<col>=<value>/part-NNNNN-<attempt>.parquet`)
and deletes `_attempts`, so files of failed or speculative attempts never appear. Like Spark's commit
protocol this only ever exposes complete outputs, and the caller still renames the whole directory
into place at the end.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

REPORT_SCHEMA = "partition int, path string, value string, rows bigint"


def _filesystem(uri: str) -> tuple[pa.fs.FileSystem, str]:
    if "://" in uri and not uri.startswith("file://"):
        return pa.fs.FileSystem.from_uri(uri)
    return pa.fs.LocalFileSystem(), uri.removeprefix("file://")


def _write_task(batches: Iterator[pa.RecordBatch], root: str, column: str | None, compression: str) -> Iterator[pa.RecordBatch]:
    from pyspark import TaskContext

    context = TaskContext.get()
    partition = context.partitionId() if context else 0
    fs, base = _filesystem(root)
    attempt = uuid.uuid4().hex
    directory = f"{base}/_attempts/{attempt}"
    fs.create_dir(directory, recursive=True)
    writers: dict[str, tuple[pq.ParquetWriter, str]] = {}
    rows: dict[str, int] = {}
    try:
        for batch in batches:
            if column is None:
                groups = {"": batch}
            else:
                values = batch.column(column)
                groups = {str(v): batch.filter(pc.equal(values, v)) for v in pc.unique(values).to_pylist()}
            for value, part in groups.items():
                if column is not None:
                    part = part.drop_columns([column])
                if value not in writers:
                    path = f"{directory}/{len(writers):03d}.parquet"
                    writers[value] = (pq.ParquetWriter(path, part.schema, filesystem=fs, compression=compression), path)
                    rows[value] = 0
                writers[value][0].write_batch(part)
                rows[value] += part.num_rows
    finally:
        for writer, _ in writers.values():
            writer.close()
    yield pa.RecordBatch.from_pydict({"partition": [partition] * len(writers), "path": [p for _, p in writers.values()],
                                      "value": list(writers), "rows": [rows[v] for v in writers]},
                                     schema=pa.schema([("partition", pa.int32()), ("path", pa.string()),
                                                       ("value", pa.string()), ("rows", pa.int64())]))


def write_parquet(df: "DataFrame", root: str, partition_column: str | None = None, compression: str = "zstd") -> dict[str, int]:
    """Write `df` under `root` (which must not exist yet); returns rows per partition value."""
    task = functools.partial(_write_task, root=root, column=partition_column, compression=compression)
    reports = df.mapInArrow(task, REPORT_SCHEMA).collect()
    fs, base = _filesystem(root)
    counts: dict[str, int] = {}
    # Named by Spark partition, so readers list the files in the DataFrame's order.
    for report in sorted(reports, key=lambda r: (r.partition, r.path)):
        folder = f"{base}/{partition_column}={report.value}" if partition_column else base
        fs.create_dir(folder, recursive=True)
        part = report.path.rsplit("/", 1)[-1].removesuffix(".parquet")
        fs.move(report.path, f"{folder}/part-{report.partition:05d}-{part}.parquet")
        counts[report.value] = counts.get(report.value, 0) + report.rows
    fs.delete_dir(f"{base}/_attempts")
    with fs.open_output_stream(f"{base}/_SUCCESS") as marker:
        marker.write(b"")
    return counts
