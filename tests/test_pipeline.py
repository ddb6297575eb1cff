"""`topotrigger run` end to end on tiny sizes, its rerun, and --force."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from topotrigger.config import load_config
from topotrigger.errors import ConfigError
from topotrigger.pipeline import STAGES, run_pipeline

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def test_run_rerun_and_force(spark, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cfg = load_config(overrides={"run_dir": str(run_dir), "generate.events": 60, "generate.files_per_class": 1, "generate.profile": "quick",
                                  "train.epochs": 2, "tune.trials": 2, "tune.min_sample_events": 50,
                                  "run.models": ["hlf", "inclusive"]})
    console = Console(record=True, width=120)
    report = run_pipeline(cfg, spark, console)
    assert report.is_file() and "data:image/png;base64," in report.read_text()
    ingested = spark.read.parquet(str(run_dir / "ingest"))
    assert {r.label: r["count"] for r in ingested.groupBy("label").count().collect()} == {0: 60, 1: 60, 2: 60}
    manifests = {s: json.loads((run_dir / ("models" if s == "train" else s) / "_stage.json").read_text()) for s in STAGES}
    assert manifests["ingest"]["inputs"] == {"generate": manifests["generate"]["digest"]}
    assert set(manifests["train"]["counts"]) == {"hlf", "inclusive"} and manifests["train"]["software"]["torch"]
    best = json.loads((run_dir / "tune" / "hlf" / "best.json").read_text())
    assert json.loads((run_dir / "models" / "hlf" / "model.json").read_text())["params"] == best["params"]
    metrics = json.loads((run_dir / "evaluate" / "metrics.json").read_text())
    assert set(metrics["models"]) == {"hlf", "inclusive"}
    # Cross-sections travel from generate through ingest and features to rates in Hz, on the test split.
    stream = metrics["stream"]["classes"]
    assert all(metrics["cross_sections"][c]["source"].startswith("generate manifest") for c in stream)
    assert all(s["rate_hz"] > 0 and s["selection_efficiency"]["n"] == 60 for s in stream.values())
    assert metrics["models"]["hlf"]["working_points"]["ttbar"][0]["classes"]["ttbar"]["kept"]["n"] == metrics["events"] // 3
    first = console.export_text()
    assert "report:" in first and "AUC ttbar" in first and "output rate" not in first
    assert "output of each selector" in first and "background [Hz]" in first

    started = []
    run_pipeline(cfg, lambda: started.append(1) or spark, console)
    second = console.export_text()  # export_text() clears what it returned
    assert all(f"{s}: up to date; skipped" in second for s in STAGES)
    assert not started  # nothing to do: no Spark session was needed

    before = (run_dir / "models" / "inclusive" / "model.pt").stat().st_mtime_ns
    run_pipeline(cfg, spark, console, force="train")
    third = console.export_text()
    assert "features: up to date; skipped" in third and "train: up to date" not in third
    assert (run_dir / "models" / "inclusive" / "model.pt").stat().st_mtime_ns != before

    # A changed setting redoes that stage and everything after it.
    changed = cfg.model_copy(update={"train": cfg.train.model_copy(update={"epochs": 1})})
    run_pipeline(changed, spark, console)
    fourth = console.export_text()
    assert "tune: up to date; skipped" not in fourth and "features: up to date; skipped" in fourth
    with pytest.raises(ConfigError, match="unknown stage"):
        run_pipeline(cfg, spark, console, force="nope")


def test_a_spark_model_is_not_retrained_on_a_rerun(spark, tmp_path: Path) -> None:
    cfg = load_config(overrides={"run_dir": str(tmp_path / "run"), "generate.events": 40, "generate.files_per_class": 1, "generate.profile": "quick",
                                  "run.tune": False, "run.models": ["mllib-rf"]})
    console = Console(record=True, width=120)
    run_pipeline(cfg, spark, console)
    console.export_text()
    run_pipeline(cfg, spark, console)
    assert "train: up to date; skipped" in console.export_text()
