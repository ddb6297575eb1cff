"""`topotrigger run` end to end on tiny sizes, and its rerun."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from topotrigger.config import load_config
from topotrigger.pipeline import run_pipeline

pytestmark = pytest.mark.spark


def test_run_then_rerun_skips_finished_work(spark, tmp_path: Path) -> None:
    cfg = load_config(overrides={"run_dir": str(tmp_path / "run"), "generate.events": 40, "generate.files_per_class": 1,
                                  "train.epochs": 2})
    console = Console(record=True, width=120)
    run_pipeline(cfg, spark, console)
    ingested = spark.read.parquet(str(tmp_path / "run" / "ingest"))
    assert {r.label: r["count"] for r in ingested.groupBy("label").count().collect()} == {0: 40, 1: 40, 2: 40}
    first = console.export_text()
    assert "ingested events" in first
    run_pipeline(cfg, spark, console)
    second = console.export_text()  # export_text() clears what it returned
    assert "3 file(s) were already complete" in second and "ingested events are up to date; skipped" in second
    assert "training datasets are up to date; skipped" in second and "model is up to date; skipped" in second
    assert (tmp_path / "run" / "models" / "hlf" / "model.pt").is_file()
