"""Training, saving and scoring of the Spark-side models.

    OUT/sparkml/      the fitted model in Spark ML's native format (XGBoost's Spark model included)
    OUT/model.json    the same metadata as the PyTorch models (model, params, features, scaler, labels)
    OUT/history.json  one record: training seconds, events/s, metrics on the validation events
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from topotrigger.errors import InputError, MissingInputError
from topotrigger.features.contract import dataset_metadata
from topotrigger.io import storage
from topotrigger.io.atomic import write_json
from topotrigger.modeldir import (
    CHECKPOINT,
    DERIVED,
    HISTORY,
    INFO,
    SPARK_MODEL,
    WEIGHTS,
    ModelInfo,
    check_feature_definitions,
    dataset_info,
    is_spark_model,
    read_info,
    write_info,
)
from topotrigger.runtime.tasks import default_parallelism
from topotrigger.sparkml import estimators, inputs
from topotrigger.train.data import validation_source
from topotrigger.train.metrics import classification_metrics

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def _probabilities(scored: "DataFrame", name: str) -> "DataFrame":
    """The per-class scores as array<double> `p`. One-vs-rest GBT has no probability column: the
    softmax of its per-class margins is used (monotonic in each margin, so AUCs are the GBTs')."""
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    if name == "mllib-gbt":
        raw = vector_to_array(F.col("rawPrediction"))
        top = F.array_max(raw)
        exp = F.transform(raw, lambda v: F.exp(v - top))
        total = F.aggregate(exp, F.lit(0.0), lambda acc, v: acc + v)
        return scored.withColumn("p", F.transform(exp, lambda v: v / total))
    return scored.withColumn("p", vector_to_array(F.col("probability")))


@dataclass
class SparkSavedModel:
    info: ModelInfo
    model: Any

    @property
    def name(self) -> str:
        return self.info.model

    @classmethod
    def load(cls, model_dir: str | Path) -> "SparkSavedModel":
        model_dir = Path(model_dir)
        if not (model_dir / INFO).is_file() or not is_spark_model(model_dir):
            raise MissingInputError(f"{model_dir} lacks {INFO} or {SPARK_MODEL}/: is it the output of `topotrigger train`?")
        info = read_info(model_dir)
        return cls(info, estimators.model_class(info.model).load(str(model_dir / SPARK_MODEL)))

    def check_dataset(self, metadata: dict[str, Any], where: str) -> None:
        check_feature_definitions(self.info, metadata, where)

    def score(self, df: "DataFrame", keys: tuple[str, ...] = ()) -> "DataFrame":
        """keys, label (double) and `p` (array<double>, per-class scores) for a training-layout DataFrame."""
        scored = self.model.transform(inputs.vectors(df, self.info.inputs, keys))
        return _probabilities(scored, self.name).select(*keys, "label", "p")

    def dataset_scores(self, path: str, spark: "SparkSession | None") -> tuple[np.ndarray, np.ndarray]:
        if spark is None:
            raise InputError("Spark ML / XGBoost models need a Spark session to be scored")
        return self.frame_scores(spark.read.parquet(path), path)

    def frame_scores(self, df: "DataFrame", where: str) -> tuple[np.ndarray, np.ndarray]:
        """Per-class scores and labels of a training-layout DataFrame, collected to the driver."""
        rows: Any = self.score(df).toPandas()
        if rows.empty:
            raise InputError(f"{where} holds no events to evaluate")
        return np.stack(rows["p"].to_numpy()), rows["label"].to_numpy().astype(np.int64)


def train_spark_model(name: str, params: dict[str, Any], data_dir: str, out_dir: str, spark: "SparkSession",
                      input_kind: str = "hlf", seed: int = 7) -> dict[str, Any]:
    """Fit on DATA/train, save to OUT, validate on DATA/val (or a seeded share of DATA/train when the
    dataset has no val/); returns the history."""
    return fit_and_save(name, params, data_dir, out_dir, spark, input_kind, seed)[1]


def fit_and_save(name: str, params: dict[str, Any], data_dir: str, out_dir: str, spark: "SparkSession",
                 input_kind: str = "hlf", seed: int = 7) -> tuple[SparkSavedModel, dict[str, Any]]:
    estimators.check_inputs(name, input_kind)
    full = estimators.model_params(name, params)
    data_dir = storage.absolute(data_dir)
    metadata = dataset_metadata(data_dir)
    train_raw = spark.read.parquet(f"{data_dir}/train")
    val_path, _, holdout, validation = validation_source(data_dir, seed)
    if holdout is None:
        val_raw = spark.read.parquet(val_path)
    else:
        train_raw, val_raw = train_raw.randomSplit([1.0 - holdout.fraction, holdout.fraction], seed)
    train_df = inputs.vectors(train_raw, input_kind).cache()
    n_train = train_df.count()
    if n_train == 0:
        raise InputError(f"{data_dir}/train holds no events")
    parallelism = default_parallelism(spark)
    estimator = estimators.build(name, full, inputs.width(input_kind), seed, parallelism)
    start = time.perf_counter()
    fitted = estimator.fit(train_df)
    seconds = time.perf_counter() - start
    train_df.unpersist()

    out = Path(storage.local_directory(out_dir, "model"))
    for stale in (WEIGHTS, CHECKPOINT, *DERIVED):
        (out / stale).unlink(missing_ok=True)  # a PyTorch model of the same name must not linger
    tmp = out / f".{SPARK_MODEL}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    fitted.write().overwrite().save(str(tmp))
    shutil.rmtree(out / SPARK_MODEL, ignore_errors=True)
    os.replace(tmp, out / SPARK_MODEL)

    info = ModelInfo(model=name, framework="spark", params=full, inputs=input_kind, dataset=data_dir,
                     settings={"model": name, "seed": seed, "inputs": input_kind, "params": full}, workers=parallelism,
                     **dataset_info(metadata))
    write_info(out, info)
    saved = SparkSavedModel(info, fitted)
    probabilities, labels = saved.frame_scores(val_raw, f"validation events ({validation})")
    val = classification_metrics(probabilities, labels)
    history = {"settings": info.settings, "params": full, "world_size": parallelism, "validation": validation,
               "epochs": [{"epoch": 0, "train_loss": None, "val_loss": _log_loss(probabilities, labels),
                           "val_accuracy": val["accuracy"], "val_auc": val["auc"], "seconds": seconds,
                           "events_per_s": n_train / seconds, "lr": None}]}
    write_json(out / HISTORY, history)
    return saved, history


def _log_loss(probabilities: np.ndarray, labels: np.ndarray) -> float:
    picked = probabilities[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.clip(picked, 1e-12, 1.0))))
