"""Progress of a Spark job, read from Spark's status tracker and shown with rich."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

T = TypeVar("T")


def run_with_progress(spark: "SparkSession", description: str, action: Callable[[], T], poll_s: float = 0.5) -> T:
    """Run `action` (which starts Spark jobs) and show their task progress until it returns. Spark Connect
    exposes no task counts: there the bar shows the elapsed time only."""
    from topotrigger.runtime.tasks import is_connect

    if is_connect(spark):
        columns = (TextColumn("{task.description}"), TimeElapsedColumn())
        with Progress(*columns, transient=False) as progress:
            progress.add_task(description, total=None)
            return action()
    return _classic_progress(spark, description, action, poll_s)


def _classic_progress(spark: "SparkSession", description: str, action: Callable[[], T], poll_s: float) -> T:
    sc = spark.sparkContext
    group = f"topotrigger-{uuid.uuid4().hex[:8]}"
    result: dict[str, T] = {}
    error: list[BaseException] = []

    def target() -> None:
        sc.setJobGroup(group, description)
        try:
            result["value"] = action()
        except BaseException as exc:  # re-raised in the caller's thread
            error.append(exc)

    worker = threading.Thread(target=target, daemon=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("tasks"), TimeElapsedColumn())
    with Progress(*columns, transient=False) as progress:
        bar = progress.add_task(description, total=None)
        worker.start()
        tracker = sc.statusTracker()
        while worker.is_alive():
            worker.join(poll_s)
            total = done = 0
            for job_id in tracker.getJobIdsForGroup(group):
                job = tracker.getJobInfo(job_id)
                for stage_id in job.stageIds if job else ():
                    stage = tracker.getStageInfo(stage_id)
                    if stage:
                        total += stage.numTasks
                        done += stage.numCompletedTasks
            if total:
                progress.update(bar, total=total, completed=done)
        progress.update(bar, completed=progress.tasks[0].total or 0)
    if error:
        raise error[0]
    return result["value"]
