"""The vectorised basket path reads exactly what uproot reads, or declines."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from topotrigger.io import baskets
from topotrigger.io.delphes import PIPELINE_COLLECTIONS, branch_keys, read_branches


def _same(got: ak.Array, branch: object, lo: int, hi: int) -> None:
    want = branch.array(entry_start=lo, entry_stop=hi, library="ak")  # type: ignore[attr-defined]
    assert len(got) == len(want)
    assert ak.array_equal(got, want)
    assert str(got.type) == str(want.type)  # same numeric type, lists stay lists


def _ranges(n: int) -> list[tuple[int, int]]:
    return [(0, n), (1, n - 1), (n // 2, n // 2 + 1), (n // 3, n // 3), (n - 1, n + 10)]


def test_real_delphes_branches_equal_uproot(shared_data: Path) -> None:
    with uproot.open(shared_data / "delphes.root") as handle:
        tree = handle["Delphes"]
        source = baskets.Bytes(tree.file)
        keys = branch_keys(tree, [k.rsplit("/", 1)[-1] for k in tree.keys(recursive=True)])
        taken = set()
        for name, key in keys.items():
            for lo, hi in _ranges(int(tree.num_entries)):
                got = baskets.read(tree[key], lo, hi, source)
                if got is not None:
                    taken.add(name)
                    _same(got, tree[key], lo, hi)
        # Every branch the pipeline reads goes through the vectorised path (else it would buy nothing).
        wanted = {f"{c}.{f}" for c, fields in PIPELINE_COLLECTIONS.items() for f in fields}
        wanted = {w if w in keys else w.replace("MuonTight", "Muon") for w in wanted}
        assert wanted <= taken
        assert "Event.Number" in taken and "Jet" in taken  # an int64 list and the int counter


@pytest.mark.parametrize("compression", [None, uproot.ZLIB(1), uproot.LZ4(1), uproot.ZSTD(1), uproot.LZMA(1)])
def test_many_baskets_any_compression_equal_uproot(tmp_path: Path, compression: object) -> None:
    rng = np.random.default_rng(3)
    path = tmp_path / "t.root"
    with uproot.recreate(path, compression=compression) as out:
        out.mktree("T", {"Jet.PT": "var * float32", "Jet.BTag": "var * uint32", "Number": "int64", "W": "float64"},
                   counter_name=lambda c: "Jet", field_name=lambda c, f: f"{c}.{f}" if c else f)
        for size in (5, 0, 17, 1, 40):  # one basket per extend, with an empty one
            counts = rng.integers(0, 6, size)
            if size:
                counts[0] = 0  # entries without jets
            out["T"].extend({
                "Jet.PT": ak.unflatten(rng.random(counts.sum()).astype(np.float32), counts),
                "Jet.BTag": ak.unflatten(rng.integers(0, 2**32 - 1, counts.sum(), dtype=np.uint32), counts),
                "Number": rng.integers(-2**40, 2**40, size), "W": rng.normal(size=size)})
    with uproot.open(path) as handle:
        tree = handle["T"]
        assert tree["Jet.PT"].num_baskets >= 4
        for remote in (False, True):
            source = baskets.Bytes(tree.file)
            if remote:  # the path for root://, s3://: uproot's own source hands the bytes over
                source.map = None
            for name in ("Jet", "Jet.PT", "Jet.BTag", "Number", "W"):
                for lo, hi in _ranges(int(tree.num_entries)):
                    got = baskets.read(tree[name], lo, hi, source)
                    assert got is not None, name
                    _same(got, tree[name], lo, hi)


def test_other_interpretations_are_left_to_uproot(tmp_path: Path) -> None:
    path = tmp_path / "t.root"
    with uproot.recreate(path) as out:
        out.mktree("T", {"vec3": np.dtype((np.float32, (3,))), "x": np.int32})
        out["T"].extend({"vec3": np.arange(12, dtype=np.float32).reshape(4, 3), "x": np.arange(4, dtype=np.int32)})
    with uproot.open(path) as handle:
        tree = handle["T"]
        assert baskets.layout_of(tree["vec3"]) is None  # fixed-size arrays per entry
        # read_branches still reads both, each the way that can.
        got = read_branches(tree, {"vec3": "vec3", "x": "x"}, 1, 3)
        assert ak.to_list(got["vec3"]) == [[3, 4, 5], [6, 7, 8]]
        assert ak.to_list(got["x"]) == [1, 2]
