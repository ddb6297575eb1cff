"""The model directory: what `train` writes and `evaluate`, `predict`, `export` and `topotrigger run` read.

    MODEL/model.json      `ModelInfo`: model, hyperparameters, training settings, the dataset's feature
                          names, scaler, options and digest (everything needed to score new data)
    MODEL/model.pt        PyTorch models: the best epoch's weights (state dict)
    MODEL/sparkml/        Spark ML / XGBoost models: Spark's native format
    MODEL/checkpoint.pt   PyTorch models: the last epoch (weights, optimizer, scheduler) with the model's
                          arguments, the settings, the step and the best validation loss (for --resume)
    MODEL/history.json    per-epoch metrics

`load_model` is the one loader; both kinds of model answer the same scoring calls (`Scorer`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from topotrigger.errors import InputError, MissingInputError
from topotrigger.features.kernels.definitions import N_CLASSES

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

INFO = "model.json"
WEIGHTS = "model.pt"
SPARK_MODEL = "sparkml"
CHECKPOINT = "checkpoint.pt"
HISTORY = "history.json"
# Files derived from the weights: stale as soon as the weights change.
DERIVED = ("model.onnx", "model.onnx.json", "model.onnx.data")

Framework = Literal["pytorch", "spark"]


class ModelInfo(BaseModel):
    """`model.json`. Readers ignore keys they do not know, so older and newer directories both load."""

    model_config = ConfigDict(extra="ignore")

    model: str
    framework: Framework = "pytorch"
    params: dict[str, Any]
    settings: dict[str, Any]
    workers: int = 1
    inputs: str = "hlf"                       # Spark models: hlf or hlf+summary
    dataset: str | None = None
    layout: str | None = None
    hlf_names: list[str] | None = None
    particle_names: list[str] | None = None
    label_names: dict[str, str] | None = None
    scaler: dict[str, Any] | None = None
    feature_options: dict[str, bool] | None = None
    dataset_digest: str | None = None
    best_val_loss: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _framework_of_older_files(cls, data: Any) -> Any:
        if isinstance(data, dict) and "framework" not in data:
            from topotrigger.sparkml.estimators import SPARK_MODELS

            data = {**data, "framework": "spark" if data.get("model") in SPARK_MODELS else "pytorch"}
        return data

    def class_names(self) -> list[str]:
        return class_names(self.label_names)


def class_names(label_names: dict[str, str] | None) -> list[str]:
    names = label_names or {}
    return [names.get(str(k), f"class {k}") for k in range(N_CLASSES)]


def dataset_info(metadata: dict[str, Any]) -> dict[str, Any]:
    """What `model.json` records of the features dataset a model is trained on."""
    from topotrigger.io.manifest import digest

    return {"hlf_names": metadata.get("hlf_names"), "particle_names": metadata.get("particle_names"),
            "label_names": metadata.get("label_names"), "scaler": metadata.get("scaler"),
            "feature_options": metadata.get("options"), "dataset_digest": digest(metadata)}


def read_info(model_dir: Path) -> ModelInfo:
    path = model_dir / INFO
    if not path.is_file():
        raise MissingInputError(f"{model_dir} lacks {INFO}: is it the output of `topotrigger train`?")
    try:
        return ModelInfo.model_validate(json.loads(path.read_text()))
    except (ValueError, ValidationError) as exc:
        first = exc.errors()[0] if isinstance(exc, ValidationError) else None
        where = f" (key {'.'.join(str(p) for p in first['loc'])}: {first['msg']})" if first else ""
        raise InputError(f"{path} is not a valid model description{where}") from None


def write_info(model_dir: Path, info: ModelInfo) -> None:
    from topotrigger.io.atomic import write_json

    write_json(model_dir / INFO, info.model_dump(mode="json"))


def check_feature_definitions(info: ModelInfo, metadata: dict[str, Any], where: str) -> None:
    """Refuse a dataset whose feature definitions or scaling differ from those a model was trained on."""
    ours = {"hlf_names": info.hlf_names, "particle_names": info.particle_names,
            "feature_options": info.feature_options, "scaler": info.scaler}
    theirs = {"hlf_names": metadata.get("hlf_names"), "particle_names": metadata.get("particle_names"),
              "feature_options": metadata.get("options"), "scaler": metadata.get("scaler")}
    differ = [k for k in ours if ours[k] is not None and theirs[k] is not None and ours[k] != theirs[k]]
    if differ:
        raise InputError(f"model {info.model} was trained on other feature definitions than {where} "
                         f"(different {', '.join(differ)}); rebuild the features or retrain")


class SavedScaling(BaseModel):
    """The feature definitions a model was trained with (or a dataset was built with), to build another
    dataset the same way: `features --scaling-from`."""

    scaler: dict[str, Any]
    options: dict[str, bool]
    layout: str | None = None
    source: str


def saved_scaling(path: str) -> SavedScaling:
    """The scaler and feature options of a model directory (`model.json`) or of a features output
    (`metadata.json`)."""
    from topotrigger.io import storage

    where = storage.redact(path)
    if storage.exists(storage.join(path, INFO)):
        info = read_info(Path(path))
        if info.scaler is None or info.feature_options is None:
            raise InputError(f"model {where} records no scaler or feature options (trained on a dataset without "
                             "metadata.json?): its scaling cannot be applied to other data")
        return SavedScaling(scaler=info.scaler, options=info.feature_options, layout=info.layout, source=f"model {where}")
    if storage.exists(storage.join(path, "metadata.json")):
        metadata = storage.read_json(storage.join(path, "metadata.json"))
        if not metadata.get("scaler") or metadata.get("options") is None:
            raise InputError(f"{where}/metadata.json records no scaler or feature options")
        return SavedScaling(scaler=metadata["scaler"], options=metadata["options"], layout=metadata.get("layout"),
                            source=f"dataset {where}")
    raise MissingInputError(f"{where} is neither a model directory ({INFO}) nor a features output (metadata.json)")


class Scorer(Protocol):
    """What every loaded model offers, whatever trained it."""

    info: ModelInfo

    @property
    def name(self) -> str: ...

    def check_dataset(self, metadata: dict[str, Any], where: str) -> None: ...

    def dataset_scores(self, path: str, spark: SparkSession | None) -> tuple[np.ndarray, np.ndarray]:
        """Per-class scores (n, N_CLASSES) and labels of every event of a training-layout dataset."""
        ...


PUBLISHED = "published:"


def is_published(model: str | Path) -> bool:
    """A published model named by `published:NAME` (topotrigger.train.published), not a directory."""
    return isinstance(model, str) and model.startswith(PUBLISHED)


def model_ref(model: str) -> str | Path:
    """What the commands take for --model: a published model's name as it is, else the directory."""
    return model if is_published(model) else Path(model).resolve()


def refuse_published(model: str, what: str) -> None:
    """`what` (predict, export) needs a model trained by topotrigger, with its own feature definitions."""
    if is_published(model):
        raise InputError(f"{model} is the published 2020 network: {what} takes a model trained by topotrigger; "
                         "score the published one with `evaluate --model " + model + " --data` a `features --recipe 2019` output")


def is_spark_model(model_dir: str | Path) -> bool:
    return not is_published(model_dir) and (Path(model_dir) / SPARK_MODEL).is_dir()


def load_model(model_dir: str | Path) -> Scorer:
    """The model in `model_dir`, PyTorch or Spark ML / XGBoost, or a published model (`published:NAME`)."""
    if is_published(model_dir):
        from topotrigger.train.published import PublishedModel

        return PublishedModel.load(str(model_dir))
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise MissingInputError(f"model directory not found: {model_dir}")
    if is_spark_model(model_dir):
        from topotrigger.sparkml.stage import SparkSavedModel

        return SparkSavedModel.load(model_dir)
    from topotrigger.train.saved import SavedModel

    return SavedModel.load(model_dir)


def model_bytes(model_dir: str | Path) -> int:
    if is_published(model_dir):
        from topotrigger.train.published import archive_bytes, parse_spec

        return len(archive_bytes(parse_spec(str(model_dir))[0]))
    model_dir = Path(model_dir)
    if is_spark_model(model_dir):
        return sum(f.stat().st_size for f in (model_dir / SPARK_MODEL).rglob("*") if f.is_file())
    return (model_dir / WEIGHTS).stat().st_size


def is_trained(model_dir: Path) -> bool:
    """A finished model directory of either kind (what `topotrigger run` looks for before retraining)."""
    return (model_dir / INFO).is_file() and ((model_dir / WEIGHTS).is_file() or is_spark_model(model_dir))
