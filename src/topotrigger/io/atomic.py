"""Atomic outputs: write to a temporary name in the same directory, then rename.

A reader never sees a half-written file under its final name, so a crash loses only the file that
was being written, and a rerun can trust every final name it finds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: Path | str, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")  # in the order written: cut flows are ordered


def read_json(path: Path | str) -> Any:
    return json.loads(Path(path).read_text())


def remove_stale_temporaries(directory: Path) -> int:
    """Delete temporaries left by a crashed writer; returns how many."""
    stale = list(directory.glob(".*.tmp-*"))
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)
