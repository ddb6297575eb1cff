"""`evaluate` on saved models: metrics.json, a self-contained report, and refusals of bad input."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from topotrigger.errors import InputError, MissingInputError
from topotrigger.evaluate.stage import evaluate, score_dataset
from topotrigger.train.saved import SavedModel


def test_report_puts_models_side_by_side(synthetic_models, tmp_path: Path) -> None:
    data, models = synthetic_models
    result = evaluate([str(models["hlf"]), str(models["inclusive"])], str(data), str(tmp_path / "eval"))
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert set(metrics["models"]) == {"hlf", "inclusive"} and metrics["events"] == 150
    probabilities, labels = score_dataset(SavedModel.load(models["hlf"]), f"{data}/test")
    hlf = metrics["models"]["hlf"]
    assert hlf["accuracy"] == pytest.approx(float(np.mean(probabilities.argmax(1) == labels)))
    assert min(hlf["auc"].values()) > 0.7  # the synthetic classes are well separated
    assert np.allclose(np.sum(hlf["confusion_matrix"], axis=1), 1.0)
    html = result.report.read_text()
    assert html.count("data:image/png;base64,") >= 4  # ROC, two confusion matrices, training curves
    assert not re.search(r'src="(?!data:)', html)  # nothing outside the file
    assert "2020 published, other dataset" in html and "bkg rejection (1/acceptance) at 99% signal" in html
    assert "rate reduction" not in html  # a balanced, unweighted sample gives efficiencies, not rates
    # No cross-sections (this dataset records none): no rates, a note saying why, unit weights.
    assert metrics["stream"] is None and "--cross-section" in metrics["rates_note"] and metrics["rates_note"] in html
    assert metrics["models"]["hlf"]["working_points"] is None
    scores = pq.read_table(next((tmp_path / "eval" / "scores").glob("0_*.parquet")))
    assert scores.column("weight").to_pylist() == [1.0] * scores.num_rows
    # A rerun replaces the output in place and gives the same numbers.
    evaluate([str(models["hlf"]), str(models["inclusive"])], str(data), str(tmp_path / "eval"))
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["models"] == metrics["models"]


def test_missing_model_files_and_empty_test_set(synthetic_models, tmp_path: Path) -> None:
    data, models = synthetic_models
    broken = tmp_path / "broken"
    shutil.copytree(models["hlf"], broken)
    (broken / "model.pt").unlink()
    with pytest.raises(MissingInputError, match="lacks model.pt"):
        evaluate([str(broken)], str(data), str(tmp_path / "out"))
    empty = tmp_path / "empty"
    (empty / "test").mkdir(parents=True)
    table = pq.read_table(data / "test").slice(0, 0)
    pq.write_table(table, empty / "test" / "part-0.parquet")
    with pytest.raises(InputError, match="no events"):
        evaluate([str(models["hlf"])], str(empty), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_model_from_other_feature_definitions_is_refused(synthetic_models, tmp_path: Path) -> None:
    data, models = synthetic_models
    other = tmp_path / "other"
    shutil.copytree(data, other)
    model = tmp_path / "model"
    shutil.copytree(models["hlf"], model)
    info = json.loads((model / "model.json").read_text())
    info["feature_options"] = {"mt_without_sqrt": False, "lepton_choice_by_eta": False, "legacy_isolation": False}
    (model / "model.json").write_text(json.dumps(info))
    (other / "metadata.json").write_text(json.dumps({"options": {"mt_without_sqrt": True, "lepton_choice_by_eta": False,
                                                                 "legacy_isolation": False}}))
    with pytest.raises(InputError, match="other feature definitions"):
        evaluate([str(model)], str(other), str(tmp_path / "out"))




def test_rates_from_given_cross_sections_and_rate_weighted_scores(synthetic_models, tmp_path: Path) -> None:
    data, models = synthetic_models
    given = {"class 0": 1e6, "class 1": 500.0, "class 2": 2e4}  # the synthetic dataset names no classes
    result = evaluate([str(models["hlf"])], str(data), str(tmp_path / "eval"), luminosity=1e34, cross_sections=given)
    stream = result.metrics["stream"]
    # No cut flow in this dataset: σ is that of the selected events; rate = σ × 1e-36 cm²/pb × L.
    assert "no cut flow" in stream["selection"]
    for name, pb in given.items():
        assert stream["classes"][name]["rate_hz"] == pytest.approx(pb * 1e-36 * 1e34)
        assert result.metrics["cross_sections"][name]["source"] == "given (--cross-section)"
    points = result.metrics["models"]["hlf"]["working_points"]
    assert [wp["target"] for wp in points["class 1"]] == [0.99, 0.95, 0.9]
    for wp in points["class 1"]:
        assert wp["signal_efficiency"]["value"] >= wp["target"]
        assert wp["output_rate_hz"] == pytest.approx(sum(c["rate_hz"] for c in wp["classes"].values()))
        assert wp["output_interval"][0] <= wp["output_rate_hz"] <= wp["output_interval"][1]
    scores = pq.read_table(next((tmp_path / "eval" / "scores").glob("*.parquet"))).to_pandas()
    for k, name in enumerate(given):
        assert scores.weight[scores.label == k].sum() == pytest.approx(stream["classes"][name]["rate_hz"])
    html = result.report.read_text()
    assert "Trigger rates" in html and "reduction vs lepton selection" in html
    assert (tmp_path / "eval" / "roc_rate.png").is_file() and (tmp_path / "eval" / "roc_rate.pdf").is_file()


def test_an_unknown_class_in_the_cross_sections_is_refused(synthetic_models, tmp_path: Path) -> None:
    data, models = synthetic_models
    with pytest.raises(InputError, match="not a class of the dataset"):
        evaluate([str(models["hlf"])], str(data), str(tmp_path / "other"), cross_sections={"zjets": 1.0})
    assert not (tmp_path / "other").exists()
