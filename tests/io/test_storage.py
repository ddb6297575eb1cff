"""The storage layer: dataset discovery, staged outputs, orphaned temporaries, overwrite policy."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from topotrigger.errors import OutputExistsError, OutputPathError
from topotrigger.io import storage


def _write(path: Path, rows: int = 2) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"a": list(range(rows))}), path)


def test_resolve_and_absolute() -> None:
    fs, path = storage.resolve("relative/dir")
    assert isinstance(fs, pa.fs.LocalFileSystem) and path == os.path.abspath("relative/dir")
    assert storage.absolute("file:///x/y") == "/x/y" and storage.absolute("s3a://b/k") == "s3a://b/k"
    assert storage.redact("root://user:pw@host//a") == "root://host//a"


def test_datasets_under_hidden_directories_are_found(tmp_path: Path) -> None:
    # `_` and `.` names are skipped below the dataset root only: data under ~/.cache is still data.
    root = tmp_path / ".cache" / "_runs" / "features" / "train"
    for part in ("label=0/p.parquet", "label=1/p.parquet", "_attempts/x.parquet", ".hidden/y.parquet"):
        _write(root / part)
    (root / "_SUCCESS").write_text("")
    fs, found = storage.partitioned_files(str(root))
    assert [Path(p).relative_to(root).as_posix() for p, _ in found] == ["label=0/p.parquet", "label=1/p.parquet"]
    assert [keys for _, keys in found] == [{"label": 0}, {"label": 1}]


def test_staged_output_commits_on_success_and_leaves_nothing_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt), storage.staged_output(str(out), marker="manifest.json") as staged:
        storage.write_text(staged.path("part"), "x")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with storage.staged_output(str(out), marker="manifest.json") as staged:
        storage.write_json(staged.path("manifest.json"), {"n": 1})
    assert (out / "manifest.json").is_file() and list(tmp_path.iterdir()) == [out]
    # A block that forgets its manifest never produces a final output.
    with pytest.raises(RuntimeError, match="did not write manifest.json"), \
            storage.staged_output(str(tmp_path / "other"), marker="manifest.json"):
        pass
    assert not (tmp_path / "other").exists()


def test_overwrite_replaces_only_outputs_of_this_project(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    for directory in (ours, theirs):
        directory.mkdir()
        (directory / "keep.txt").write_text("precious")
    (ours / "manifest.json").write_text("{}")
    with pytest.raises(OutputExistsError, match="pass --overwrite"), storage.staged_output(str(ours), marker="manifest.json"):
        pass
    with storage.staged_output(str(ours), overwrite=True, marker="manifest.json") as staged:
        storage.write_json(staged.path("manifest.json"), {})
    assert not (ours / "keep.txt").exists()
    with pytest.raises(OutputExistsError, match="not written by topotrigger"), \
            storage.staged_output(str(theirs), overwrite=True, marker="manifest.json"):
        pass
    assert (theirs / "keep.txt").read_text() == "precious"


def test_unwritable_outputs_are_one_line_errors(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises((OutputPathError, OutputExistsError)) as info, storage.staged_output(str(blocker / "out")):
        pass
    assert "\n" not in str(info.value)
    if os.geteuid() == 0:
        return  # root writes anywhere: the read-only case cannot be made here
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(OutputPathError, match="cannot write the output"), storage.staged_output(str(locked / "out")):
        pass


def test_a_rerun_removes_temporaries_of_killed_runs(tmp_path: Path) -> None:
    out = tmp_path / "out"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = socket.gethostname().replace("-", "_")
    orphan = tmp_path / f".out.tmp-{host}-{int(dead.stdout)}-0123abcd"
    alive = tmp_path / f".out.tmp-{host}-{os.getpid()}-4567abcd"   # a run still going: left alone
    foreign = tmp_path / ".out.tmp-otherhost-1-89abcdef"          # another host: cannot tell, left alone
    for directory in (orphan, alive, foreign):
        directory.mkdir()
    with storage.staged_output(str(out)) as staged:
        storage.write_text(staged.path("_SUCCESS"), "")
    assert not orphan.exists() and alive.exists() and foreign.exists() and out.is_dir()


def test_a_non_local_file_system_through_the_same_calls() -> None:
    """fsspec's in-memory file system stands in for an object store: same resolver, listing and staging."""
    import uuid

    root = f"memory://topotrigger-{uuid.uuid4().hex[:8]}"
    fs, path = storage.resolve(f"{root}/data/label=1/part.parquet")
    assert not isinstance(fs, pa.fs.LocalFileSystem)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as stream:
        pq.write_table(pa.table({"a": [1, 2, 3]}), stream)
    _, found = storage.partitioned_files(f"{root}/data")
    assert [keys for _, keys in found] == [{"label": 1}]
    with storage.staged_output(f"{root}/out", marker="manifest.json") as staged:
        assert staged.uri.startswith("memory://")
        storage.write_json(staged.path("manifest.json"), {"rows": 3})
    assert storage.read_json(f"{root}/out/manifest.json") == {"rows": 3}
    with pytest.raises(OutputExistsError, match="pass --overwrite"), storage.staged_output(f"{root}/out", marker="manifest.json"):
        pass
    # A block that needs local files (plots) gets a local directory, uploaded on success.
    with storage.staged_output(f"{root}/out", overwrite=True, marker="manifest.json", local=True) as staged:
        Path(staged.path("manifest.json")).write_text('{"rows": 4}')
    assert storage.read_json(f"{root}/out/manifest.json") == {"rows": 4}
