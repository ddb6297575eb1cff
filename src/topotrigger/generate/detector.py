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


def _collection(mask: np.ndarray, event: np.ndarray, n_events: int, fields: dict[str, np.ndarray]) -> ak.Array:
    """Jagged per-event record of the particles selected by `mask` (particles are event-ordered)."""
    counts = np.bincount(event[mask], minlength=n_events)
    flat = ak.zip({name: np.asarray(values[mask]) for name, values in fields.items()})
    return ak.unflatten(flat, counts)


def simulate(particles: ak.Array, rng: np.random.Generator, params: DetectorParams = DetectorParams()) -> dict[str, ak.Array]:
    """Delphes-like reconstructed collections for a batch of events."""
    n_events = len(particles)
    counts = np.asarray(ak.num(particles))
    event = np.repeat(np.arange(n_events), counts)
    col = {name: np.asarray(ak.flatten(particles[name])) for name in ak.fields(particles)}
    pid, charge = col["pid"], col["charge"]
    aid = np.abs(pid)
    pt, eta, phi = _pt_eta_phi(col["px"], col["py"], col["pz"])
    abseta = np.abs(eta)
    barrel = abseta <= params.barrel_eta
    visible = col["visible"]
    charged = visible & (charge != 0)
    is_lepton = (aid == 11) | (aid == 13)

    # Tracker: acceptance, efficiency, pT resolution; leptons keep their track.
    eff = np.where(is_lepton,
                   np.where(barrel, params.track_eff_lepton_barrel, params.track_eff_lepton_endcap),
                   np.where(barrel, params.track_eff_barrel, params.track_eff_endcap))
    tracked = charged & (abseta < params.tracker_eta) & (pt > params.track_min_pt) & (rng.random(pt.shape) < eff)
    res = np.where(barrel,
                   np.hypot(params.track_res_const_barrel, params.track_res_slope_barrel * pt),
                   np.hypot(params.track_res_const_endcap, params.track_res_slope_endcap * pt))
    track_pt = _smear(rng, pt, res)
    tracked &= track_pt > params.track_min_pt
    beam_z = rng.normal(0.0, params.beamspot_sigma_z_mm, n_events)[event]
    beam_x = rng.normal(0.0, params.beamspot_sigma_xy_mm, n_events)[event]
    beam_y = rng.normal(0.0, params.beamspot_sigma_xy_mm, n_events)[event]

    tracks = _collection(tracked, event, n_events, {
        "PT": track_pt.astype(np.float32), "Eta": eta.astype(np.float32), "Phi": phi.astype(np.float32),
        "PID": pid.astype(np.int32), "Charge": charge.astype(np.int32),
        "X": (col["vx"] + beam_x).astype(np.float32), "Y": (col["vy"] + beam_y).astype(np.float32),
        "Z": (col["vz"] + beam_z).astype(np.float32),
    })

    lepton_fields = {"PT": track_pt.astype(np.float32), "Eta": eta.astype(np.float32),
                     "Phi": phi.astype(np.float32), "Charge": charge.astype(np.int32)}
    e_eff = np.where(barrel, params.electron_eff_barrel, params.electron_eff_endcap)
    is_ele = tracked & (aid == 11) & (track_pt > params.electron_min_pt) & (rng.random(pt.shape) < e_eff)
    is_mu = (tracked & (aid == 13) & (abseta < params.muon_eta) & (track_pt > params.muon_min_pt)
             & (rng.random(pt.shape) < params.muon_eff))
    electrons = _collection(is_ele, event, n_events, lepton_fields)
    muons = _collection(is_mu, event, n_events, lepton_fields)

    # Calorimeters: what the tracker did not take. Photons and untracked electrons in the ECAL;
    # neutral and untracked charged hadrons in the HCAL; muons and neutrinos leave nothing.
    energy = col["e"]
    to_ecal = visible & ~tracked & ((aid == 22) | (aid == 11)) & (abseta < params.ecal_eta)
    to_hcal = visible & ~tracked & ~to_ecal & (aid != 13) & (aid != 22) & (aid != 11) & (abseta < params.hcal_eta)
    safe_e = np.maximum(energy, 1e-9)
    ecal_res = np.hypot(params.ecal_stochastic / np.sqrt(safe_e), params.ecal_constant)
    hcal_res = np.hypot(params.hcal_stochastic / np.sqrt(safe_e), params.hcal_constant)
    calo_e = np.where(to_ecal, _smear(rng, energy, ecal_res), _smear(rng, energy, hcal_res))
    calo_et = calo_e / np.cosh(eta)
    to_ecal &= calo_et > params.calo_min_et
    to_hcal &= calo_et > params.calo_min_et
    calo_fields = {"ET": calo_et.astype(np.float32), "Eta": eta.astype(np.float32), "Phi": phi.astype(np.float32)}
    photons = _collection(to_ecal, event, n_events, calo_fields)
    neutral = _collection(to_hcal, event, n_events, calo_fields)

    # Missing transverse momentum: minus the vector sum of all particle-flow objects.
    vis_pt = np.where(tracked, track_pt, np.where(to_ecal | to_hcal, calo_et, 0.0))
    met_x = -np.bincount(event, weights=vis_pt * np.cos(phi), minlength=n_events)
    met_y = -np.bincount(event, weights=vis_pt * np.sin(phi), minlength=n_events)
    met = ak.unflatten(ak.zip({"MET": np.hypot(met_x, met_y).astype(np.float32),
                               "Phi": np.arctan2(met_y, met_x).astype(np.float32)}), np.ones(n_events, dtype=np.int64))

    return {"EFlowTrack": tracks, "EFlowPhoton": photons, "EFlowNeutralHadron": neutral,
            "Electron": electrons, "MuonTight": muons, "MissingET": met}
