"""The vectorised kernels agree with the per-event Python reference on generated events."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from topotrigger.features.kernels import definitions as d
from topotrigger.features.kernels.events import Collection, compute
from topotrigger.features.scaling import padded_2019
from topotrigger.generate.stage import FileTask, _events, file_seed

from .reference import event_features
from .reference_2019 import convert

pytest.importorskip("pythia8mc")


def generated(process: str, n: int, profile: str = "quick", pileup: float = 0.0) -> list[dict[str, ak.Array]]:
    task = FileTask(process, 0, n, file_seed(3, process, 0), profile, pileup, "/unused.root", 7, 100)
    return list(_events(task, {}))


def to_collections(chunk: dict[str, ak.Array]) -> dict[str, Collection]:
    out = {}
    for name, array in chunk.items():
        packed = ak.to_packed(array)
        offsets = np.asarray(packed.layout.offsets)
        flat = ak.flatten(packed)
        out[name] = Collection(offsets, {f: ak.to_numpy(flat[f]) for f in ak.fields(flat)})
    return out


@pytest.fixture(scope="module")
def chunks() -> list[dict[str, ak.Array]]:
    # Small events, and a few with MPI and pile-up, whose particle lists reach the caps.
    return generated("ttbar", 120) + generated("wjets", 120) + generated("qcd", 120) + generated("ttbar", 15, "cms", 30.0)


def test_every_feature_matches_the_reference(chunks) -> None:
    compared = finals = 0
    for chunk in chunks:
        fast = compute(to_collections(chunk))
        events = ak.to_list(ak.zip(chunk, depth_limit=1))
        starts = np.concatenate([[0], np.cumsum(fast.counts)])
        for i, event in enumerate(events):
            cut, hlf, particles = event_features(event)
            assert fast.cut[i] == cut, i
            compared += 1
            if cut != d.CUT_FINAL:
                continue
            finals += 1
            np.testing.assert_allclose(fast.hlf[i], np.array(hlf, dtype=np.float32), rtol=2e-6, atol=1e-6,
                                       err_msg=f"HLF of event {i}: {d.HLF_NAMES}")
            got = fast.particles[starts[i]:starts[i + 1]]
            assert got.shape == (len(particles), d.N_PARTICLE_FEATURES)
            np.testing.assert_allclose(got, np.array(particles, dtype=np.float32), rtol=2e-6, atol=1e-5,
                                       err_msg=f"particles of event {i}")
    assert compared == 375 and finals > 150


def compare_2019(chunk: dict[str, ak.Array]) -> tuple[int, int]:
    """The kernel's `2019` recipe (with the 801-row scaling) against tests/features/reference_2019.py."""
    fast = compute(to_collections(chunk), d.RECIPE_2019)
    starts = np.concatenate([[0], np.cumsum(fast.counts)])
    selected = 0
    events = ak.to_list(ak.zip(chunk, depth_limit=1))
    for i, event in enumerate(events):
        expected = convert(event)
        assert (fast.cut[i] == d.CUT_FINAL) == (expected is not None), i
        if expected is None:
            continue
        selected += 1
        hlf, gru = expected
        np.testing.assert_allclose(fast.hlf[i], np.array(hlf, dtype=np.float32), rtol=2e-6, atol=1e-6,
                                   err_msg=f"HLF of event {i}: {d.HLF_NAMES}")
        rows = fast.particles[starts[i]:starts[i + 1]]
        got = padded_2019(rows, np.array([len(rows)]), fast.hlf[i:i + 1, 7], fast.hlf[i:i + 1, 8])
        np.testing.assert_allclose(got, gru, rtol=1e-4, atol=2e-5, err_msg=f"GRU input of event {i}")
    return len(events), selected


def test_the_2019_recipe_matches_the_2019_reference(chunks) -> None:
    totals = {False: [0, 0], True: [0, 0]}  # with pile-up (the cms profile's events): events, selected
    for chunk in chunks:
        pileup = bool(ak.mean(ak.num(chunk["EFlowNeutralHadron"])) > 100)
        n, k = compare_2019(chunk)
        totals[pileup][0] += n
        totals[pileup][1] += k
    assert totals[False][0] == 360 and totals[False][1] > 150
    assert totals[True][0] == 15 and totals[True][1] > 3
