"""Physics sanity of generated events (a few hundred per class, in-process, fast profile)."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from topotrigger.generate.stage import FileTask, _events, file_seed
from topotrigger.generate.validation import leading_lepton, observables

pytest.importorskip("pythia8mc")
pytest.importorskip("fastjet")


def simulate_class(process: str, n: int) -> ak.Array:
    task = FileTask(process, 0, n, file_seed(11, process, 0), "fast", 0.0, "/unused.root")
    stats = {"pythia_s": 0.0, "detector_s": 0.0, "write_s": 0.0}
    events = ak.concatenate([ak.zip(c, depth_limit=1) for c in _events(task, stats)])
    assert len(events) == n and stats["events"] == n and stats["tried"] >= n
    return events


@pytest.fixture(scope="module")
def samples() -> dict[str, ak.Array]:
    return {"wjets": simulate_class("wjets", 300), "ttbar": simulate_class("ttbar", 300), "qcd": simulate_class("qcd", 200)}


def relative_isolation(events: ak.Array) -> np.ndarray:
    """Scalar sum of EFlow pT within dR < 0.3 of the leading lepton, excluding its own track, over its pT."""
    lep = leading_lepton(events)
    events, lep = events[~ak.is_none(lep)], lep[~ak.is_none(lep)]
    total = 0
    for name, pt in (("EFlowTrack", "PT"), ("EFlowPhoton", "ET"), ("EFlowNeutralHadron", "ET")):
        c = events[name]
        dphi = (c.Phi - lep.Phi + np.pi) % (2 * np.pi) - np.pi
        dr = np.hypot(c.Eta - lep.Eta, dphi)
        total = total + ak.sum(ak.where((dr < 0.3) & (dr > 1e-4), c[pt], 0.0), axis=1)
    return ak.to_numpy(ak.fill_none(total / lep.PT, np.nan))


def test_every_event_passes_the_generator_filter(samples: dict[str, ak.Array]) -> None:
    for events in samples.values():
        assert ak.all(ak.num(events.EFlowTrack) > 0)


def test_wjets_transverse_mass_has_jacobian_edge_near_w_mass(samples: dict[str, ak.Array]) -> None:
    mt = observables(samples["wjets"])["mt"]
    mt = mt[np.isfinite(mt)]
    counts, edges = np.histogram(mt, bins=np.arange(0, 160, 10))
    peak = edges[np.argmax(counts)]
    assert 50 <= peak <= 90, peak
    assert np.mean(mt > 100) < 0.1
    assert np.mean((mt > 40) & (mt < 90)) > 0.5


def test_ttbar_has_more_jets_and_bjets_than_wjets(samples: dict[str, ak.Array]) -> None:
    tt, wj = observables(samples["ttbar"]), observables(samples["wjets"])
    assert tt["n_jets"].mean() > wj["n_jets"].mean() + 1.5
    assert tt["n_bjets"].mean() > 0.7 > 0.3 > wj["n_bjets"].mean()


def test_qcd_leptons_are_less_isolated_than_w_leptons(samples: dict[str, ak.Array]) -> None:
    qcd, w = relative_isolation(samples["qcd"]), relative_isolation(samples["wjets"])
    assert np.nanmedian(qcd) > 5 * np.nanmedian(w)
    assert np.nanmean(w < 0.45) > 0.8 > 0.5 > np.nanmean(qcd < 0.45)


def test_pileup_overlay_adds_soft_particles() -> None:
    def eflow(pileup: float) -> float:
        task = FileTask("wjets", 0, 40, file_seed(11, "wjets", 0), "fast", pileup, "/unused.root")
        stats = {"pythia_s": 0.0, "detector_s": 0.0, "write_s": 0.0}
        events = ak.concatenate([ak.zip(c, depth_limit=1) for c in _events(task, stats)])
        return float(ak.mean(ak.num(events.EFlowTrack) + ak.num(events.EFlowPhoton) + ak.num(events.EFlowNeutralHadron)))

    assert eflow(5.0) > eflow(0.0) + 50
