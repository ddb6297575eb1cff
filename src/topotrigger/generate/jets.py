"""Anti-kT jets on the particle-flow objects (FastJet multi-event API) and b-tagging by hadron matching."""

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
    radius: float = 0.4
    min_pt: float = 20.0
    btag_match_dr: float = 0.4
    btag_eff_b: float = 0.70
    btag_eff_c: float = 0.10
    btag_eff_light: float = 0.01


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
    """Anti-kT jets (PT, Eta, Phi, Mass), pT-ordered, from the EFlow candidates, pT > min_pt."""
    fastjet = require("fastjet")
    inputs = jagged({"px": candidates.px, "py": candidates.py, "pz": candidates.pz, "E": candidates.e}, candidates.counts)
    jetdef = fastjet.JetDefinition(fastjet.antikt_algorithm, params.radius)
    with _no_banner():
        found = fastjet.ClusterSequence(inputs, jetdef).inclusive_jets(min_pt=params.min_pt)
    cols, counts = flat_columns(found)
    px, py, pz, e = cols["px"], cols["py"], cols["pz"], cols["E"]
    pt = np.hypot(px, py)
    event = np.repeat(np.arange(len(counts)), counts)
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
    eff = np.select([flat == 5, flat == 4], [params.btag_eff_b, params.btag_eff_c], params.btag_eff_light)
    tagged = (rng.random(flat.shape) < eff).astype(np.uint32)
    return ak.with_field(jets, ak.unflatten(tagged, ak.num(flavour)), "BTag")
