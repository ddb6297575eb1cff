"""A Delphes-like detector after the CMS card with pile-up (`delphes_card_CMS_PileUp.tcl`), vectorised over
whole batches (flat NumPy arrays, no per-particle Python).

The chain the card runs, module by module, each with the card's numbers (`DetectorParams`, `ECAL`,
`HCAL`; docs/generation.md lists them with the card's lines and what is simplified):
1. ParticlePropagator: charged particles follow a helix in Bz = 3.8 T to the calorimeter cylinder
   (R = 1.29 m, half-length 3 m), neutral ones a straight line, from their production vertex.
2. Tracking efficiency and momentum smearing per particle type (charged hadrons, electrons, muons).
3. ECAL and HCAL towers on the card's η–φ grids: each particle puts its energy fractions there; each
   tower's energy is smeared (log-normal, the card's resolution) and cut (EnergyMin, significance).
4. Energy flow (SimpleCalorimeter): every track is an `EFlowTrack`; a tower's energy not explained by
   the tracks that reach it (electrons in the ECAL, charged hadrons in the HCAL) becomes an
   `EFlowPhoton` (ECAL) or `EFlowNeutralHadron` (HCAL) when it passes the same thresholds; its
   direction is drawn uniformly within the tower.
5. TrackPileUpSubtractor: tracks of pile-up particles from vertices more than 0.1 mm in z from the hard
   vertex are removed (charged-hadron subtraction); neutral pile-up stays.
6. Electron and muon efficiencies on the remaining lepton tracks; MissingET from every track (before
   the subtraction) and the neutral EFlow objects, as the card's `EFlowMergerAllTracks`.

Input: flat particle columns (`pid`, `charge`, `visible`, `px`, `py`, `pz`, `e` in GeV,
`vx`, `vy`, `vz` in mm, `pileup`, `vertex_z`, `event`). Output: the Delphes collections as
jagged awkward records (float32), and the EFlow candidates jets are clustered from (`jets.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import awkward as ak
import numpy as np

# Charged particle curvature radius r [m] = pT [GeV] / (C · |q| · Bz [T]).
C_LIGHT = 0.299792458


@dataclass(frozen=True)
class DetectorParams:
    radius_m: float = 1.29                # ParticlePropagator
    half_length_m: float = 3.0
    bz_tesla: float = 3.8
    tracker_eta: float = 2.5              # efficiency formulas: 0 beyond
    track_min_pt: float = 0.1
    # (|eta| <= 1.5, 1.5 < |eta| <= 2.5) x (0.1 < pt <= 1, pt > 1): ChargedHadronTrackingEfficiency
    hadron_eff: tuple[tuple[float, float], tuple[float, float]] = ((0.70, 0.95), (0.60, 0.85))
    # x (0.1-1, 1-100, > 100 GeV): ElectronTrackingEfficiency
    electron_track_eff: tuple[tuple[float, float, float], ...] = ((0.73, 0.95, 0.99), (0.50, 0.83, 0.90))
    # x (0.1-1, > 1 GeV): MuonTrackingEfficiency (the > 1 TeV fall-off is left out)
    muon_track_eff: tuple[tuple[float, float], ...] = ((0.75, 0.99), (0.70, 0.98))
    # relative pT resolution sqrt(a^2 + (b pT)^2) in |eta| <= 0.5, 0.5-1.5, 1.5-2.5: *MomentumSmearing
    hadron_res: tuple[tuple[float, float], ...] = ((0.06, 1.3e-3), (0.10, 1.7e-3), (0.25, 3.1e-3))
    electron_res: tuple[tuple[float, float], ...] = ((0.03, 1.3e-3), (0.05, 1.7e-3), (0.15, 3.1e-3))
    muon_res: tuple[tuple[float, float], ...] = ((0.01, 1.0e-4), (0.015, 1.5e-4), (0.025, 3.5e-4))
    ecal_energy_min: float = 0.5          # ECal EnergyMin
    hcal_energy_min: float = 1.0          # HCal EnergyMin
    energy_significance_min: float = 2.0  # both
    pileup_z_resolution_mm: float = 0.1   # TrackPileUpSubtractor ZVertexResolution 0.0001 m
    electron_min_pt: float = 10.0         # ElectronEfficiency: 0.95 (|eta| <= 1.5), 0.85 (<= 2.5)
    electron_eff: tuple[float, float] = (0.95, 0.85)
    muon_min_pt: float = 10.0             # MuonEfficiency: 0.95 up to |eta| 2.4
    muon_eff: float = 0.95
    muon_eta: float = 2.4


def _ecal_edges() -> list[tuple[float, int]]:
    """The ECal module's `EtaPhiBins`: (η edge, φ bins of the tower ending at that edge)."""
    edges = [(i * 0.0174, 360) for i in range(-85, 87)]
    edges += [(-2.958 + i * 0.0174, 360) for i in range(1, 85)] + [(1.4964 + i * 0.0174, 360) for i in range(1, 85)]
    hf = [-5, -4.7, -4.525, -4.35, -4.175, -4, -3.825, -3.65, -3.475, -3.3, -3.125, -2.958,
          3.125, 3.3, 3.475, 3.65, 3.825, 4, 4.175, 4.35, 4.525, 4.7, 5]
    return edges + [(float(e), 36) for e in hf]


def _hcal_edges() -> list[tuple[float, int]]:
    """The HCal module's `EtaPhiBins`: 5° towers in the barrel, 10° in the endcaps, 20° at the far ends."""
    five = [-1.566, -1.479, -1.392, -1.305, -1.218, -1.131, -1.044, -0.957, -0.87, -0.783, -0.696, -0.609, -0.522,
            -0.435, -0.348, -0.261, -0.174, -0.087, 0, 0.087, 0.174, 0.261, 0.348, 0.435, 0.522, 0.609, 0.696, 0.783,
            0.87, 0.957, 1.044, 1.131, 1.218, 1.305, 1.392, 1.479, 1.566, 1.653]
    ten = [-4.35, -4.175, -4, -3.825, -3.65, -3.475, -3.3, -3.125, -2.95, -2.868, -2.65, -2.5, -2.322, -2.172, -2.043,
           -1.93, -1.83, -1.74, -1.653, 1.74, 1.83, 1.93, 2.043, 2.172, 2.322, 2.5, 2.65, 2.868, 2.95, 3.125, 3.3,
           3.475, 3.65, 3.825, 4, 4.175, 4.35, 4.525]
    twenty = [-5, -4.7, -4.525, 4.7, 5]
    return [(float(e), 72) for e in five] + [(float(e), 36) for e in ten] + [(float(e), 18) for e in twenty]


@dataclass(frozen=True)
class TowerGrid:
    """Towers between consecutive η edges, each ring split into equal φ bins (as Delphes reads
    `EtaPhiBins`: a tower takes the φ bins listed with its upper η edge)."""

    edges: np.ndarray
    n_phi: np.ndarray      # per ring
    first: np.ndarray = field(repr=False)  # the first tower number of each ring

    @classmethod
    def from_card(cls, listed: list[tuple[float, int]]) -> TowerGrid:
        by_edge = {round(e, 6): n for e, n in listed}
        edges = np.array(sorted(by_edge))
        n_phi = np.array([by_edge[e] for e in edges[1:]])
        return cls(edges, n_phi, np.concatenate([[0], np.cumsum(n_phi)[:-1]]))

    @property
    def towers(self) -> int:
        return int(self.n_phi.sum())

    def index(self, eta: np.ndarray, phi: np.ndarray) -> np.ndarray:
        """Tower number of each (η, φ), -1 outside the η coverage."""
        ring = np.searchsorted(self.edges, eta, side="right") - 1
        inside = (ring >= 0) & (ring < len(self.n_phi))
        ring = np.clip(ring, 0, len(self.n_phi) - 1)
        n = self.n_phi[ring]
        cell = np.minimum(((phi + np.pi) / (2 * np.pi) * n).astype(np.int64), n - 1)
        return np.where(inside, self.first[ring] + cell, -1)

    def bounds(self, tower: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """η and φ ranges of the given towers."""
        ring = np.searchsorted(self.first, tower, side="right") - 1
        width = 2 * np.pi / self.n_phi[ring]
        phi_lo = -np.pi + (tower - self.first[ring]) * width
        return self.edges[ring], self.edges[ring + 1], phi_lo, phi_lo + width


ECAL = TowerGrid.from_card(_ecal_edges())
HCAL = TowerGrid.from_card(_hcal_edges())


def ecal_sigma(eta: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """ECal ResolutionFormula (absolute, GeV)."""
    a = np.abs(eta)
    core = np.sqrt(energy**2 * 0.008**2 + energy * 0.11**2 + 0.40**2)
    return np.select([a <= 1.5, a <= 2.5], [(1 + 0.64 * eta**2) * core, (2.16 + 5.6 * (a - 2) ** 2) * core],
                     np.sqrt(energy**2 * 0.107**2 + energy * 2.08**2))


def hcal_sigma(eta: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """HCal ResolutionFormula (absolute, GeV)."""
    return np.where(np.abs(eta) <= 3.0, np.sqrt(energy**2 * 0.050**2 + energy * 1.50**2),
                    np.sqrt(energy**2 * 0.130**2 + energy * 2.70**2))


def log_normal(rng: np.random.Generator, mean: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Delphes' LogNormal: a positive value with the given mean and standard deviation (0 for mean ≤ 0)."""
    m = np.maximum(mean, 1e-12)
    b = np.sqrt(np.log1p((sigma / m) ** 2))
    value = np.exp(np.log(m) - 0.5 * b**2 + b * rng.standard_normal(np.shape(mean)))
    return np.where(mean > 0, value, 0.0)


def propagate(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, charge: np.ndarray, vz: np.ndarray,
              params: DetectorParams) -> tuple[np.ndarray, np.ndarray]:
    """(η, φ) of the point where each particle reaches the calorimeter cylinder (ParticlePropagator).

    Charged particles: helix of radius r = pT / (0.3 |q| Bz) around the beam axis; a particle whose circle
    cannot reach the barrel radius (2r < R) or that reaches |z| = half-length first leaves through the
    endcap. Production vertices away from the axis are taken as on it (they are mm against 1.29 m); their
    z (mm) is kept.
    """
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # neutral: r = inf, looper: s = inf
        return _propagate(pt, eta, phi, charge, vz * 1e-3, params)


def _propagate(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, charge: np.ndarray, z0: np.ndarray,
               params: DetectorParams) -> tuple[np.ndarray, np.ndarray]:
    big_r, half = params.radius_m, params.half_length_m
    cot = np.sinh(eta)  # pz / pT
    # Neutral particles: a straight line from (0, 0, z0) to the barrel, or to an endcap when it gets there first.
    z_barrel = z0 + big_r * cot
    endcap = np.abs(z_barrel) > half
    z = np.where(endcap, np.sign(cot) * half, z_barrel)
    rho = np.where(endcap, (z - z0) / np.where(endcap, cot, 1.0), big_r)
    position_phi = phi.copy()
    ch = np.flatnonzero(charge != 0)
    if len(ch):
        # Charged ones: the transverse arc s to the barrel is 2r asin(R / 2r) when the circle reaches it
        # (2r > R); otherwise, or when |z| = half-length comes first, the arc to the endcap.
        c_cot, c_z0 = cot[ch], z0[ch]
        r = pt[ch] / (C_LIGHT * np.abs(charge[ch]) * params.bz_tesla)
        reaches = 2 * r > big_r
        s_barrel = np.full(len(ch), np.inf)
        s_barrel[reaches] = 2 * r[reaches] * np.arcsin(big_r / (2 * r[reaches]))
        z_c = c_z0 + s_barrel * c_cot
        via_barrel = np.isfinite(z_c) & (np.abs(z_c) <= half)
        s = s_barrel.copy()
        out = ~via_barrel
        s[out] = (np.sign(c_cot[out]) * half - c_z0[out]) / c_cot[out]
        turn = s / r
        rho[ch] = np.where(via_barrel, big_r, 2 * r * np.abs(np.sin(0.5 * turn)))
        z[ch] = np.where(via_barrel, z_c, np.sign(c_cot) * half)
        # Positive charges bend clockwise in Bz > 0: the position's azimuth lags the momentum by half the turn.
        position_phi[ch] = phi[ch] - np.sign(charge[ch]) * 0.5 * turn
    position_phi = np.where(np.isfinite(position_phi), (position_phi + np.pi) % (2 * np.pi) - np.pi, 0.0)
    # A looper with no longitudinal momentum never reaches the calorimeter: outside every tower.
    position_eta = np.where(np.isfinite(rho) & np.isfinite(z) & (rho > 0), np.arcsinh(z / np.maximum(rho, 1e-9)), 99.0)
    return position_eta, position_phi


def _by_region(eta: np.ndarray, table: tuple[tuple[float, float], ...], pt: np.ndarray) -> np.ndarray:
    a = np.abs(eta)
    region = np.select([a <= 0.5, a <= 1.5], [0, 1], 2)
    const = np.array([t[0] for t in table])[region]
    slope = np.array([t[1] for t in table])[region]
    return np.asarray(np.minimum(np.hypot(const, slope * pt), 1.0))


def track_efficiency(aid: np.ndarray, pt: np.ndarray, eta: np.ndarray, params: DetectorParams) -> np.ndarray:
    """The card's tracking efficiency formulas for charged hadrons, electrons and muons."""
    endcap = (np.abs(eta) > 1.5).astype(np.int64)
    hadron = np.array(params.hadron_eff)[endcap, (pt > 1.0).astype(np.int64)]
    electron = np.array(params.electron_track_eff)[endcap, (pt > 1.0).astype(np.int64) + (pt > 100.0)]
    muon = np.array(params.muon_track_eff)[endcap, (pt > 1.0).astype(np.int64)]
    eff = np.select([aid == 11, aid == 13], [electron, muon], hadron)
    return np.where((pt > params.track_min_pt) & (np.abs(eta) <= params.tracker_eta), eff, 0.0)


def track_resolution(aid: np.ndarray, pt: np.ndarray, eta: np.ndarray, params: DetectorParams) -> np.ndarray:
    return np.select([aid == 11, aid == 13], [_by_region(eta, params.electron_res, pt), _by_region(eta, params.muon_res, pt)],
                     _by_region(eta, params.hadron_res, pt))


def energy_fractions(aid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ECAL, HCAL) energy fractions of visible particles: e, γ, π⁰ all ECAL; K⁰_S and Λ 0.3 / 0.7;
    muons nothing; every other hadron all HCAL."""
    em = (aid == 11) | (aid == 22) | (aid == 111)
    split = (aid == 310) | (aid == 3122)
    none = aid == 13
    ecal = np.select([none, em, split], [0.0, 1.0, 0.3], 0.0)
    hcal = np.select([none, em, split], [0.0, 0.0, 0.7], 1.0)
    return ecal, hcal


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


@dataclass
class _Deposits:
    """The neutral EFlow objects of one calorimeter: event, ET, η, φ."""

    event: np.ndarray
    et: np.ndarray
    eta: np.ndarray
    phi: np.ndarray


def calorimeter(grid: TowerGrid, sigma_of: Callable[[np.ndarray, np.ndarray], np.ndarray], energy_min: float, significance: float, rng: np.random.Generator,
                event: np.ndarray, tower: np.ndarray, energy: np.ndarray, track_event: np.ndarray,
                track_tower: np.ndarray, track_energy: np.ndarray, track_sigma: np.ndarray) -> _Deposits:
    """SimpleCalorimeter's energy flow: per (event, tower), the smeared tower energy minus the energy of
    the tracks that reach it, kept as a neutral object when above `energy_min` and `significance` σ."""
    hit = (tower >= 0) & (energy > 0)
    track_hit = (track_tower >= 0) & (track_energy > 0)
    keys = np.concatenate([event[hit] * grid.towers + tower[hit], track_event[track_hit] * grid.towers + track_tower[track_hit]])
    if not len(keys):
        empty = np.zeros(0)
        return _Deposits(np.zeros(0, np.int64), empty, empty, empty)
    unique, inverse = np.unique(keys, return_inverse=True)
    n_particles = int(hit.sum())
    true_energy = np.bincount(inverse[:n_particles], weights=energy[hit], minlength=len(unique))
    tracks_energy = np.bincount(inverse[n_particles:], weights=track_energy[track_hit], minlength=len(unique))
    tracks_var = np.bincount(inverse[n_particles:], weights=track_sigma[track_hit] ** 2, minlength=len(unique))
    cell = unique % grid.towers
    eta_lo, eta_hi, phi_lo, phi_hi = grid.bounds(cell)
    center = 0.5 * (eta_lo + eta_hi)
    measured = log_normal(rng, true_energy, sigma_of(center, true_energy))
    sigma = sigma_of(center, measured)
    measured = np.where((measured < energy_min) | (measured < significance * sigma), 0.0, measured)
    neutral = np.maximum(measured - tracks_energy, 0.0)
    keep = (neutral > energy_min) & (neutral / np.sqrt(tracks_var + sigma**2) > significance)
    n = int(keep.sum())
    eta = rng.uniform(eta_lo[keep], eta_hi[keep], n)   # SmearTowerCenter
    phi = rng.uniform(phi_lo[keep], phi_hi[keep], n)
    return _Deposits(unique[keep] // grid.towers, neutral[keep] / np.cosh(eta), eta, phi)


def simulate(col: dict[str, np.ndarray], n_events: int, rng: np.random.Generator,
             params: DetectorParams = DetectorParams()) -> tuple[dict[str, ak.Array], FlowCandidates]:
    """Delphes-like reconstructed collections for a batch of events, and the EFlow candidates for jets.

    `col` holds flat particle columns in any order (`pileup.place`): `event` (0 … n_events − 1),
    positions in the detector frame, `pileup` marking particles overlaid from minimum-bias events,
    `vertex_z` the hard vertex's z.
    """
    # ParticlePropagator: particles made outside the field volume (late decays) are not seen.
    keep = col["visible"].astype(bool) & (np.abs(col["vz"]) < params.half_length_m * 1e3) & (
        col["vx"] ** 2 + col["vy"] ** 2 < (params.radius_m * 1e3) ** 2)
    if keep.all():  # the usual case: no copies
        c = col
    else:
        c = {k: col[k][keep] for k in ("event", "pid", "charge", "px", "py", "pz", "e", "vx", "vy", "vz", "pileup", "vertex_z")}
    event, pid, charge = c["event"], c["pid"], c["charge"]
    px, py, pz, energy = c["px"], c["py"], c["pz"], c["e"]
    vx, vy, vz = c["vx"], c["vy"], c["vz"]
    pileup = c["pileup"].astype(bool)
    hard_z = c["vertex_z"]
    pt = np.hypot(px, py)
    eta = np.arcsinh(pz / np.maximum(pt, 1e-12))
    phi = np.arctan2(py, px)
    aid = np.abs(pid)
    calo_eta, calo_phi = propagate(pt, eta, phi, charge, vz, params)

    # Tracks: efficiency and momentum smearing by particle type.
    ch = np.flatnonzero(charge != 0)
    eff = track_efficiency(aid[ch], pt[ch], eta[ch], params)
    found = rng.random(len(ch)) < eff
    trk = ch[found]
    trk = trk[np.argsort(event[trk], kind="stable")]  # event order, for the jagged collections
    res = track_resolution(aid[trk], pt[trk], eta[trk], params)
    trk_pt = log_normal(rng, pt[trk], res * pt[trk])
    trk_p = trk_pt * np.cosh(eta[trk])
    trk_event = event[trk]

    # Calorimeters: every visible particle's energy fractions in its towers; the tracks reaching a tower
    # explain their share (electrons in the ECAL, charged hadrons in the HCAL).
    f_ecal, f_hcal = energy_fractions(aid)
    ecal_tower = np.full(len(aid), -1, np.int64)
    hcal_tower = np.full(len(aid), -1, np.int64)
    for grid, fraction, tower in ((ECAL, f_ecal, ecal_tower), (HCAL, f_hcal, hcal_tower)):
        some = np.flatnonzero(fraction > 0)
        tower[some] = grid.index(calo_eta[some], calo_phi[some])
    photons = calorimeter(ECAL, ecal_sigma, params.ecal_energy_min, params.energy_significance_min, rng,
                          event, ecal_tower, energy * f_ecal, trk_event, ecal_tower[trk], trk_p * f_ecal[trk],
                          trk_p * f_ecal[trk] * res)
    neutrals = calorimeter(HCAL, hcal_sigma, params.hcal_energy_min, params.energy_significance_min, rng,
                           event, hcal_tower, energy * f_hcal, trk_event, hcal_tower[trk], trk_p * f_hcal[trk],
                           trk_p * f_hcal[trk] * res)

    # Charged-hadron subtraction: pile-up tracks from vertices resolved from the hard one go.
    kept = ~(pileup[trk] & (np.abs(vz[trk] - hard_z[trk]) > params.pileup_z_resolution_mm))
    tracks = jagged({
        "PT": trk_pt[kept].astype(np.float32), "Eta": eta[trk][kept].astype(np.float32),
        "Phi": phi[trk][kept].astype(np.float32), "PID": pid[trk][kept].astype(np.int32),
        "Charge": charge[trk][kept].astype(np.int32), "X": vx[trk][kept].astype(np.float32),
        "Y": vy[trk][kept].astype(np.float32), "Z": vz[trk][kept].astype(np.float32),
    }, np.bincount(trk_event[kept], minlength=n_events))

    # Leptons: identification efficiency on the remaining lepton tracks (no isolation here: the
    # features stage applies the study's isolation).
    sub = np.flatnonzero(kept)
    lep_aid, lep_pt, lep_abseta = aid[trk][sub], trk_pt[sub], np.abs(eta[trk][sub])
    electron_eff = np.where(lep_abseta <= 1.5, params.electron_eff[0], np.where(lep_abseta <= 2.5, params.electron_eff[1], 0.0))
    lucky = rng.random(len(sub))
    is_ele = (lep_aid == 11) & (lep_pt > params.electron_min_pt) & (lucky < electron_eff)
    is_mu = (lep_aid == 13) & (lep_pt > params.muon_min_pt) & (lep_abseta <= params.muon_eta) & (lucky < params.muon_eff)

    def leptons(mask: np.ndarray) -> ak.Array:
        i = trk[sub[mask]]
        return jagged({"PT": lep_pt[mask].astype(np.float32), "Eta": eta[i].astype(np.float32),
                       "Phi": phi[i].astype(np.float32), "Charge": charge[i].astype(np.int32)},
                      np.bincount(event[i], minlength=n_events))

    def deposits(d: _Deposits) -> ak.Array:
        order = np.argsort(d.event, kind="stable")
        return jagged({"ET": d.et[order].astype(np.float32), "Eta": d.eta[order].astype(np.float32),
                       "Phi": d.phi[order].astype(np.float32)}, np.bincount(d.event, minlength=n_events))

    collections = {"EFlowTrack": tracks, "EFlowPhoton": deposits(photons), "EFlowNeutralHadron": deposits(neutrals),
                   "Electron": leptons(is_ele), "MuonTight": leptons(is_mu)}

    # MET from every track (pile-up ones too) and the neutral objects; jets from the subtracted tracks
    # and the neutral objects. The float32-rounded values the collections store, so that readers agree.
    def momenta(e: np.ndarray, pt_: np.ndarray, eta_: np.ndarray, phi_: np.ndarray) -> tuple[np.ndarray, ...]:
        pt32, eta32, phi32 = (x.astype(np.float32).astype(np.float64) for x in (pt_, eta_, phi_))
        return e, pt32 * np.cos(phi32), pt32 * np.sin(phi32), pt32 * np.sinh(eta32), pt32 * np.cosh(eta32)

    neutral_parts = [momenta(d.event, d.et, d.eta, d.phi) for d in (photons, neutrals)]
    all_tracks = momenta(trk_event, trk_pt, eta[trk], phi[trk])
    met_x = -sum(np.bincount(p[0], weights=p[1], minlength=n_events) for p in [all_tracks, *neutral_parts])
    met_y = -sum(np.bincount(p[0], weights=p[2], minlength=n_events) for p in [all_tracks, *neutral_parts])
    collections["MissingET"] = jagged({"MET": np.hypot(met_x, met_y).astype(np.float32),
                                       "Phi": np.arctan2(met_y, met_x).astype(np.float32)}, np.ones(n_events, dtype=np.int64))
    flow = [tuple(x[kept] for x in all_tracks), *neutral_parts]
    flow_event = np.concatenate([p[0] for p in flow])
    order = np.argsort(flow_event, kind="stable")
    px_, py_, pz_, e_ = (np.concatenate([p[k] for p in flow])[order] for k in (1, 2, 3, 4))
    candidates = FlowCandidates(px_, py_, pz_, e_, np.bincount(flow_event, minlength=n_events))
    return collections, candidates
