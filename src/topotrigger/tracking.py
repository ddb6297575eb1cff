"""Optional MLflow tracking for `tune`, `train` and `evaluate` (the `mlflow` extra).

`--mlflow URI` logs the stage's parameters, metrics and output files as one MLflow run in the
experiment "topotrigger". URI `local` means a SQLite store in the run directory
(`RUN_DIR/mlflow.db`, artifacts in `RUN_DIR/mlruns/`): MLflow 3 keeps its plain-file store in
maintenance mode and refuses it by default, so the local default is a database file instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from topotrigger._optional import require

EXPERIMENT = "topotrigger"


def resolve_uri(uri: str, run_dir: Path) -> str:
    if uri == "local":
        run_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{run_dir.resolve() / 'mlflow.db'}"
    return uri


def log_run(uri: str, run_dir: Path, stage: str, name: str, params: dict[str, Any],
            metrics: dict[str, float | None] | None = None, series: list[dict[str, float]] | None = None,
            artifacts: list[Path] | None = None) -> str:
    """One MLflow run; `series` holds one dict of metrics per step (e.g. per epoch). Returns the run id."""
    import logging

    mlflow = require("mlflow")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    resolved = resolve_uri(uri, run_dir)
    mlflow.set_tracking_uri(resolved)
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        # MLflow's default artifact location is ./mlruns under the working directory; keep a SQLite
        # store's artifacts beside its database file instead.
        location = None
        if resolved.startswith("sqlite:///"):
            location = (Path(resolved.removeprefix("sqlite:///")).resolve().parent / "mlruns").as_uri()
        mlflow.create_experiment(EXPERIMENT, artifact_location=location)
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name=name, tags={"stage": stage}) as run:
        mlflow.log_params({k: str(v)[:6000] for k, v in _flatten(params).items()})
        if metrics:
            mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None})
        for step, values in enumerate(series or []):
            mlflow.log_metrics({k: float(v) for k, v in values.items() if v is not None}, step=step)
        for path in artifacts or []:
            if Path(path).is_file():
                mlflow.log_artifact(str(path))
    return str(run.info.run_id)


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def epoch_series(history: dict[str, Any], class_names: list[str] | None = None) -> list[dict[str, float]]:
    series = []
    for epoch in history.get("epochs", []):
        values = {k: epoch[k] for k in ("train_loss", "val_loss", "val_accuracy", "lr", "events_per_s") if k in epoch}
        for i, auc in enumerate(epoch.get("val_auc", [])):
            values[f"val_auc_{class_names[i] if class_names else i}"] = auc
        series.append(values)
    return series
