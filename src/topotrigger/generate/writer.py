"""Delphes-named TTrees through uproot (`EFlowTrack.PT`, counters `EFlowTrack_size`).

`file["name"] = ...` would write an RNTuple; `mktree` with these naming hooks writes the TTree
layout that real Delphes files have, which every ROOT-era tool reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import awkward as ak
import uproot

from topotrigger.io.atomic import atomic_path


def write_tree(path: Path, chunks: Iterable[dict[str, ak.Array]], tree: str = "Delphes") -> int:
    """Write `chunks` (collection name -> jagged records) as one TTree, atomically; returns entries."""
    entries = 0
    with atomic_path(path) as tmp, uproot.recreate(tmp, compression=uproot.ZSTD(1)) as out:
        ttree = None
        for chunk in chunks:
            if ttree is None:
                ttree = out.mktree(
                    tree,
                    {name: array.type for name, array in chunk.items()},
                    field_name=lambda outer, inner: f"{outer}.{inner}",
                    counter_name=lambda counted: f"{counted}_size",
                )
            ttree.extend(chunk)
            entries += len(next(iter(chunk.values())))
    return entries
