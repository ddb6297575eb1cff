"""Training, saving and scoring of the Spark-side models.

    OUT/sparkml/      the fitted model in Spark ML's native format (XGBoost's Spark model included)
    OUT/model.json    the same metadata as the PyTorch models (model, params, features, scaler, labels)
    OUT/history.json  one record: training seconds, events/s, validation metrics on the test split
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from topotrigger.errors import InputError, MissingInputError
from topotrigger.io.atomic import write_json
from topotrigger.sparkml import estimators, inputs
from topotrigger.train.metrics import classification_metrics

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def _probabilities(scored: "DataFrame", name: str) -> "DataFrame":
    """The per-class scores as array<double> `p`. One-vs-rest GBT has no probability column: the
    softmax of its per-class margins is used (monotonic in each margin, so AUCs are the GBTs')."""
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    if name == "mllib-gbt":
        raw = vector_to_array("rawPrediction")
        top = F.array_max(raw)
        exp = F.transform(raw, lambda v: F.exp(v - top))
        total = F.aggregate(exp, F.lit(0.0), lambda acc, v: acc + v)
        return scored.withColumn("p", F.transform(exp, lambda v: v / total))
    return scored.withColumn("p", vector_to_array("probability"))


@dataclass
class SparkSavedModel:
    info: dict[str, Any]
    model: Any

    @property
    def name(self) -> str:
        return str(self.info["model"])

    @classmethod
    def load(cls, model_dir: str | Path) -> "SparkSavedModel":
        model_dir = Path(model_dir)
        if not (model_dir / "model.json").is_file() or not (model_dir / "sparkml").is_dir():
            raise MissingInputError(f"{model_dir} lacks model.json or sparkml/: is it the output of `topotrigger train`?")
        info = json.loads((model_dir / "model.json").read_text())
        return cls(info, estimators.model_class(info["model"]).load(str(model_dir / "sparkml")))

    def check_dataset(self, metadata: dict[str, Any], where: str) -> None:
        from topotrigger.train.saved import check_feature_definitions

        check_feature_definitions(self.info, metadata, where)

    def score(self, df: "DataFrame", keys: tuple[str, ...] = ()) -> "DataFrame":
        """keys, label (double) and `p` (array<double>, per-class scores) for a training-layout DataFrame."""
        scored = self.model.transform(inputs.vectors(df, self.info.get("inputs", "hlf"), keys))
        return _probabilities(scored, self.name).select(*keys, "label", "p")

    def probabilities(self, spark: "SparkSession", path: str) -> tuple[np.ndarray, np.ndarray]:
        rows = self.score(spark.read.parquet(path)).toPandas()
        if rows.empty:
            raise InputError(f"{path} holds no events to evaluate")
        return np.stack(rows["p"].to_numpy()), rows["label"].to_numpy().astype(np.int64)


def train_spark_model(name: str, params: dict[str, Any], data_dir: str, out_dir: str, spark: "SparkSession",
                      input_kind: str = "hlf", seed: int = 7) -> dict[str, Any]:
    """Fit on DATA/train, save to OUT, validate on DATA/test; returns the history."""
    return fit_and_save(name, params, data_dir, out_dir, spark, input_kind, seed)[1]


def fit_and_save(name: str, params: dict[str, Any], data_dir: str, out_dir: str, spark: "SparkSession",
                 input_kind: str = "hlf", seed: int = 7) -> tuple[SparkSavedModel, dict[str, Any]]:
    from topotrigger.train.stage import dataset_digest

    estimators.check_inputs(name, input_kind)
    full = estimators.model_params(name, params)
    if "://" not in data_dir and not Path(data_dir, "train").exists():
        raise MissingInputError(f"{data_dir} has no train/ split: is it the output of `topotrigger features`?")
    metadata_path = Path(data_dir, "metadata.json")
    metadata = json.loads(metadata_path.read_text()) if metadata_path.is_file() else {}
    train_df = inputs.vectors(spark.read.parquet(f"{data_dir}/train"), input_kind).cache()
    n_train = train_df.count()
    if n_train == 0:
        raise InputError(f"{data_dir}/train holds no events")
    parallelism = spark.sparkContext.defaultParallelism
    estimator = estimators.build(name, full, inputs.width(input_kind), seed, parallelism)
    start = time.perf_counter()
    fitted = estimator.fit(train_df)
    seconds = time.perf_counter() - start
    train_df.unpersist()

    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("model.pt", "checkpoint.pt", "model.onnx", "model.onnx.json"):
        (out / stale).unlink(missing_ok=True)  # a PyTorch model of the same name must not linger
    tmp = out / f".sparkml.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    fitted.write().overwrite().save(str(tmp))
    shutil.rmtree(out / "sparkml", ignore_errors=True)
    os.replace(tmp, out / "sparkml")

    info = {"model": name, "params": full, "inputs": input_kind, "dataset": data_dir, "layout": None,
            "hlf_names": metadata.get("hlf_names"), "particle_names": metadata.get("particle_names"),
            "label_names": metadata.get("label_names"), "scaler": metadata.get("scaler"),
            "feature_options": metadata.get("options"), "dataset_digest": dataset_digest(metadata),
            "settings": {"model": name, "seed": seed, "inputs": input_kind, "params": full}, "workers": parallelism}
    write_json(out / "model.json", info)
    saved = SparkSavedModel(info, fitted)
    probabilities, labels = saved.probabilities(spark, f"{data_dir}/test")
    val = classification_metrics(probabilities, labels)
    history = {"settings": info["settings"], "params": full, "world_size": parallelism,
               "epochs": [{"epoch": 0, "train_loss": None, "val_loss": _log_loss(probabilities, labels),
                           "val_accuracy": val["accuracy"], "val_auc": val["auc"], "seconds": seconds,
                           "events_per_s": n_train / seconds, "lr": None}]}
    write_json(out / "history.json", history)
    return saved, history


def _log_loss(probabilities: np.ndarray, labels: np.ndarray) -> float:
    picked = probabilities[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.clip(picked, 1e-12, 1.0))))
