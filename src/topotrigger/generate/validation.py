"""Validation observables and histograms of generated files (per class PNGs)."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from topotrigger._optional import require
from topotrigger.io.atomic import atomic_path
from topotrigger.io.delphes import read_collections

HT_JET_PT, HT_JET_ETA = 30.0, 2.6


def leading_lepton(events: ak.Array) -> ak.Array:
    """The highest-pT electron or muon per event (None if there is none)."""
    leptons = ak.concatenate([events.Electron, events.MuonTight], axis=1)
    best = ak.argmax(leptons.PT, axis=1, keepdims=True)
    return ak.firsts(leptons[best])


def observables(events: ak.Array) -> dict[str, np.ndarray]:
    """Per-event quantities for validation: lepton pT, MET, MT, HT, jet and b-jet counts, EFlow sizes."""
    lep = leading_lepton(events)
    met = ak.firsts(events.MissingET)
    dphi = lep.Phi - met.Phi
    mt = np.sqrt(np.maximum(2 * lep.PT * met.MET * (1 - np.cos(dphi)), 0.0))
    jets = events.Jet[(events.Jet.PT > HT_JET_PT) & (abs(events.Jet.Eta) < HT_JET_ETA)]
    return {
        "lepton_pt": ak.to_numpy(ak.fill_none(lep.PT, np.nan)),
        "met": ak.to_numpy(met.MET),
        "mt": ak.to_numpy(ak.fill_none(mt, np.nan)),
        "ht": ak.to_numpy(ak.sum(jets.PT, axis=1)),
        "n_jets": ak.to_numpy(ak.num(jets)),
        "n_bjets": ak.to_numpy(ak.sum(jets.BTag > 0, axis=1)),
        "n_eflow": ak.to_numpy(ak.num(events.EFlowTrack) + ak.num(events.EFlowPhoton) + ak.num(events.EFlowNeutralHadron)),
    }


def read_events(paths: list[Path]) -> ak.Array:
    parts = []
    for path in paths:
        with uproot.open(path) as f:
            parts.append(read_collections(f["Delphes"], file=str(path)))
    return ak.concatenate(parts) if parts else ak.Array([])


_PLOTS = (("lepton_pt", "leading lepton $p_T$ [GeV]", (0, 200)), ("met", "MET [GeV]", (0, 200)),
          ("mt", "$M_T$ [GeV]", (0, 200)), ("ht", "$H_T$ [GeV]", (0, 800)),
          ("n_jets", "jets", (-0.5, 10.5)), ("n_bjets", "b-tagged jets", (-0.5, 5.5)),
          ("n_eflow", "EFlow objects", (0, 800)))


def plot_class(process: str, values: dict[str, np.ndarray], path: Path) -> None:
    matplotlib = require("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 4, figsize=(16, 7))
    for ax, (key, label, limits) in zip(axes.flat, _PLOTS):
        data = values[key][np.isfinite(values[key])]
        integer = key.startswith("n_") and key != "n_eflow"
        bins = np.arange(limits[0], limits[1] + 1) if integer else 40
        ax.hist(data, bins=bins, range=limits, histtype="step", linewidth=1.5)
        ax.set_xlabel(label)
        ax.set_ylabel("events")
    axes.flat[-1].axis("off")
    fig.suptitle(f"{process}: {len(values['met'])} generated events")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)
