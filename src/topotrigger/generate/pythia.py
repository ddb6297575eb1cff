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

    def __init__(self, settings: list[str], forced: tuple[int, ...] = ()) -> None:
        """`forced`: hadrons whose decay tables the settings restrict; each decay of one weighs the event
        by the open share of its table (Pythia's cross-section includes the open share of resonance
        decays, W and top, but not of hadron decays)."""
        pythia8mc = require("pythia8mc")
        self._pythia = pythia8mc.Pythia("", False)
        # Pythia's warnings ("weight above unity", "maximum increased") are its own bookkeeping, printed
        # from the executors into the middle of the user's log; failed events are skipped and counted.
        for line in ["Print:errors = off", *settings]:
            if not self._pythia.readString(line):
                raise ValueError(f"Pythia rejected the setting {line!r}")
        if not self._pythia.init():
            raise RuntimeError("Pythia initialisation failed")
        self._charge: dict[int, float] = {}
        self._visible: dict[int, bool] = {}
        self.open_fractions = {pid: self._open_fraction(pid) for pid in forced}

    def _open_fraction(self, pid: int) -> float:
        """The share of `pid`'s decay width left on: Pythia picks among the open channels in proportion to
        their branching ratios, normalised over the whole table."""
        entry = self._pythia.particleData.particleDataEntryPtr(pid)
        channels = [entry.channel(i) for i in range(entry.sizeChannels())]
        total = sum(c.bRatio() for c in channels)
        return sum(c.bRatio() for c in channels if c.onMode() > 0) / total if total > 0 else 1.0

    def cross_section(self) -> tuple[float, float]:
        info = self._pythia.infoPython()
        return float(info.sigmaGen()), float(info.sigmaErr())

    def batch(self, n: int) -> ak.Array:
        """`n` events (fewer if Pythia fails some): particles and heavy-flavour hadrons per event.

        Fields per event: `particles` (final state: pid, charge, visible, px, py, pz, e, vx, vy, vz
        in GeV and mm), `hadrons` (b and c hadrons: flavour 5 or 4, pt, eta, phi), `weight` (the
        generator's weight times the forced-decay weight), `id1`, `id2`.
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
        generator = (np.asarray(events.info.weights[:, 0], np.float64) if ak.max(ak.num(events.info.weights), initial=0)
                     else np.ones(len(prt), np.float64))
        return ak.zip(
            {
                "particles": particles,
                "hadrons": heavy_hadrons(prt),
                "weight": generator * forced_decay_weight(prt, self.open_fractions),
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


def forced_decay_weight(prt: ak.Array, open_fractions: dict[int, float]) -> np.ndarray:
    """Per event, the product of the open fractions of the forced hadrons that decayed. A neutral B that
    oscillates appears twice (B⁰ → B̄⁰, then the decay): only the decay counts."""
    n = len(prt)
    if not open_fractions:
        return np.ones(n, np.float64)
    forced = np.array(sorted(open_fractions), np.int64)
    log_fraction = np.log(np.array([open_fractions[p] for p in forced.tolist()], np.float64))
    aid = np.abs(np.asarray(ak.flatten(prt.id), np.int64))
    first_daughter = np.abs(np.asarray(ak.flatten(prt.id[ak.where(prt.daughter1 > 0, prt.daughter1, 0)]), np.int64))
    decayed = (np.asarray(ak.flatten(prt.status)) < 0) & np.isin(aid, forced) & ~np.isin(first_daughter, forced)
    factor = np.zeros(len(aid), np.float64)
    factor[decayed] = log_fraction[np.searchsorted(forced, aid[decayed])]
    event = np.repeat(np.arange(n), np.asarray(ak.num(prt.id)))
    return np.exp(np.bincount(event, weights=factor, minlength=n))


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
