"""The effective cross-section of each ingested sample, when `generate` made its files.

`generate` leaves `manifest.json` beside each class's files with the cross-section of the events it
wrote (σ of the hard process × filter efficiency × the mean forced-decay weight, in pb). A sample
gets that figure only when all its files are in one such directory and the manifest lists each of
them: the events ingested are then a random subset of the events the figure describes. Files from
elsewhere get none; `evaluate --cross-section` supplies them.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from topotrigger.io import storage


def from_generator(by_sample: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
    """{sample: {"pb", "err_pb", "source"}} for the samples whose files `generate` wrote."""
    found: dict[str, dict[str, Any]] = {}
    for sample, paths in by_sample.items():
        directories = {str(PurePosixPath(p).parent) for p in paths}
        if len(directories) != 1:
            continue
        manifest_path = storage.join(directories.pop(), "manifest.json")
        try:
            manifest = storage.read_json(manifest_path) if storage.exists(manifest_path) else None
        except (OSError, ValueError):
            manifest = None
        if not manifest or manifest.get("stage") != "generate" or "effective_cross_section_pb" not in manifest.get("summary", {}):
            continue
        listed = {f.get("file") for f in manifest.get("files", [])}
        if not all(PurePosixPath(p).name in listed for p in paths):
            continue
        summary = manifest["summary"]
        found[sample] = {"pb": summary["effective_cross_section_pb"], "err_pb": summary.get("effective_cross_section_err_pb"),
                         "source": f"generate manifest {storage.redact(manifest_path)}"}
    return found
