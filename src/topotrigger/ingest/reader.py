"""Reading entry ranges of ROOT files (TTree or RNTuple) into Arrow record batches, no Spark involved.

Only the branches of the column plan are decompressed; collections become list<struct> Arrow
arrays, and lists of numbers list arrays, built from flat buffers (no per-row Python).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import awkward as ak
import numpy as np
import pyarrow as pa

from topotrigger.errors import InputError
from topotrigger.ingest.schema import Column, is_number, number_list_element
from topotrigger.io.delphes import branch_keys, leaf_names, missing_branch_message, read_branches, resolve
from topotrigger.io.provenance import PROVENANCE
from topotrigger.io.storage import redact


def open_tree(path: str, tree: str) -> tuple[Any, Any]:
    """(file, tree) or InputError with one line naming the file and what is wrong with it."""
    import uproot

    try:
        handle = uproot.open(path)
    except FileNotFoundError:
        raise InputError(f"{redact(path)}: file not found") from None
    except Exception as exc:  # uproot raises many kinds for corrupt or non-ROOT bytes
        raise InputError(f"{redact(path)}: not a readable ROOT file ({_reason(exc)})") from None
    try:
        obj = handle[tree]
    except Exception as exc:
        names = ", ".join(k.split(";")[0] for k in handle.keys(recursive=False)) or "none"
        handle.close()
        if isinstance(exc, KeyError):
            raise InputError(f"{redact(path)}: no tree {tree!r} (objects in the file: {names})") from None
        raise InputError(f"{redact(path)}: tree {tree!r} is unreadable ({_reason(exc)})") from None
    if not hasattr(obj, "num_entries"):
        handle.close()
        raise InputError(f"{redact(path)}: {tree!r} is not a TTree or RNTuple")
    return handle, obj


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def is_rntuple(tree: Any) -> bool:
    return not hasattr(tree, "branches")


def resolve_columns(tree: Any, columns: list[Column], path: str) -> dict[str, dict[str, str] | str]:
    """Each column's branch names in this file (collections through their naming variants and aliases)."""
    resolved: dict[str, dict[str, str] | str] = {}
    leaves = set(leaf_names(tree))
    for column in columns:
        if column.is_collection and column.sources and all(b in leaves for b in column.sources):
            resolved[column.name] = dict(zip((f for f, _ in column.fields), column.sources))
        elif column.is_collection:  # another file of the input, or a plan from a schema: naming variants
            resolved[column.name] = resolve(tree, column.name, [f for f, _ in column.fields], redact(path), leaves)[1]
        else:
            source = column.source or column.name
            if source not in leaves:
                raise InputError(missing_branch_message(source, leaves, redact(path)))
            resolved[column.name] = source
    return resolved


_SIGNED = {"uint8": "int16", "uint16": "int32", "uint32": "int64", "uint64": "int64"}


def _target(dtype: str) -> str:
    return _SIGNED.get(dtype, dtype)


def _numbers(array: ak.Array, dtype: str) -> np.ndarray:
    return np.asarray(ak.to_numpy(array), dtype=np.dtype(_target(dtype)).newbyteorder("="))


def _offsets(array: ak.Array) -> np.ndarray:
    """int32 offsets from 0 of a list per entry, from its lengths."""
    counts = ak.to_numpy(ak.num(array, axis=1))
    offsets = np.zeros(len(counts) + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    return offsets


def _lists(array: ak.Array, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """(int32 offsets from 0, numbers) of a list of numbers per entry, from awkward's buffers when
    uproot hands them over as offsets + content (no per-entry work, no copy of the numbers)."""
    layout = array.layout
    if isinstance(layout, ak.contents.ListOffsetArray) and isinstance(layout.content, ak.contents.NumpyArray):
        offsets = np.asarray(layout.offsets.data)
        numbers = np.asarray(layout.content.data)[offsets[0]:offsets[-1]]
        offsets = (offsets - offsets[0]).astype(np.int32)
    else:
        offsets = _offsets(array)
        numbers = ak.to_numpy(ak.flatten(array, axis=None))
    return offsets, np.asarray(numbers, dtype=np.dtype(_target(dtype)).newbyteorder("="))


# A number or a list of numbers per entry, none of which can be missing, takes the flat-buffer path. An
# RNTuple may hold `?float` or `var * ?float`, and a plan made from a Spark schema does not tell: those
# go through `ak.to_arrow`, which keeps their nulls (numpy would fill them in).
def _plain_numbers(array: ak.Array) -> bool:
    return isinstance(array.type.content, ak.types.NumpyType)


def _plain_lists(array: ak.Array) -> bool:
    t = array.type.content
    return isinstance(t, (ak.types.ListType, ak.types.RegularType)) and isinstance(t.content, ak.types.NumpyType)


def _arrow(array: ak.Array) -> pa.Array:
    """Any other type: awkward's own conversion (the caller casts to the declared type)."""
    out = ak.to_arrow(array, extensionarray=False, list_to32=True, string_to32=True, bytestring_to32=True)
    return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out


def to_record_batch(chunk: dict[str, Any], columns: list[Column]) -> pa.RecordBatch:
    """Arrow batch from per-column arrays: collections as {field: jagged array}, scalars as arrays.

    Numbers and lists of numbers go through flat buffers (no per-row work); other types through
    `ak.to_arrow`.
    """
    arrays = []
    for column in columns:
        value = chunk[column.name]
        if column.is_collection:
            offsets, children = None, []
            for f, t in column.fields:
                if is_number(t) and _plain_lists(value[f]):
                    own, numbers = _lists(value[f], t)
                    child = pa.array(numbers)
                else:
                    own = _offsets(value[f])
                    child = _arrow(ak.flatten(value[f], axis=1))
                if offsets is None:
                    offsets = own
                elif not np.array_equal(own, offsets):  # fields of one collection must have one length per entry
                    raise InputError(f"the fields of {column.name} ({column.fields[0][0]}, {f}) differ in length "
                                     "in some entries: read them as separate columns")
                children.append(child)
            assert offsets is not None
            struct = pa.StructArray.from_arrays(children, [f for f, _ in column.fields])
            arrays.append(pa.ListArray.from_arrays(pa.array(offsets), struct))
        elif is_number(column.dtype or "float64") and _plain_numbers(value):
            arrays.append(pa.array(_numbers(value, column.dtype or "float64")))
        elif (element := number_list_element(column.dtype or "")) and _plain_lists(value):
            offsets, numbers = _lists(value, element)
            arrays.append(pa.ListArray.from_arrays(pa.array(offsets), pa.array(numbers)))
        else:
            arrays.append(_arrow(value))
    return pa.RecordBatch.from_arrays(arrays, [c.name for c in columns])


def share(entries: int, part: int, parts: int) -> tuple[int, int]:
    """Entries [start, stop) of share `part` of `parts` equal shares of a file's entries."""
    return entries * part // parts, entries * (part + 1) // parts


# The event number's branch: Delphes (one Event per entry), NanoAOD.
_EVENT_NUMBER = ("Event.Number", "event")


def _event_numbers(value: ak.Array | None, n: int) -> pa.Array:
    if value is None:
        return pa.nulls(n, pa.int64())
    if value.ndim == 2:  # Delphes: a collection of one Event per entry
        value = ak.fill_none(ak.firsts(value), -1)
    return pa.array(np.asarray(ak.to_numpy(value)).astype(np.int64))


def read_range(path: str, tree_name: str, columns: list[Column], start: int, stop: int,
               step: int = 50_000, part: tuple[int, int] | None = None,
               opened: Callable[[int], None] | None = None, provenance: bool = False) -> Iterator[pa.RecordBatch]:
    """Record batches of entries [start, stop) of one file (or of share `part` = (i, k) of its entries),
    `step` entries at a time; `opened` is told the file's entry count once it is open. With
    `provenance`, each batch ends with the `PROVENANCE` columns: the file, the entry in it and the
    event number the file records (null when it has none)."""
    handle, tree = open_tree(path, tree_name)
    with handle:
        resolved = resolve_columns(tree, columns, path)
        entries = int(tree.num_entries)
        if opened is not None:
            opened(entries)
        if part is not None:
            start, stop = share(entries, *part)
        stop = min(stop, entries)
        branches = sorted({b for r in resolved.values() for b in (r.values() if isinstance(r, dict) else [r])})
        # The event number, if the file records one, is read in the same call as the columns.
        number = next((n for n in _EVENT_NUMBER if n in leaf_names(tree)), None) if provenance else None
        keys = branch_keys(tree, branches + ([number] if number else []))
        where = pa.scalar(redact(path), pa.string())
        for lo in range(start, stop, step):
            hi = min(stop, lo + step)
            try:
                raw = read_branches(tree, keys, lo, hi)
            except Exception as exc:
                raise InputError(f"{redact(path)}: entries {lo}-{hi} are unreadable ({_reason(exc)})") from None
            chunk = {name: ({f: raw[b] for f, b in r.items()} if isinstance(r, dict) else raw[r])
                     for name, r in resolved.items()}
            batch = to_record_batch(chunk, columns)
            if provenance:
                origin = [pa.repeat(where, hi - lo), pa.array(np.arange(lo, hi, dtype=np.int64)),
                          _event_numbers(raw[number] if number else None, hi - lo)]
                batch = pa.RecordBatch.from_arrays([*batch.columns, *origin], [*batch.schema.names, *PROVENANCE.names])
            yield batch


def read_slices(slices: list[dict[str, Any]], tree_name: str, columns: list[Column], step: int = 50_000,
                on_bad_file: str = "stop", seen: dict[str, int] | None = None,
                bad: dict[str, str] | None = None, provenance: bool = False) -> Iterator[pa.RecordBatch]:
    """Batches of a partition's slices (dicts of `plan.Slice`). A bad file raises InputError with "stop";
    with "skip" its reason goes to `bad` and none of its rows are yielded (each slice is read whole
    before it is yielded, so a file that breaks half-way leaves nothing behind). `seen` gets each
    opened file's entry count."""
    for s in slices:
        part = (s["part"], s["parts"]) if s.get("parts") else None
        path = s["path"]

        def opened(entries: int, path: str = path) -> None:
            if seen is not None:
                seen[path] = entries

        batches = read_range(path, tree_name, columns, s.get("start", 0), s.get("stop", 0), step, part, opened,
                             provenance)
        if on_bad_file == "stop":
            yield from batches
            continue
        try:
            whole = list(batches)
        except InputError as exc:
            if bad is not None:
                bad[path] = str(exc)
            continue
        yield from whole
