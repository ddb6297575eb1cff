"""`predict` on Spark: the scores equal the in-process model's, for every input kind."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from topotrigger.errors import InputError, OutputExistsError
from topotrigger.evaluate.stage import score_dataset
from topotrigger.features.arrow import collections_of
from topotrigger.features.contract import ragged_rows
from topotrigger.features.kernels import definitions as d
from topotrigger.features.kernels.events import compute
from topotrigger.features.scaling import Scaler
from topotrigger.predict.stage import predict
from topotrigger.train.data import Events
from topotrigger.train.saved import SavedModel

pytestmark = pytest.mark.spark
SCORES = ["score_class_0", "score_class_1", "score_class_2"]


def _sorted(path: Path) -> pd.DataFrame:
    df = pd.read_parquet(path)
    df["part"] = df.file.str.rsplit("/", n=1).str[-1]
    return df.sort_values(["part", "row"]).reset_index(drop=True)


@pytest.mark.parametrize("name", ["hlf", "inclusive"])
def test_scores_equal_in_process_output(spark, synthetic_models, tmp_path: Path, name: str) -> None:
    data, models = synthetic_models
    result = predict(str(models[name]), str(data / "test"), str(tmp_path / "scores"), spark)
    assert result.layout == "compact" and result.events == 150
    df = _sorted(tmp_path / "scores")
    expected, labels = score_dataset(SavedModel.load(models[name]), str(data / "test"))
    np.testing.assert_allclose(df[SCORES].to_numpy(), expected, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(df.label.to_numpy(), labels)
    assert (df.predicted.to_numpy() == expected.argmax(axis=1)).all()
    with pytest.raises(OutputExistsError):
        predict(str(models[name]), str(data / "test"), str(tmp_path / "scores"), spark)


def test_anchor_layout_input(spark, synthetic_models, tmp_path: Path) -> None:
    data, models = synthetic_models
    table = pq.read_table(data / "test")
    labels = table.column("label").to_numpy()
    hlf = np.stack(table.column("hlf").to_numpy(zero_copy_only=False)).astype(np.float64)
    rows, counts = ragged_rows(table.column("particles"))
    padded = np.zeros((len(labels), 801, 19))
    for i, (start, n) in enumerate(zip(np.cumsum(counts) - counts, counts)):
        padded[i, :n] = rows[start:start + n]
    anchor = pd.DataFrame({"HLF_input": list(hlf), "GRU_input": [list(map(list, e)) for e in padded],
                           "encoded_label": list(np.eye(3)[labels])})
    (tmp_path / "anchor").mkdir()
    anchor.to_parquet(tmp_path / "anchor" / "part-0.parquet")
    predict(str(models["inclusive"]), str(tmp_path / "anchor"), str(tmp_path / "scores"), spark)
    df = _sorted(tmp_path / "scores")
    expected, _ = score_dataset(SavedModel.load(models["inclusive"]), str(data / "test"))
    np.testing.assert_allclose(df[SCORES].to_numpy(), expected, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(df.label.to_numpy(), labels)  # recovered from the one-hot label


def test_ingested_events_go_through_selection_features_and_saved_scaling(spark, pipeline_run: Path, tmp_path: Path) -> None:
    model_dir = pipeline_run / "models" / "inclusive"
    result = predict(str(model_dir), str(pipeline_run / "ingest"), str(tmp_path / "scores"), spark)
    assert result.layout == "raw"
    df = pd.read_parquet(tmp_path / "scores").sort_values(["file", "row"]).reset_index(drop=True)
    meta = json.loads((pipeline_run / "features" / "metadata.json").read_text())
    assert len(df) == sum(flow["final (finite features)"] for flow in meta["cutflow"].values())
    # The same events scored in process: kernel, saved scaler, model.
    saved = SavedModel.load(model_dir)
    scaler = Scaler(**saved.info.scaler)
    expected = []
    for path in sorted({*df.file}):
        table = pq.read_table(path.removeprefix("file:"))
        features = compute(collections_of(table.combine_chunks().to_batches()[0]), d.FeatureOptions())
        keep = np.flatnonzero(features.cut == d.CUT_FINAL)
        rows = df[df.file == path].row.to_numpy()
        np.testing.assert_array_equal(rows, keep)
        events = _selected(features, keep, scaler)
        expected.append(saved.probabilities(events))
    classes = [c for c in df.columns if c.startswith("score_")]
    assert classes == ["score_qcd", "score_ttbar", "score_wjets"]
    np.testing.assert_allclose(df[classes].to_numpy(), np.concatenate(expected), atol=1e-6, rtol=0)


def _selected(features, keep: np.ndarray, scaler: Scaler) -> Events:
    counts = features.counts[keep]
    starts = np.r_[0, np.cumsum(features.counts)][keep]
    rows = np.concatenate([np.arange(s, s + c) for s, c in zip(starts, counts)]) if len(keep) else np.zeros(0, int)
    particles = features.particles[rows]
    return Events(scaler.transform_hlf(features.hlf[keep]).astype(np.float32),
                  scaler.transform_particles(particles, counts).astype(np.float32), counts.astype(np.int64),
                  np.zeros(len(keep), dtype=np.int64))


def test_unknown_input_is_one_clear_error(spark, synthetic_models, tmp_path: Path) -> None:
    _, models = synthetic_models
    (tmp_path / "other").mkdir()
    pd.DataFrame({"x": [1.0]}).to_parquet(tmp_path / "other" / "part-0.parquet")
    with pytest.raises(InputError, match="neither a training dataset"):
        predict(str(models["hlf"]), str(tmp_path / "other"), str(tmp_path / "scores"), spark)
    assert not (tmp_path / "scores").exists()


def test_scores_of_a_dataframe_you_have(spark, pipeline_run: Path, tmp_path: Path) -> None:
    from topotrigger.predict.stage import scores

    model_dir = pipeline_run / "models" / "inclusive"
    predict(str(model_dir), str(pipeline_run / "ingest"), str(tmp_path / "scores"), spark)
    expected = pd.read_parquet(tmp_path / "scores").sort_values("key").reset_index(drop=True)
    from pyspark.sql import functions as F

    events = spark.read.parquet(str(pipeline_run / "ingest")).withColumn("run", F.lit(7))
    got = scores(events, str(model_dir), keep=["run"]).toPandas().sort_values("key").reset_index(drop=True)
    assert list(got.columns) == ["run", "label", "sample", "key", "score_qcd", "score_ttbar", "score_wjets", "predicted"]
    assert (got.run == 7).all()
    np.testing.assert_array_equal(got.key, expected.key)
    np.testing.assert_allclose(got[["score_qcd", "score_ttbar", "score_wjets"]].to_numpy(),
                               expected[["score_qcd", "score_ttbar", "score_wjets"]].to_numpy(), atol=1e-6)
    # Events without a label (read straight from ROOT files, say) are scored too, with label -1.
    unlabelled = scores(events.drop("label", "sample"), str(model_dir)).toPandas()
    assert len(unlabelled) == len(expected) and (unlabelled.label == -1).all()
