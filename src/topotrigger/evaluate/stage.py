"""The `evaluate` stage: score one or more saved models on a dataset split and write

    OUT/metrics.json    the lepton-stream rates; per model: accuracy, AUC per class, confusion matrix, trigger
                        view, output rates at working points of signal efficiency, training cost
    OUT/report.html     self-contained: tables, embedded plots, cut flow, configuration, versions
    OUT/*.png, *.pdf    ROC curves with bands, confusion matrices, score distributions and efficiency vs
                        threshold per model, the HLF per class (train vs test), training curves
    OUT/scores/I_MODEL.parquet  per-event label, weight and score per class of each model

The output directory is replaced atomically; the same inputs give the same files.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from topotrigger.errors import InputError
from topotrigger.evaluate import plots
from topotrigger.evaluate.metrics import evaluate_scores
from topotrigger.evaluate.rates import DEFAULT_LUMINOSITY, event_weights, lepton_stream, working_points
from topotrigger.evaluate.report import PUBLISHED_2020, write_report
from topotrigger.features.contract import dataset_metadata
from topotrigger.features.kernels.definitions import N_HLF
from topotrigger.features.scaling import Scaler
from topotrigger.io import storage
from topotrigger.io.atomic import write_json
from topotrigger.io.versions import software_versions
from topotrigger.modeldir import class_names, is_published, is_spark_model, load_model, model_bytes, model_ref

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from topotrigger.train.saved import SavedModel


@dataclass
class EvaluateResult:
    out: Path
    metrics: dict[str, Any]

    @property
    def report(self) -> Path:
        return self.out / "report.html"


def score_dataset(saved: SavedModel, path: str, batch_size: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Softmax scores and labels of every event of a training-layout dataset, in storage order."""
    return saved.dataset_scores(path, None, batch_size)


def write_scores(path: Path, model: str, probabilities: np.ndarray, labels: np.ndarray, classes: list[str],
                 weights: np.ndarray | None) -> None:
    """Per-event scores of one model, in the order the model read the split (storage order for the PyTorch
    models), so that any figure of the report can be redone. `weight` is the rate each event stands for
    (Hz, `rates.event_weights`), or 1 when the rates are unknown. The split's events carry no identifier
    of their own yet: none is written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    weight = np.ones(len(labels)) if weights is None else weights
    columns = {"label": pa.array(labels.astype(np.int32)), "weight": pa.array(weight.astype(np.float64))}
    columns |= {f"score_{c.replace(' ', '_')}": pa.array(probabilities[:, k].astype(np.float32)) for k, c in enumerate(classes)}
    table = pa.table(columns).replace_schema_metadata({"model": model, "weight": "Hz per event" if weights is not None else "1"})
    pq.write_table(table, path)


HLF_SAMPLE = 20_000


def hlf_samples(data_dir: str, split: str, scaler: dict[str, Any] | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Up to HLF_SAMPLE events of the training split and of `split`: (HLF, labels), unscaled when the
    dataset records its scaler (the min-max fitted on the training split)."""
    from topotrigger.train.data import ParquetEvents

    out = {}
    for name, path in (("train", f"{data_dir}/train"), ("test", f"{data_dir}/{split}")):
        hlf, labels, held = [], [], 0
        for batch in ParquetEvents(path, 4096, shuffle=False, with_particles=False):
            hlf.append(batch.hlf.numpy())
            labels.append(batch.labels.numpy())
            held += len(batch.labels)
            if held >= HLF_SAMPLE:
                break
        values = np.concatenate(hlf) if hlf else np.zeros((0, N_HLF), np.float32)
        if scaler:
            values = Scaler(**scaler).inverse_hlf(values)
        out[name] = (values, np.concatenate(labels) if labels else np.zeros(0, np.int64))
    return out


def training_summary(model_dir: str | Path) -> dict[str, Any]:
    if is_published(model_dir):
        return {}
    path = Path(model_dir) / "history.json"
    if not path.is_file():
        return {}
    epochs = json.loads(path.read_text()).get("epochs", [])
    seconds = sum(e.get("seconds", 0.0) for e in epochs)
    events = sum(e.get("events_per_s", 0.0) * e.get("seconds", 0.0) for e in epochs)
    return {"epochs": len(epochs), "seconds": seconds, "events_per_s": events / seconds if seconds else None}


def _names(model_dirs: list[str | Path]) -> list[str]:
    names: list[str] = []
    for d in model_dirs:
        if isinstance(d, str):  # a published model: its own name
            names.append(d)
            continue
        name = d.name
        while name in names:
            name = f"{d.parent.name}/{name}"
        names.append(name)
    return names


def cross_sections_of(metadata: dict[str, Any], given: dict[str, float] | None) -> dict[str, dict[str, Any]]:
    """The dataset's cross-sections (pb, from generate through ingest and features), overridden per class
    by the ones given."""
    found = {name: dict(value) for name, value in (metadata.get("cross_sections") or {}).items()}
    for name, pb in (given or {}).items():
        found[name] = {"pb": pb, "err_pb": 0.0, "source": "given (--cross-section)"}
    return found


def evaluate(model_dirs: list[str], data_dir: str, out_dir: str, split: str = "test",
             spark: "SparkSession | Callable[[], SparkSession] | None" = None, luminosity: float = DEFAULT_LUMINOSITY,
             cross_sections: dict[str, float] | None = None) -> EvaluateResult:
    """`spark` (a session or a function starting one) is needed only for Spark ML / XGBoost models.
    `cross_sections` (pb, per class) override those the dataset records; with the luminosity
    (cm⁻²s⁻¹) they give the trigger rates (`rates.py`)."""
    if not model_dirs:
        raise InputError("no model directory given")
    data_dir = storage.absolute(data_dir)
    metadata = dataset_metadata(data_dir, (split,))
    classes = class_names(metadata.get("label_names"))
    unknown = sorted(set(cross_sections or {}) - set(classes))
    if unknown:
        raise InputError(f"--cross-section names {', '.join(unknown)}, not a class of the dataset ({', '.join(classes)})")
    sigma = cross_sections_of(metadata, cross_sections)
    stream, no_rates = lepton_stream(classes, sigma, metadata.get("cutflow"), luminosity)
    dirs = [model_ref(m) for m in model_dirs]
    needs_spark = any(is_spark_model(d) for d in dirs)
    if needs_spark and spark is None:
        raise InputError("Spark ML / XGBoost models need a Spark session to be evaluated")
    session = (spark() if callable(spark) else spark) if needs_spark else None
    models = {name: load_model(d) for name, d in zip(_names(dirs), dirs)}
    for saved in models.values():
        saved.check_dataset(metadata, data_dir)

    path = f"{data_dir}/{split}"
    scores = {name: saved.dataset_scores(path, session) for name, saved in models.items()}
    results: dict[str, Any] = {}
    for (name, saved), d in zip(models.items(), dirs):
        probabilities, labels = scores[name]
        results[name] = {"model": saved.name, "model_dir": str(d), "params": saved.info.params,
                         **evaluate_scores(probabilities, labels, classes),
                         "working_points": working_points(probabilities, labels, classes, stream["classes"]) if stream else None,
                         "training": training_summary(d), "model_bytes": model_bytes(d)}
    events = next(iter(results.values()))["events"]
    metrics = {"dataset": data_dir, "split": split, "events": events, "class_names": classes,
               "cross_sections": sigma, "stream": stream, "rates_note": no_rates,
               "models": results, "reference_2020": PUBLISHED_2020}
    weights = {name: event_weights(labels, stream["classes"], classes) if stream else None
               for name, (_, labels) in scores.items()}

    with storage.staged_output(out_dir, overwrite=True, marker="metrics.json", local=True) as staged:
        tmp = Path(staged.uri)
        figures = [plots.roc_curves(scores, classes, {n: r["auc"] for n, r in results.items()}, tmp / "roc.png"),
                   plots.confusion({n: r["confusion_matrix"] for n, r in results.items()}, classes, tmp / "confusion.png")]
        if stream:
            figures.append(plots.rate_roc(scores, classes, stream["classes"], tmp / "roc_rate.png"))
        for i, (name, (probabilities, labels)) in enumerate(scores.items()):
            figures.append(plots.score_distributions(name, probabilities, labels, classes, tmp / f"scores_{i}.png",
                                                     weights[name]))
            figures.append(plots.efficiency_vs_threshold(name, probabilities, labels, classes, tmp / f"efficiency_{i}.png",
                                                         stream["classes"] if stream else None))
        hlf_names = metadata.get("hlf_names") or [f"HLF {i}" for i in range(N_HLF)]
        figures.append(plots.hlf_distributions(hlf_names, hlf_samples(data_dir, split, metadata.get("scaler")), classes,
                                               tmp / "hlf.png"))
        histories = {n: json.loads((d / "history.json").read_text())["epochs"]
                     for n, d in zip(results, dirs) if isinstance(d, Path) and (d / "history.json").is_file()}
        histories = {n: h for n, h in histories.items() if h and h[0].get("train_loss") is not None}  # not trees
        if histories:
            figures.append(plots.training_curves(histories, tmp / "training.png"))
        write_json(tmp / "metrics.json", metrics)
        for i, (name, (probabilities, labels)) in enumerate(scores.items()):
            write_scores(tmp / "scores" / f"{i}_{name.replace('/', '_')}.parquet", name, probabilities, labels, classes,
                         weights[name])
        context = {"cutflow": metadata.get("cutflow"), "counts": metadata.get("counts"),
                   "configuration": {"features": metadata.get("settings"), "feature_options": metadata.get("options"),
                                     "models": {n: {"settings": m.info.settings, "params": m.info.params}
                                                for n, m in models.items()}},
                   "software": software_versions()}
        write_report(tmp / "report.html", metrics, figures, context)
    return EvaluateResult(Path(storage.absolute(out_dir)), metrics)
