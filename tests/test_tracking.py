"""MLflow tracking: `train --mlflow URI` and `evaluate --mlflow URI` log parameters, metrics and files."""

from __future__ import annotations

from pathlib import Path

import pytest

from topotrigger.cli import main

mlflow = pytest.importorskip("mlflow")


def _run(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code in (0, None)


def test_train_and_evaluate_are_logged(synthetic_models, tmp_path: Path) -> None:
    data, models = synthetic_models
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _run(["--run-dir", str(tmp_path / "run"), "train", "--data", str(data), "--out", str(tmp_path / "model"),
          "--epochs", "2", "--mlflow", uri])
    _run(["--run-dir", str(tmp_path / "run"), "evaluate", "--data", str(data), "-m", str(tmp_path / "model"),
          "-m", str(models["inclusive"]), "--out", str(tmp_path / "eval"), "--mlflow", uri])
    mlflow.set_tracking_uri(uri)
    runs = {r.data.tags["stage"]: r for r in mlflow.search_runs(experiment_names=["topotrigger"], output_format="list")}
    assert set(runs) == {"train", "evaluate"}
    client = mlflow.tracking.MlflowClient()
    history = client.get_metric_history(runs["train"].info.run_id, "val_loss")
    assert [m.step for m in history] == [0, 1]
    assert runs["train"].data.params["model"] == "hlf" and runs["train"].data.params["params.nh1"] == "50"
    assert 0.5 < runs["evaluate"].data.metrics["inclusive.auc_class 0"] <= 1.0
    logged = {a.path for a in client.list_artifacts(runs["evaluate"].info.run_id)}
    assert {"report.html", "metrics.json", "roc.png"} <= logged
    assert (tmp_path / "mlruns").is_dir()  # artifacts beside the database, not in the working directory


def test_the_tracking_uri_falls_back_to_mlflows_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from topotrigger.tracking import tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(None) is None and tracking_uri("local") == "local"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///x.db")
    assert tracking_uri(None) == "sqlite:///x.db" and tracking_uri("local") == "local"
