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


@pytest.mark.slow
@pytest.mark.parametrize("per_event", [False, True])
def test_export_takes_unscaled_features_and_describes_itself(synthetic_models, tmp_path, per_event: bool) -> None:
    """The scaler is in the graph: raw features in, the PyTorch model's scores on scaled features out."""
    import shutil

    import onnx

    from topotrigger.features.kernels.definitions import HLF_NAMES
    from topotrigger.features.scaling import Scaler

    data, models = synthetic_models
    model_dir = tmp_path / "inclusive"
    shutil.copytree(models["inclusive"], model_dir)
    info = json.loads((model_dir / "model.json").read_text())
    rng = np.random.default_rng(1)
    scaler = Scaler(list(rng.uniform(-5, 0, 14)), list(rng.uniform(1, 50, 14)), list(rng.normal(size=19)),
                    list(rng.uniform(0.5, 3, 19)), per_event)
    info["scaler"] = scaler.to_dict()
    info["feature_options"] = {"legacy_isolation": False}
    (model_dir / "model.json").write_text(json.dumps(info))
    result = export_onnx(str(model_dir), str(tmp_path / "model.onnx"), str(data / "test"))
    assert result.max_abs_diff < 1e-5

    props = {p.key: p.value for p in onnx.load(str(result.path)).metadata_props}
    assert json.loads(props["hlf_names"]) == list(HLF_NAMES) and json.loads(props["inputs_scaled"]) is False
    assert json.loads(props["class_names"]) == SavedModel.load(model_dir).info.class_names()
    assert json.loads(props["scaler"])["per_event"] is per_event

    raw_hlf = rng.uniform(-5, 50, size=(5, 14)).astype(np.float32)
    lengths = np.array([3, 40, 1, 17, 40])
    raw = (rng.normal(size=(5, 40, 19)) * 4 + 2).astype(np.float32)
    got = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"]).run(
        None, {"hlf": raw_hlf, "particles": raw, "lengths": lengths})[0]
    flat = np.concatenate([raw[i, :n] for i, n in enumerate(lengths)])
    scaled = scaler.transform_particles(flat, lengths)
    padded = np.zeros_like(raw)
    padded[np.arange(40)[None, :] < lengths[:, None]] = scaled
    with torch.no_grad():
        want = torch.softmax(SavedModel.load(model_dir).module(torch.from_numpy(scaler.transform_hlf(raw_hlf)),
                                                               torch.from_numpy(padded), torch.from_numpy(lengths)), 1)
    np.testing.assert_allclose(got, want.numpy(), atol=1e-5, rtol=0)
