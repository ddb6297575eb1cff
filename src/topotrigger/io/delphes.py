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


def branches_by_name(tree: Any, names: Sequence[str]) -> dict[str, Any]:
    """The TBranch of each name, found in one walk over the tree: uproot's own lookup by name walks every
    branch per name (a minute for a real Delphes file's 1,100 branches)."""
    wanted, found = set(names), {}
    for key, branch in tree.iteritems(recursive=True):
        leaf = key.rsplit("/", 1)[-1]
        if leaf in wanted and leaf not in found:
            found[leaf] = branch
    return found


def read_branches(tree: Any, names: Sequence[str], entry_start: int | None = None,
                  entry_stop: int | None = None) -> dict[str, ak.Array]:
    """Branches of a TTree or fields of an RNTuple by their names in the file (never parsed as expressions)."""
    if not hasattr(tree, "branches"):  # RNTuple
        raw = tree.arrays(filter_name=list(names), entry_start=entry_start, entry_stop=entry_stop)
        return {n: (raw[n.split(".", 1)[0]][n.split(".", 1)[1]] if "." in n else raw[n]) for n in names}
    return {n: b.array(entry_start=entry_start, entry_stop=entry_stop, library="ak")
            for n, b in branches_by_name(tree, names).items()}


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
    arrays = read_branches(tree, branches, entry_start, entry_stop)
    return ak.zip(
        {c: ak.zip({field: arrays[branch] for field, branch in mapping.items()}) for c, mapping in resolved.items()},
        depth_limit=1,
    )
