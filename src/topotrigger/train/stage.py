"""The `train` stage: checks the inputs, trains in-process or with TorchDistributor, and saves a
model directory that `evaluate`, `predict` and `export` can use without the training data:

    OUT/model.pt        weights of the best epoch (state dict; load with torch.load(weights_only=True))
    OUT/model.json      model name, hyperparameters, feature names and scaler of the dataset
    OUT/checkpoint.pt   last epoch: weights, optimizer and scheduler state (for --resume)
    OUT/history.json    per-epoch loss, accuracy, AUC per class, learning rate, throughput
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from topotrigger.errors import ConfigError, InputError, MissingInputError
from topotrigger.io.atomic import write_json
from topotrigger.train.data import ParquetEvents
from topotrigger.train.loop import TrainSettings, run_training
from topotrigger.train.models import MODELS, model_params

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def dataset_digest(metadata: dict[str, Any]) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(metadata, sort_keys=True).encode()).hexdigest()


def check_inputs(settings: TrainSettings, data_dir: str) -> dict[str, Any]:
    if settings.model not in MODELS:
        raise ConfigError(f"unknown model {settings.model!r}; available: {', '.join(MODELS)}")
    try:
        model_params(settings.model, settings.params)
    except KeyError as exc:
        raise ConfigError(f"model {settings.model} has no hyperparameter {exc.args[0]!r}; "
                          f"available: {', '.join(model_params(settings.model))}") from None
    if "://" not in data_dir and not Path(data_dir).is_dir():
        raise MissingInputError(f"dataset directory not found: {data_dir}")
    for split in ("train", "test"):
        if "://" not in data_dir and not Path(data_dir, split).exists():
            raise InputError(f"{data_dir} has no {split}/ split: is it the output of `topotrigger features`?")
    train = ParquetEvents(f"{data_dir}/train", settings.batch_size)
    if train.num_events == 0:
        raise InputError(f"{data_dir}/train holds no events")
    metadata_path = Path(data_dir, "metadata.json")
    metadata = json.loads(metadata_path.read_text()) if metadata_path.is_file() else {}
    hlf, particles = metadata.get("hlf_names"), metadata.get("particle_names")
    if (hlf and len(hlf) != 14) or (particles and len(particles) != 19):
        raise InputError(f"{data_dir} has {len(hlf or [])} HLF and {len(particles or [])} particle features; "
                         "the models take 14 and 19")
    return {"layout": train.layout, "train_events": train.num_events, "metadata": metadata}


def train(settings: TrainSettings, data_dir: str, out_dir: str, workers: int = 1, spark: "SparkSession | None" = None,
          resume: bool = False, gpu: bool = False) -> dict[str, Any]:
    data_dir = data_dir if "://" in data_dir else os.path.abspath(data_dir)
    out_dir = os.path.abspath(out_dir)
    info = check_inputs(settings, data_dir)
    for derived in ("model.onnx", "model.onnx.json", "model.onnx.data"):
        Path(out_dir, derived).unlink(missing_ok=True)  # an export of older weights must not outlive them
    if workers == 1:
        history = run_training(settings, data_dir, out_dir, resume=resume, gpu=gpu)
    else:
        history = _train_distributed(settings, data_dir, out_dir, workers, spark, resume, gpu)
    meta = info["metadata"]
    write_json(Path(out_dir) / "model.json", {
        "model": settings.model,
        "params": history["params"],
        "settings": asdict(settings),
        "workers": workers,
        "dataset": data_dir,
        "layout": info["layout"],
        "hlf_names": meta.get("hlf_names"),
        "particle_names": meta.get("particle_names"),
        "label_names": meta.get("label_names"),
        "scaler": meta.get("scaler"),
        "feature_options": meta.get("options"),
        "dataset_digest": dataset_digest(meta),
        "best_val_loss": min((e["val_loss"] for e in history["epochs"]), default=None),
    })
    return history


def _train_distributed(settings: TrainSettings, data_dir: str, out_dir: str, workers: int,
                       spark: "SparkSession | None", resume: bool, gpu: bool) -> dict[str, Any]:
    if spark is None:
        raise ConfigError("train.workers > 1 needs a Spark session")
    from pyspark.ml.torch.distributor import TorchDistributor

    from topotrigger.train.distributed import distributed_main

    master = spark.sparkContext.master
    local = master.startswith("local")
    slots = (os.cpu_count() or 1) if local else spark.sparkContext.defaultParallelism
    if workers > slots:
        raise ConfigError(f"train.workers = {workers} but only {slots} task slots are available on {master}")
    distributor = TorchDistributor(num_processes=workers, local_mode=local, use_gpu=gpu)
    return distributor.run(distributed_main, asdict(settings), data_dir, out_dir, resume, gpu)
