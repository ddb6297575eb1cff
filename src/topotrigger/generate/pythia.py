"""Pythia 8 in batches: final-state particles and heavy-flavour hadrons as awkward arrays.

`nextBatch` hands back whole events as an awkward array (~0.1 ms per event to select and flatten);
nothing here loops over particles in Python.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from topotrigger._optional import require

# Generator-level filter ("lepFilter" of the 2019 production): a final-state e or mu above these cuts.
FILTER_LEPTON_PT = 20.0
FILTER_LEPTON_ETA = 2.5


class PythiaSource:
    """One initialised Pythia instance producing final-state particle batches."""

    def __init__(self, settings: list[str]) -> None:
        pythia8mc = require("pythia8mc")
        self._pythia = pythia8mc.Pythia("", False)
        for line in settings:
            if not self._pythia.readString(line):
                raise ValueError(f"Pythia rejected the setting {line!r}")
        if not self._pythia.init():
            raise RuntimeError("Pythia initialisation failed")
        self._charge: dict[int, float] = {}
        self._visible: dict[int, bool] = {}

    def cross_section(self) -> tuple[float, float]:
        info = self._pythia.infoPython()
        return float(info.sigmaGen()), float(info.sigmaErr())

    def batch(self, n: int) -> ak.Array:
        """`n` events (fewer if Pythia fails some): particles and heavy-flavour hadrons per event.

        Fields per event: `particles` (final state: pid, charge, visible, px, py, pz, e, vx, vy, vz
        in GeV and mm), `hadrons` (b and c hadrons: flavour 5 or 4, pt, eta, phi), `weight`, `id1`, `id2`.
        """
        events = self._pythia.nextBatch(n, errorMode="skip")
        prt = events.prt
        final = prt[prt.status > 0]
        pid = final.id
        flat_pid = np.asarray(ak.flatten(pid))
        charge, visible = self._lookup(flat_pid)
        counts = ak.num(pid)
        vertex = final.vProd
        particles = ak.zip(
            {
                "pid": pid,
                "charge": ak.unflatten(charge, counts),
                "visible": ak.unflatten(visible, counts),
                "px": final.p.px, "py": final.p.py, "pz": final.p.pz, "e": final.p.e,
                # Pythia leaves the vertex unset for particles made at the primary interaction point.
                "vx": ak.fill_none(vertex.px, 0.0), "vy": ak.fill_none(vertex.py, 0.0),
                "vz": ak.fill_none(vertex.pz, 0.0),
            },
            depth_limit=2,
        )
        return ak.zip(
            {
                "particles": particles,
                "hadrons": heavy_hadrons(prt),
                "weight": events.info.weights[:, 0] if ak.max(ak.num(events.info.weights), initial=0) else ak.ones_like(events.info.id1, dtype=np.float64),
                "id1": events.info.id1,
                "id2": events.info.id2,
            },
            depth_limit=1,
        )

    def _lookup(self, flat_pid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        uniq, inverse = np.unique(flat_pid, return_inverse=True)
        pdata = self._pythia.particleData
        for code in uniq.tolist():
            if code not in self._charge:
                self._charge[code] = float(pdata.charge(code))
                self._visible[code] = bool(pdata.isVisible(code))
        charge = np.array([self._charge[c] for c in uniq.tolist()], dtype=np.float64)[inverse]
        visible = np.array([self._visible[c] for c in uniq.tolist()], dtype=bool)[inverse]
        return charge, visible


def heavy_hadrons(prt: ak.Array, min_pt: float = 5.0) -> ak.Array:
    """b and c hadrons (any status) above `min_pt`, with their heaviest flavour (5 or 4)."""
    aid = abs(prt.id)
    is_hadron = (aid > 100) & (aid % 10 != 0) & ((aid // 10) % 10 != 0)
    digit_b = ((aid // 100) % 10 == 5) | ((aid // 1000) % 10 == 5)
    digit_c = ((aid // 100) % 10 == 4) | ((aid // 1000) % 10 == 4)
    pt = np.hypot(prt.p.px, prt.p.py)
    select = is_hadron & (digit_b | digit_c) & (pt > min_pt)
    sel = prt[select]
    sel_pt = pt[select]
    flavour = ak.where(digit_b[select], 5, 4)
    return ak.zip(
        {
            "flavour": flavour,
            "pt": sel_pt,
            "eta": np.arcsinh(sel.p.pz / sel_pt),
            "phi": np.arctan2(sel.p.py, sel.p.px),
        }
    )


def lepton_filter(particles: ak.Array) -> ak.Array:
    """Per-event mask: at least one final-state e or mu with pT > 20 GeV and |eta| < 2.5."""
    aid = abs(particles.pid)
    pt = np.hypot(particles.px, particles.py)
    eta = np.arcsinh(particles.pz / np.maximum(pt, 1e-12))
    good = ((aid == 11) | (aid == 13)) & (pt > FILTER_LEPTON_PT) & (abs(eta) < FILTER_LEPTON_ETA)
    return ak.any(good, axis=1)


def overlay_pileup(events: ak.Array, minbias: ak.Array, counts: np.ndarray) -> ak.Array:
    """Append the particles of `counts[i]` minimum-bias events to event i (vertices kept per event)."""
    grouped = ak.unflatten(minbias.particles, counts)
    extra = ak.flatten(grouped, axis=2)
    return ak.with_field(events, ak.concatenate([events.particles, extra], axis=1), "particles")
