"""A trained PyTorch model read back from its directory (`modeldir`): the network, its metadata, scoring.

Used by `evaluate`, `predict`, `export` and `tune`. The weights and `model.json` are small (a few
hundred kB at most), so the whole model travels to Spark executors as bytes inside the task closure:
no shared file system is needed between the driver and the executors.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from topotrigger.errors import InputError, MissingInputError
from topotrigger.features.kernels.definitions import N_CLASSES
from topotrigger.modeldir import INFO, WEIGHTS, ModelInfo, check_feature_definitions, read_info
from topotrigger.train.data import Events, ParquetEvents, collate
from topotrigger.train.models import MODELS, USES_PARTICLES, build_model


@dataclass
class SavedModel:
    info: ModelInfo
    module: nn.Module

    @property
    def name(self) -> str:
        return self.info.model

    @property
    def uses_particles(self) -> bool:
        return USES_PARTICLES[self.name]

    @classmethod
    def load(cls, model_dir: str | Path) -> "SavedModel":
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise MissingInputError(f"model directory not found: {model_dir}")
        missing = [n for n in (INFO, WEIGHTS) if not (model_dir / n).is_file()]
        if missing:
            raise MissingInputError(f"{model_dir} lacks {' and '.join(missing)}: is it the output of `topotrigger train`?")
        return cls.from_parts(read_info(model_dir), (model_dir / WEIGHTS).read_bytes(), str(model_dir))

    @classmethod
    def from_parts(cls, info: ModelInfo | dict[str, Any], weights: bytes, where: str = "model") -> "SavedModel":
        info = info if isinstance(info, ModelInfo) else ModelInfo.model_validate(info)
        if info.model not in MODELS:
            raise InputError(f"{where}: unknown model {info.model!r} (known: {', '.join(MODELS)})")
        module = build_model(info.model, info.params)
        module.load_state_dict(torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True))
        return cls(info, module.eval())

    def weights(self) -> bytes:
        buffer = io.BytesIO()
        torch.save(self.module.state_dict(), buffer)
        return buffer.getvalue()

    def check_dataset(self, metadata: dict[str, Any], where: str) -> None:
        check_feature_definitions(self.info, metadata, where)

    @torch.no_grad()
    def probabilities(self, events: Events, batch_size: int = 2048) -> np.ndarray:
        """Softmax scores (n, N_CLASSES) of decoded events, in their order."""
        out = []
        for lo in range(0, len(events.labels), batch_size):
            batch = collate(events, np.arange(lo, min(lo + batch_size, len(events.labels))))
            out.append(torch.softmax(self.module(batch.hlf, batch.particles, batch.lengths), dim=1).numpy())
        return np.concatenate(out) if out else np.zeros((0, N_CLASSES), dtype=np.float32)

    @torch.no_grad()
    def dataset_scores(self, path: str, spark: Any = None, batch_size: int = 2048) -> tuple[np.ndarray, np.ndarray]:
        """Softmax scores and labels of every event of a training-layout dataset, in storage order."""
        data = ParquetEvents(path, batch_size, shuffle=False, with_particles=self.uses_particles)
        probabilities, labels = [], []
        for batch in data:
            probabilities.append(torch.softmax(self.module(batch.hlf, batch.particles, batch.lengths), dim=1).numpy())
            labels.append(batch.labels.numpy())
        if not labels:
            raise InputError(f"{path} holds no events to evaluate")
        return np.concatenate(probabilities), np.concatenate(labels)
