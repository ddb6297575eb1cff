"""Validation observables and histograms of generated files (per class PNGs), optionally overlaid with a
real Delphes file's per-object spectra (`generate --reference FILE`)."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from topotrigger._optional import require
from topotrigger.errors import InputError
from topotrigger.features.kernels import definitions as d
from topotrigger.io.atomic import atomic_path
from topotrigger.io.delphes import read_collections

HT_JET_PT, HT_JET_ETA = 30.0, 2.6
ISOLATION_CONE = 0.3
# The feature thresholds of the study: tracks pT > 0.5, photons and neutral hadrons ET > 1 GeV.
THRESHOLDS = {"EFlowTrack": ("PT", d.ISO_TRACK_MIN_PT), "EFlowPhoton": ("ET", d.ISO_CALO_MIN_ET),
              "EFlowNeutralHadron": ("ET", d.ISO_CALO_MIN_ET)}


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
    counts = {}
    for name, (field, cut) in THRESHOLDS.items():
        short = name.removeprefix("EFlow")
        counts[f"n_{short}"] = ak.to_numpy(ak.num(events[name]))
        counts[f"n_{short}_thr"] = ak.to_numpy(ak.sum(events[name][field] > cut, axis=1))
    has = ak.to_numpy(~ak.is_none(lep))
    iso = np.full(len(events), np.nan)
    if has.any():
        iso[has] = ak.to_numpy(relative_isolation(events[has], lep[has]))
    return counts | {
        "lepton_iso": iso,
        "lepton_pt": ak.to_numpy(ak.fill_none(lep.PT, np.nan)),
        "met": ak.to_numpy(met.MET),
        "mt": ak.to_numpy(ak.fill_none(mt, np.nan)),
        "ht": ak.to_numpy(ak.sum(jets.PT, axis=1)),
        "n_jets": ak.to_numpy(ak.num(jets)),
        "n_bjets": ak.to_numpy(ak.sum(jets.BTag > 0, axis=1)),
        "n_eflow": ak.to_numpy(ak.num(events.EFlowTrack) + ak.num(events.EFlowPhoton) + ak.num(events.EFlowNeutralHadron)),
    }


def relative_isolation(events: ak.Array, lep: ak.Array) -> ak.Array:
    """Σ of the thresholded EFlow objects' pT/ET within ΔR < 0.3 of the lepton, its own track excluded,
    over its pT (the study's PF isolation, the three sums together)."""
    total = 0
    for name, (field, cut) in THRESHOLDS.items():
        c = events[name]
        dphi = (c.Phi - lep.Phi + np.pi) % (2 * np.pi) - np.pi
        dr = np.hypot(c.Eta - lep.Eta, dphi)
        total = total + ak.sum(ak.where((dr < ISOLATION_CONE) & (dr > 1e-4) & (c[field] > cut), c[field], 0.0), axis=1)
    return total / lep.PT


def spectra(events: ak.Array) -> dict[str, np.ndarray]:
    """Every EFlow object's pT or ET, per collection, flat."""
    return {name: ak.to_numpy(ak.flatten(events[name][field])) for name, (field, _) in THRESHOLDS.items()}


def reference_spectra(path: Path | str, tree: str = "Delphes") -> dict[str, np.ndarray]:
    """The same spectra from a real Delphes file (its EFlow branches)."""
    try:
        with uproot.open(path) as f:
            t = f[tree]
            return {name: ak.to_numpy(ak.flatten(t[f"{name}.{field}"].array())) for name, (field, _) in THRESHOLDS.items()}
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"reference file {path}: no Delphes EFlow branches readable ({str(exc).splitlines()[0][:200]})") from None


def read_events(paths: list[Path]) -> ak.Array:
    parts = []
    for path in paths:
        with uproot.open(path) as f:
            parts.append(read_collections(f["Delphes"], file=str(path)))
    return ak.concatenate(parts) if parts else ak.Array([])


_PLOTS = (("lepton_pt", "leading lepton $p_T$ [GeV]", (0, 200)), ("met", "MET [GeV]", (0, 250)),
          ("mt", "$M_T$ [GeV]", (0, 200)), ("ht", "$H_T$ [GeV]", (0, 800)),
          ("n_jets", "jets", (-0.5, 10.5)), ("n_bjets", "b-tagged jets", (-0.5, 5.5)),
          ("lepton_iso", "lepton relative isolation (ΔR < 0.3)", (0, 2)))
_COUNTS = (("Track", "tracks", 600), ("Photon", "photons", 600), ("NeutralHadron", "neutral hadrons", 400))


def plot_class(process: str, values: dict[str, np.ndarray], path: Path, objects: dict[str, np.ndarray] | None = None,
               reference: dict[str, np.ndarray] | None = None) -> None:
    """Event observables, EFlow multiplicities (all, and above the feature thresholds) and, with `objects`,
    the per-object spectra, normalised, over those of a `reference` file when one is given."""
    matplotlib = require("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 5, figsize=(20, 10.5))
    flat = list(axes.flat)
    for ax, (key, label, limits) in zip(flat, _PLOTS):
        data = values[key][np.isfinite(values[key])]
        bins = np.arange(limits[0], limits[1] + 1) if key.startswith("n_") else 40
        ax.hist(np.clip(data, *limits), bins=bins, range=limits, histtype="step", linewidth=1.5)
        ax.set_xlabel(label)
        ax.set_ylabel("events")
    for ax, (short, label, top) in zip(flat[len(_PLOTS):], _COUNTS):
        for suffix, text in (("", "all"), ("_thr", "above threshold")):
            data = values[f"n_{short}{suffix}"]
            ax.hist(np.clip(data, 0, top), bins=40, range=(0, top), histtype="step", linewidth=1.5,
                    label=f"{text} (mean {data.mean():.0f})" if len(data) else text)
        ax.set_xlabel(f"{label} per event")
        ax.legend(fontsize=8)
    start = len(_PLOTS) + len(_COUNTS)
    for ax, (name, (field, cut)) in zip(flat[start:], THRESHOLDS.items()):
        if objects is None:
            ax.axis("off")
            continue
        bins = np.logspace(-2, 3, 51)
        ax.hist(np.clip(objects[name], 1e-2, 999), bins=bins, histtype="step", density=True, linewidth=1.5, label=process)
        if reference is not None:
            ax.hist(np.clip(reference[name], 1e-2, 999), bins=bins, histtype="step", density=True, linewidth=1.5,
                    ls="--", label="reference file")
        ax.axvline(cut, color="grey", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"{name} {field} [GeV]")
        ax.legend(fontsize=8)
    for ax in flat[start + len(THRESHOLDS):]:
        ax.axis("off")
    fig.suptitle(f"{process}: {len(values['met'])} generated events")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)
