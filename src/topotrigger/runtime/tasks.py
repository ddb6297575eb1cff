"""Python work items run as Spark tasks through the DataFrame API only, so the same code runs on a
classic session and on Spark Connect (where there is no RDD API and no SparkContext).

`run_tasks` is what `sparkContext.parallelize(items, n).mapPartitions(function).collect()` did: the
items are split into `n` contiguous groups; `spark.range(n, numPartitions=n)` makes exactly one row,
hence one task, per group; each task runs `function` over its group (the groups travel in the task's
closure) and returns its results pickled, which the driver unpickles in group order.
"""

from __future__ import annotations

import functools
import math
import pickle
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import SparkSession

_RESULT_SCHEMA = "group int, seq int, result binary"


def is_connect(spark: "SparkSession") -> bool:
    """Whether `spark` is a Spark Connect session (no SparkContext, no RDD API)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def default_parallelism(spark: "SparkSession") -> int:
    """Spark's default parallelism. Spark Connect does not expose it: `range` without a partition count
    gets that many partitions, so a tiny job counts them."""
    if not is_connect(spark):
        return _classic_default_parallelism(spark)
    from pyspark.sql import functions as F

    return int(spark.range(0, 1 << 12).select(F.spark_partition_id().alias("p")).distinct().count())


def _classic_default_parallelism(spark: "SparkSession") -> int:
    return int(spark.sparkContext.defaultParallelism)


# Partitions are not made smaller than this to fill task slots (Spark's own file sources stop at 4 MiB too).
MIN_SPLIT_BYTES = 4 * 1024 * 1024


def bytes_per_partition(target_bytes: int, total_bytes: float, slots: int) -> int:
    """At most `target_bytes`, and little enough that `total_bytes` fills whole waves of `slots` tasks
    (18 partitions on 16 slots take two task-times; 32 smaller ones take the same, 16 take one), but not
    below MIN_SPLIT_BYTES. With one wave this is Spark's rule for file sources (maxSplitBytes against
    the default parallelism)."""
    if slots <= 1 or total_bytes <= 0:
        return target_bytes
    waves = math.ceil(total_bytes / target_bytes / slots)
    return int(min(target_bytes, max(MIN_SPLIT_BYTES, total_bytes / (waves * slots))))


def split(items: list[Any], groups: int) -> list[list[Any]]:
    """`items` in `groups` contiguous, nearly equal groups (as `parallelize` slices a list)."""
    n = len(items)
    return [items[i * n // groups:(i + 1) * n // groups] for i in range(groups)]


def _run_group(batches: Iterable["pa.RecordBatch"], groups: list[list[Any]],
               function: Callable[[Iterator[Any]], Iterable[Any]]) -> Iterator["pa.RecordBatch"]:
    import pyarrow as pa

    schema = pa.schema([("group", pa.int32()), ("seq", pa.int32()), ("result", pa.binary())])
    for batch in batches:
        for group in batch.column(0).to_pylist():
            results = [pickle.dumps(r) for r in function(iter(groups[group]))]
            yield pa.RecordBatch.from_arrays([pa.array([group] * len(results), pa.int32()),
                                              pa.array(range(len(results)), pa.int32()),
                                              pa.array(results, pa.binary())], schema=schema)


def run_tasks(spark: "SparkSession", items: list[Any], function: Callable[[Iterator[Any]], Iterable[Any]],
              tasks: int | None = None) -> list[Any]:
    """The results of `function` over `items` split into `tasks` tasks (default: one per item), in order.
    `function` must be importable on the executors (a module-level function or a partial of one)."""
    if not items:
        return []
    groups = split(items, min(tasks or len(items), len(items)))
    task = functools.partial(_run_group, groups=groups, function=function)
    rows = spark.range(0, len(groups), numPartitions=len(groups)).mapInArrow(task, _RESULT_SCHEMA).collect()
    return [pickle.loads(r.result) for r in sorted(rows, key=lambda r: (r.group, r.seq))]
