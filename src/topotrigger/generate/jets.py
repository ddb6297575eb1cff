"""Jets as the CMS card makes them: anti-kT (R = 0.5, FastJet's multi-event API) on the EFlow objects
after charged-hadron subtraction, the median pile-up density ρ subtracted (ρ · jet area), pT > 20 GeV;
b-tagging with the card's efficiency formulas, the flavour from b and c hadrons within ΔR < 0.5."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import awkward as ak
import numpy as np

from topotrigger._optional import require
from topotrigger.generate.detector import FlowCandidates, flat_columns, jagged


@dataclass(frozen=True)
class JetParams:
    radius: float = 0.5          # FastJetFinder ParameterR
    min_pt: float = 20.0         # JetPTMin, before and after the pile-up subtraction
    btag_match_dr: float = 0.5   # JetFlavorAssociation DeltaR
    rho_cell: float = 1.0        # Rho: FastJetGridMedianEstimator cells of 1 x 1 in (eta, phi)
    rho_central_eta: float = 2.5 # Rho GridRange -2.5 .. 2.5 (central) and 2.5 .. 5 on each side (forward)
    rho_max_eta: float = 5.0


def btag_efficiency(flavour: np.ndarray, pt: np.ndarray) -> np.ndarray:
    """The card's BTagging formulas (arXiv:1211.4462): b, c and light-flavour jets."""
    b = 0.85 * np.tanh(0.0025 * pt) * (25.0 / (1 + 0.063 * pt))
    c = 0.25 * np.tanh(0.018 * pt) * (1 / (1 + 0.0013 * pt))
    return np.select([flavour == 5, flavour == 4], [b, c], 0.01 + 0.000038 * pt)


def rho(candidates: FlowCandidates, params: JetParams) -> tuple[np.ndarray, np.ndarray]:
    """Per event, the median transverse-momentum density (GeV per unit area) of the grid cells in the
    central range and in the forward ranges, empty cells included (FastJet's grid median estimator)."""
    n_events = len(candidates.counts)
    pt = np.hypot(candidates.px, candidates.py)
    eta = np.arcsinh(candidates.pz / np.maximum(pt, 1e-12))
    phi = np.arctan2(candidates.py, candidates.px)
    event = np.repeat(np.arange(n_events), candidates.counts)
    n_phi = int(round(2 * np.pi / params.rho_cell))
    phi_cell = np.minimum(((phi + np.pi) / (2 * np.pi) * n_phi).astype(np.int64), n_phi - 1)
    out = []
    for lo, hi, sides in ((0.0, params.rho_central_eta, 1), (params.rho_central_eta, params.rho_max_eta, 2)):
        n_eta = max(int((hi - lo) * (2 if sides == 1 else 1) / params.rho_cell + 0.5), 1)
        width = (hi - lo) * (2 if sides == 1 else 1) / n_eta
        a = np.abs(eta)
        inside = (a >= lo) & (a < hi) if sides == 2 else (a < hi)
        position = (eta + hi) if sides == 1 else (a - lo)
        eta_cell = np.minimum((position / width).astype(np.int64), n_eta - 1) + (np.where(eta < 0, n_eta, 0) if sides == 2 else 0)
        cells = n_eta * sides * n_phi
        key = event[inside] * cells + eta_cell[inside] * n_phi + phi_cell[inside]
        density = np.bincount(key, weights=pt[inside], minlength=n_events * cells).reshape(n_events, cells)
        out.append(np.median(density, axis=1) / (width * 2 * np.pi / n_phi))
    return out[0], out[1]


_banner_shown = False


@contextmanager
def _no_banner() -> Iterator[None]:
    """FastJet prints a banner to stdout on its first clustering; keep it out of our output."""
    global _banner_shown
    if _banner_shown:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)
        _banner_shown = True


def cluster(candidates: FlowCandidates, params: JetParams = JetParams()) -> ak.Array:
    """Anti-kT jets (PT, Eta, Phi, Mass), pT-ordered, from the EFlow candidates, ρ-subtracted with the area
    πR² (the active area of a hard jet), pT > min_pt after the subtraction."""
    fastjet = require("fastjet")
    inputs = jagged({"px": candidates.px, "py": candidates.py, "pz": candidates.pz, "E": candidates.e}, candidates.counts)
    jetdef = fastjet.JetDefinition(fastjet.antikt_algorithm, params.radius)
    with _no_banner():
        found = fastjet.ClusterSequence(inputs, jetdef).inclusive_jets(min_pt=params.min_pt)
    cols, counts = flat_columns(found)
    px, py, pz, e = cols["px"], cols["py"], cols["pz"], cols["E"]
    pt = np.hypot(px, py)
    event = np.repeat(np.arange(len(counts)), counts)
    central, forward = rho(candidates, params)
    eta = np.arcsinh(pz / np.maximum(pt, 1e-12))
    density = np.where(np.abs(eta) < params.rho_central_eta, central[event], forward[event])
    scale = np.maximum(pt - density * np.pi * params.radius**2, 0.0) / np.maximum(pt, 1e-12)
    px, py, pz, e, pt = px * scale, py * scale, pz * scale, e * scale, pt * scale
    keep = pt > params.min_pt
    px, py, pz, e, pt, event = px[keep], py[keep], pz[keep], e[keep], pt[keep], event[keep]
    counts = np.bincount(event, minlength=len(counts))
    order = np.lexsort((-pt, event))
    px, py, pz, e, pt = px[order], py[order], pz[order], e[order], pt[order]
    mass = np.sqrt(np.maximum(e**2 - px**2 - py**2 - pz**2, 0.0))
    return jagged({"PT": pt.astype(np.float32), "Eta": np.arcsinh(pz / pt).astype(np.float32),
                   "Phi": np.arctan2(py, px).astype(np.float32), "Mass": mass.astype(np.float32)}, counts)


def jet_flavour(jets: ak.Array, hadrons: ak.Array, max_dr: float) -> ak.Array:
    """5 if a b hadron lies within `max_dr` of the jet, else 4 for a c hadron, else 0."""
    pairs = ak.cartesian({"j": jets, "h": hadrons}, axis=1, nested=True)
    dphi = (pairs.j.Phi - pairs.h.phi + np.pi) % (2 * np.pi) - np.pi
    dr = np.hypot(pairs.j.Eta - pairs.h.eta, dphi)
    matched = ak.where(dr < max_dr, pairs.h.flavour, 0)
    return ak.fill_none(ak.max(matched, axis=2), 0)


def btag(jets: ak.Array, hadrons: ak.Array, rng: np.random.Generator, params: JetParams = JetParams()) -> ak.Array:
    """Jets with `BTag` (uint32, as real Delphes stores it): 1 with the flavour's tagging efficiency."""
    flavour = jet_flavour(jets, hadrons, params.btag_match_dr)
    flat = np.asarray(ak.flatten(flavour))
    eff = btag_efficiency(flat, np.asarray(ak.flatten(jets.PT), np.float64))
    tagged = (rng.random(flat.shape) < eff).astype(np.uint32)
    return ak.with_field(jets, ak.unflatten(tagged, ak.num(flavour)), "BTag")
