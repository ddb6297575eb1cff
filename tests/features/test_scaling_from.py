"""`features --scaling-from`: a dataset built with a model's options and scaler, which `evaluate` accepts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from topotrigger.config import FeaturesConfig
from topotrigger.errors import InputError, MissingInputError
from topotrigger.evaluate.stage import evaluate
from topotrigger.features.stage import features
from topotrigger.modeldir import saved_scaling
from topotrigger.predict.stage import predict

pytestmark = pytest.mark.spark


def test_a_models_scaling_builds_a_dataset_evaluate_accepts(spark, pipeline_run: Path, tmp_path: Path) -> None:
    model = pipeline_run / "models" / "hlf"
    ingested = str(pipeline_run / "ingest")
    # Refitted on another split (another seed), the scaler differs and evaluate refuses the model.
    features(FeaturesConfig(seed=99), ingested, str(tmp_path / "refit"), spark)
    with pytest.raises(InputError, match="other feature definitions"):
        evaluate([str(model)], str(tmp_path / "refit"), str(tmp_path / "refused"))

    features(FeaturesConfig(balance="none"), ingested, str(tmp_path / "applied"), spark, scaling=saved_scaling(str(model)))
    meta = json.loads((tmp_path / "applied" / "metadata.json").read_text())
    assert meta["scaler"] == json.loads((model / "model.json").read_text())["scaler"]
    assert meta["splits"]["scaling_from"] == f"model {model}"
    finals = {c: flow["final (finite features)"] for c, flow in meta["cutflow"].items()}
    assert meta["counts"]["test"] == finals and not any(meta["counts"]["train"].values())
    assert pq.read_table(tmp_path / "applied" / "test").num_rows == sum(finals.values())

    result = evaluate([str(model)], str(tmp_path / "applied"), str(tmp_path / "eval"))
    assert result.metrics["events"] == sum(finals.values())
    # The same events and scores as `predict` on the ingested events (which scales with the model's scaler).
    predict(str(model), ingested, str(tmp_path / "scores"), spark)
    ours = pq.read_table(next((tmp_path / "eval" / "scores").glob("*.parquet"))).to_pandas()
    theirs = pq.read_table(tmp_path / "scores").to_pandas()
    for column in ("score_qcd", "score_ttbar", "score_wjets"):
        np.testing.assert_allclose(np.sort(ours[column].to_numpy()), np.sort(theirs[column].to_numpy()), atol=1e-6)


def test_scaling_from_a_dataset_and_from_nothing(pipeline_run: Path, tmp_path: Path) -> None:
    scaling = saved_scaling(str(pipeline_run / "features"))
    assert scaling.source.startswith("dataset ") and scaling.options["legacy_isolation"] is False
    with pytest.raises(MissingInputError, match="neither a model directory"):
        saved_scaling(str(tmp_path))
