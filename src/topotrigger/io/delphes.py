"""Reading Delphes collections from ROOT trees as awkward records, whatever uproot's naming variant.

Real Delphes files nest split branches (`EFlowTrack/EFlowTrack.PT`), uproot-written ones are flat
(`EFlowTrack.PT`); some writers use `EFlowTrack_PT`. Real files may call the muons `Muon`.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

import awkward as ak

from topotrigger.errors import InputError
from topotrigger.io import baskets

# The collections and fields the pipeline reads downstream (docs/physics.md).
PIPELINE_COLLECTIONS: dict[str, tuple[str, ...]] = {
    "EFlowTrack": ("PT", "Eta", "Phi", "PID", "Charge", "X", "Y", "Z"),
    "EFlowPhoton": ("ET", "Eta", "Phi"),
    "EFlowNeutralHadron": ("ET", "Eta", "Phi"),
    "Electron": ("PT", "Eta", "Phi", "Charge"),
    "MuonTight": ("PT", "Eta", "Phi", "Charge"),
    "Jet": ("PT", "Eta", "Phi", "Mass", "BTag"),
    "MissingET": ("MET", "Phi"),
}

# Name in the pipeline -> other names real files use for it.
ALIASES: dict[str, tuple[str, ...]] = {"MuonTight": ("Muon",)}


def leaf_names(tree: Any) -> list[str]:
    """Every branch/field name as `Collection.Field` (or the bare name of a flat branch)."""
    names = []
    for key in tree.keys(recursive=True):
        names.append(key.rsplit("/", 1)[-1])
    return names


def branch_keys(tree: Any, names: Sequence[str]) -> dict[str, str]:
    """Each branch name's full key (`Jet/Jet.PT`) in a TTree, found in one walk: uproot looks a bare name
    up by walking every branch, per name (a minute for a real Delphes file's 1,100 branches), while a
    full key goes straight down. RNTuple fields are their own keys."""
    if not hasattr(tree, "branches"):
        return {n: n for n in names}
    wanted, found = set(names), {}
    for key in tree.keys(recursive=True):
        leaf = key.rsplit("/", 1)[-1]
        if leaf in wanted and leaf not in found:
            found[leaf] = key
    return found


def read_branches(tree: Any, keys: Mapping[str, str], entry_start: int | None = None,
                  entry_stop: int | None = None) -> dict[str, ak.Array]:
    """{name: array} of the branches (`branch_keys`) of a TTree or the fields of an RNTuple, in one read."""
    if not hasattr(tree, "branches"):  # RNTuple: `C.F` is field F of the record list C
        raw = tree.arrays(filter_name=list(keys.values()), entry_start=entry_start, entry_stop=entry_stop)
        return {n: (raw[k.split(".", 1)[0]][k.split(".", 1)[1]] if "." in k else raw[k]) for n, k in keys.items()}
    start = 0 if entry_start is None else entry_start
    stop = int(tree.num_entries) if entry_stop is None else entry_stop
    source = baskets.Bytes(tree.file)
    out = {}
    for name, key in keys.items():
        array = baskets.read(tree[key], start, stop, source)
        if array is not None:
            out[name] = array
    rest = {n: k for n, k in keys.items() if n not in out}  # what the vectorised path does not read
    if rest:
        raw = tree.arrays(list(rest.values()), entry_start=start, entry_stop=stop, library="ak")
        out |= {n: raw[k] for n, k in rest.items()}
    return out


def resolve(tree: Any, collection: str, fields: Sequence[str], file: str = "",
            available: set[str] | None = None) -> tuple[str, dict[str, str]]:
    """The collection's name in this tree and the branch name of each field.

    Tries `C.F`, then `C_F`, for `collection` and its aliases; raises InputError naming what is
    missing and the closest names in the file.
    """
    available = set(leaf_names(tree)) if available is None else available
    for name in (collection, *ALIASES.get(collection, ())):
        found = {}
        for field in fields:
            for candidate in (f"{name}.{field}", f"{name}_{field}"):
                if candidate in available:
                    found[field] = candidate
                    break
        if len(found) == len(fields):
            return name, found
    missing = [f"{collection}.{f}" for f in fields if f"{collection}.{f}" not in available]
    raise InputError(missing_branch_message(missing[0], available, file))


def missing_branch_message(name: str, available: set[str], file: str = "") -> str:
    """'branch X not found in FILE; closest names in the file: ...' (case-insensitive similarity)."""
    lower = {a.lower(): a for a in sorted(available)}
    close = [lower[c] for c in difflib.get_close_matches(name.lower(), list(lower), n=3, cutoff=0.6)]
    hint = f"; closest names in the file: {', '.join(close)}" if close else ""
    where = f" in {file}" if file else ""
    return f"branch {name} not found{where}{hint}"


def read_collections(
    tree: Any,
    collections: Mapping[str, Sequence[str]] = PIPELINE_COLLECTIONS,
    entry_start: int | None = None,
    entry_stop: int | None = None,
    file: str = "",
) -> ak.Array:
    """Events with one field per collection, each a jagged record of the requested fields."""
    available = set(leaf_names(tree))
    resolved = {c: resolve(tree, c, fields, file, available)[1] for c, fields in collections.items()}
    branches = sorted({b for mapping in resolved.values() for b in mapping.values()})
    arrays = read_branches(tree, branch_keys(tree, branches), entry_start, entry_stop)
    return ak.zip(
        {c: ak.zip({field: arrays[branch] for field, branch in mapping.items()}) for c, mapping in resolved.items()},
        depth_limit=1,
    )
