"""Which ingested samples inherit the cross-section that `generate` recorded beside their files."""

from __future__ import annotations

import json
from pathlib import Path

from topotrigger.ingest.cross_sections import from_generator


def class_dir(root: Path, name: str, files: list[str], stage: str = "generate") -> list[str]:
    d = root / name
    d.mkdir(parents=True)
    for f in files:
        (d / f).write_bytes(b"")
    (d / "manifest.json").write_text(json.dumps({
        "stage": stage, "summary": {"effective_cross_section_pb": 12.5, "effective_cross_section_err_pb": 0.5},
        "files": [{"file": f} for f in files]}))
    return [str(d / f) for f in files]


def test_a_sample_of_generated_files_gets_their_cross_section(tmp_path: Path) -> None:
    ttbar = class_dir(tmp_path, "ttbar", ["ttbar_000.root", "ttbar_001.root"])
    found = from_generator({"ttbar": ttbar[:1]})  # a subset of the files is still a random sample
    assert found["ttbar"]["pb"] == 12.5 and found["ttbar"]["err_pb"] == 0.5
    assert found["ttbar"]["source"].startswith("generate manifest ")


def test_files_the_manifest_does_not_list_or_from_several_directories_get_none(tmp_path: Path) -> None:
    ttbar = class_dir(tmp_path, "ttbar", ["ttbar_000.root"])
    wjets = class_dir(tmp_path, "wjets", ["wjets_000.root"])
    stranger = tmp_path / "ttbar" / "mine.root"
    stranger.write_bytes(b"")
    other = class_dir(tmp_path, "other", ["x.root"], stage="ingest")
    assert from_generator({"mixed": ttbar + wjets, "extra": ttbar + [str(stranger)], "other": other, "none": []}) == {}
