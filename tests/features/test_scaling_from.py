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


def test_a_real_delphes_event_scores_as_in_process_and_joins_back_to_its_entry(
        spark, pipeline_run: Path, shared_data: Path, tmp_path: Path) -> None:
    """ingest → features --scaling-from → predict on a real Delphes file: the score of its selected event
    equals the model applied in this process, and (file, entry, Event.Number) are uproot's."""
    import shutil

    import uproot

    from topotrigger.config import IngestConfig
    from topotrigger.features.arrow import collections_of
    from topotrigger.features.kernels import definitions as d
    from topotrigger.features.kernels.events import compute
    from topotrigger.features.scaling import Scaler
    from topotrigger.ingest import reader
    from topotrigger.ingest.stage import ingest, pipeline_columns
    from topotrigger.train.data import Events
    from topotrigger.train.saved import SavedModel

    model = pipeline_run / "models" / "inclusive"
    (tmp_path / "raw" / "ttbar").mkdir(parents=True)
    path = tmp_path / "raw" / "ttbar" / "delphes.root"
    shutil.copy(shared_data / "delphes.root", path)
    ingest(IngestConfig(), [str(tmp_path / "raw")], str(tmp_path / "ingest"), spark)
    scaling = saved_scaling(str(model))
    features(FeaturesConfig(balance="none"), str(tmp_path / "ingest"), str(tmp_path / "features"), spark, scaling=scaling)
    predict(str(model), str(tmp_path / "features" / "test"), str(tmp_path / "scores"), spark)
    got = sorted(pq.read_table(tmp_path / "scores").to_pylist(), key=lambda r: r["source_entry"])

    batch = next(reader.read_range(str(path), "Delphes", pipeline_columns(), 0, 25))
    computed = compute(collections_of(batch), d.FeatureOptions(**scaling.options))
    final = np.flatnonzero(computed.cut == d.CUT_FINAL)
    assert len(final) >= 1 and [r["source_entry"] for r in got] == final.tolist()
    scale = Scaler(**scaling.scaler)
    counts = computed.counts[final]
    events = Events(scale.transform_hlf(computed.hlf[final]).astype(np.float32),
                    scale.transform_particles(computed.particles, counts).astype(np.float32), counts,
                    np.full(len(final), 1))
    expected = SavedModel.load(model).probabilities(events)
    for row, p in zip(got, expected):
        np.testing.assert_allclose([row["score_qcd"], row["score_ttbar"], row["score_wjets"]], p, atol=1e-6)
    with uproot.open(path) as f:
        numbers = f["Delphes"]["Event/Event.Number"].array(library="np")
    assert [r["event_number"] for r in got] == [int(numbers[e][0]) for e in final]
    assert {r["source_file"] for r in got} == {str(path)}


def test_the_2019_recipe_dataset_and_the_published_model_beside_ones_own(spark, pipeline_run: Path, tmp_path: Path) -> None:
    from topotrigger.features.kernels.definitions import RECIPE_2019
    from topotrigger.train.loop import TrainSettings
    from topotrigger.train.stage import train

    out = tmp_path / "f2019"
    features(FeaturesConfig(recipe="2019", seed=3), str(pipeline_run / "ingest"), str(out), spark, options=RECIPE_2019)
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["layout"] == "anchor" and meta["settings"]["recipe"] == "2019"
    assert meta["scaler"]["legacy_padding"] and all(meta["options"].values())
    test = pq.read_table(out / "test")
    assert set(test.column_names) >= {"HLF_input", "GRU_input", "encoded_label"}
    assert {len(e) for e in test.column("GRU_input").to_pylist()} == {801}
    # The HLF min-max is fitted on every selected event (the test split included): all of it in [0, 1].
    hlf = np.concatenate([np.array(pq.read_table(out / s).column("HLF_input").to_pylist()) for s in ("train", "val", "test")])
    assert hlf.min() >= 0 and hlf.max() <= 1

    train(TrainSettings(model="hlf", epochs=1, batch_size=32, lr=5e-3), str(out), str(tmp_path / "mine"))
    result = evaluate(["published:inclusive-2020", str(tmp_path / "mine")], str(out), str(tmp_path / "eval"))
    assert set(result.metrics["models"]) == {"published:inclusive-2020", "mine"}
    with pytest.raises(InputError, match="recipe 2019"):
        evaluate(["published:inclusive-2020"], str(pipeline_run / "features"), str(tmp_path / "refused"))
