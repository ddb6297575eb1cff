from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot


def write_delphes_like(path: Path, n: int, seed: int = 0, muon: str = "MuonTight", rntuple: bool = False,
                       values: dict[tuple[str, str, int], float] | None = None) -> dict:
    """A small Delphes-like file with known content; returns the arrays written. `values`: (collection,
    field, event) -> the value of the event's first object there."""
    rng = np.random.default_rng(seed)

    def coll(fields: dict[str, str], mean: float) -> ak.Array:
        counts = rng.poisson(mean, n)
        total = int(counts.sum())
        cols = {}
        for name, dtype in fields.items():
            values = rng.normal(size=total) * 10 if dtype.startswith("float") else rng.integers(-3, 4, total)
            cols[name] = values.astype(dtype)
        return ak.unflatten(ak.zip(cols), counts)

    data = {
        "EFlowTrack": coll({"PT": "float32", "Eta": "float32", "Phi": "float32", "PID": "int32", "Charge": "int32",
                            "X": "float32", "Y": "float32", "Z": "float32"}, 20),
        "EFlowPhoton": coll({"ET": "float32", "Eta": "float32", "Phi": "float32"}, 10),
        "EFlowNeutralHadron": coll({"ET": "float32", "Eta": "float32", "Phi": "float32"}, 5),
        "Electron": coll({"PT": "float32", "Eta": "float32", "Phi": "float32", "Charge": "int32"}, 1),
        muon: coll({"PT": "float32", "Eta": "float32", "Phi": "float32", "Charge": "int32"}, 1),
        "Jet": coll({"PT": "float32", "Eta": "float32", "Phi": "float32", "Mass": "float32", "BTag": "uint32"}, 3),
        "MissingET": ak.unflatten(ak.zip({"MET": rng.random(n).astype("float32"), "Phi": rng.random(n).astype("float32")}),
                                  np.ones(n, dtype=np.int64)),
    }
    for (name, field, event), value in (values or {}).items():
        column = data[name][field]
        flat = ak.to_numpy(ak.flatten(column)).copy()
        flat[int(np.sum(ak.to_numpy(ak.num(column))[:event]))] = value
        data[name] = ak.with_field(data[name], ak.unflatten(flat, ak.num(column)), field)
    with uproot.recreate(path) as f:
        if rntuple:
            f["Delphes"] = data
        else:
            tree = f.mktree("Delphes", {k: v.type for k, v in data.items()},
                            field_name=lambda o, i: f"{o}.{i}", counter_name=lambda c: f"{c}_size")
            if n:
                tree.extend(data)
    return data


@pytest.fixture
def class_dirs(tmp_path: Path) -> Path:
    """RAW/{qcd,ttbar,wjets}/*.root with 7, 11 and 5 + 6 events."""
    raw = tmp_path / "raw"
    for i, (sample, sizes) in enumerate({"qcd": [7], "ttbar": [11], "wjets": [5, 6]}.items()):
        (raw / sample).mkdir(parents=True)
        for j, n in enumerate(sizes):
            write_delphes_like(raw / sample / f"{sample}_{j}.root", n, seed=10 * i + j)
    return raw


def write_with_corrupt_basket(path: Path, n: int = 30, baskets: int = 3, seed: int = 1) -> None:
    """A file that opens and reads its first basket, then fails: the last EFlowTrack.PT basket's key is
    overwritten (what a bad disk block or an interrupted copy does)."""
    data = write_delphes_like(path.with_suffix(".tmp"), n, seed=seed)
    path.with_suffix(".tmp").unlink()
    size = n // baskets
    with uproot.recreate(path) as f:
        tree = f.mktree("Delphes", {k: v.type for k, v in data.items()},
                        field_name=lambda o, i: f"{o}.{i}", counter_name=lambda c: f"{c}_size")
        for i in range(baskets):
            tree.extend({k: v[i * size:(i + 1) * size] for k, v in data.items()})
    seek = int(uproot.open(path)["Delphes"]["EFlowTrack.PT"].member("fBasketSeek")[baskets - 1])
    raw = bytearray(path.read_bytes())
    raw[seek:seek + 40] = b"\xff" * 40
    path.write_bytes(bytes(raw))
