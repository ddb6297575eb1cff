"""Expanding inputs (files, directories, globs, lists; local or remote) into a sorted file list.

Remote URLs (`root://`, `s3://`, `https://`, `hdfs://`) go through fsspec, which reads credentials
from the usual environment variables; URLs are shown without their user-info part.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable

from topotrigger.errors import InputError, MissingInputError
from topotrigger.io.storage import is_remote, redact

ROOT_SUFFIXES = (".root",)
_GLOB = re.compile(r"[*?\[]")


def expand(inputs: Iterable[str], recursive: bool = True) -> list[str]:
    """All ROOT files named by `inputs`, each path once, sorted within each input."""
    files: list[str] = []
    for item in inputs:
        found = _expand_remote(item, recursive) if is_remote(item) else _expand_local(item.removeprefix("file://"), recursive)
        files.extend(f for f in found if f not in files)
    return files


def _expand_local(path: str, recursive: bool) -> list[str]:
    if _GLOB.search(path):
        matches = sorted(glob.glob(path, recursive=True))
        if not matches:
            raise MissingInputError(f"no file matches {path}")
        return [m for match in matches for m in (_expand_local(match, recursive) if os.path.isdir(match) else [match])]
    if os.path.isdir(path):
        if recursive:
            found = sorted(os.path.join(d, f) for d, _, names in os.walk(path) for f in names if f.endswith(ROOT_SUFFIXES))
        else:
            found = sorted(os.path.join(path, f) for f in os.listdir(path) if f.endswith(ROOT_SUFFIXES))
        if not found:
            raise InputError(f"no .root files in directory {path}")
        return [os.path.abspath(f) for f in found]
    if not os.path.exists(path):
        raise MissingInputError(f"input not found: {path}")
    return [os.path.abspath(path)]


def _expand_remote(url: str, recursive: bool) -> list[str]:
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise InputError(f"cannot open {redact(url)}: {exc}") from None
    protocol, rest = url.split("://", 1)
    prefix = f"{protocol}://"
    host = rest.split("/", 1)[0] if protocol in ("root", "xroot") else ""

    def to_url(p: str) -> str:
        if protocol in ("root", "xroot"):
            return f"{protocol}://{host}/{p if p.startswith('/') else '/' + p}"
        return fs.unstrip_protocol(p) if hasattr(fs, "unstrip_protocol") else prefix + p

    if _GLOB.search(root):
        paths = sorted(fs.glob(root))
    elif fs.isdir(root):
        paths = sorted(fs.find(root) if recursive else fs.ls(root, detail=False))
        paths = [p for p in paths if p.endswith(ROOT_SUFFIXES)]
        if not paths:
            raise InputError(f"no .root files in directory {redact(url)}")
    elif fs.exists(root):
        return [url]
    else:
        raise MissingInputError(f"input not found: {redact(url)}")
    return [to_url(p) for p in paths]
