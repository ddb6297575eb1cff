"""Fast detector simulation, vectorised over whole batches (flat NumPy arrays, no per-particle Python).

A CMS-like parametrisation in the spirit of Delphes' particle-flow output. Every number is in
`DetectorParams` and documented in docs/generation.md. Input: the `particles` of `pythia.PythiaSource.batch`
(final state, GeV and mm). Output: Delphes collections (`EFlowTrack`, `EFlowPhoton`,
`EFlowNeutralHadron`, `Electron`, `MuonTight`, `MissingET`) as jagged awkward records, float32.
Jets are made from these in `jets`.
"""

from __future__ import annotations

from dataclasses import dataclass

import awkward as ak
import numpy as np


@dataclass(frozen=True)
class DetectorParams:
    beamspot_sigma_z_mm: float = 45.0
    beamspot_sigma_xy_mm: float = 0.01
    tracker_eta: float = 2.5
    track_min_pt: float = 0.3
    track_eff_barrel: float = 0.97        # |eta| <= 1.5, charged hadrons
    track_eff_endcap: float = 0.85        # 1.5 < |eta| <= 2.5
    track_eff_lepton_barrel: float = 0.99
    track_eff_lepton_endcap: float = 0.95
    track_res_const_barrel: float = 0.01  # sigma(pT)/pT = const (+) slope * pT
    track_res_slope_barrel: float = 1.5e-4
    track_res_const_endcap: float = 0.02
    track_res_slope_endcap: float = 3.0e-4
    ecal_eta: float = 3.0
    ecal_stochastic: float = 0.05         # sigma(E)/E = a/sqrt(E) (+) b
    ecal_constant: float = 0.01
    hcal_eta: float = 5.0
    hcal_stochastic: float = 1.0
    hcal_constant: float = 0.05
    calo_min_et: float = 0.5
    electron_min_pt: float = 10.0
    electron_eff_barrel: float = 0.95
    electron_eff_endcap: float = 0.85
    muon_eta: float = 2.4
    muon_min_pt: float = 10.0
    muon_eff: float = 0.95
    barrel_eta: float = 1.5


def _pt_eta_phi(px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pt = np.hypot(px, py)
    eta = np.arcsinh(pz / np.maximum(pt, 1e-12))
    return pt, eta, np.arctan2(py, px)


def _smear(rng: np.random.Generator, value: np.ndarray, rel_sigma: np.ndarray) -> np.ndarray:
    return np.maximum(value * (1.0 + rel_sigma * rng.standard_normal(value.shape)), 0.0)


def jagged(fields: dict[str, np.ndarray], counts: np.ndarray) -> ak.Array:
    """Per-event lists of records from flat, event-ordered columns (built on layouts: no broadcasting)."""
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    record = ak.contents.RecordArray([ak.contents.NumpyArray(np.ascontiguousarray(v)) for v in fields.values()],
                                     list(fields), length=int(offsets[-1]))
    return ak.Array(ak.contents.ListOffsetArray(ak.index.Index64(offsets), record))


def flat_columns(events: ak.Array) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Flat NumPy columns of a jagged record array, and the per-event counts."""
    packed = ak.to_packed(events)
    flat = ak.flatten(packed)
    return {name: ak.to_numpy(flat[name]) for name in ak.fields(flat)}, ak.to_numpy(ak.num(packed))


@dataclass
class FlowCandidates:
    """Every particle-flow object of a batch as flat massless four-vectors (event-ordered), for jets."""

    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    e: np.ndarray
    counts: np.ndarray


def simulate(particles: ak.Array, rng: np.random.Generator,
             params: DetectorParams = DetectorParams()) -> tuple[dict[str, ak.Array], FlowCandidates]:
    """Delphes-like reconstructed collections for a batch of events, and the EFlow candidates for jets.

    Each step works on the index subset it concerns (charged, leptons, calorimeter deposits), so
    the cost stays near a few NumPy passes over the visible particles.
    """
    n_events = len(particles)
    col, counts = flat_columns(particles)
    event_all = np.repeat(np.arange(n_events), counts)
    keep = col["visible"]
    event = event_all[keep]
    pid, charge = col["pid"][keep], col["charge"][keep]
    pt, eta, phi = _pt_eta_phi(col["px"][keep], col["py"][keep], col["pz"][keep])
    energy = col["e"][keep]
    aid = np.abs(pid)
    abseta = np.abs(eta)
    barrel = abseta <= params.barrel_eta

    # Tracker: acceptance, efficiency, pT resolution; leptons keep their track.
    ch = np.flatnonzero((charge != 0) & (abseta < params.tracker_eta) & (pt > params.track_min_pt))
    ch_lepton = (aid[ch] == 11) | (aid[ch] == 13)
    ch_barrel = barrel[ch]
    eff = np.where(ch_lepton,
                   np.where(ch_barrel, params.track_eff_lepton_barrel, params.track_eff_lepton_endcap),
                   np.where(ch_barrel, params.track_eff_barrel, params.track_eff_endcap))
    ch_pt = pt[ch]
    res = np.where(ch_barrel,
                   np.hypot(params.track_res_const_barrel, params.track_res_slope_barrel * ch_pt),
                   np.hypot(params.track_res_const_endcap, params.track_res_slope_endcap * ch_pt))
    ch_track_pt = _smear(rng, ch_pt, res)
    ok = (rng.random(len(ch)) < eff) & (ch_track_pt > params.track_min_pt)
    trk, trk_pt = ch[ok], ch_track_pt[ok]
    tracked = np.zeros(len(pt), dtype=bool)
    tracked[trk] = True
    trk_event = event[trk]
    beam = rng.normal(0.0, 1.0, (3, n_events)) * np.array([[params.beamspot_sigma_xy_mm], [params.beamspot_sigma_xy_mm],
                                                            [params.beamspot_sigma_z_mm]])
    src = np.flatnonzero(keep)[trk]
    trk_eta, trk_phi = eta[trk].astype(np.float32), phi[trk].astype(np.float32)
    trk_counts = np.bincount(trk_event, minlength=n_events)
    tracks = jagged({
        "PT": trk_pt.astype(np.float32), "Eta": trk_eta, "Phi": trk_phi,
        "PID": pid[trk].astype(np.int32), "Charge": charge[trk].astype(np.int32),
        "X": (col["vx"][src] + beam[0][trk_event]).astype(np.float32),
        "Y": (col["vy"][src] + beam[1][trk_event]).astype(np.float32),
        "Z": (col["vz"][src] + beam[2][trk_event]).astype(np.float32),
    }, trk_counts)

    # Leptons: reconstructed from their own track, with an identification efficiency.
    trk_aid = aid[trk]
    lep = np.flatnonzero((trk_aid == 11) | (trk_aid == 13))
    lep_aid, lep_pt, lep_abseta = trk_aid[lep], trk_pt[lep], abseta[trk][lep]
    lep_eff = np.where(lep_aid == 11,
                       np.where(lep_abseta <= params.barrel_eta, params.electron_eff_barrel, params.electron_eff_endcap),
                       params.muon_eff)
    passed = rng.random(len(lep)) < lep_eff
    is_ele = passed & (lep_aid == 11) & (lep_pt > params.electron_min_pt)
    is_mu = passed & (lep_aid == 13) & (lep_pt > params.muon_min_pt) & (lep_abseta < params.muon_eta)

    def leptons(mask: np.ndarray) -> ak.Array:
        i = lep[mask]
        return jagged({"PT": trk_pt[i].astype(np.float32), "Eta": trk_eta[i], "Phi": trk_phi[i],
                       "Charge": charge[trk][i].astype(np.int32)}, np.bincount(trk_event[i], minlength=n_events))

    # Calorimeters: what the tracker did not take. Photons and untracked electrons in the ECAL;
    # neutral and untracked charged hadrons in the HCAL; muons leave nothing.
    ecal_like = (aid == 22) | (aid == 11)
    calo = np.flatnonzero(~tracked & (aid != 13) & (abseta < np.where(ecal_like, params.ecal_eta, params.hcal_eta)))
    calo_ecal = ecal_like[calo]
    calo_e = np.maximum(energy[calo], 1e-9)
    stochastic = np.where(calo_ecal, params.ecal_stochastic, params.hcal_stochastic)
    constant = np.where(calo_ecal, params.ecal_constant, params.hcal_constant)
    calo_et = _smear(rng, calo_e, np.hypot(stochastic / np.sqrt(calo_e), constant)) / np.cosh(eta[calo])
    above = calo_et > params.calo_min_et
    calo, calo_ecal, calo_et = calo[above], calo_ecal[above], calo_et[above]

    def deposits(mask: np.ndarray) -> ak.Array:
        i = calo[mask]
        return jagged({"ET": calo_et[mask].astype(np.float32), "Eta": eta[i].astype(np.float32),
                       "Phi": phi[i].astype(np.float32)}, np.bincount(event[i], minlength=n_events))

    # Particle-flow candidates, event-ordered: for the missing transverse momentum and for jets.
    flow = np.concatenate([trk, calo])
    flow_pt = np.concatenate([trk_pt, calo_et])
    order = np.argsort(flow, kind="stable")
    flow, flow_pt = flow[order], flow_pt[order]
    # The float32-rounded values the collections store, so jets match what readers see.
    f_pt = flow_pt.astype(np.float32).astype(np.float64)
    f_eta = eta[flow].astype(np.float32).astype(np.float64)
    f_phi = phi[flow].astype(np.float32).astype(np.float64)
    f_event = event[flow]
    f_px, f_py = f_pt * np.cos(f_phi), f_pt * np.sin(f_phi)
    met_x = -np.bincount(f_event, weights=f_px, minlength=n_events)
    met_y = -np.bincount(f_event, weights=f_py, minlength=n_events)
    met = jagged({"MET": np.hypot(met_x, met_y).astype(np.float32),
                  "Phi": np.arctan2(met_y, met_x).astype(np.float32)}, np.ones(n_events, dtype=np.int64))
    candidates = FlowCandidates(f_px, f_py, f_pt * np.sinh(f_eta), f_pt * np.cosh(f_eta),
                                np.bincount(f_event, minlength=n_events))

    collections = {"EFlowTrack": tracks, "EFlowPhoton": deposits(calo_ecal), "EFlowNeutralHadron": deposits(~calo_ecal),
                   "Electron": leptons(is_ele), "MuonTight": leptons(is_mu), "MissingET": met}
    return collections, candidates
