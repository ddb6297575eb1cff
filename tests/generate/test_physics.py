"""Physics sanity of generated events (a few hundred per class in-process, quick profile; a few dozen with
the default CMS profile: MPI and pile-up)."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from topotrigger.generate.stage import FileTask, _events, file_seed
from topotrigger.generate.validation import leading_lepton, observables

pytest.importorskip("pythia8mc")
pytest.importorskip("fastjet")


def simulate_class(process: str, n: int, profile: str = "quick", pileup: float = 0.0) -> ak.Array:
    # A small minimum-bias library keeps the test quick; the overlay draws from it with replacement.
    task = FileTask(process, 0, n, file_seed(11, process, 0), profile, pileup, "/unused.root", 7, 200)
    stats: dict = {}
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


@pytest.fixture(scope="module")
def cms() -> dict[str, ak.Array]:
    """The same hard events (same Pythia seed) with MPI, without and with pile-up ⟨μ⟩ = 30."""
    return {"wjets": simulate_class("wjets", 40, "cms", 0.0), "wjets_pu": simulate_class("wjets", 40, "cms", 30.0),
            "qcd": simulate_class("qcd", 30, "cms", 0.0), "qcd_pu": simulate_class("qcd", 30, "cms", 30.0)}


def count(events: ak.Array, name: str, cut: float, max_eta: float = 99.0) -> float:
    c = events[name]
    value = c.PT if name == "EFlowTrack" else c.ET
    return float(ak.mean(ak.sum((value > cut) & (abs(c.Eta) < max_eta), axis=1)))


def test_photons_outnumber_neutral_hadrons(samples: dict[str, ak.Array], cms: dict[str, ak.Array]) -> None:
    for events in [*samples.values(), cms["wjets"], cms["qcd"]]:
        assert count(events, "EFlowPhoton", 1.0) > count(events, "EFlowNeutralHadron", 1.0)
    # With pile-up, within the tracker's reach; beyond it the forward calorimeter turns the pile-up's
    # charged hadrons into neutral hadrons (docs/generation.md).
    for events in (cms["wjets_pu"], cms["qcd_pu"]):
        assert count(events, "EFlowPhoton", 1.0, 2.5) > 2 * count(events, "EFlowNeutralHadron", 1.0, 2.5)


def test_pileup_raises_calorimeter_multiplicities_far_more_than_tracks(cms: dict[str, ak.Array]) -> None:
    tracks = count(cms["wjets_pu"], "EFlowTrack", 0.5) / count(cms["wjets"], "EFlowTrack", 0.5)
    photons = count(cms["wjets_pu"], "EFlowPhoton", 1.0) / count(cms["wjets"], "EFlowPhoton", 1.0)
    assert tracks < 1.5 < 4 < photons  # charged-hadron subtraction removes the other vertices' tracks
    # The tracks left come from the hard vertex as often with pile-up as without (displaced decays aside).
    def near_vertex(events: ak.Array) -> float:
        z = events.EFlowTrack.Z
        return float(ak.sum(abs(z - ak.firsts(z)) < 1.0)) / float(ak.sum(ak.num(z)))

    assert near_vertex(cms["wjets_pu"]) > near_vertex(cms["wjets"]) - 0.03


def test_qcd_met_in_a_sensible_range_with_mpi(cms: dict[str, ak.Array]) -> None:
    met = ak.to_numpy(ak.flatten(cms["qcd"].MissingET.MET))
    assert 8 < np.median(met) < 40
    # The card's MissingET sums every track and neutral object, with no pile-up mitigation.
    met_pu = ak.to_numpy(ak.flatten(cms["qcd_pu"].MissingET.MET))
    assert np.median(met) < np.median(met_pu) < 100
