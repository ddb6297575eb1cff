"""The published 2020 model read without Keras: equal to Keras 3's own outputs on the original file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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
