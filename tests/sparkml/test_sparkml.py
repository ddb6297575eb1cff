"""Spark MLlib and XGBoost models: train through Spark, beat chance, save, reload, evaluate, predict."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from topotrigger.cli import main
from topotrigger.errors import ConfigError
from topotrigger.evaluate.stage import evaluate
from topotrigger.predict.stage import predict
from topotrigger.sparkml.stage import SparkSavedModel, fit_and_save

pytestmark = [pytest.mark.spark, pytest.mark.slow]
SMALL = {"mllib-rf": {"num_trees": 10, "max_depth": 5}, "mllib-gbt": {"max_iter": 5, "max_depth": 3},
         "mllib-mlp": {"max_iter": 60}, "xgboost": {"n_estimators": 30, "max_depth": 3}}
SCORES = ["score_class_0", "score_class_1", "score_class_2"]


# XGBoost with the particle summaries: its HLF-only path is the one the MLlib models take.
@pytest.mark.parametrize("name,inputs", [("mllib-rf", "hlf"), ("mllib-gbt", "hlf"), ("mllib-mlp", "hlf"),
                                         ("xgboost", "hlf+summary")])
def test_trains_beats_chance_reloads_and_predicts(spark, synthetic_models, tmp_path: Path, name: str, inputs: str) -> None:
    if name == "xgboost":
        pytest.importorskip("xgboost")
    data, _ = synthetic_models
    fitted, history = fit_and_save(name, SMALL[name], str(data), str(tmp_path / "model"), spark, inputs)
    assert history["epochs"][0]["val_accuracy"] > 0.6  # three balanced classes: chance is 1/3
    in_memory = fitted.score(spark.read.parquet(str(data / "test"))).toPandas()
    reloaded = SparkSavedModel.load(tmp_path / "model")
    predict(str(tmp_path / "model"), str(data / "test"), str(tmp_path / "scores"), spark)
    scores = pd.read_parquet(tmp_path / "scores").sort_values("row")
    expected = np.stack(in_memory["p"].to_numpy())
    np.testing.assert_allclose(scores[SCORES].to_numpy(), expected, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(scores.label.to_numpy(), in_memory.label.to_numpy().astype(int))
    again, _ = reloaded.dataset_scores(str(data / "test"), spark)
    np.testing.assert_allclose(again, expected, atol=1e-6, rtol=0)
    result = evaluate([str(tmp_path / "model")], str(data), str(tmp_path / "eval"), spark=spark)
    test_accuracy = float(np.mean(np.argmax(expected, axis=1) == in_memory.label.to_numpy().astype(int)))
    assert result.metrics["models"]["model"]["accuracy"] == pytest.approx(test_accuracy)
    assert "no val/ split" in history["validation"]  # validated on held-out training events, never on test/
    assert result.metrics["models"]["model"]["model_bytes"] > 0


def test_tree_models_refuse_particle_sequences_and_unknown_names(synthetic_models, tmp_path: Path, capsys) -> None:
    data, _ = synthetic_models
    with pytest.raises(ConfigError, match="takes fixed-size inputs .*particle, inclusive or transformer"):
        fit_and_save("mllib-rf", {}, str(data), str(tmp_path / "m"), None, "particles")  # type: ignore[arg-type]
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--data", str(data), "--model", "lightgbm", "--out", str(tmp_path / "m")])
    assert exit_info.value.code == 2
    assert "available: hlf, particle, inclusive, transformer, mllib-rf, mllib-gbt, mllib-mlp, xgboost" in capsys.readouterr().err
