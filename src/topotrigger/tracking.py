"""Optional MLflow tracking for `tune`, `train` and `evaluate` (the `mlflow` extra).

`--mlflow URI` (or `[run] mlflow`, or the `MLFLOW_TRACKING_URI` environment variable) logs the
stage's parameters, metrics and output files as one MLflow run in the experiment "topotrigger". URI `local` means a SQLite store in the run directory
(`RUN_DIR/mlflow.db`, artifacts in `RUN_DIR/mlruns/`): MLflow 3 keeps its plain-file store in
maintenance mode and refuses it by default, so the local default is a database file instead.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from topotrigger._optional import require

EXPERIMENT = "topotrigger"


def tracking_uri(configured: str | None) -> str | None:
    """The URI to log to: `--mlflow` or `[run] mlflow`, else MLflow's own `MLFLOW_TRACKING_URI`, else none."""
    return configured or os.environ.get("MLFLOW_TRACKING_URI") or None


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


def log_tune(uri: str, run_dir: Path, settings: dict[str, Any], result: Any) -> str:
    """One run for a search: its settings, trial counts, best loss, the loss of each trial in order."""
    ok = [t for t in result.trials if t["status"] == "ok"]
    return log_run(uri, run_dir, "tune", f"tune {settings.get('model')}", settings,
                   metrics={"trials": len(result.trials), "failed": len(result.trials) - len(ok),
                            "best_val_loss": result.best["val_loss"] if result.best else None},
                   series=[{"val_loss": t["val_loss"], "mean_val_auc": t["mean_val_auc"]} for t in ok],
                   artifacts=[result.out / n for n in ("trials.csv", "best.json", "tune.png")])


def log_train(uri: str, run_dir: Path, model_dir: Path, history: dict[str, Any], workers: int) -> str:
    """One run for a trained model: settings and hyperparameters, one step per epoch, the model files."""
    model = str(history["settings"].get("model"))
    return log_run(uri, run_dir, "train", model, {"model": model, "workers": workers, **history["settings"],
                                                  "params": history["params"]},
                   series=epoch_series(history), artifacts=[model_dir / n for n in ("model.json", "history.json", "model.pt")])


def log_evaluate(uri: str, run_dir: Path, result: Any) -> str:
    """One run for an evaluation: accuracy and AUC per class of every model, the report and plots."""
    m = result.metrics
    values: dict[str, float | None] = {f"{name}.auc_{c}": v for name, r in m["models"].items() for c, v in r["auc"].items()}
    values |= {f"{name}.accuracy": r["accuracy"] for name, r in m["models"].items()}
    return log_run(uri, run_dir, "evaluate", "evaluate", {"dataset": m["dataset"], "split": m["split"],
                                                          "models": ",".join(m["models"])},
                   metrics=values, artifacts=sorted(Path(result.out).iterdir()))
