"""The published 2020 model read without Keras: equal to Keras 3's own outputs on the original file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from topotrigger.errors import InputError
from topotrigger.train.published import PublishedModel

from .published_inputs import inputs

REFERENCE = Path(__file__).parents[1] / "data" / "published_inclusive_2020_keras.txt"


@pytest.fixture(scope="module")
def model() -> PublishedModel:
    return PublishedModel.load("published:inclusive-2020")


def test_port_equals_keras_on_every_masking_case(model: PublishedModel) -> None:
    gru, hlf = inputs()
    expected = np.loadtxt(REFERENCE)
    with torch.no_grad():
        state = model.module.state(torch.from_numpy(gru)).numpy()
        probabilities = torch.softmax(model.module(torch.from_numpy(hlf), torch.from_numpy(gru)), dim=1).numpy()
    np.testing.assert_allclose(state, expected[:, 3:], atol=1e-6, rtol=0)
    np.testing.assert_allclose(probabilities, expected[:, :3], atol=1e-6, rtol=0)
    assert np.all(state[4] == 0)  # an event of zero rows only leaves the state at zero


def test_datasets_of_other_recipes_are_refused(model: PublishedModel) -> None:
    model.check_dataset({}, "public 2020 files")  # no metadata: taken as they are
    model.check_dataset({"settings": {"recipe": "2019"}, "label_names": {"0": "qcd", "1": "ttbar", "2": "wjets"}}, "d")
    with pytest.raises(InputError, match="recipe 2019"):
        model.check_dataset({"settings": {"recipe": "default"}}, "d")
    with pytest.raises(InputError, match="classes"):
        model.check_dataset({"settings": {"recipe": "2019"}, "label_names": {"0": "ttbar", "1": "qcd", "2": "wjets"}}, "d")
    with pytest.raises(InputError, match="unknown published model"):
        PublishedModel.load("published:nothing")


def test_hlf_ranges_published_where_printed_else_the_datasets(model: PublishedModel, tmp_path: Path) -> None:
    scaler = {"hlf_min": [-1.0] * 14, "hlf_max": [3.0] * 14}
    a, b, lo, hi = model.hlf_map(scaler)
    assert np.all(a == 4.0) and np.all(b == -1.0)
    assert (lo[0], hi[0]) == (0.0, 4946.90) and (lo[1], hi[1]) == (0.0, 7041.9) and hi[4] == 15.0
    assert (lo[9], hi[9]) == (-1.0, 0.45) and (lo[2], hi[2]) == (-1.0, 3.0)
    (tmp_path / "r.json").write_text('{"phiMET": [-3.2, 3.2], "HT": [0, 5000]}')
    _, _, lo, hi = PublishedModel.load(f"published:inclusive-2020@{tmp_path / 'r.json'}").hlf_map(scaler)
    assert (lo[2], hi[2]) == (-3.2, 3.2) and hi[0] == 5000.0
    (tmp_path / "bad.json").write_text('{"HTT": [0, 1]}')
    with pytest.raises(InputError, match="HTT"):
        PublishedModel.load(f"published:inclusive-2020@{tmp_path / 'bad.json'}")


def published_schema_file(path: Path, n: int, seed: int) -> np.ndarray:
    """A small file in exactly the schema of the public 2020 inclusive-classifier Parquet datasets
    (the repository's Data/README.md): Spark ML vectors, `lfeatures` and `GRU_input` as 801 × 19 doubles."""
    rng = np.random.default_rng(seed)
    vector = pa.struct([("type", pa.int8()), ("size", pa.int32()), ("indices", pa.list_(pa.int32())),
                        ("values", pa.list_(pa.float64()))])
    labels = np.arange(n) % 3
    hlf = rng.uniform(size=(n, 14))
    gru = np.zeros((n, 801, 19))
    gru[:, :60] = rng.normal(size=(n, 60, 19))
    dense = [{"type": 1, "size": None, "indices": None, "values": h.tolist()} for h in hlf]
    table = pa.table({"hfeatures": pa.array(dense, vector), "label": pa.array(labels, pa.int64()),
                      "lfeatures": pa.array(gru.tolist(), pa.list_(pa.list_(pa.float64()))),
                      "hfeatures_dense": pa.array(dense, vector),
                      "encoded_label": pa.array([{"type": 0, "size": 3, "indices": [int(y)], "values": [1.0]} for y in labels], vector),
                      "HLF_input": pa.array(dense, vector),
                      "GRU_input": pa.array(gru.tolist(), pa.list_(pa.list_(pa.float64())))})
    path.mkdir(parents=True)
    pq.write_table(table, path / "part-00000.parquet")
    return labels


def test_the_public_2020_layout_trains_and_the_published_model_scores_it(model: PublishedModel, tmp_path: Path) -> None:
    from topotrigger.evaluate.stage import evaluate
    from topotrigger.train.loop import TrainSettings
    from topotrigger.train.stage import train

    published_schema_file(tmp_path / "public" / "train", 30, 1)
    labels = published_schema_file(tmp_path / "public" / "test", 12, 2)
    train(TrainSettings(model="inclusive", epochs=1, batch_size=8, lr=1e-2), str(tmp_path / "public"), str(tmp_path / "mine"))
    scores, got = model.dataset_scores(str(tmp_path / "public" / "test"))
    assert got.tolist() == labels.tolist() and scores.shape == (12, 3)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-6)
    result = evaluate(["published:inclusive-2020", str(tmp_path / "mine")], str(tmp_path / "public"), str(tmp_path / "eval"))
    assert set(result.metrics["models"]) == {"published:inclusive-2020", "mine"}
    assert all(m["events"] == 12 for m in result.metrics["models"].values())
