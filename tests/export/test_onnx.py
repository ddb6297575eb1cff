"""ONNX export of every model: onnxruntime gives PyTorch's scores, at any batch size and sequence length."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from topotrigger.errors import InputError
from topotrigger.export.onnx import export_onnx
from topotrigger.train.models import MODELS
from topotrigger.train.saved import SavedModel

ort = pytest.importorskip("onnxruntime")


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_export_matches_pytorch(synthetic_models, tmp_path, name: str) -> None:
    data, models = synthetic_models
    result = export_onnx(str(models[name]), str(tmp_path / "model.onnx"), str(data / "test"))
    assert result.events_checked == 150 and result.max_abs_diff < 1e-5
    assert json.loads((tmp_path / "model.onnx.json").read_text())["events_checked"] == 150
    # Shapes the export never saw: 7 events, up to 60 particles, lengths from 1 to 60.
    saved = SavedModel.load(models[name])
    rng = np.random.default_rng(0)
    hlf = rng.normal(size=(7, 14)).astype(np.float32)
    lengths = np.array([1, 60, 5, 33, 2, 60, 17])
    particles = rng.normal(size=(7, 60, 19)).astype(np.float32)
    particles[np.arange(60)[None, :] >= lengths[:, None]] = 0.0
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    feed = {"hlf": hlf}
    if saved.uses_particles:
        feed |= {"particles": particles, "lengths": lengths}
    got = session.run(None, feed)[0]
    with torch.no_grad():
        want = torch.softmax(saved.module(torch.from_numpy(hlf), torch.from_numpy(particles), torch.from_numpy(lengths)), 1)
    np.testing.assert_allclose(got, want.numpy(), atol=1e-5, rtol=0)


def test_export_needs_events_to_check_on(synthetic_models, tmp_path) -> None:
    data, models = synthetic_models
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError):
        export_onnx(str(models["hlf"]), str(tmp_path / "model.onnx"), str(empty))
    assert not (tmp_path / "model.onnx").exists()


def test_spark_models_are_not_exported(tmp_path) -> None:
    (tmp_path / "sparkml").mkdir()
    with pytest.raises(InputError, match="ONNX export is for the PyTorch models"):
        export_onnx(str(tmp_path))
