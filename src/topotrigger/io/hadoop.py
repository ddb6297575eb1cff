"""File operations on any Hadoop file system (local, hdfs://, s3a://...) through the Spark JVM.

Stage outputs written by Spark live wherever Spark can write; their temporary-name-then-rename
commit and manifests use the same file system client Spark used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class HadoopFS:
    def __init__(self, spark: "SparkSession", path: str) -> None:
        jvm = spark.sparkContext._jvm
        self._jvm = jvm
        self._conf = spark.sparkContext._jsc.hadoopConfiguration()
        self._fs = jvm.org.apache.hadoop.fs.Path(path).getFileSystem(self._conf)

    def _path(self, path: str) -> Any:
        return self._jvm.org.apache.hadoop.fs.Path(path)

    def exists(self, path: str) -> bool:
        return bool(self._fs.exists(self._path(path)))

    def delete(self, path: str) -> None:
        self._fs.delete(self._path(path), True)

    def rename(self, src: str, dst: str) -> None:
        if not self._fs.rename(self._path(src), self._path(dst)):
            raise OSError(f"could not rename {src} to {dst}")

    def write_text(self, path: str, text: str) -> None:
        stream = self._fs.create(self._path(path), True)
        try:
            stream.write(bytearray(text.encode()))
        finally:
            stream.close()

    def read_text(self, path: str) -> str:
        stream = self._fs.open(self._path(path))
        try:
            reader = self._jvm.java.io.BufferedReader(self._jvm.java.io.InputStreamReader(stream, "UTF-8"))
            lines = []
            line = reader.readLine()
            while line is not None:
                lines.append(line)
                line = reader.readLine()
            return "\n".join(lines)
        finally:
            stream.close()


def discard(spark: "SparkSession", fs: HadoopFS, path: str, wait_s: float = 30.0) -> None:
    """Remove a failed job's temporary output. When a job fails, Spark cancels its other tasks but
    does not wait for them: wait until no stage is active, then delete (and check it stays deleted)."""
    import time

    tracker = spark.sparkContext.statusTracker()
    deadline = time.monotonic() + wait_s
    while tracker.getActiveStageIds() and time.monotonic() < deadline:
        time.sleep(0.1)
    for _ in range(5):
        fs.delete(path)
        time.sleep(0.2)
        if not fs.exists(path):
            return
