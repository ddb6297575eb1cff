"""ONNX export of a saved model, with a dynamic batch size and particle-sequence length.

The exported graph returns softmax scores. Inputs: `hlf` [batch, 14] float32 and, for the models
that read particles, `particles` [batch, length, 19] float32 and `lengths` [batch] int64 (the real
number of particles of each event; rows past it are ignored). The features are the unscaled ones
`features` computes: the model's scaler (min-max HLF, standardised or per-event standardised
particles) is part of the graph, so the file alone scores events. Its metadata (`metadata_props`)
names the inputs' features in order, the feature options, the class names and the scaler. A model
without a saved scaler (trained on a dataset scaled elsewhere) takes scaled inputs, and says so
(`inputs_scaled`). The GRU models run their recurrences over the padded steps and pick the state
at each event's length (see `models.exportable`), which gives the packed-sequence results. The export
is checked with onnxruntime against PyTorch on a dataset before the file is kept.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import subprocess
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from topotrigger._optional import require
from topotrigger.errors import InputError
from topotrigger.features.kernels.definitions import HLF_NAMES, N_HLF, PARTICLE_NAMES
from topotrigger.features.kernels.definitions import N_PARTICLE_FEATURES as N_FEATURES
from topotrigger.features.scaling import Scaler
from topotrigger.io.atomic import atomic_path, write_json
from topotrigger.modeldir import is_spark_model, refuse_published
from topotrigger.train.data import ParquetEvents, validation_source
from topotrigger.train.models import exportable
from topotrigger.train.saved import SavedModel

TOLERANCE = 1e-5


class _Scores(nn.Module):
    """Scaling (the `Scaler`'s arithmetic, in torch), the model and the softmax in one graph."""

    lo: torch.Tensor
    span: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, model: nn.Module, particles: bool, scaler: dict[str, Any] | None) -> None:
        super().__init__()
        self.model, self.particles, self.scaled = model, particles, scaler is None
        scaler = scaler or {"hlf_min": [0.0] * N_HLF, "hlf_max": [1.0] * N_HLF,
                            "particle_mean": [0.0] * N_FEATURES, "particle_std": [1.0] * N_FEATURES}
        lo, hi = np.asarray(scaler["hlf_min"], np.float64), np.asarray(scaler["hlf_max"], np.float64)
        self.register_buffer("lo", torch.tensor(lo, dtype=torch.float32))
        self.register_buffer("span", torch.tensor(np.where(hi > lo, hi - lo, 1.0), dtype=torch.float32))
        self.register_buffer("mean", torch.tensor(scaler["particle_mean"], dtype=torch.float32))
        self.register_buffer("std", torch.tensor(scaler["particle_std"], dtype=torch.float32))
        self.per_event = bool(scaler.get("per_event", False))

    def forward(self, hlf: torch.Tensor, particles: torch.Tensor | None = None,
                lengths: torch.Tensor | None = None) -> torch.Tensor:
        if not self.particles:  # keep the graph's inputs to what the model reads
            particles = torch.zeros(hlf.shape[0], 1, N_FEATURES, dtype=hlf.dtype)
            lengths = torch.ones(hlf.shape[0], dtype=torch.int64)
        assert particles is not None and lengths is not None
        if not self.scaled:
            hlf = (hlf - self.lo) / self.span
            if self.particles and self.per_event:  # each event's own mean and std over its real rows
                real = (torch.arange(particles.shape[1])[None, :] < lengths[:, None]).unsqueeze(-1).to(particles.dtype)
                n = torch.clamp(lengths, min=1).to(particles.dtype)[:, None, None]
                mean = (particles * real).sum(dim=1, keepdim=True) / n
                centred = (particles - mean) * real  # two passes: float32 loses E[x²] − E[x]² to cancellation
                var = (centred * centred).sum(dim=1, keepdim=True) / n
                std = torch.sqrt(var)
                particles = (particles - mean) / torch.where(std > 0, std, torch.ones_like(std))
            elif self.particles:
                particles = (particles - self.mean) / self.std
        return torch.softmax(self.model(hlf, particles, lengths), dim=1)


@dataclass
class ExportResult:
    path: Path
    events_checked: int
    max_abs_diff: float


def _export(model_dir: str, path: str) -> None:
    saved = SavedModel.load(model_dir)
    wrapper = _Scores(exportable(saved.module), saved.uses_particles, saved.info.scaler).eval()
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
    _describe(path, saved)


def _describe(path: str, saved: SavedModel) -> None:
    """The file's own account of its inputs and outputs (ONNX `metadata_props`)."""
    import onnx

    model = onnx.load(path)
    props = {"topotrigger_model": saved.name, "class_names": json.dumps(saved.info.class_names()),
             "hlf_names": json.dumps(list(HLF_NAMES)), "particle_names": json.dumps(list(PARTICLE_NAMES)),
             "inputs_scaled": json.dumps(saved.info.scaler is None), "scaler": json.dumps(saved.info.scaler),
             "feature_options": json.dumps(saved.info.feature_options)}
    onnx.helper.set_model_props(model, props)
    onnx.save(model, path)


def _example(particles: bool) -> tuple[torch.Tensor, ...]:
    hlf = torch.randn(3, N_HLF)
    return (hlf, torch.randn(3, 6, N_FEATURES), torch.tensor([6, 2, 4])) if particles else (hlf,)


def export_onnx(model_dir: str, out: str | None = None, data: str | None = None) -> ExportResult:
    require("onnx")
    ort = require("onnxruntime")
    refuse_published(model_dir, "export")
    if is_spark_model(Path(model_dir)):
        raise InputError(f"{model_dir} is a Spark ML / XGBoost model; ONNX export is for the PyTorch models "
                         "(hlf, particle, inclusive, transformer)")
    saved = SavedModel.load(model_dir)
    if saved.uses_particles and (saved.info.scaler or {}).get("legacy_padding"):
        raise InputError(f"{model_dir} reads the 2019 recipe's 801-row GRU input (zero rows sorted among the "
                         "particles and standardised with them), which the ONNX graph does not build: export "
                         "a model trained on the default recipe, or an hlf model")
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
                # Raw features in, against PyTorch on the same features scaled by the Scaler in NumPy.
                hlf, particles = raw_inputs(saved.info.scaler, b.hlf.numpy(), b.particles.numpy())
                lengths = b.lengths.numpy()
                scaled_hlf, scaled = scaled_inputs(saved.info.scaler, hlf, particles, lengths)
                expected = torch.softmax(saved.module(torch.from_numpy(scaled_hlf), torch.from_numpy(scaled), b.lengths),
                                         dim=1).numpy()
                feed = {"hlf": hlf}
                if saved.uses_particles:
                    feed |= {"particles": particles, "lengths": b.lengths.numpy()}
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


def raw_inputs(scaler: dict[str, Any] | None, hlf: np.ndarray, particles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unscaled features of a scaled dataset's (what the graph takes); per-event standardisation cannot
    be undone, so those particles are taken as they are."""
    if scaler is None:
        return hlf, particles
    scale = Scaler(**scaler)
    raw_hlf = scale.inverse_hlf(hlf.astype(np.float64)).astype(np.float32)
    if scale.per_event:
        return raw_hlf, particles
    raw = particles.astype(np.float64) * np.asarray(scale.particle_std) + np.asarray(scale.particle_mean)
    return raw_hlf, raw.astype(np.float32)


def scaled_inputs(scaler: dict[str, Any] | None, hlf: np.ndarray, particles: np.ndarray,
                  lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`Scaler`'s transform of padded inputs (batch, length, features), over each event's real rows."""
    if scaler is None:
        return hlf, particles
    scale = Scaler(**scaler)
    real = np.arange(particles.shape[1])[None, :] < lengths[:, None]
    out = np.zeros_like(particles, dtype=np.float32)
    out[real] = scale.transform_particles(particles[real], lengths)
    return scale.transform_hlf(hlf), out


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
