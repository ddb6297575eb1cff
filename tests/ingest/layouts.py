"""Small files in the layouts real ROOT files use, written with uproot; each returns what it wrote."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import uproot

JETS = ak.Array([[{"PT": 30.0, "Eta": 1.0}], [], [{"PT": 5.0, "Eta": -1.0}, {"PT": 7.0, "Eta": 0.5}]])


def delphes_with_counters(path: Path) -> dict:
    """Real Delphes: an int branch `Jet` next to `Jet.PT` (there the split object's top branch holds the
    count), `Jet_size`, and a dotted scalar name."""
    smk = np.array([11, 12, 13], dtype="int32")
    with uproot.recreate(path) as f:
        # uproot cannot name a counter like the collection, so the collection is written under `Jet_`.
        tree = f.mktree("Delphes", {"Jet": "int32", "Jet_": JETS.type, "xTrigDecisionAux.smk": "int32"},
                        field_name=lambda o, i: f"{o[:-1]}.{i}", counter_name=lambda c: f"{c[:-1]}_size")
        tree.extend({"Jet": ak.to_numpy(ak.num(JETS)).astype("int32"), "Jet_": JETS, "xTrigDecisionAux.smk": smk})
    return {"Jet": JETS, "xTrigDecisionAux.smk": smk}


def nanoaod(path: Path) -> dict:
    """CMS NanoAOD: `nMuon` counts `Muon_pt`, `Muon_eta`; unsigned scalars; a bool trigger bit."""
    muons = ak.Array([[{"pt": 25.0, "eta": 0.1}, {"pt": 3.5, "eta": -2.0}], [], [{"pt": 40.0, "eta": 1.2}]])
    run = np.array([1, 1, 2], dtype="uint32")
    event = np.array([2**40, 7, 9], dtype="uint64")
    bit = np.array([True, False, True])
    with uproot.recreate(path) as f:
        tree = f.mktree("Events", {"run": "uint32", "event": "uint64", "HLT_IsoMu24": "bool", "Muon": muons.type},
                        field_name=lambda o, i: f"{o}_{i}", counter_name=lambda c: f"n{c}")
        tree.extend({"run": run, "event": event, "HLT_IsoMu24": bit, "Muon": muons})
    return {"Muon": muons, "run": run, "event": event, "HLT_IsoMu24": bit}


def plain_jagged(path: Path) -> dict:
    """Jagged branches that belong to no collection: `Jet_Px` (counter `nJet_Px`) and `hits`."""
    px = ak.Array([[1.0, 2.0], [], [3.0]])
    hits = ak.Array([[1], [2, 3], []])
    with uproot.recreate(path) as f:
        tree = f.mktree("T", {"Jet_Px": "var * float32", "hits": "var * int16"}, counter_name=lambda c: f"n{c}")
        tree.extend({"Jet_Px": px, "hits": hits})
    return {"Jet_Px": px, "hits": hits}


def rntuple_unusual(path: Path) -> dict:
    """An RNTuple with a list of numbers, nested lists, strings, a record and a list of records."""
    data = {
        "x": np.arange(3.0),
        "hits": ak.Array([[1.0], [], [2.0, 3.0]]),
        "nested": ak.Array([[[1.0], [2.0, 3.0]], [], [[4.0]]]),
        "name": ak.Array(["a", "bb", "c"]),
        "rec": ak.zip({"a": np.arange(3), "b": np.arange(3.0)}),
        "Jet": JETS,
    }
    with uproot.recreate(path) as f:
        f["R"] = data
    return data


def rntuple_optional(path: Path) -> dict:
    """An RNTuple whose values may be missing: `?float`, `var * ?float`, a record with an optional
    field, and a collection (counter `nJet`) with an optional field next to a plain one."""
    data = {
        "nJet": ak.Array([1, 0, 1]),
        "Jet_PT": ak.Array([[30.0], [], [5.0]]),
        "Jet_q": ak.Array([[1.0], [], [None]]),
        "opt": ak.Array([[1.0, None], [], [2.0]]),
        "sopt": ak.Array([1.0, None, 3.0]),
        "rec": ak.Array([{"a": 1.0, "b": None}, {"a": 2.0, "b": 1}, {"a": 3.0, "b": 2}]),
    }
    with uproot.recreate(path) as f:
        f["R"] = data
    return data
