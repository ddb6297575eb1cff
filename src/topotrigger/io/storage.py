"""The storage layer every stage uses: paths and URIs to file systems, dataset discovery, staged outputs.

- `resolve(uri)` is the one place a path or URI becomes (pyarrow file system, path in it): local
  paths and `file://`, `s3://` / `s3a://`, `hdfs://`, `gs://` through pyarrow's own clients, and any
  other fsspec protocol (`root://` for XRootD, `https://`) through fsspec behind pyarrow's interface.
- `parquet_files(uri)` lists a Parquet dataset with `pyarrow.dataset` (hive partitions; names that
  start with `_` or `.` are skipped below the dataset's root only, so data under `~/.cache` is found).
- `staged_output(uri, ...)` writes a directory under a temporary sibling name and renames it into
  place when the block succeeds; on any failure (Ctrl-C included) the temporary is removed, and a
  later run removes temporaries left by a killed one. `overwrite` replaces only an output this
  project wrote (it holds the stage's manifest); anything else is refused.

Nothing here imports pyspark: a Spark session is only handed in to wait for cancelled tasks.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.fs as pafs

from topotrigger.errors import InputError, MissingInputError, OutputExistsError, OutputPathError

if TYPE_CHECKING:
    import pyarrow.dataset as pads
    from pyspark.sql import SparkSession

# pyarrow's own clients; every other protocol goes through fsspec.
_ARROW_PROTOCOLS = ("s3", "hdfs", "viewfs", "gs", "gcs", "abfs", "abfss")
IGNORED_PREFIXES = ("_", ".")


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def absolute(uri: str) -> str:
    """Local paths made absolute (executors may run elsewhere); URIs unchanged (s3a:// is kept for Spark)."""
    if is_remote(uri):
        return uri
    return os.path.abspath(os.path.expanduser(uri.removeprefix("file://")))


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """The file system holding `uri` and the path in it."""
    if not is_remote(uri):
        return pafs.LocalFileSystem(), absolute(uri)
    if uri.startswith("s3a://"):  # Hadoop's name for S3 (what Spark's side of the same path uses)
        uri = "s3://" + uri[len("s3a://"):]
    protocol = uri.split("://", 1)[0]
    if protocol in _ARROW_PROTOCOLS:
        fs, path = pafs.FileSystem.from_uri(uri)
        return fs, path
    import fsspec

    try:
        spec, path = fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as exc:
        raise InputError(f"cannot open {redact(uri)}: {exc}") from None
    return pafs.PyFileSystem(pafs.FSSpecHandler(spec)), path


def redact(uri: str) -> str:
    """The URI without any user:password@ part, for messages and manifests."""
    import re

    return re.sub(r"(://)[^/@]*@", r"\1", uri)


def join(uri: str, *parts: str) -> str:
    return "/".join([uri.rstrip("/"), *parts])


def kind(uri: str) -> pafs.FileType:
    fs, path = resolve(uri)
    return fs.get_file_info(path).type


def exists(uri: str) -> bool:
    return bool(kind(uri) != pafs.FileType.NotFound)


def read_text(uri: str) -> str:
    fs, path = resolve(uri)
    with fs.open_input_stream(path) as stream:
        return bytes(stream.read()).decode()


def read_json(uri: str) -> Any:
    return json.loads(read_text(uri))


def write_text(uri: str, text: str) -> None:
    """Write a small file; inside a staged output, atomicity comes from the directory's rename."""
    fs, path = resolve(uri)
    with fs.open_output_stream(path) as stream:
        stream.write(text.encode())


def write_json(uri: str, data: Any) -> None:
    write_text(uri, json.dumps(data, indent=2, default=str) + "\n")  # in the order written: cut flows are ordered


def delete(uri: str) -> None:
    fs, path = resolve(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.Directory:
        fs.delete_dir(path)
    elif info.type == pafs.FileType.File:
        fs.delete_file(path)


def dataset(uri: str) -> pads.Dataset:
    """A Parquet dataset (a file or a directory with hive partitions such as `label=0/`)."""
    # Imported here: pyarrow.dataset imports pandas (≈ 0.2 s), which every Python worker that reads
    # ROOT files through this module would otherwise pay once, and the read-path planner at each query.
    import pyarrow.dataset as pads

    fs, path = resolve(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise MissingInputError(f"input not found: {redact(uri)}")
    try:
        return pads.dataset(path, filesystem=fs, format="parquet", partitioning="hive",
                            ignore_prefixes=list(IGNORED_PREFIXES))
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{redact(uri)} is not a Parquet dataset ({str(exc).splitlines()[0][:200]})") from None


def parquet_files(uri: str) -> tuple[pafs.FileSystem, list[str]]:
    """The data files of a Parquet dataset, sorted; InputError when there are none."""
    fs, parts = partitioned_files(uri)
    return fs, [path for path, _ in parts]


def parquet_files_or_none(uri: str) -> list[str]:
    """The data files of a Parquet dataset, or [] when it holds none."""
    try:
        return parquet_files(uri)[1]
    except InputError:
        return []


def partitioned_files(uri: str) -> tuple[pafs.FileSystem, list[tuple[str, dict[str, Any]]]]:
    """The data files of a Parquet dataset, sorted, each with its hive partition values ({"label": 0})."""
    import pyarrow.dataset as pads

    fs, _ = resolve(uri)
    found = [(fragment.path, pads.get_partition_keys(fragment.partition_expression))
             for fragment in dataset(uri).get_fragments() if fragment.path.endswith(".parquet")]
    if not found:
        raise InputError(f"no Parquet files in {redact(uri)}")
    return fs, sorted(found, key=lambda item: item[0])


def local_directory(path: str | os.PathLike[str], what: str = "output") -> str:
    """A local directory for outputs written in place (model directories, tuning trials), created if
    needed; one line (OutputPathError) when it cannot be: a file in the way, a read-only place, a URI."""
    text = os.fspath(path)
    if is_remote(text):
        raise OutputPathError(f"the {what} directory must be a local (or mounted shared) path, not {redact(text)}")
    text = absolute(text)
    try:
        os.makedirs(text, exist_ok=True)
    except OSError as exc:
        raise OutputPathError(f"cannot write the {what} directory {text}: {_reason(exc)}") from None
    if not os.access(text, os.W_OK):
        raise OutputPathError(f"cannot write the {what} directory {text}: permission denied")
    return text


# ---- staged outputs ---------------------------------------------------------------------------

_TMP = ".tmp-"


def _temporary_name(path: str) -> str:
    parent, name = path.rstrip("/").rsplit("/", 1) if "/" in path.rstrip("/") else ("", path)
    tag = f"{_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    return f"{parent}/.{name}{_TMP}{tag}"


def _host() -> str:
    return socket.gethostname().replace("-", "_")  # '-' separates the fields of a temporary's name


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_orphans(uri: str) -> list[str]:
    """Delete the temporaries of `uri` left by killed runs on this host (their process is gone)."""
    fs, path = resolve(uri)
    if "/" not in path.rstrip("/"):
        return []
    parent, name = path.rstrip("/").rsplit("/", 1)
    try:
        siblings = fs.get_file_info(pafs.FileSelector(parent or "/", allow_not_found=True))
    except OSError:
        return []
    host = _host()
    removed = []
    for info in siblings:
        base = info.path.rsplit("/", 1)[-1]
        if not base.startswith(f".{name}{_TMP}"):
            continue
        fields = base[len(f".{name}{_TMP}"):].split("-")
        if len(fields) != 3 or fields[0] != host or not fields[1].isdigit() or _alive(int(fields[1])):
            continue
        if info.type == pafs.FileType.Directory:
            fs.delete_dir(info.path)
        else:
            fs.delete_file(info.path)
        removed.append(info.path)
    return removed


@dataclass
class Staged:
    """The temporary directory of an output being written (`uri`, in the output's file system)."""

    uri: str
    final: str

    def path(self, *parts: str) -> str:
        return join(self.uri, *parts)


def check_output(uri: str, overwrite: bool, marker: str) -> None:
    """Refuse an existing output unless `overwrite`, and even then unless this project wrote it."""
    found = kind(uri)
    if found == pafs.FileType.NotFound:
        return
    shown = redact(uri)
    if found != pafs.FileType.Directory:
        raise OutputExistsError(f"output {shown} exists and is a file, not an output of topotrigger; "
                                "remove it or choose another --out")
    if not overwrite:
        raise OutputExistsError(f"output {shown} exists; pass --overwrite to replace it")
    if not exists(join(uri, marker)):
        raise OutputExistsError(f"output {shown} exists but was not written by topotrigger (no {marker} in it); "
                                "refusing to replace it: remove it or choose another --out")


def _settle(spark: SparkSession | None, wait_s: float = 30.0) -> None:
    """When a job fails, Spark cancels its other tasks but does not wait for them: wait until no stage
    is active, so that no task writes into the temporary directory after it was removed."""
    from topotrigger.runtime.tasks import is_connect

    if spark is None or is_connect(spark):  # Spark Connect exposes no stage tracker: nothing to wait on
        return
    _classic_wait_for_stages(spark, wait_s)


def _classic_wait_for_stages(spark: SparkSession, wait_s: float) -> None:
    tracker = spark.sparkContext.statusTracker()
    deadline = time.monotonic() + wait_s
    while tracker.getActiveStageIds() and time.monotonic() < deadline:
        time.sleep(0.1)


def _discard(fs: pafs.FileSystem, path: str, spark: SparkSession | None) -> None:
    _settle(spark)
    for _ in range(5):
        if fs.get_file_info(path).type == pafs.FileType.NotFound:
            return
        try:
            fs.delete_dir(path)
        except FileNotFoundError:
            return
        time.sleep(0.2)


def _move_directory(fs: pafs.FileSystem, src: str, dst: str) -> None:
    try:
        fs.move(src, dst)
    except (NotImplementedError, pa.ArrowNotImplementedError, OSError):
        if isinstance(fs, pafs.LocalFileSystem):
            raise
        # Object stores have no directory rename: copy every object, then delete the source.
        selector = pafs.FileSelector(src, recursive=True)
        for info in fs.get_file_info(selector):
            if info.type == pafs.FileType.File:
                fs.copy_file(info.path, dst + info.path[len(src):])
        fs.delete_dir(src)


@contextmanager
def staged_output(uri: str, overwrite: bool = False, marker: str = "_SUCCESS",
                  spark: SparkSession | None = None, local: bool = False) -> Iterator[Staged]:
    """Write a directory output under a temporary sibling; rename it onto `uri` when the block succeeds.

    `marker` is the file (a manifest) that marks a finished output of this stage: the block must
    write it, and only an existing output that holds it may be replaced (`overwrite`). With `local`,
    the block gets a local directory even for a remote `uri` (for writers of local files only, such
    as plotting); it is uploaded next to `uri` before the rename.
    """
    uri = absolute(uri)
    check_output(uri, overwrite, marker)
    fs, path = resolve(uri)
    remove_orphans(uri)
    tmp = _temporary_name(path)
    try:
        fs.create_dir(tmp, recursive=True)
    except (PermissionError, FileExistsError, NotADirectoryError, OSError) as exc:
        raise OutputPathError(f"cannot write the output {redact(uri)}: {_reason(exc)}") from None
    tmp_uri = tmp if not is_remote(uri) else uri[: len(uri) - len(path)] + tmp
    scratch = None
    if local and is_remote(uri):
        import tempfile

        scratch = tempfile.mkdtemp(prefix="topotrigger-")
    staged = Staged(scratch or tmp_uri, uri)
    try:
        yield staged
        if scratch is not None:
            pafs.copy_files(scratch, tmp, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)
        if fs.get_file_info(join(tmp, marker)).type == pafs.FileType.NotFound:
            raise RuntimeError(f"the stage did not write {marker} into its output")
        old = None
        if fs.get_file_info(path).type != pafs.FileType.NotFound:
            old = _temporary_name(path).replace(_TMP, ".old-")
            _move_directory(fs, path, old)
        _move_directory(fs, tmp, path)
        if old is not None:
            fs.delete_dir(old)
    except BaseException:
        _discard(fs, tmp, spark)
        raise
    finally:
        if scratch is not None:
            import shutil

            shutil.rmtree(scratch, ignore_errors=True)


def _reason(exc: BaseException) -> str:
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0] if str(exc) else ""
    return (text or type(exc).__name__).rstrip(".").lower()
