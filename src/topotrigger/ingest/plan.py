"""Planning a read: pack entry ranges of files into partitions.

Many small files share a partition; a big file is cut into several, so every task reads about
`target_bytes` of uncompressed data (or `entries` entries when that is given). Two ways to know the
sizes: `scan` opens every file (exact entries and uncompressed bytes, ~0.1-0.2 s of Python per TTree),
`plan_by_size` needs only the sizes on disk and one file's compression ratio, and leaves each task to
turn "part i of k of this file" into entries once it has the file open anyway.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from topotrigger.errors import InputError
from topotrigger.ingest.reader import is_rntuple, open_tree, resolve_columns
from topotrigger.ingest.schema import Column
from topotrigger.io.storage import is_remote, redact, resolve
from topotrigger.runtime.tasks import bytes_per_partition


@dataclass(frozen=True)
class FileInfo:
    path: str
    entries: int
    bytes_per_entry: float   # uncompressed, of the planned columns
    size: int                # on disk


@dataclass(frozen=True)
class Slice:
    """Entries [start, stop) of a file; with parts > 0, the part-th of `parts` equal shares of its entries."""
    path: str
    start: int
    stop: int
    part: int = 0
    parts: int = 0


@dataclass
class Partition:
    slices: list[Slice] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"slices": [asdict(s) for s in self.slices]}


def scan_file(path: str, tree: str, columns: list[Column]) -> FileInfo:
    handle, obj = open_tree(path, tree)
    with handle:
        resolved = resolve_columns(obj, columns, path)
        entries = int(obj.num_entries)
        size = _size(path, handle)
        if is_rntuple(obj) or entries == 0:
            per_entry = 4.0 * size / max(entries, 1)  # no per-field sizes in uproot's RNTuple: assume 4x compression
        else:
            branches = {b for r in resolved.values() for b in (r.values() if isinstance(r, dict) else [r])}
            total = sum(obj[b].uncompressed_bytes for b in branches)
            per_entry = total / entries
    return FileInfo(path, entries, per_entry, size)


def _size(path: str, handle: Any) -> int:
    if not is_remote(path):
        return os.path.getsize(path)
    try:
        return int(handle.file.source.num_bytes)
    except Exception:  # some remote sources cannot tell without a full read
        return -1


def try_scan_file(path: str, tree: str, columns: list[Column]) -> FileInfo | str:
    """The file's FileInfo, or the one-line reason it cannot be read."""
    try:
        return scan_file(path, tree, columns)
    except InputError as exc:
        return str(exc)


def sort_out(paths: list[str], results: list[FileInfo | str], on_bad_file: str) -> tuple[list[FileInfo], list[dict[str, str]]]:
    """Split scan results into good files and bad ones; with "stop" the first bad file raises."""
    good, bad = [], []
    for path, result in zip(paths, results):
        if isinstance(result, FileInfo):
            good.append(result)
        elif on_bad_file == "stop":
            raise InputError(result)
        else:
            bad.append({"path": redact(path), "reason": result})
    return good, bad


def scan(paths: list[str], tree: str, columns: list[Column], on_bad_file: str = "stop") -> tuple[list[FileInfo], list[dict[str, str]]]:
    """FileInfo of every readable file, in this process; bad files raise (stop) or are listed (skip)."""
    return sort_out(paths, [try_scan_file(p, tree, columns) for p in paths], on_bad_file)


def make_partitions(files: list[FileInfo], target_bytes: int, entries: int | None = None,
                    min_partitions: int = 1) -> list[Partition]:
    """Greedy packing in file order: each partition holds about `target_bytes` (or `entries` entries),
    less where that fills `min_partitions` task slots (`bytes_per_partition`)."""
    target_bytes = bytes_per_partition(target_bytes, sum(f.entries * max(f.bytes_per_entry, 1.0) for f in files), min_partitions)
    budget = float(entries) if entries else float(target_bytes)
    parts: list[Partition] = []
    current: list[Slice] = []
    used = 0.0
    for info in files:
        cost = 1.0 if entries else max(info.bytes_per_entry, 1.0)
        start = 0
        while start < info.entries:
            take = min(info.entries - start, int((budget - used) // cost))
            if take <= 0:
                if current:
                    parts.append(Partition(current))
                    current, used = [], 0.0
                    continue
                take = 1  # a single entry bigger than the budget still needs a partition
            current.append(Slice(info.path, start, start + take))
            used += take * cost
            start += take
    if current:
        parts.append(Partition(current))
    return parts


def file_size(path: str) -> int:
    """Bytes on disk (-1 if the storage cannot tell cheaply)."""
    try:
        fs, inner = resolve(path)
        return int(fs.get_file_info(inner).size)
    except Exception:  # sizing is only for planning: unknown means one partition for the file
        return -1


# Entries per partition at most, whatever the bytes: files of tiny rows (a few scalars per entry) that
# compress well would otherwise put hundreds of millions of entries in one task.
MAX_ENTRIES = 1_000_000


def plan_by_size(sizes: dict[str, int], expansion: float, target_bytes: int, entries_per_byte: float = 0.0,
                 max_entries: int = MAX_ENTRIES, min_partitions: int = 1, total_bytes: float | None = None) -> list[Partition]:
    """Partitions from sizes on disk: a file expands to `expansion` × its size when decompressed and holds
    about `entries_per_byte` × its size entries (both measured on one file); small files share a
    partition, a big one (in bytes or in entries) is split into equal shares of its entries. A file
    whose size the storage cannot tell gets a partition of its own. Partitions shrink below
    `target_bytes` where that fills `min_partitions` task slots with `total_bytes` (default: these
    files') of uncompressed data (`bytes_per_partition`)."""
    if total_bytes is None:
        total_bytes = sum(max(size, 0) for size in sizes.values()) * expansion
    target_bytes = bytes_per_partition(target_bytes, total_bytes, min_partitions)
    parts: list[Partition] = []
    current: list[Slice] = []
    used = used_entries = 0.0
    for path, size in sizes.items():
        estimate = max(size, 1) * expansion if size >= 0 else float(target_bytes)
        entries = max(size, 0) * entries_per_byte
        if estimate >= target_bytes or entries > max_entries:
            shares = max(1, math.ceil(estimate / target_bytes), math.ceil(entries / max_entries))
            parts += [Partition([Slice(path, 0, 0, i, shares)]) for i in range(shares)]
            continue
        if current and (used + estimate > target_bytes or used_entries + entries > max_entries):
            parts.append(Partition(current))
            current, used, used_entries = [], 0.0, 0.0
        current.append(Slice(path, 0, 0, 0, 1))
        used += estimate
        used_entries += entries
    if current:
        parts.append(Partition(current))
    return parts


def entries_per_byte(info: FileInfo) -> float:
    """Entries per byte on disk of a scanned file (0 when it cannot tell)."""
    return info.entries / info.size if info.size > 0 else 0.0


def expansion_of(info: FileInfo) -> float:
    """Uncompressed bytes of the planned columns per byte on disk (4 when the file cannot tell)."""
    if info.size <= 0 or info.entries == 0:
        return 4.0
    return info.entries * info.bytes_per_entry / info.size


def first_readable(files: list[str], tree: str, columns: list[Column], on_bad_file: str = "stop") -> FileInfo:
    """The scan of the first file that opens (the one the plan measures); bad ones before it raise
    with "stop" and are passed over with "skip" (the tasks list them when they meet them)."""
    reasons = []
    for path in files:
        result = try_scan_file(path, tree, columns)
        if isinstance(result, FileInfo):
            return result
        if on_bad_file == "stop":
            raise InputError(result)
        reasons.append(result)
    raise InputError("no readable input file: " + "; ".join(reasons[:3]))
