"""The detector model on hand-built particles with known answers (no Pythia, no Spark)."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from topotrigger.generate import pileup
from topotrigger.generate.detector import ECAL, HCAL, DetectorParams, propagate, simulate

# Perfect efficiencies make the outcome deterministic; resolutions stay on.
PERFECT = DetectorParams(hadron_eff=((1.0, 1.0), (1.0, 1.0)), electron_track_eff=((1.0, 1.0, 1.0), (1.0, 1.0, 1.0)),
                         muon_track_eff=((1.0, 1.0), (1.0, 1.0)), electron_eff=(1.0, 1.0), muon_eff=1.0)


def particle(pid: int, charge: float, pt: float, eta: float, phi: float, visible: bool = True, vz: float = 0.0,
             is_pileup: bool = False) -> dict:
    return {"pid": pid, "charge": charge, "visible": visible,
            "px": pt * np.cos(phi), "py": pt * np.sin(phi), "pz": pt * np.sinh(eta), "e": pt * np.cosh(eta),
            "vx": 0.0, "vy": 0.0, "vz": vz, "pileup": is_pileup, "vertex_z": 0.0}


def run(events: list[list[dict]], params: DetectorParams = PERFECT, seed: int = 1) -> dict[str, ak.Array]:
    flat = [p | {"event": i} for i, event in enumerate(events) for p in event]
    columns = {k: np.array([p[k] for p in flat]) for k in [*particle(1, 0, 1, 0, 0), "event"]}
    return simulate(columns, len(events), np.random.default_rng(seed), params)[0]


def test_each_particle_goes_where_it_should() -> None:
    out = run([[
        particle(13, -1, 40.0, 0.3, 1.0),        # muon: track + MuonTight, no calorimeter energy
        particle(-11, 1, 30.0, -1.0, -2.0),      # positron: track + Electron; its ECAL energy is explained
        particle(22, 0, 20.0, 0.5, 0.0),         # photon: an ECAL tower
        particle(2112, 0, 50.0, 1.0, 2.0),       # neutron: an HCAL tower
        particle(211, 1, 20.0, 3.2, 0.5),        # pion beyond the tracker: HCAL, a neutral hadron
        particle(12, 0, 50.0, 0.0, 0.0, visible=False),  # neutrino: nothing
    ]])
    assert sorted(ak.to_list(out["EFlowTrack"].PID[0])) == [-11, 13]
    assert ak.num(out["MuonTight"]).tolist() == [1] and ak.num(out["Electron"]).tolist() == [1]
    assert ak.num(out["EFlowPhoton"]).tolist() == [1] and ak.num(out["EFlowNeutralHadron"]).tolist() == [2]
    photon = out["EFlowPhoton"][0][0]
    assert abs(photon.Eta - 0.5) < 0.02 and abs(photon.Phi) < 0.02 and abs(photon.ET - 20.0) < 3.0
    mu = out["MuonTight"][0][0]
    track = out["EFlowTrack"][0][out["EFlowTrack"].PID[0] == 13][0]
    assert (mu.PT, mu.Eta, mu.Phi) == (track.PT, track.Eta, track.Phi) and mu.Charge == -1


def test_a_tower_merges_what_reaches_it_and_tracks_explain_their_share() -> None:
    out = run([
        [particle(22, 0, 20.0, 0.305, 0.205), particle(22, 0, 15.0, 0.306, 0.206)],   # one ECAL tower
        [particle(211, 1, 60.0, 0.1, 0.1)],                                           # track, HCAL explained
        [particle(211, 1, 60.0, 0.1, 0.1), particle(130, 0, 80.0, 0.11, 0.1)],        # + K0L in the same tower
    ])
    assert ak.num(out["EFlowPhoton"]).tolist() == [1, 0, 0]
    assert abs(out["EFlowPhoton"].ET[0][0] - 35.0) < 5.0
    assert ak.num(out["EFlowNeutralHadron"]).tolist()[1:] == [0, 1]
    assert abs(out["EFlowNeutralHadron"].ET[2][0] - 80.0) < 40.0  # HCAL resolution: ~15 % at this energy


def test_charged_hadron_subtraction_removes_pileup_tracks_from_other_vertices() -> None:
    out = run([[particle(211, 1, 5.0, 0.2, 0.0),
                particle(211, 1, 5.0, 0.4, 1.0, vz=30.0, is_pileup=True),     # another vertex: removed
                particle(211, 1, 5.0, 0.6, 2.0, vz=0.05, is_pileup=True)]])  # within 0.1 mm: kept
    assert ak.to_list(out["EFlowTrack"].Z[0]) == pytest.approx([0.0, 0.05], abs=1e-6)
    met = out["MissingET"][0][0].MET
    assert met > 2.0  # MissingET still sees the removed track (all tracks, as the card's EFlowMergerAllTracks)


def test_met_balances_every_track_and_neutral_object() -> None:
    rng = np.random.default_rng(3)
    kinds = {211: 1.0, 22: 0.0, 2112: 0.0, 13: -1.0}
    events = [[particle(k, kinds[k], float(rng.uniform(5, 50)), float(rng.uniform(-2, 2)), float(rng.uniform(-3, 3)))
               for k in rng.choice(list(kinds), 20)] for _ in range(10)]
    out = run(events)
    met = ak.firsts(out["MissingET"])
    sx = sy = 0
    for name, pt in (("EFlowTrack", "PT"), ("EFlowPhoton", "ET"), ("EFlowNeutralHadron", "ET")):
        c = out[name]
        sx = sx + ak.sum(c[pt] * np.cos(c.Phi), axis=1)
        sy = sy + ak.sum(c[pt] * np.sin(c.Phi), axis=1)
    np.testing.assert_allclose(np.asarray(met.MET * np.cos(met.Phi)), -np.asarray(sx), atol=1e-3)
    np.testing.assert_allclose(np.asarray(met.MET * np.sin(met.Phi)), -np.asarray(sy), atol=1e-3)


def test_tracking_efficiency_threshold_and_determinism() -> None:
    events = [[particle(211, 1, 5.0, 0.2, 0.0)] for _ in range(4000)]
    out = run(events, DetectorParams())
    assert abs(ak.mean(ak.num(out["EFlowTrack"])) - 0.95) < 0.015   # the card: 0.95 for pT > 1, |eta| <= 1.5
    assert ak.num(run([[particle(211, 1, 0.05, 0.2, 0.0)]])["EFlowTrack"]).tolist() == [0]
    assert ak.to_list(run(events[:50], seed=9)["EFlowTrack"]) == ak.to_list(run(events[:50], seed=9)["EFlowTrack"])


def test_helix_and_card_geometry() -> None:
    params = DetectorParams()
    # A 1 GeV unit charge in 3.8 T: r = 0.878 m; it reaches R = 1.29 m turned by asin(R / 2r) in position.
    eta, phi = propagate(np.array([1.0, 10.0]), np.array([0.0, 1.0]), np.array([0.0, 0.5]), np.array([1.0, 0.0]),
                         np.zeros(2), params)
    r = 1.0 / (0.299792458 * 3.8)
    assert phi[0] == pytest.approx(-np.arcsin(1.29 / (2 * r))) and eta[1] == pytest.approx(1.0) and phi[1] == 0.5
    assert ECAL.n_phi[np.searchsorted(ECAL.edges, 0.0)] == 360 and ECAL.n_phi[-1] == 36
    assert HCAL.n_phi[np.searchsorted(HCAL.edges, 0.0)] == 72 and HCAL.n_phi[-1] == 18
    assert ECAL.index(np.array([5.5, -5.5]), np.zeros(2)).tolist() == [-1, -1]


def test_pileup_placement() -> None:
    library = pileup.PileUpLibrary(
        {k: np.arange(6, dtype=float) + 1 for k in pileup.FIELDS} | {"visible": np.ones(6, bool)},
        np.array([2, 4]), np.array([0, 2]))
    hard = {k: np.zeros(3) for k in pileup.FIELDS} | {"px": np.full(3, 3.0), "py": np.full(3, 4.0), "visible": np.ones(3, bool)}
    rng = np.random.default_rng(5)
    columns = pileup.place(hard, np.array([1, 2]), rng, 20.0, library)
    event, is_pu = columns["event"], columns["pileup"]
    assert event[:3].tolist() == [0, 1, 1] and not is_pu[:3].any() and is_pu[3:].all()  # the hard block first
    assert len(event) == len(columns["px"]) and (event[is_pu] < 2).all() and np.all(np.diff(event[is_pu]) >= 0)
    # Rotations keep pT; every particle of an event shares the hard vertex z; pile-up vertices spread.
    pt = np.hypot(columns["px"], columns["py"])
    library_pt = np.sqrt(2.0) * (np.arange(6) + 1)
    assert np.isin(np.round(pt[is_pu], 9), np.round(library_pt, 9)).all()
    assert np.allclose(pt[~is_pu], 5.0)
    assert all(len(np.unique(columns["vertex_z"][event == e])) == 1 for e in range(2))
    assert np.std(columns["vz"][is_pu]) > 10.0
