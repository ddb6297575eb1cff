"""Reading an ingested dataset in the Spark tasks themselves (pyarrow), by row groups.

The nested EFlow columns are most of the bytes; decoding them in the JVM and converting them to
Arrow for `mapInArrow` cost more than computing the features (docs/performance.md). Here the driver
lists the files and their row groups (Parquet footers only) and packs row groups into pieces; each
task reads its pieces with pyarrow. The label comes from a `label=K` directory (how `ingest` writes
it) or a `label` column; every event gets a row id that is fixed by the dataset itself
(file number in sorted order, row in the file), which breaks ties between identical events.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from topotrigger.errors import InputError
from topotrigger.io import storage
from topotrigger.io.delphes import PIPELINE_COLLECTIONS
from topotrigger.io.provenance import PROVENANCE

ROW_BITS = 36  # rows per file < 6.9e10; file numbers < 1.3e8
# Per event, whether every float of its input objects is finite, as `ingest` writes it. Where a file has
# it, the select pass leaves out the columns that only the particle rows need (`kernels.events.ROW_ONLY`):
# it reads this column to drop the events it would have found non-finite in them. Files without it
# (ingested before it existed, or made by other tools) are read and checked whole.
FINITE = "finite"


@dataclass(frozen=True)
class Piece:
    uri: str                     # the dataset's root, for the file system
    path: str                    # the file, as the file system names it
    file_index: int
    label: int | None            # None: the file has a label column
    row_groups: tuple[int, ...]
    first_rows: tuple[int, ...]  # the row in the file where each of those row groups starts
    finite: bool = False         # the file has the FINITE column


def check_schema(schema: pa.Schema, has_label_dir: bool, where: str) -> None:
    """One line naming every input column the features need and the dataset lacks."""
    missing = [] if has_label_dir or "label" in schema.names else ["label"]
    if "sample" not in schema.names:
        missing.append("sample")
    for collection, fields in PIPELINE_COLLECTIONS.items():
        if collection not in schema.names:
            missing.append(collection)
            continue
        kind = schema.field(collection).type
        inner = kind.value_type if pa.types.is_list(kind) or pa.types.is_large_list(kind) else None
        names = {inner.field(i).name for i in range(inner.num_fields)} if inner is not None and pa.types.is_struct(inner) else set()
        missing += [f"{collection}.{f}" for f in fields if f not in names]
    if missing:
        raise InputError(f"{where} lacks input columns: {', '.join(missing)}")


def plan(uri: str, target_bytes: int = 32 * 1024 * 1024) -> list[Piece]:
    """Pieces of about `target_bytes` (uncompressed) of whole row groups, in file order."""
    fs, files = storage.partitioned_files(uri)
    pieces: list[Piece] = []
    for index, (path, keys) in enumerate(files):
        try:
            meta = pq.ParquetFile(path, filesystem=fs).metadata
        except Exception as exc:
            raise InputError(f"{path} is not a Parquet file ({str(exc).splitlines()[0][:200]})") from None
        label = int(keys["label"]) if keys.get("label") is not None else None
        schema = meta.schema.to_arrow_schema()
        if index == 0:
            check_schema(schema, label is not None, uri)
        finite = FINITE in schema.names
        groups: list[int] = []
        starts: list[int] = []
        row, size = 0, 0
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            if groups and size + group.total_byte_size > target_bytes:
                pieces.append(Piece(uri, path, index, label, tuple(groups), tuple(starts), finite))
                groups, starts, size = [], [], 0
            groups.append(g)
            starts.append(row)
            size += group.total_byte_size
            row += group.num_rows
        if groups:
            pieces.append(Piece(uri, path, index, label, tuple(groups), tuple(starts), finite))
    return pieces


def read(piece: Piece, batch_rows: int = 10_000, inputs: Mapping[str, Sequence[str]] = PIPELINE_COLLECTIONS,
         carry: bool = True) -> Iterator[pa.RecordBatch]:
    """The piece's events: the `inputs` collections (those fields alone: the others are not decoded), rid
    and, with `carry`, label, sample, their provenance and, where the file has it, FINITE."""
    fs, _ = storage.resolve(piece.uri)
    file = pq.ParquetFile(piece.path, filesystem=fs)
    present = set(file.schema_arrow.names)
    kept = [f.name for f in PROVENANCE if f.name in present] if carry else []
    leaves = [file.schema.column(i).path for i in range(len(file.schema))]
    nested = [path for path in leaves if path.split(".")[0] in inputs and path.split(".")[-1] in inputs[path.split(".")[0]]]
    flag = [FINITE] if carry and piece.finite else []
    columns = nested + (["sample", *kept, *flag] + (["label"] if piece.label is None else []) if carry else [])
    try:
        for group, first in zip(piece.row_groups, piece.first_rows):
            row = first
            for batch in file.iter_batches(batch_size=batch_rows, row_groups=[group], columns=columns):
                n = batch.num_rows
                rid = (np.int64(piece.file_index) << ROW_BITS) + np.arange(row, row + n, dtype=np.int64)
                row += n
                if not carry:
                    yield pa.RecordBatch.from_arrays([*(batch.column(c) for c in inputs), pa.array(rid)], [*inputs, "rid"])
                    continue
                label = batch.column("label").cast(pa.int32()) if piece.label is None else pa.array(np.full(n, piece.label, np.int32))
                origin = [batch.column(f.name).cast(f.type) if f.name in kept else pa.nulls(n, f.type) for f in PROVENANCE]
                yield pa.RecordBatch.from_arrays(
                    [*(batch.column(c) for c in inputs), batch.column("sample"), label, pa.array(rid), *origin,
                     *(batch.column(c) for c in flag)], [*inputs, "sample", "label", "rid", *PROVENANCE.names, *flag])
    except (pa.ArrowInvalid, OSError, KeyError) as exc:
        raise InputError(f"{piece.path}: unreadable ({str(exc).splitlines()[0][:200]})") from None
