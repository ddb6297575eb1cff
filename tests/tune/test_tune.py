"""`tune`: trials as Spark tasks, failed trials recorded, reruns resume, best.json feeds `train --params`."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from topotrigger.cli import main
from topotrigger.config import TuneConfig
from topotrigger.errors import ConfigError
from topotrigger.tune.space import DEFAULT_SPACES, grid, load_space, random_trials
from topotrigger.tune.stage import tune
from topotrigger.tune.trial import sample_dataset

pytestmark = pytest.mark.spark


def test_grid_search_records_failures_and_resumes(spark, synthetic_models, tmp_path: Path) -> None:
    data, _ = synthetic_models
    space = json.dumps({"nh1": [8, 16], "lr": [1e-2, 1e30], "epochs": [2]})  # lr 1e30 diverges
    cfg = TuneConfig(search="grid", trials=0, sample_fraction=0.5, min_sample_events=0, parallelism=2)
    result = tune(cfg, str(data), str(tmp_path / "tune"), spark, space)
    assert result.ran == 4 and len(result.trials) == 4
    failed = [t for t in result.trials if t["status"] == "failed"]
    assert {t["params"]["lr"] for t in failed} == {1e30} and all("diverged" in t["reason"] for t in failed)
    ok = [t for t in result.trials if t["status"] == "ok"]
    assert len(ok) == 2 and all(t["mean_val_auc"] > 0.6 for t in ok)
    table = pd.read_parquet(tmp_path / "tune" / "trials.parquet")
    assert len(table) == 4 and set(table.status) == {"ok", "failed"}
    assert len(pd.read_csv(tmp_path / "tune" / "trials.csv")) == 4 and (tmp_path / "tune" / "tune.png").is_file()
    best = json.loads((tmp_path / "tune" / "best.json").read_text())
    assert best["lr"] == 1e-2 and best["val_loss"] == min(t["val_loss"] for t in ok)

    again = tune(cfg, str(data), str(tmp_path / "tune"), spark, space)
    assert again.ran == 0 and [t["trial_id"] for t in again.trials] == [t["trial_id"] for t in result.trials]

    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--data", str(data), "--params", str(tmp_path / "tune" / "best.json"),
              "--out", str(tmp_path / "model"), "--epochs", "1"])
    assert exit_info.value.code in (0, None)
    info = json.loads((tmp_path / "model" / "model.json").read_text())
    assert info["params"]["nh1"] == best["params"]["nh1"] and info["settings"]["lr"] == 1e-2


def test_optuna_search_resumes_without_redoing_trials(spark, synthetic_models, tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    data, _ = synthetic_models
    space = json.dumps({"nh1": [4, 8, 16, 32], "nh2": [4, 8, 16], "epochs": [1]})
    cfg = TuneConfig(search="optuna", trials=3, min_sample_events=300, parallelism=2)
    first = tune(cfg, str(data), str(tmp_path / "tune"), spark, space)
    assert first.ran == 3 and first.best is not None
    more = tune(cfg.model_copy(update={"trials": 5}), str(data), str(tmp_path / "tune"), spark, space)
    assert more.ran == 2 and len(more.trials) == 5
    assert len({json.dumps(t["params"], sort_keys=True) for t in more.trials}) == 5


def test_spaces_and_samples(synthetic_models, tmp_path: Path) -> None:
    assert len(grid(DEFAULT_SPACES["hlf"])) == 243  # the 2019 grid
    picks = random_trials(DEFAULT_SPACES["hlf"], 10, seed=1)
    assert picks == random_trials(DEFAULT_SPACES["hlf"], 10, seed=1) and len({json.dumps(p) for p in picks}) == 10
    with pytest.raises(ConfigError, match="no hyperparameter 'width'; available: batch_size, epochs, lr, nh1"):
        load_space("hlf", '{"width": [1]}')
    with pytest.raises(ConfigError, match="JSON object"):
        load_space("hlf", "{nope")
    data, _ = synthetic_models
    sample = sample_dataset(str(data), 0.1, 200, seed=3, cache_root=str(tmp_path))
    train, validation = (pd.read_parquet(sample / s) for s in ("train", "val"))
    assert 150 <= len(train) + len(validation) <= 260 and 0.1 < len(validation) / (len(train) + len(validation)) < 0.3
    assert sample_dataset(str(data), 0.1, 200, seed=3, cache_root=str(tmp_path)) == sample  # cached
