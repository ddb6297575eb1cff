"""ONNX export of a saved model, with a dynamic batch size and particle-sequence length.

The exported graph returns softmax scores. Inputs: `hlf` [batch, 14] float32 and, for the models
that read particles, `particles` [batch, length, 19] float32 and `lengths` [batch] int64 (the real
number of particles of each event; rows past it are ignored). The GRU models run their recurrences
over the padded steps and pick the state at each event's length (see `models.exportable`), which
gives the packed-sequence results. The export is checked with onnxruntime against PyTorch on a
dataset before the file is kept.
"""

from __future__ import annotations

import contextlib
import io
import logging
import subprocess
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from topotrigger._optional import require
from topotrigger.errors import InputError
from topotrigger.features.kernels.definitions import N_HLF
from topotrigger.features.kernels.definitions import N_PARTICLE_FEATURES as N_FEATURES
from topotrigger.io.atomic import atomic_path, write_json
from topotrigger.modeldir import is_spark_model
from topotrigger.train.data import ParquetEvents, validation_source
from topotrigger.train.models import exportable
from topotrigger.train.saved import SavedModel

TOLERANCE = 1e-5


class _Scores(nn.Module):
    def __init__(self, model: nn.Module, particles: bool) -> None:
        super().__init__()
        self.model, self.particles = model, particles

    def forward(self, hlf: torch.Tensor, particles: torch.Tensor | None = None,
                lengths: torch.Tensor | None = None) -> torch.Tensor:
        if not self.particles:  # keep the graph's inputs to what the model reads
            particles = torch.zeros(hlf.shape[0], 1, N_FEATURES, dtype=hlf.dtype)
            lengths = torch.ones(hlf.shape[0], dtype=torch.int64)
        return torch.softmax(self.model(hlf, particles, lengths), dim=1)


@dataclass
class ExportResult:
    path: Path
    events_checked: int
    max_abs_diff: float


def _export(model_dir: str, path: str) -> None:
    saved = SavedModel.load(model_dir)
    wrapper = _Scores(exportable(saved.module), saved.uses_particles).eval()
    names = ["hlf", "particles", "lengths"] if saved.uses_particles else ["hlf"]
    batch, length = torch.export.Dim("batch"), torch.export.Dim("length")
    shapes = {"hlf": {0: batch}}
    if saved.uses_particles:
        shapes |= {"particles": {0: batch, 1: length}, "lengths": {0: batch}}
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), _quiet("torch.onnx"):
        # The exporter narrates its passes and warns about optional operator sets (torchvision).
        warnings.simplefilter("ignore")
        program = torch.onnx.export(wrapper, _example(saved.uses_particles), dynamo=True, input_names=names,
                                    output_names=["scores"], dynamic_shapes=shapes, verbose=False)
        if program is None:
            raise RuntimeError("torch.onnx.export returned no program")
        program.save(path)


def _example(particles: bool) -> tuple[torch.Tensor, ...]:
    hlf = torch.randn(3, N_HLF)
    return (hlf, torch.randn(3, 6, N_FEATURES), torch.tensor([6, 2, 4])) if particles else (hlf,)


def export_onnx(model_dir: str, out: str | None = None, data: str | None = None) -> ExportResult:
    require("onnx")
    ort = require("onnxruntime")
    if is_spark_model(Path(model_dir)):
        raise InputError(f"{model_dir} is a Spark ML / XGBoost model; ONNX export is for the PyTorch models "
                         "(hlf, particle, inclusive, transformer)")
    saved = SavedModel.load(model_dir)
    path = Path(out) if out else Path(model_dir) / "model.onnx"
    # Checked on the validation events (test/ is evaluate's alone); datasets without val/ use train/.
    if data is None and saved.info.dataset:
        data = validation_source(saved.info.dataset, 0)[0]
    if data is None:
        raise InputError("no dataset to check the export on: pass --data")
    reference = ParquetEvents(data, 1024, shuffle=False, with_particles=saved.uses_particles)
    if reference.num_events == 0:
        raise InputError(f"{data} holds no events to check the export on")

    names = ["hlf", "particles", "lengths"] if saved.uses_particles else ["hlf"]
    with atomic_path(path) as tmp:
        # torch.export keeps state between exports in one process (the second export of a GRU model
        # came out with a fixed sequence length, torch 2.13), so each export runs in a fresh process.
        child = subprocess.run([sys.executable, "-m", "topotrigger.export.onnx", str(model_dir), str(tmp)],
                               capture_output=True, text=True)
        if child.returncode != 0:
            raise RuntimeError(f"ONNX export of {model_dir} failed:\n{child.stderr[-4000:]}")
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        worst, checked = 0.0, 0
        with torch.no_grad():
            for b in reference:
                expected = torch.softmax(saved.module(b.hlf, b.particles, b.lengths), dim=1).numpy()
                feed = {"hlf": b.hlf.numpy()}
                if saved.uses_particles:
                    feed |= {"particles": b.particles.numpy(), "lengths": b.lengths.numpy()}
                got = session.run(None, feed)[0]
                worst = max(worst, float(np.abs(got - expected).max()))
                checked += len(expected)
        if not worst < TOLERANCE:
            raise RuntimeError(f"ONNX export of {model_dir} differs from PyTorch by {worst:.3g} (> {TOLERANCE})")
    write_json(path.with_suffix(".onnx.json"), {"model": saved.name, "inputs": names, "output": "scores",
                                                "label_names": saved.info.label_names,
                                                "checked_on": data, "events_checked": checked,
                                                "max_abs_diff": worst, "onnx_opset": _opset(path)})
    return ExportResult(path, checked, worst)


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _opset(path: Path) -> int | None:
    onnx = require("onnx")
    model = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


if __name__ == "__main__":
    _export(sys.argv[1], sys.argv[2])
