"""The `features` stage on Spark: features per piece of the input, cut flow, balance, split, scale, write.

    OUT/train/        Parquet, shuffled      (compact: label, hlf, particles; anchor: HLF_input, GRU_input, encoded_label, label)
    OUT/val/          Parquet, validation events carved from the training share (early stopping, tuning)
    OUT/test/         Parquet, read by `evaluate` only
    OUT/metadata.json feature names, scaler parameters, cut flow per class, counts, seeds, options, versions

1. Spark tasks over the pieces of the ingested dataset (`ingested.py`: whole row groups; several
   pieces per task) read each with pyarrow, select the events and compute their HLF and key (no
   particle lists: most selected events are balanced away), count the cut flow, and write each
   piece's selected events to a file in a temporary `_selected/` (Arrow IPC).
2. Balance and split: the tasks of 1 also count the selected events per class and bucket of the
   hash (its top 16 bits); the bucket that holds each threshold is read back alone (label, hash,
   row id) and sorted in the driver. No pass sorts every selected event.
3. Per piece and its `_selected` file (several per task), the particle lists of its kept events are
   built from a second read of the row groups that hold them (checked against pass 1's selection),
   the events sorted into output partitions (split, shuffling hash modulo the split's partitions),
   and the scaler's moments are summed over the training events it holds; the kept events of
   consecutive pieces (up to MAP_BUFFER_BYTES) go to one Arrow IPC stream file, a record batch per
   partition, whose byte ranges the driver collects.
4. Per output partition (several per task), its record batches are read by byte range, ordered,
   scaled and written (`io.arrow_writer`); the driver checks the rows written against the split counts.

No event passes through the JVM: Spark schedules the tasks, which read and write with pyarrow. Its
own shuffle converted every row to its row format and back, and cost more than the features.

Sampling is by a seeded hash of each event's content (`keys.py`), not by row position, so the same
input and seed give the same datasets whatever the partitioning or the number of executors (identical
events, e.g. from copied files, are told apart by their row id). Undersampling and the train/test split
take exact per-class counts: the k-th smallest (hash, row id) of each class is the threshold.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.fs
import pyarrow.ipc

from topotrigger import __version__
from topotrigger.config import FeaturesConfig
from topotrigger.errors import InputError, MissingInputError, carry_user_errors, user_errors_from_tasks
from topotrigger.features import ingested, layouts
from topotrigger.features.arrow import collections_of, feature_columns, packed, unpacked
from topotrigger.features.kernels import definitions as d
from topotrigger.features.kernels.columns import gather_rows
from topotrigger.features.kernels.events import CAPPED, KERNEL_INPUTS, ROW_ONLY, capped, compute, take_events
from topotrigger.features.keys import event_keys, seeded
from topotrigger.features.scaling import Moments, Scaler
from topotrigger.io import storage
from topotrigger.io.arrow_writer import TaskOutput, commit, prepare, write_empty_parquet
from topotrigger.io.delphes import PIPELINE_COLLECTIONS
from topotrigger.io.manifest import digest
from topotrigger.io.provenance import PROVENANCE, PROVENANCE_DDL
from topotrigger.io.versions import software_versions
from topotrigger.modeldir import SavedScaling
from topotrigger.runtime.spark import schemas
from topotrigger.runtime.tasks import default_parallelism, run_tasks

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

COMPUTED_SCHEMA = f"label int, sample string, key bigint, cut tinyint, hlf array<float>, particles array<{layouts.PARTICLE_STRUCT}>"


@dataclass
class FeaturesResult:
    out: str
    cutflow: dict[str, dict[str, int]]
    counts: dict[str, dict[str, int]]
    seconds: float
    events_in: int
    capped: dict[str, dict[str, int]] = field(default_factory=dict)


Thresholds = dict[int, tuple[int, int] | None]


# ---- functions run on executors (module level, so they pickle by reference) -------------------

def _cast(batch_columns: dict[str, pa.Array], schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(list(batch_columns.values()), list(batch_columns)).cast(schema)


@carry_user_errors
def compute_batches(batches: Iterator[pa.RecordBatch], options: dict[str, bool], schema: pa.Schema,
                    extra: tuple[str, ...] = ()) -> Iterator[pa.RecordBatch]:
    opts = d.FeatureOptions(**options)
    for batch in batches:
        collections = collections_of(batch)
        features = compute(collections, opts)
        labels = batch.column("label").to_numpy(zero_copy_only=False)
        keys = pa.array(event_keys(collections, labels, batch.column("sample")))
        yield _cast({"label": batch.column("label"), "sample": batch.column("sample"), "key": keys,
                     **feature_columns(features), **{name: batch.column(name) for name in extra}}, schema)


# Pass 1 keeps what balancing and splitting need, not the particle lists: those are built in pass 3
# for the events that are kept (about a third of those selected, when the classes are balanced), from
# a second read of their row groups.
SELECTED = pa.schema([("label", pa.int32()), ("sample", pa.string()), ("key", pa.int64()), ("rid", pa.int64()),
                      ("h", pa.int64()), ("s", pa.int64()), ("hlf", pa.binary()), *PROVENANCE])


class IpcOutput:
    """One Arrow IPC file (lz4) of a task attempt under `root`, for what the passes hand on to each
    other: read back whole or by columns, then deleted. Only files the tasks report are read, so a
    failed attempt's file is never used. Nothing is written until the first batch."""

    def __init__(self, root: str, schema: pa.Schema) -> None:
        self.fs, base = storage.resolve(root)
        self.path = f"{base}/{uuid.uuid4().hex}.arrow"
        self.schema = schema
        self.sink: Any = None
        self.writer: Any = None

    def write(self, batch: pa.RecordBatch) -> None:
        if self.writer is None:
            self.sink = self.fs.open_output_stream(self.path)
            self.writer = pa.ipc.new_file(self.sink, self.schema, options=pa.ipc.IpcWriteOptions(compression="lz4"))
        self.writer.write_batch(batch)

    def close(self) -> str | None:
        """The file's path, or None when nothing was written."""
        if self.writer is None:
            return None
        self.writer.close()
        self.sink.close()
        return self.path

    def abort(self) -> None:
        for handle in (self.writer, self.sink):
            if handle is not None:
                with contextlib.suppress(Exception):  # the task is failing anyway; its file is never reported
                    handle.close()


# The kept events with their particle lists (packed), as the map side hands them to the split writes.
PARTITIONED = pa.schema([*SELECTED, ("particles", pa.binary())])


class SegmentOutput(IpcOutput):
    """An Arrow IPC stream file (uncompressed on a local disk) whose record batches are read back one at
    a time from their byte range (`read_segment`), as Spark's shuffle reads its blocks: no footer
    listing every batch is parsed per read, which cost in proportion to the batches in the file."""

    def write(self, batch: pa.RecordBatch) -> tuple[int, int]:  # type: ignore[override]
        """Append `batch`; its (offset, length) in the file (the first one's includes the schema)."""
        if self.writer is None:
            self.sink = self.fs.open_output_stream(self.path)
            # On a local disk lz4 costs more than the bytes it saves (≈ 5 % of the stage for 1.8x the
            # bytes); on remote storage the bytes cost more.
            codec = None if isinstance(self.fs, pyarrow.fs.LocalFileSystem) else "lz4"
            self.writer = pa.ipc.new_stream(self.sink, self.schema, options=pa.ipc.IpcWriteOptions(compression=codec))
        start = self.sink.tell()
        self.writer.write_batch(batch)
        return start, self.sink.tell() - start


def read_segment(fs: Any, path: str, offset: int, length: int) -> pa.RecordBatch:
    """The record batch a `SegmentOutput` wrote at (offset, length) of `path`."""
    with fs.open_input_file(path) as source:
        data = source.read_at(length, offset)
    *_, message = pa.ipc.MessageReader.open_stream(data)  # the first segment starts with the schema
    return pa.ipc.read_record_batch(message, PARTITIONED)


def read_ipc(fs: Any, path: str, columns: list[str] | None = None) -> pa.Table:
    """An `IpcOutput` file, or some of its columns (the others are not decompressed), in one chunk."""
    with fs.open_input_file(path) as source:
        reader = pa.ipc.open_file(source)
        if columns is not None:
            fields = [reader.schema.get_field_index(c) for c in columns]
            reader = pa.ipc.open_file(source, options=pa.ipc.IpcReadOptions(included_fields=fields))
        # One chunk: Arrow's take on a chunked binary column is ~20x slower.
        return reader.read_all().combine_chunks()


@carry_user_errors
def select_task(pieces: Iterator[ingested.Piece], root: str, options: dict[str, bool], seed: int) -> Iterator[dict[str, Any]]:
    """One Spark task over several pieces: per piece, its selected events go to a file under `root` with
    their sampling hash `h` and shuffling hash `s`, its cut flow to the driver. A file per piece, not per
    task: the later passes and the output partitions then do not depend on how pieces were grouped."""
    opts = d.FeatureOptions(**options)
    for piece in pieces:
        yield _select_piece(piece, root, opts, seed)


def _select_piece(piece: ingested.Piece, root: str, opts: d.FeatureOptions, seed: int) -> dict[str, Any]:
    output = IpcOutput(root, SELECTED)
    flow: dict[tuple[int, int], int] = {}
    caps: dict[tuple[int, str], int] = {}
    buckets: list[np.ndarray] = []
    rows = 0
    inputs = _select_inputs(piece)
    try:
        for batch in ingested.read(piece, inputs=inputs):
            collections = collections_of(batch, inputs)
            bad = ~batch.column(ingested.FINITE).fill_null(False).to_numpy(zero_copy_only=False) if piece.finite else None
            features = compute(collections, opts, lists=False, bad_input=bad)
            labels = batch.column("label").to_numpy(zero_copy_only=False)
            codes, n = np.unique(labels.astype(np.int64) * 16 + features.cut, return_counts=True)
            for code, count in zip(codes.tolist(), n.tolist()):
                flow[divmod(code, 16)] = flow.get(divmod(code, 16), 0) + count
            final = np.flatnonzero(features.cut == d.CUT_FINAL)
            if not len(final):
                continue
            for kind, hit in capped(collections).items():
                for label, count in zip(*np.unique(labels[final][hit[final]], return_counts=True)):
                    caps[(int(label), kind)] = caps.get((int(label), kind), 0) + int(count)
            keys = event_keys(collections, labels, batch.column("sample"))[final]
            h = seeded(keys, seed)
            buckets.append(h_bucket_codes(labels[final], h))
            rows += int(features.counts[final].sum())
            output.write(pa.RecordBatch.from_arrays(
                [pa.array(labels[final].astype(np.int32)), batch.column("sample").take(final), pa.array(keys),
                 batch.column("rid").take(final), pa.array(h), pa.array(seeded(keys, seed + 1)),
                 packed(features.hlf[final], np.ones(len(final))),
                 *(batch.column(f.name).take(final) for f in PROVENANCE)], schema=SELECTED))
    except BaseException:
        output.abort()
        raise
    codes, counts = np.unique(np.concatenate(buckets) if buckets else np.zeros(0, np.int64), return_counts=True)
    return {"file": output.close(), "flow": [(label, cut, count) for (label, cut), count in flow.items()],
            "capped": [(label, kind, count) for (label, kind), count in caps.items()],
            "h_buckets": (codes, counts.astype(np.int64)), "particle_rows": rows}


def _select_inputs(piece: ingested.Piece) -> dict[str, tuple[str, ...]]:
    """The columns pass 1 reads: every pipeline column (the event key hashes some the kernel does not
    read, and each is checked for non-finite values) but, where the file says which events hold a
    non-finite value (ingest's FINITE), the track columns no HLF or key needs: those only particle rows
    use, and the charge, which enters nothing (a track's charge is its PID's sign)."""
    if not piece.finite:
        return dict(PIPELINE_COLLECTIONS)
    left_out = ("Charge", *ROW_ONLY["EFlowTrack"])
    return PIPELINE_COLLECTIONS | {"EFlowTrack": tuple(f for f in PIPELINE_COLLECTIONS["EFlowTrack"] if f not in left_out)}


def particle_lists(piece: ingested.Piece, rid: np.ndarray, hlf: np.ndarray, opts: d.FeatureOptions) -> tuple[np.ndarray, np.ndarray]:
    """(rows × 19 float32, rows per event) of the particle lists of the events `rid` of `piece` (any
    order), from a second read of only the row groups that hold them. Each must be selected again with
    the HLF that pass 1 found (`hlf`, packed): an input changed between the passes is an error, never a
    dataset built from two versions of it."""
    if not len(rid):
        return np.zeros((0, d.N_PARTICLE_FEATURES), np.float32), np.zeros(0, np.int32)
    row = rid & ((1 << ingested.ROW_BITS) - 1)
    order = np.argsort(rid, kind="stable")  # one file: rid order is row order
    in_order = rid[order]
    hit = np.unique(np.searchsorted(np.asarray(piece.first_rows), row, side="right") - 1).tolist()
    part = dataclasses.replace(piece, row_groups=tuple(piece.row_groups[i] for i in hit),
                               first_rows=tuple(piece.first_rows[i] for i in hit))
    done, lists, counts = 0, [], []
    # The kernel's columns alone: pass 1 found these events' inputs finite (`non_finite`, or ingest's FINITE).
    for batch in ingested.read(part, inputs=KERNEL_INPUTS, carry=False):
        ids = batch.column("rid").to_numpy()
        here = order[done:np.searchsorted(in_order, ids[-1], side="right")] if len(ids) else order[:0]
        if not len(here):
            continue
        positions = np.searchsorted(ids, rid[here])
        if np.any(positions >= len(ids)) or np.any(ids[np.minimum(positions, len(ids) - 1)] != rid[here]):
            raise InputError(f"{piece.path} changed while the features were built: selected events are missing")
        features = compute(take_events(collections_of(batch, KERNEL_INPUTS), positions), opts)
        if np.any(features.cut != d.CUT_FINAL) or not np.array_equal(features.hlf, hlf[here]):
            raise InputError(f"{piece.path} changed while the features were built: events select differently")
        lists.append(features.particles)
        counts.append(features.counts)
        done += len(here)
    if done != len(rid):
        raise InputError(f"{piece.path} changed while the features were built: selected events are missing")
    flat = np.concatenate(lists) if lists else np.zeros((0, d.N_PARTICLE_FEATURES), np.float32)
    n = np.concatenate(counts) if counts else np.zeros(0, np.int32)
    if np.array_equal(order, np.arange(len(rid))):  # pass 1 wrote its events in row order
        return flat, n
    # Back to the caller's order: event i's rows are those of its place in row order.
    back = np.empty(len(rid), dtype=np.int64)
    back[order] = np.arange(len(rid))
    lengths = n[back].astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(n, dtype=np.int64)])[back]
    take = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths) + np.arange(lengths.sum())
    return flat[take], n[back]


# The split thresholds are found from a histogram of `h` per class (its top bits), made by the select
# tasks, then the few rows of the one bucket that holds each threshold: no sort of the selected events.
H_BUCKET_BITS = 16


def h_bucket_codes(label: np.ndarray, h: np.ndarray) -> np.ndarray:
    """label × 2^16 + the bucket of h (its top 16 bits, signed order kept) per event."""
    bucket = (np.asarray(h, dtype=np.int64) >> (64 - H_BUCKET_BITS)) + (1 << (H_BUCKET_BITS - 1))
    return np.asarray(label, dtype=np.int64) * (1 << H_BUCKET_BITS) + bucket


def bucket_rows_task(paths: Iterator[str], root: str, wanted: list[int]) -> Iterator[np.ndarray]:
    """(label, h, rid) of the selected events whose label-and-bucket code is in `wanted`."""
    fs, _ = storage.resolve(root)
    codes = np.asarray(wanted, dtype=np.int64)
    for path in paths:
        table = read_ipc(fs, path, ["label", "h", "rid"])
        label, h, rid = (table.column(c).to_numpy().astype(np.int64) for c in ("label", "h", "rid"))
        hit = np.isin(h_bucket_codes(label, h), codes)
        if hit.any():
            yield np.stack([label[hit], h[hit], rid[hit]], axis=1)


def _packed_arrays(batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(HLF, particle rows, rows per event, each event's first row) of a batch of packed events."""
    hlf, _ = unpacked(batch.column("hlf"), d.N_HLF)
    particles, counts = unpacked(batch.column("particles"), d.N_PARTICLE_FEATURES)
    return hlf, particles, counts, _starts(counts)


def _starts(counts: np.ndarray) -> np.ndarray:
    """Each event's first row, its events' rows being stored one event after the other."""
    return np.concatenate([[0], np.cumsum(counts, dtype=np.int64)[:-1]]) if len(counts) else np.zeros(0, np.int64)


def _at_or_before(label: np.ndarray, h: np.ndarray, rid: np.ndarray,
                  thresholds: dict[int, tuple[int, int] | None]) -> np.ndarray:
    """Rows at or before their class's (h, rid) threshold (numpy twin of the Spark condition in `features`)."""
    keep = np.zeros(len(label), dtype=bool)
    for lab, t in thresholds.items():
        if t is not None:
            keep |= (label == lab) & ((h < t[0]) | ((h == t[0]) & (rid <= t[1])))
    return keep


def transform_batch(batch: pa.RecordBatch, events: np.ndarray, scaler: dict[str, Any], layout: str,
                    schema: pa.Schema, arrays: tuple[np.ndarray, ...] | None = None) -> pa.RecordBatch:
    """The selected events `events` of `batch` (packed, unscaled), in that order -> the output layout,
    scaled. The particle rows are gathered as they are scaled: the packed column is not taken.
    `arrays`: the batch's `_packed_arrays`, when the caller transforms it in several chunks."""
    scale = Scaler(**scaler)
    hlf, particles, counts, starts = _packed_arrays(batch) if arrays is None else arrays
    labels = batch.column("label").to_numpy(zero_copy_only=False)[events]
    if layout == "anchor":
        rows = gather_rows([(particles, starts[events], counts[events])])
        columns = layouts.anchor(labels, *scale.transform(hlf[events], rows, counts[events]))
    else:
        columns = layouts.compact(labels, *scale.transform_columns(hlf[events], particles, counts[events], starts[events]))
    take = pa.array(events)
    return _cast(columns | {f.name: batch.column(f.name).take(take) for f in PROVENANCE}, schema)


SPLITS = ("train", "val", "test")
# Events per Parquet row group of the output layouts (an anchor event is 801 × 19 floats).
WRITE_ROWS = {"compact": 10_000, "anchor": 500}


def group_bases(partitions: dict[str, int]) -> np.ndarray:
    """The first output-partition number of each split (train, val, test, then the total): the map
    side numbers its groups with it, the driver hands them to the writing tasks."""
    return np.cumsum([0, *(partitions[name] for name in SPLITS)])


def split_of(label: np.ndarray, h: np.ndarray, rid: np.ndarray, cuts: dict[str, Thresholds]) -> np.ndarray:
    """Per selected event: 0 train, 1 val, 2 test, -1 left out by the balancing (`cuts`: the kept,
    held-out (test + val) and test thresholds; each set holds the next by construction)."""
    kept = _at_or_before(label, h, rid, cuts["kept"])
    held = _at_or_before(label, h, rid, cuts["held"])
    test = _at_or_before(label, h, rid, cuts["test"])
    return np.select([kept & test, kept & held, kept], [2, 1, 0], -1).astype(np.int8)


# The map side holds the kept events of consecutive pieces, up to this many bytes, and writes them as
# one file, a record batch per output partition. A file per piece made pieces × partitions batches of
# a few events each (190,000 of 1-2 events at 2 M events), each costing more to write and to find
# again than its events: a cost per event that grew with the data set.
MAP_BUFFER_BYTES = 128 * 1024 * 1024


@carry_user_errors
def partition_task(items: Iterator[tuple[ingested.Piece, str]], root: str, shuffle_root: str, cuts: dict[str, Thresholds],
                   partitions: dict[str, int], moments: tuple[Thresholds, Thresholds] | None,
                   options: dict[str, bool], buffer_bytes: int = MAP_BUFFER_BYTES) -> Iterator[dict[str, Any]]:
    """Map side of the split writes: per piece and its `_selected` file, the particle lists of the kept
    events (`particle_lists`) and, with `moments` = (keep, held out), the moments of the events at or
    before `keep` and after `held out` (the scaler's sample), reported per piece ({"moments"}, in piece
    order); the kept events of consecutive pieces, up to `buffer_bytes`, grouped by (split, output
    partition: the shuffling hash modulo the split's partitions) into one file ({"path", "segments":
    (partition, offset, length) of each record batch}), each partition's events in piece order."""
    fs, _ = storage.resolve(root)
    first = group_bases(partitions)
    opts = d.FeatureOptions(**options)
    held: list[_Held] = []
    size = 0
    for piece, path in items:
        table = read_ipc(fs, path)
        label, h, rid, s = (table.column(c).to_numpy() for c in ("label", "h", "rid", "s"))
        split = split_of(label, h, rid, cuts)
        sample = (_at_or_before(label, h, rid, moments[0]) & ~_at_or_before(label, h, rid, moments[1])
                  if moments is not None else np.zeros(len(label), dtype=bool))
        need = np.flatnonzero((split >= 0) | sample)
        hlf = unpacked(table.column("hlf"), d.N_HLF)[0][need]
        particles, counts = particle_lists(piece, rid[need], hlf, opts)
        starts = _starts(counts)
        split, sample, s = split[need], sample[need], s[need]
        yield {"moments": Moments.of_events(hlf[sample], particles, starts[sample], counts[sample]) if sample.any() else None}
        rows = np.flatnonzero(split >= 0)
        if not len(rows):
            continue
        sizes = np.array([partitions[name] for name in SPLITS], dtype=np.uint64)
        group = first[split[rows]] + (s[rows].view(np.uint64) % sizes[split[rows]]).astype(np.int64)
        kept = rows[np.argsort(group, kind="stable")]
        held.append(_Held(table.take(pa.array(need[kept])), particles, starts[kept], counts[kept], np.sort(group, kind="stable")))
        size += held[-1].table.nbytes + int(counts[kept].sum()) * particles.itemsize * d.N_PARTICLE_FEATURES
        if size >= buffer_bytes:
            yield _write_map(held, shuffle_root)
            held, size = [], 0
    if held:
        yield _write_map(held, shuffle_root)


@dataclass
class _Held:
    """A piece's kept events in partition order: their columns of the `_selected` file, where their
    particle rows are in the piece's `particles` (`starts`, `counts`), and their partitions."""

    table: pa.Table
    particles: np.ndarray
    starts: np.ndarray
    counts: np.ndarray
    group: np.ndarray


def _write_map(held: list[_Held], shuffle_root: str) -> dict[str, Any]:
    """One file of the held pieces' kept events, a record batch per output partition (in partition order;
    its events piece after piece), and the byte range of each. A partition's particle rows are gathered
    once, from where the kernel left them."""
    spans: list[dict[int, tuple[int, int]]] = []
    for piece in held:
        bounds = np.flatnonzero(np.diff(piece.group)) + 1
        starts, stops = np.concatenate([[0], bounds]), np.concatenate([bounds, [len(piece.group)]])
        spans.append(dict(zip(piece.group[starts].tolist(), zip(starts.tolist(), stops.tolist()))))
    output = SegmentOutput(shuffle_root, PARTITIONED)
    segments = []
    try:
        for g in sorted(set().union(*spans)):
            parts = [(piece, *span[g]) for piece, span in zip(held, spans) if g in span]
            columns = pa.concat_tables([piece.table.slice(a, b - a) for piece, a, b in parts]).combine_chunks()
            counts = np.concatenate([piece.counts[a:b] for piece, a, b in parts])
            rows = gather_rows([(piece.particles, piece.starts[a:b], piece.counts[a:b]) for piece, a, b in parts])
            batch = columns.append_column("particles", packed(rows, counts)).to_batches()[0]
            segments.append((g, *output.write(batch)))
    except BaseException:
        output.abort()
        raise
    return {"path": output.close(), "segments": segments}


def write_split_task(items: Iterator[tuple[str, int, list[tuple[str, int, int]]]], root: str, scaler: dict[str, Any],
                     layout: str, schema: pa.Schema) -> Iterator[dict[str, Any]]:
    """Reduce side: per item, one output partition of a split, from its record batches in the map files
    ((path, offset, length) each), in the split's order (training: the shuffling hash; val and test:
    class, then (h, rid)), scaled, written."""
    fs, _ = storage.resolve(root)
    for name, group, sources in items:
        batches = [read_segment(fs, path, offset, length) for path, offset, length in sources]
        table = pa.Table.from_batches(batches, schema=PARTITIONED).combine_chunks()
        if name == "train":
            order = np.argsort(table.column("s").to_numpy(), kind="stable")
        else:
            order = np.lexsort([table.column(c).to_numpy() for c in ("rid", "h", "label")])
        batches = table.to_batches()  # one batch (the chunks are combined), none without events
        output = TaskOutput(storage.join(root, name), partition=group)  # a task may write several partitions
        try:
            arrays = _packed_arrays(batches[0]) if batches else None  # once per partition, not per chunk
            for lo in range(0, len(order), WRITE_ROWS[layout]):
                output.write(transform_batch(batches[0], order[lo:lo + WRITE_ROWS[layout]], scaler, layout, schema, arrays))
        except BaseException:
            output.abort()
            raise
        yield {"split": name, "files": output.close()}


# ---- driver side ------------------------------------------------------------------------------

MANIFEST = "metadata.json"


def read_ingested(spark: "SparkSession", path: str) -> "DataFrame":
    from pyspark.sql.pandas.types import to_arrow_schema

    if not storage.exists(path):
        raise MissingInputError(f"input not found: {storage.redact(path)}")
    try:
        events = spark.read.parquet(path)
    except Exception as exc:  # AnalysisException: not Parquet, empty directory...
        raise InputError(f"{path} is not an ingested Parquet dataset ({str(exc).splitlines()[0][:200]})") from None
    ingested.check_schema(to_arrow_schema(events.schema), has_label_dir=False, where=path)
    return events


def compute_features(keyed: "DataFrame", options: d.FeatureOptions, extra: tuple[str, ...] = ()) -> "DataFrame":
    """Unscaled features and the cut-flow step reached, per event of `keyed` (collections, label, sample,
    key); the `extra` columns of `keyed` pass through."""
    ddl = ", ".join([COMPUTED_SCHEMA] + [f"{name} {keyed.schema[name].dataType.simpleString()}" for name in extra])
    struct, arrow_schema = schemas(ddl)
    task = functools.partial(compute_batches, options=asdict(options), schema=arrow_schema, extra=extra)
    return keyed.mapInArrow(task, struct)


def cutflow_table(rows: list[tuple[int, int, int]], label_names: dict[int, str]) -> dict[str, dict[str, int]]:
    """{class: {step: events reaching at least that step}} from (label, last step reached, count)."""
    table: dict[str, dict[str, int]] = {}
    for label in sorted({r[0] for r in rows}):
        reached = [0] * len(d.CUT_NAMES)
        for lab, cut, count in rows:
            if lab == label:
                for step in range(cut + 1):
                    reached[step] += count
        table[label_names.get(label, str(label))] = dict(zip(d.CUT_NAMES, reached))
    return table


def _input_manifest(input_path: str) -> tuple[dict[int, str], str | None, dict[str, Any]]:
    """Class names by label, the digest of the ingest manifest and the cross-sections per class (those of
    classes made of one sample whose cross-section ingest recorded), when the input has a manifest."""
    path = storage.join(input_path, "_manifest.json")
    if not storage.exists(path):
        return {}, None, {}
    manifest = storage.read_json(path)
    samples: dict[int, set[str]] = {}
    for f in manifest.get("inputs", []):
        samples.setdefault(f["label"], set()).add(f["sample"])
    known = manifest.get("cross_sections", {})
    single = [next(iter(names)) for names in samples.values() if len(names) == 1]
    sigma = {name: known[name] for name in single if name in known}
    return {f["label"]: f["sample"] for f in manifest.get("inputs", [])}, digest(manifest), sigma


def _select(spark: "SparkSession", pieces: list[ingested.Piece], root: str, options: d.FeatureOptions,
            seed: int) -> tuple[list[tuple[int, int, int]], list[tuple[int, str, int]], dict[int, int],
                                list[tuple[ingested.Piece, str]], int]:
    """Pass 1: selection and HLF of every event in the tasks; the selected ones kept under `root`; the
    cut flow, per class the selected events whose particle list reached a cap, the histogram of `h`
    (events per label-and-bucket code), each piece's file of selected events (in piece order) and
    the particle rows their lists hold."""
    task = functools.partial(select_task, root=root, options=asdict(options), seed=seed)
    fs, base = storage.resolve(root)
    fs.create_dir(base, recursive=True)
    with user_errors_from_tasks():
        reports = run_tasks(spark, pieces, task, _tasks(spark, len(pieces)))
    codes, where = np.unique(np.concatenate([r["h_buckets"][0] for r in reports] or [np.zeros(0, np.int64)]),
                             return_inverse=True)
    counts = np.bincount(where, np.concatenate([r["h_buckets"][1] for r in reports] or [np.zeros(0, np.int64)]),
                         minlength=len(codes)).astype(np.int64)
    histogram = dict(zip(codes.tolist(), counts.tolist()))
    return ([row for r in reports for row in r["flow"]], [row for r in reports for row in r["capped"]], histogram,
            [(piece, r["file"]) for piece, r in zip(pieces, reports) if r["file"] is not None],
            sum(r["particle_rows"] for r in reports))


# Tasks per pass over pieces or files: a Spark task costs 70-250 ms here before any work, a piece's or
# file's share of a pass about as much, so several per task where there are many, still four tasks per
# slot for the balance. Results come back per piece or file, in their order, however they are grouped.
TASKS_PER_SLOT = 4


def _tasks(spark: "SparkSession", items: int) -> int:
    return max(1, min(items, TASKS_PER_SLOT * default_parallelism(spark)))


def _thresholds(spark: "SparkSession", root: str, files: list[str], histogram: dict[int, int],
                ranks: list[dict[int, int]]) -> list[Thresholds]:
    """Pass 2: for each {class: k} of `ranks`, each class's k-th smallest (h, rid); None where k is 0.
    The histogram names the bucket that holds each k-th event and its rank there; the tasks return the
    rows of those buckets alone."""
    codes = np.array(sorted(histogram), dtype=np.int64)
    counts = np.array([histogram[c] for c in codes.tolist()], dtype=np.int64)
    where: dict[tuple[int, int], tuple[int, int]] = {}  # (class, k) -> (bucket code, rank in it)
    for per_class in ranks:
        for lab, k in per_class.items():
            if k <= 0:
                continue
            mine = codes[(codes >> H_BUCKET_BITS) == lab]
            cum = np.cumsum(counts[(codes >> H_BUCKET_BITS) == lab])
            i = int(np.searchsorted(cum, k))  # the first bucket whose running count reaches k
            if i == len(cum):
                raise RuntimeError(f"class {lab} has {int(cum[-1]) if len(cum) else 0} selected events, "
                                   f"fewer than the {k} asked for")
            where[(lab, k)] = (int(mine[i]), k - (int(cum[i - 1]) if i else 0))
    wanted = sorted({code for code, _ in where.values()})
    found = run_tasks(spark, files, functools.partial(bucket_rows_task, root=root, wanted=wanted),
                      _tasks(spark, len(files))) if wanted else []
    rows = np.concatenate(found) if found else np.zeros((0, 3), np.int64)
    row_codes = h_bucket_codes(rows[:, 0], rows[:, 1])
    cuts: dict[tuple[int, int], tuple[int, int]] = {}
    for (lab, k), (code, rank) in where.items():
        here = rows[row_codes == code]
        if len(here) != histogram[code]:  # the files changed under us: never cut on a wrong count
            raise RuntimeError(f"bucket {code} holds {len(here)} selected events, the select tasks counted {histogram[code]}")
        here = here[np.lexsort((here[:, 2], here[:, 1]))]
        cuts[(lab, k)] = (int(here[rank - 1, 1]), int(here[rank - 1, 2]))
    return [{lab: cuts.get((lab, k)) for lab, k in per_class.items()} for per_class in ranks]


# Bytes of features (HLF and particle rows, float32) per output partition. Not from the task slots: the
# training split's order depends on the partition count, and must not change with the cluster it ran on.
SPLIT_PARTITION_BYTES = 24 * 1024 * 1024


def feature_bytes(events: int, particle_rows: int) -> int:
    return 4 * (events * d.N_HLF + particle_rows * d.N_PARTICLE_FEATURES)


def _bytes(root: str, files: list[str]) -> int:
    fs, _ = storage.resolve(root)
    return sum(info.size or 0 for info in fs.get_file_info(files))


def _split_partitions(total: int, files: int, per_class: dict[int, int], n: dict[str, dict[int, int]]) -> dict[str, int]:
    """Partitions of each split's write: its share of the `total` bytes of features in pieces of about
    SPLIT_PARTITION_BYTES, and no more than the `files` of them (one per select task made thousands of tiny
    write tasks at a few million events)."""
    selected = max(1, sum(per_class.values()))
    return {name: max(1, min(files, math.ceil(total * sum(n[name].values()) / selected / SPLIT_PARTITION_BYTES)))
            for name in ("train", "val", "test")}


def _partition(spark: "SparkSession", root: str, selected: list[tuple[ingested.Piece, str]], shuffle_root: str,
               cuts: dict[str, Thresholds], partitions: dict[str, int], sample: tuple[Thresholds, Thresholds] | None,
               options: d.FeatureOptions) -> tuple[list[dict[str, Any]], Moments | None]:
    """Pass 3: the particle lists of the kept events of every piece, and those events grouped by output
    partition (`partition_task`); the merged moments of the scaler's `sample` (in piece order: the
    same sums on any cluster)."""
    fs, base = storage.resolve(shuffle_root)
    fs.create_dir(base, recursive=True)
    task = functools.partial(partition_task, root=root, shuffle_root=shuffle_root, cuts=cuts, partitions=partitions,
                             moments=sample, options=asdict(options))
    with user_errors_from_tasks():
        reports = run_tasks(spark, selected, task, _tasks(spark, len(selected)))
    parts = [r["moments"] for r in reports if r.get("moments") is not None]
    return [r for r in reports if "segments" in r], functools.reduce(Moments.merge, parts) if parts else None


def _write_splits(spark: "SparkSession", maps: list[dict[str, Any]], partitions: dict[str, int], scaler: Scaler,
                  layout: str, root: str, expected: dict[str, int]) -> None:
    """Pass 4: each split's output partitions, written by one task each (`write_split_task`) and
    committed; the rows written must be the split's count."""
    _, arrow_schema = schemas((layouts.ANCHOR_SCHEMA if layout == "anchor" else layouts.COMPACT_SCHEMA)
                              + ", " + PROVENANCE_DDL)
    if layout == "compact":  # the anchor layout keeps the published 2020 files' schema
        arrow_schema = layouts.required(arrow_schema)
    first = dict(zip(SPLITS, group_bases(partitions).tolist()))
    sources: dict[int, list[tuple[str, int, int]]] = {}
    for m in maps:
        for group, offset, length in m["segments"]:
            sources.setdefault(group, []).append((m["path"], offset, length))
    items = [(name, group, sources[group]) for name in SPLITS
             for group in range(first[name], first[name] + partitions[name]) if group in sources]
    for name in SPLITS:
        prepare(storage.join(root, name))
    reports = run_tasks(spark, items, functools.partial(write_split_task, root=root, scaler=scaler.to_dict(),
                                                        layout=layout, schema=arrow_schema), _tasks(spark, len(items)))
    for name in SPLITS:
        out = storage.join(root, name)
        written = commit(out, [f for r in reports if r["split"] == name for f in r["files"]])
        if sum(written.values()) != expected[name]:  # never a dataset whose size differs from metadata.json
            raise RuntimeError(f"the {name} split has {sum(written.values())} events written, {expected[name]} expected")
        if not storage.parquet_files_or_none(out):  # an empty split is still a readable dataset
            write_empty_parquet(storage.join(out, "part-00000-empty.parquet"), arrow_schema)


def _split_counts(per_class: dict[int, int], cfg: FeaturesConfig, where: str,
                  all_test: bool = False) -> dict[str, dict[int, int]]:
    """Events per class in each split: `kept` (balanced or not), and of those `test`, `val` (carved from
    the training share) and `train`; with `all_test`, every kept event is in `test`."""
    keep = {lab: (min(per_class.values()) if cfg.balance == "undersample" else n) for lab, n in per_class.items()}
    if all_test:
        return {"kept": keep, "train": dict.fromkeys(keep, 0), "val": dict.fromkeys(keep, 0), "test": dict(keep)}
    n_test = {lab: int(round(cfg.test_fraction * k)) for lab, k in keep.items()}
    # A requested validation share gets at least one event per class while two training events remain.
    n_val = {lab: max(int(round(cfg.val_fraction * (k - n_test[lab]))), 1 if cfg.val_fraction > 0 and k - n_test[lab] >= 2 else 0)
             for lab, k in keep.items()}
    n_train = {lab: keep[lab] - n_test[lab] - n_val[lab] for lab in keep}
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    empty = [name for name, n in sizes.items() if min(n.values()) == 0]
    if empty and cfg.on_empty_split == "stop":
        raise InputError(f"the {' and '.join(empty)} split of {where} would hold no event of some class "
                         f"({min(keep.values())} selected events per class, test_fraction {cfg.test_fraction}, "
                         f"val_fraction {cfg.val_fraction}); use more events, or features.on_empty_split = \"write\" "
                         "to write it anyway")
    return {"kept": keep, **sizes}


def features(cfg: FeaturesConfig, input_path: str, out: str, spark: "SparkSession", overwrite: bool = False,
             options: d.FeatureOptions = d.FeatureOptions(), scaling: SavedScaling | None = None) -> FeaturesResult:
    """With `scaling` (a model's or a dataset's), the features are built with its options and scaled with
    its scaler (nothing is refitted) and every selected event goes to `test/`: a dataset that `evaluate`
    can score that model on."""
    start = time.perf_counter()
    if scaling is not None:
        options = d.FeatureOptions(**scaling.options)
    legacy = cfg.recipe == "2019" and scaling is None
    layout = "anchor" if legacy else cfg.layout  # the 2019 recipe writes the public 2020 layout
    input_path, out = storage.absolute(input_path), storage.absolute(out)
    storage.check_output(out, overwrite, MANIFEST)
    pieces = ingested.plan(input_path)
    label_names, manifest_sha256, cross_sections = _input_manifest(input_path)
    timings: dict[str, float] = {}
    mark = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        timings[name] = round(now - mark, 3)
        mark = now

    with storage.staged_output(out, overwrite, MANIFEST, spark) as staged:
        selected_root = staged.path("_selected")
        flow_rows, cap_rows, histogram, selected, particle_rows = _select(spark, pieces, selected_root, options, cfg.seed)
        selected_files = [path for _, path in selected]
        lap("select_and_compute")

        cutflow = cutflow_table(flow_rows, label_names)
        per_class: dict[int, int] = {}
        for label, cut, count in flow_rows:
            per_class[label] = per_class.get(label, 0) + (count if cut == d.CUT_FINAL else 0)
        if not per_class or min(per_class.values()) == 0:
            raise InputError(f"no event of {input_path} passes the selection: nothing to train on")
        # Each class in (h, rid) order: the first `test` events are the test split, the next `val` the
        # validation split, the rest of the kept events the training split.
        n = _split_counts(per_class, cfg, input_path, all_test=scaling is not None)
        held_out = {lab: n["test"][lab] + n["val"][lab] for lab in n["kept"]}
        keep_h, test_h, held_h, all_h = _thresholds(spark, selected_root, selected_files, histogram,
                                                    [n["kept"], n["test"], held_out, per_class])
        cuts = {"kept": keep_h, "held": held_h, "test": test_h}
        lap("cutflow_balance_split")

        # The scaler's sample: 2019, the HLF min-max on every selected event, before balancing and the
        # split; else the training split; none with a given scaling.
        none: Thresholds = dict.fromkeys(all_h)
        sample = ((all_h, none) if legacy else (keep_h, held_h)) if scaling is None else None
        shuffle_root = staged.path("_shuffle")
        partitions = _split_partitions(feature_bytes(sum(per_class.values()), particle_rows), len(selected), per_class, n)
        maps, moments = _partition(spark, selected_root, selected, shuffle_root, cuts, partitions, sample, options)
        if scaling is not None:
            scaler = Scaler(**scaling.scaler)
        elif moments is None:
            raise InputError("no training event left after the split")
        else:
            scaler = Scaler.fit(moments, per_event=legacy or cfg.per_event_standardisation, legacy_padding=legacy)
        lap("partition_and_fit_scalers")

        _write_splits(spark, maps, partitions, scaler, layout, staged.uri,
                      {name: sum(n[name].values()) for name in SPLITS})
        lap("write_splits")
        intermediate = {"selected": _bytes(selected_root, selected_files), "partitioned": _bytes(shuffle_root, [m["path"] for m in maps if m["path"]])}
        storage.delete(selected_root)
        storage.delete(shuffle_root)

        capped_counts = {label_names.get(lab, str(lab)): {kind: sum(n for lb, k, n in cap_rows if lb == lab and k == kind)
                                                          for kind in CAPPED} for lab in sorted(per_class)}
        # The thresholds make the counts exact: no need to read the splits back.
        counts = {split: {label_names.get(lab, str(lab)): n[split][lab] for lab in sorted(n["kept"])}
                  for split in ("train", "val", "test")}
        seconds = time.perf_counter() - start
        storage.write_json(staged.path(MANIFEST), {
            "stage": "features",
            "code_version": __version__,
            "input": input_path,
            "input_manifest_sha256": manifest_sha256,
            "layout": layout,
            "hlf_names": list(d.HLF_NAMES),
            "particle_names": list(d.PARTICLE_NAMES),
            "max_particles": d.MAX_PARTICLES,
            "label_names": {str(k): v for k, v in sorted(label_names.items())},
            "scaler": scaler.to_dict(),
            "cutflow": cutflow,
            # Selected events whose particle list left objects out (more above threshold than its cap).
            "capped": capped_counts,
            # Of the events that entered the cut flow, per class (pb); evaluate turns them into rates.
            "cross_sections": cross_sections,
            "counts": counts,
            "seeds": {"balance_split": cfg.seed, "shuffle": cfg.seed + 1},
            "splits": {"test_fraction": cfg.test_fraction, "val_fraction": cfg.val_fraction,
                       "order": "per class, by a seeded hash of each event's content: test first, then val, then train"}
            if scaling is None else {"all_in": "test", "scaling_from": scaling.source,
                                     "order": "per class, by a seeded hash of each event's content"},
            "settings": cfg.model_dump(mode="json"),
            "options": asdict(options),
            "particle_order": "decreasing dR from the lepton (the lepton last)",
            "seconds": seconds,
            "timings_s": timings,
            # What the passes wrote in between (removed): the selected events, then grouped by output partition.
            "intermediate_bytes": intermediate,
            "software": software_versions(),
        })
    return FeaturesResult(out, cutflow, counts, seconds, sum(r[2] for r in flow_rows), capped_counts)
