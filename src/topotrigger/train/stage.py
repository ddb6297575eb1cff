"""The `train` stage: checks the inputs, trains in-process or with TorchDistributor, and saves a
model directory that `evaluate`, `predict` and `export` can use without the training data:

    OUT/model.pt        weights of the best epoch (state dict; load with torch.load(weights_only=True))
    OUT/model.json      model name, hyperparameters, feature names and scaler of the dataset
    OUT/checkpoint.pt   last epoch: weights, optimizer and scheduler state (for --resume)
    OUT/history.json    per-epoch loss, accuracy, AUC per class, learning rate, throughput
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from topotrigger.errors import ConfigError, InputError
from topotrigger.features.contract import dataset_metadata
from topotrigger.io import storage
from topotrigger.modeldir import DERIVED, ModelInfo, dataset_info, write_info
from topotrigger.runtime.tasks import default_parallelism
from topotrigger.train.data import ParquetEvents
from topotrigger.train.loop import TrainSettings, run_training
from topotrigger.train.models import MODELS, model_params

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def check_inputs(settings: TrainSettings, data_dir: str) -> dict[str, Any]:
    if settings.model not in MODELS:
        raise ConfigError(f"unknown model {settings.model!r}; available: {', '.join(MODELS)}")
    try:
        model_params(settings.model, settings.params)
    except KeyError as exc:
        raise ConfigError(f"model {settings.model} has no hyperparameter {exc.args[0]!r}; "
                          f"available: {', '.join(model_params(settings.model))}") from None
    metadata = dataset_metadata(data_dir)
    train = ParquetEvents(f"{data_dir}/train", settings.batch_size)
    if train.num_events == 0:
        raise InputError(f"{data_dir}/train holds no events")
    return {"layout": train.layout, "train_events": train.num_events, "metadata": metadata}


def train(settings: TrainSettings, data_dir: str, out_dir: str, workers: int = 1, spark: "SparkSession | None" = None,
          resume: bool = False, gpu: bool = False) -> dict[str, Any]:
    data_dir = storage.absolute(data_dir)
    info = check_inputs(settings, data_dir)
    out_dir = storage.local_directory(out_dir, "model")
    for derived in DERIVED:
        Path(out_dir, derived).unlink(missing_ok=True)  # an export of older weights must not outlive them
    if workers == 1:
        history = run_training(settings, data_dir, out_dir, resume=resume, gpu=gpu)
    else:
        history = _train_distributed(settings, data_dir, out_dir, workers, spark, resume, gpu)
    write_info(Path(out_dir), ModelInfo(
        model=settings.model, framework="pytorch", params=history["params"], settings=asdict(settings), workers=workers,
        dataset=data_dir, layout=info["layout"], **dataset_info(info["metadata"]),
        best_val_loss=min((e["val_loss"] for e in history["epochs"]), default=None)))
    return history


def _train_distributed(settings: TrainSettings, data_dir: str, out_dir: str, workers: int,
                       spark: "SparkSession | None", resume: bool, gpu: bool) -> dict[str, Any]:
    if spark is None:
        raise ConfigError("train.workers > 1 needs a Spark session")
    from pyspark.ml.torch.distributor import TorchDistributor

    from topotrigger.train.distributed import distributed_main

    master = spark.conf.get("spark.master", "local[*]") or "local[*]"
    local = str(master).startswith("local")
    slots = (os.cpu_count() or 1) if local else default_parallelism(spark)
    if workers > slots:
        raise ConfigError(f"train.workers = {workers} but only {slots} task slots are available on {master}")
    distributor = TorchDistributor(num_processes=workers, local_mode=local, use_gpu=gpu)
    history = distributor.run(distributed_main, asdict(settings), data_dir, out_dir, resume, gpu)
    if not isinstance(history, dict):
        raise RuntimeError("distributed training returned no history")
    return history


def train_model(settings: TrainSettings, data_dir: str, out_dir: str, workers: int = 1,
                spark: "SparkSession | Callable[[], SparkSession] | None" = None, resume: bool = False,
                gpu: bool = False, inputs: str = "hlf") -> dict[str, Any]:
    """Any model of `train --model`: the PyTorch ones in-process or data-parallel (workers > 1), the
    Spark ML / XGBoost ones on Spark. `spark` may be a function that starts a session: it is called
    only when the model needs one."""
    from topotrigger.sparkml.estimators import SPARK_MODELS

    def session() -> "SparkSession":
        if spark is None:
            raise ConfigError(f"train.model = {settings.model} with train.workers = {workers} needs a Spark session")
        return spark() if callable(spark) else spark

    if settings.model in SPARK_MODELS:
        from topotrigger.sparkml.stage import train_spark_model

        return train_spark_model(settings.model, settings.params, data_dir, out_dir, session(), inputs, settings.seed)
    if inputs != "hlf":
        raise ConfigError(f"--inputs is for the Spark models; {settings.model} reads its inputs from the dataset")
    if gpu:
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("--gpu: no CUDA device is available to this process (torch.cuda.is_available() is false)")
    return train(settings, data_dir, out_dir, workers, session() if workers > 1 else None, resume, gpu)
