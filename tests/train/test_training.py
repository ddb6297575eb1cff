"""Models learn, checkpoints resume, bad input is refused, and DDP keeps replicas identical."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from topotrigger.errors import ConfigError, InputError, MissingInputError
from topotrigger.train.data import ParquetEvents, validation_source
from topotrigger.train.loop import TrainSettings
from topotrigger.train.models import MODELS, build_model, exportable
from topotrigger.train.stage import train


@pytest.mark.parametrize("name", MODELS)
def test_each_model_loss_decreases(dataset: Path, name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    data = ParquetEvents(str(dataset / "train"), 64, seed=1)
    losses = []
    for epoch in range(4):
        data.set_epoch(epoch)
        for batch in data:
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(batch.hlf, batch.particles, batch.lengths), batch.labels)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5


def test_hlf_model_beats_chance_and_saves_a_loadable_model(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    history = train(TrainSettings(model="hlf", epochs=6, batch_size=32, lr=1e-2), str(dataset), str(out))
    assert min(history["epochs"][-1]["val_auc"]) > 0.75
    meta = json.loads((out / "model.json").read_text())
    model = build_model(meta["model"], meta["params"])
    model.load_state_dict(torch.load(out / "model.pt", weights_only=True))
    saved = json.loads((out / "history.json").read_text())
    assert len(saved["epochs"]) == 6 and {"val_loss", "val_accuracy", "val_auc", "lr", "events_per_s"} <= set(saved["epochs"][0])


def test_resume_continues_from_the_last_checkpoint(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    train(TrainSettings(model="particle", epochs=1, batch_size=64), str(dataset), str(out))
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 0 and "optimizer" in state
    history = train(TrainSettings(model="particle", epochs=3, batch_size=64), str(dataset), str(out), resume=True)
    assert [e["epoch"] for e in history["epochs"]] == [0, 1, 2]
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] == 2


def test_bad_inputs(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(MissingInputError):
        train(TrainSettings(), str(tmp_path / "nope"), str(tmp_path / "m"))
    with pytest.raises(ConfigError, match="available: hlf, particle"):
        train(TrainSettings(model="bdt"), str(dataset), str(tmp_path / "m"))
    with pytest.raises(ConfigError, match="no hyperparameter 'width'"):
        train(TrainSettings(params={"width": 3}), str(dataset), str(tmp_path / "m"))
    (tmp_path / "half").mkdir()
    with pytest.raises(InputError, match="no train/ split"):
        train(TrainSettings(), str(tmp_path / "half"), str(tmp_path / "m"))


@pytest.mark.spark
@pytest.mark.slow
def test_ddp_two_workers_keeps_replicas_identical(spark, dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    history = train(TrainSettings(model="hlf", epochs=3, batch_size=32, lr=1e-2), str(dataset), str(out),
                    workers=2, spark=spark)
    assert history["world_size"] == 2 and history["replicas_identical"]
    # Every rank's events are counted: an epoch is the whole training split, whatever each rank held.
    _, holdout, _, _ = validation_source(str(dataset), TrainSettings().seed)
    events = ParquetEvents(str(dataset / "train"), 32, holdout=holdout).num_events
    assert [e["events"] for e in history["epochs"]] == [events] * 3
    assert min(history["epochs"][-1]["val_auc"]) > 0.8
    assert (out / "model.pt").is_file() and (out / "model.json").is_file()
    with pytest.raises(ConfigError, match="task slots"):
        train(TrainSettings(), str(dataset), str(out), workers=64, spark=spark)


def test_diverging_training_stops_with_a_clear_message(tmp_path: Path) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tests.datasets import write_compact
    from topotrigger.train.loop import DivergedError

    root = tmp_path / "features"
    write_compact(root / "train", 100, 1)
    write_compact(root / "test", 30, 2)
    table = pq.read_table(root / "train" / "part-0.parquet")
    hlf = np.array(table.column("hlf").to_pylist(), dtype=np.float32)
    hlf[:, 3] = np.inf
    table = table.set_column(1, "hlf", pa.array(list(hlf), pa.list_(pa.float32())))
    pq.write_table(table, root / "train" / "part-0.parquet")
    with pytest.raises(DivergedError, match="diverged at epoch 0"):
        train(TrainSettings(model="hlf", epochs=2), str(root), str(tmp_path / "m"))


@pytest.mark.slow
def test_killed_training_resumes_from_its_last_checkpoint(dataset: Path, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "topotrigger", "train", "--data", str(dataset), "--model", "particle",
           "--out", str(out), "--epochs", "6", "--batch-size", "16"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if (out / "history.json").is_file() and json.loads((out / "history.json").read_text())["epochs"]:
            break
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(json.loads((out / "history.json").read_text())["epochs"])
    assert 1 <= done < 6
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    history = train(TrainSettings(model="particle", epochs=6, batch_size=16), str(dataset), str(out), resume=True)
    assert [e["epoch"] for e in history["epochs"]] == list(range(len(history["epochs"])))
    assert history["epochs"][checkpoint["epoch"] + 1]["epoch"] == checkpoint["epoch"] + 1
    assert not list(out.glob(".*tmp*"))


def test_resume_with_other_hyperparameters_is_refused_in_one_line(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    train(TrainSettings(model="hlf", epochs=1, batch_size=32, lr=1e-2), str(dataset), str(out))
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["arguments"]["params"] == {"nh1": 50, "nh2": 20, "nh3": 10} and state["step"] > 0
    assert state["settings"]["model"] == "hlf" and "best_val_loss" in state
    with pytest.raises(ConfigError, match=r"cannot resume .*checkpoint.pt.*nh1"):
        train(TrainSettings(model="hlf", epochs=2, batch_size=32, lr=1e-2, params={"nh1": 64}), str(dataset), str(out),
              resume=True)
    history = train(TrainSettings(model="hlf", epochs=2, batch_size=32, lr=1e-2), str(dataset), str(out), resume=True)
    assert [e["epoch"] for e in history["epochs"]] == [0, 1]


def test_training_data_under_hidden_directories_is_found(dataset: Path, tmp_path: Path) -> None:
    import shutil

    hidden = tmp_path / ".cache" / "_work" / "features"
    shutil.copytree(dataset, hidden)
    assert ParquetEvents(str(hidden / "train"), 32).num_events == ParquetEvents(str(dataset / "train"), 32).num_events > 0


def test_nothing_of_the_test_split_reaches_training(dataset: Path, tmp_path: Path) -> None:
    """The same model trained on a dataset and on a copy whose test/ labels are permuted: identical weights."""
    import shutil

    import pyarrow.parquet as pq

    from tests.datasets import write_compact

    write_compact(dataset / "val", 90, 3)
    permuted = tmp_path / "permuted"
    shutil.copytree(dataset, permuted)
    for path in (permuted / "test").glob("*.parquet"):
        table = pq.read_table(path)
        labels = np.random.default_rng(0).permutation(table.column("label").to_numpy())
        pq.write_table(table.set_column(table.schema.get_field_index("label"), "label", pa.array(labels)), path)
    settings = TrainSettings(model="hlf", epochs=3, batch_size=32, lr=1e-2)
    first = train(settings, str(dataset), str(tmp_path / "a"))
    second = train(settings, str(permuted), str(tmp_path / "b"))
    assert first["validation"] == "val/"
    a = torch.load(tmp_path / "a" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "model.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [e["val_loss"] for e in first["epochs"]] == [e["val_loss"] for e in second["epochs"]]


def test_datasets_without_val_validate_on_a_seeded_share_of_train(dataset: Path, tmp_path: Path) -> None:
    from topotrigger.train.data import Holdout, validation_source

    path, train_side, val_side, note = validation_source(str(dataset), seed=4)
    assert path.endswith("/train") and "no val/ split" in note
    train_events = ParquetEvents(str(dataset / "train"), 32, holdout=train_side)
    val_events = ParquetEvents(path, 32, holdout=val_side, shuffle=False)
    total = ParquetEvents(str(dataset / "train"), 32).num_events
    assert train_events.num_events + val_events.num_events == total and 0.05 < val_events.num_events / total < 0.15
    seen = sum(len(b.labels) for b in val_events)
    assert seen == val_events.num_events
    assert Holdout(0.1, 4, "val").mask(0, 50).tolist() == Holdout(0.1, 4, "val").mask(0, 50).tolist()
    history = train(TrainSettings(model="hlf", epochs=1, batch_size=32), str(dataset), str(tmp_path / "m"))
    assert "no val/ split" in history["validation"]


@pytest.mark.parametrize("name", ["particle", "inclusive"])
def test_the_gru_over_padded_steps_equals_packed_sequences(name: str) -> None:
    torch.manual_seed(3)
    model = build_model(name).eval()
    lengths = torch.tensor([5, 1, 12, 7])
    particles = torch.randn(4, 12, 19) * (torch.arange(12)[None, :, None] < lengths[:, None, None])
    hlf = torch.randn(4, 14)
    model.packed = True
    packed = model(hlf, particles, lengths)
    model.packed = False
    padded = model(hlf, particles, lengths)
    torch.testing.assert_close(padded, packed, rtol=1e-5, atol=1e-6)
    assert not build_model(name).packed  # padded steps unless asked: the faster on CPU and GPU


@pytest.mark.parametrize("chunk", [1, 3, 4, 32])
def test_the_gru_in_slices_of_steps_equals_all_padded_steps(chunk: int) -> None:
    """Values and gradients: slices ending exactly at an event's length, events of one step, ties."""
    torch.manual_seed(4)
    lengths = torch.tensor([5, 1, 12, 7, 8, 12, 3, 4])
    particles = torch.randn(8, 12, 19) * (torch.arange(12)[None, :, None] < lengths[:, None, None])
    hlf = torch.randn(8, 14)
    results = []
    for steps in (0, chunk):
        torch.manual_seed(5)
        model = build_model("inclusive").eval()
        model.chunk_steps = steps
        logits = model(hlf, particles, lengths)
        logits.square().sum().backward()
        results.append((logits.detach(), model.gru.weight_hh_l0.grad.clone()))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(results[1][1], results[0][1], rtol=1e-4, atol=1e-6)
    assert build_model("inclusive").chunk_steps == 32 and exportable(build_model("inclusive")).chunk_steps == 0
