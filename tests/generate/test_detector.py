"""The fast detector simulation on hand-built particles with known answers (no Pythia, no Spark)."""

from __future__ import annotations

import awkward as ak
import numpy as np

from topotrigger.generate.detector import DetectorParams, simulate


def particle(pid: int, charge: float, pt: float, eta: float, phi: float, visible: bool = True, vz: float = 0.0) -> dict:
    return {"pid": pid, "charge": charge, "visible": visible,
            "px": pt * np.cos(phi), "py": pt * np.sin(phi), "pz": pt * np.sinh(eta), "e": pt * np.cosh(eta),
            "vx": 0.0, "vy": 0.0, "vz": vz}


# Perfect efficiencies make the outcome deterministic; resolutions stay on.
PERFECT = DetectorParams(track_eff_barrel=1.0, track_eff_endcap=1.0, track_eff_lepton_barrel=1.0,
                         track_eff_lepton_endcap=1.0, electron_eff_barrel=1.0, electron_eff_endcap=1.0, muon_eff=1.0)


def run(events: list[list[dict]], params: DetectorParams = PERFECT, seed: int = 1) -> dict[str, ak.Array]:
    return simulate(ak.Array(events), np.random.default_rng(seed), params)[0]


def test_each_particle_goes_where_it_should() -> None:
    out = run([[
        particle(13, -1, 40.0, 0.3, 1.0),        # muon: track + MuonTight
        particle(-11, 1, 30.0, -1.0, -2.0),      # positron: track + Electron
        particle(22, 0, 10.0, 0.5, 0.0),         # photon: ECAL
        particle(2112, 0, 8.0, 1.0, 2.0),        # neutron: HCAL
        particle(211, 1, 5.0, 3.2, 0.5),         # pion outside the tracker: HCAL as a neutral hadron
        particle(12, 0, 50.0, 0.0, 0.0, visible=False),  # neutrino: nothing
    ]])
    assert ak.num(out["EFlowTrack"]).tolist() == [2]
    assert sorted(ak.to_list(out["EFlowTrack"].PID[0])) == [-11, 13]
    assert ak.num(out["MuonTight"]).tolist() == [1] and ak.num(out["Electron"]).tolist() == [1]
    assert ak.num(out["EFlowPhoton"]).tolist() == [1]
    assert ak.num(out["EFlowNeutralHadron"]).tolist() == [2]
    # Leptons keep their track: same direction and momentum as the EFlowTrack entry.
    mu = out["MuonTight"][0][0]
    track = out["EFlowTrack"][0][out["EFlowTrack"].PID[0] == 13][0]
    assert (mu.PT, mu.Eta, mu.Phi) == (track.PT, track.Eta, track.Phi)
    assert mu.Charge == -1 and out["Electron"][0][0].Charge == 1
    assert abs(mu.PT - 40.0) < 40.0 * 0.1


def test_met_balances_visible_pt() -> None:
    rng = np.random.default_rng(3)
    events = [[particle(int(rng.choice([211, 22, 2112, 13])), 0.0, float(rng.uniform(1, 50)),
                        float(rng.uniform(-2, 2)), float(rng.uniform(-3, 3))) for _ in range(20)] for _ in range(10)]
    for ev in events:
        for p in ev:
            p["charge"] = 1.0 if p["pid"] in (211, 13) else 0.0
    out = run(events)
    met = ak.firsts(out["MissingET"])
    sx = sy = 0
    for name, pt in (("EFlowTrack", "PT"), ("EFlowPhoton", "ET"), ("EFlowNeutralHadron", "ET")):
        c = out[name]
        sx = sx + ak.sum(c[pt] * np.cos(c.Phi), axis=1)
        sy = sy + ak.sum(c[pt] * np.sin(c.Phi), axis=1)
    np.testing.assert_allclose(np.asarray(met.MET * np.cos(met.Phi)), -np.asarray(sx), atol=1e-3)
    np.testing.assert_allclose(np.asarray(met.MET * np.sin(met.Phi)), -np.asarray(sy), atol=1e-3)


def test_same_seed_same_output_and_beam_spot_shifts_z() -> None:
    events = [[particle(211, 1, 3.0, 0.1 * i, 0.2 * i, vz=1.0) for i in range(10)] for _ in range(50)]
    a, b = run(events, seed=9), run(events, seed=9)
    assert ak.to_list(a["EFlowTrack"]) == ak.to_list(b["EFlowTrack"])
    z = ak.flatten(a["EFlowTrack"].Z).to_numpy()
    assert 20 < np.std(z) < 70  # 45 mm beam spot
    # Within an event all tracks share the primary vertex z.
    first = a["EFlowTrack"].Z[0].to_numpy()
    assert np.allclose(first, first[0])


def test_inefficiency_and_threshold() -> None:
    params = DetectorParams()
    events = [[particle(211, 1, 5.0, 0.2, 0.0)] for _ in range(4000)]
    out = run(events, params)
    eff = ak.mean(ak.num(out["EFlowTrack"]))
    assert abs(eff - params.track_eff_barrel) < 0.02
    soft = run([[particle(211, 1, 0.1, 0.2, 0.0)]])
    assert ak.num(soft["EFlowTrack"]).tolist() == [0]
