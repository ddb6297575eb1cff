"""A trained model directory read back: the network, its metadata, and scoring of decoded events.

Used by `evaluate`, `predict`, `export` and `tune`. The weights and `model.json` are small (a few
hundred kB at most), so the whole model travels to Spark executors as bytes inside the task closure:
no shared file system is needed between the driver and the executors.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from topotrigger.errors import InputError, MissingInputError
from topotrigger.train.data import Events, collate
from topotrigger.train.models import MODELS, USES_PARTICLES, build_model

# What must match between a model and a dataset for the model's scores to mean anything.
_FEATURE_KEYS = ("hlf_names", "particle_names", "feature_options", "scaler")


@dataclass
class SavedModel:
    info: dict[str, Any]
    module: nn.Module

    @property
    def name(self) -> str:
        return str(self.info["model"])

    @property
    def uses_particles(self) -> bool:
        return USES_PARTICLES[self.name]

    @classmethod
    def load(cls, model_dir: str | Path) -> "SavedModel":
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise MissingInputError(f"model directory not found: {model_dir}")
        missing = [n for n in ("model.json", "model.pt") if not (model_dir / n).is_file()]
        if missing:
            raise MissingInputError(f"{model_dir} lacks {' and '.join(missing)}: is it the output of `topotrigger train`?")
        info = json.loads((model_dir / "model.json").read_text())
        return cls.from_parts(info, (model_dir / "model.pt").read_bytes(), str(model_dir))

    @classmethod
    def from_parts(cls, info: dict[str, Any], weights: bytes, where: str = "model") -> "SavedModel":
        if info.get("model") not in MODELS:
            raise InputError(f"{where}: unknown model {info.get('model')!r} (known: {', '.join(MODELS)})")
        module = build_model(info["model"], info.get("params"))
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
        """Softmax scores (n, 3) of decoded events, in their order."""
        out = []
        for lo in range(0, len(events.labels), batch_size):
            batch = collate(events, np.arange(lo, min(lo + batch_size, len(events.labels))))
            out.append(torch.softmax(self.module(batch.hlf, batch.particles, batch.lengths), dim=1).numpy())
        return np.concatenate(out) if out else np.zeros((0, 3), dtype=np.float32)


def check_feature_definitions(info: dict[str, Any], metadata: dict[str, Any], where: str) -> None:
    """Refuse a dataset whose feature definitions or scaling differ from those a model was trained on."""
    dataset = {"hlf_names": metadata.get("hlf_names"), "particle_names": metadata.get("particle_names"),
               "feature_options": metadata.get("options"), "scaler": metadata.get("scaler")}
    differ = [k for k in _FEATURE_KEYS if info.get(k) is not None and dataset[k] is not None and info[k] != dataset[k]]
    if differ:
        raise InputError(f"model {info.get('model')} was trained on other feature definitions than {where} "
                         f"(different {', '.join(differ)}); rebuild the features or retrain")
