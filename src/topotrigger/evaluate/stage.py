"""The `evaluate` stage: score one or more saved models on a dataset split and write

    OUT/metrics.json    per model: accuracy, AUC per class, confusion matrix, trigger view, training cost
    OUT/report.html     self-contained: tables, embedded plots, cut flow, configuration, versions
    OUT/*.png           ROC curves (all models), confusion matrices, training curves

The output directory is replaced atomically; the same inputs give the same files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from topotrigger.errors import InputError, MissingInputError
from topotrigger.evaluate import plots
from topotrigger.evaluate.metrics import evaluate_scores
from topotrigger.evaluate.report import PUBLISHED_2020, write_report
from topotrigger.io.atomic import atomic_directory, write_json
from topotrigger.io.versions import software_versions
from topotrigger.train.data import ParquetEvents
from topotrigger.train.saved import SavedModel

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclass
class EvaluateResult:
    out: Path
    metrics: dict[str, Any]

    @property
    def report(self) -> Path:
        return self.out / "report.html"


def dataset_metadata(data_dir: str, split: str) -> dict[str, Any]:
    root = Path(data_dir)
    if not root.is_dir():
        raise MissingInputError(f"dataset directory not found: {data_dir}")
    if not (root / split).exists():
        raise InputError(f"{data_dir} has no {split}/ split: is it the output of `topotrigger features`?")
    path = root / "metadata.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def class_names(metadata: dict[str, Any]) -> list[str]:
    names = metadata.get("label_names") or {}
    return [names.get(str(k), f"class {k}") for k in range(3)]


@torch.no_grad()
def score_dataset(saved: SavedModel, path: str, batch_size: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Softmax scores and labels of every event of a training-layout dataset, in storage order."""
    data = ParquetEvents(path, batch_size, shuffle=False, with_particles=saved.uses_particles)
    probabilities, labels = [], []
    for batch in data:
        probabilities.append(torch.softmax(saved.module(batch.hlf, batch.particles, batch.lengths), dim=1).numpy())
        labels.append(batch.labels.numpy())
    if not labels:
        raise InputError(f"{path} holds no events to evaluate")
    return np.concatenate(probabilities), np.concatenate(labels)


def training_summary(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "history.json"
    if not path.is_file():
        return {}
    epochs = json.loads(path.read_text()).get("epochs", [])
    seconds = sum(e.get("seconds", 0.0) for e in epochs)
    events = sum(e.get("events_per_s", 0.0) * e.get("seconds", 0.0) for e in epochs)
    return {"epochs": len(epochs), "seconds": seconds, "events_per_s": events / seconds if seconds else None}


def _names(model_dirs: list[Path]) -> list[str]:
    names: list[str] = []
    for d in model_dirs:
        name = d.name
        while name in names:
            name = f"{d.parent.name}/{name}"
        names.append(name)
    return names


def load_model(model_dir: Path) -> Any:
    """A PyTorch model directory, or a Spark ML / XGBoost one (it has sparkml/)."""
    if (model_dir / "sparkml").is_dir():
        from topotrigger.sparkml.stage import SparkSavedModel

        return SparkSavedModel.load(model_dir)
    return SavedModel.load(model_dir)


def model_bytes(model_dir: Path) -> int:
    if (model_dir / "sparkml").is_dir():
        return sum(f.stat().st_size for f in (model_dir / "sparkml").rglob("*") if f.is_file())
    return (model_dir / "model.pt").stat().st_size


def evaluate(model_dirs: list[str], data_dir: str, out_dir: str, split: str = "test",
             spark: "SparkSession | Callable[[], SparkSession] | None" = None) -> EvaluateResult:
    """`spark` (a session or a function starting one) is needed only for Spark ML / XGBoost models."""
    if not model_dirs:
        raise InputError("no model directory given")
    metadata = dataset_metadata(data_dir, split)
    classes = class_names(metadata)
    dirs = [Path(m).resolve() for m in model_dirs]
    needs_spark = any((d / "sparkml").is_dir() for d in dirs)
    if needs_spark and spark is None:
        raise InputError("Spark ML / XGBoost models need a Spark session to be evaluated")
    session = (spark() if callable(spark) else spark) if needs_spark else None
    models = {name: load_model(d) for name, d in zip(_names(dirs), dirs)}
    for saved in models.values():
        saved.check_dataset(metadata, data_dir)

    path = f"{data_dir}/{split}"
    scores = {name: (score_dataset(saved, path) if isinstance(saved, SavedModel)
                     else saved.probabilities(session, path)) for name, saved in models.items()}
    results: dict[str, Any] = {}
    for (name, saved), d in zip(models.items(), dirs):
        probabilities, labels = scores[name]
        results[name] = {"model": saved.name, "model_dir": str(d), "params": saved.info.get("params"),
                         **evaluate_scores(probabilities, labels, classes),
                         "training": training_summary(d), "model_bytes": model_bytes(d)}
    events = next(iter(results.values()))["events"]
    metrics = {"dataset": str(Path(data_dir).resolve()), "split": split, "events": events, "class_names": classes,
               "models": results, "reference_2020": PUBLISHED_2020}

    out = Path(out_dir).resolve()
    with atomic_directory(out) as tmp:
        figures = [plots.roc_curves(scores, classes, {n: r["auc"] for n, r in results.items()}, tmp / "roc.png")]
        figures += [plots.confusion(r["confusion_matrix"], classes, n, tmp / f"confusion_{i}.png")
                    for i, (n, r) in enumerate(results.items())]
        histories = {n: json.loads((d / "history.json").read_text())["epochs"]
                     for n, d in zip(results, dirs) if (d / "history.json").is_file()}
        histories = {n: h for n, h in histories.items() if h and h[0].get("train_loss") is not None}  # not trees
        if histories:
            figures.append(plots.training_curves(histories, tmp / "training.png"))
        write_json(tmp / "metrics.json", metrics)
        context = {"cutflow": metadata.get("cutflow"),
                   "configuration": {"features": metadata.get("settings"), "feature_options": metadata.get("options"),
                                     "models": {n: {"settings": m.info.get("settings"), "params": m.info.get("params")}
                                                for n, m in models.items()}},
                   "software": software_versions()}
        write_report(tmp / "report.html", metrics, figures, context)
    return EvaluateResult(out, metrics)
