"""Streaming training data from Parquet: both layouts, sharded by rank and loader worker, shuffled
through a buffer, each batch padded only to its own longest event. Never loads the whole dataset.

Units of work are row ranges of row groups (at most `unit_rows` rows), spread over ranks and
DataLoader workers round-robin after a seeded per-epoch shuffle, so every event is read exactly
once per epoch across all ranks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from topotrigger.errors import InputError
from topotrigger.features import contract
from topotrigger.features.kernels.definitions import N_PARTICLE_FEATURES as N_FEATURES
from topotrigger.io import storage

COMPACT = ("label", "hlf", "particles")
ANCHOR = ("HLF_input", "GRU_input", "encoded_label")


@dataclass
class Batch:
    hlf: torch.Tensor        # [B, N_HLF] float32
    particles: torch.Tensor  # [B, L, N_FEATURES] float32, L = longest event of the batch
    lengths: torch.Tensor    # [B] int64
    labels: torch.Tensor     # [B] int64

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(self.hlf.to(device), self.particles.to(device), self.lengths.to(device), self.labels.to(device))


def detect_layout(schema: pa.Schema, path: str) -> str:
    names = set(schema.names)
    if set(COMPACT) <= names:
        return "compact"
    if set(ANCHOR) <= names:
        return "anchor"
    raise InputError(f"{path} is in neither training layout: expected columns {', '.join(COMPACT)} "
                     f"(compact) or {', '.join(ANCHOR)} (2020 anchor); found {', '.join(schema.names)}")


@dataclass
class Events:
    hlf: np.ndarray        # (n, N_HLF)
    particles: np.ndarray  # (total, N_FEATURES)
    counts: np.ndarray     # (n,)
    labels: np.ndarray     # (n,)


def decode(table: pa.Table, layout: str, with_particles: bool, path: str = "") -> Events:
    n = table.num_rows
    if layout == "compact":
        hlf = contract.hlf_rows(table.column("hlf"))
        labels = table.column("label").to_numpy().astype(np.int64)
    else:
        hlf = contract.hlf_rows(table.column("HLF_input"), "HLF_input")
        labels = contract.one_hot_labels(table.column("encoded_label"))
    if not with_particles:
        counts, particles = np.zeros(n, dtype=np.int64), np.zeros((0, N_FEATURES), np.float32)
    elif layout == "compact":
        particles, counts = contract.ragged_rows(table.column("particles"))
    else:
        particles, counts = contract.padded_rows(table.column("GRU_input"), path)
    return Events(hlf.astype(np.float32), particles, counts, labels)


def _rows_of(events: Events, index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For the events `index`: each particle's source row, its event's position in `index`, its step."""
    starts = np.concatenate([[0], np.cumsum(events.counts)])[:-1][index]
    lengths = events.counts[index]
    event = np.repeat(np.arange(len(index)), lengths)
    step = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + step, event, step


def collate(events: Events, index: np.ndarray) -> Batch:
    lengths = events.counts[index]
    longest = max(int(lengths.max()) if len(lengths) else 0, 1)
    out = np.zeros((len(index), longest, N_FEATURES), dtype=np.float32)
    source, event, step = _rows_of(events, index)
    out[event, step] = events.particles[source]
    return Batch(torch.from_numpy(events.hlf[index]), torch.from_numpy(out), torch.from_numpy(lengths),
                 torch.from_numpy(events.labels[index]))


def _concat(parts: list[Events]) -> Events:
    return Events(np.concatenate([p.hlf for p in parts]), np.concatenate([p.particles for p in parts]),
                  np.concatenate([p.counts for p in parts]), np.concatenate([p.labels for p in parts]))


def _take(events: Events, index: np.ndarray) -> Events:
    source, _, _ = _rows_of(events, index)
    return Events(events.hlf[index], events.particles[source], events.counts[index], events.labels[index])


@dataclass(frozen=True)
class Holdout:
    """A seeded share of a dataset's events set aside at load time (for datasets without a val/ split):
    `side="val"` reads only those events, `side="train"` all the others."""

    fraction: float
    seed: int
    side: str  # "train" or "val"

    def mask(self, group_index: int, rows: int) -> np.ndarray:
        """The rows of the `group_index`-th row group (in file order) that this side reads."""
        held = np.random.default_rng([self.seed, group_index]).random(rows) < self.fraction
        return held if self.side == "val" else ~held


VAL_FALLBACK_FRACTION = 0.1


def validation_source(data_dir: str, seed: int) -> tuple[str, Holdout | None, Holdout | None, str]:
    """Where validation events come from: the dataset's val/ split, or (datasets without one, such as the
    public 2020 files) a seeded 10 % of its training events. (val path, train holdout, val holdout, note)."""
    val = f"{data_dir}/val"
    if storage.exists(val):
        return val, None, None, "val/"
    note = f"{VAL_FALLBACK_FRACTION:.0%} of train/ (seeded with {seed}; the dataset has no val/ split)"
    return (f"{data_dir}/train", Holdout(VAL_FALLBACK_FRACTION, seed, "train"), Holdout(VAL_FALLBACK_FRACTION, seed, "val"),
            note)


class ParquetEvents(torch.utils.data.IterableDataset["Batch"]):
    """Batches of one epoch of a training-layout Parquet dataset, for one rank."""

    def __init__(self, path: str, batch_size: int, rank: int = 0, world: int = 1, shuffle: bool = True,
                 buffer_events: int = 20_000, seed: int = 0, with_particles: bool = True, unit_rows: int = 1024,
                 holdout: Holdout | None = None, length_buckets: bool = False) -> None:
        super().__init__()
        self.length_buckets = length_buckets and shuffle and with_particles
        self.holdout = holdout
        self.masks: dict[tuple[str, int], np.ndarray] = {}
        self.path, self.batch_size, self.rank, self.world = path, batch_size, rank, world
        self.shuffle, self.buffer_events, self.seed, self.with_particles = shuffle, buffer_events, seed, with_particles
        self.epoch = 0
        self.filesystem, files = storage.parquet_files(path)
        self.units: list[tuple[str, int, int, int]] = []
        layout = None
        for f in files:
            meta = pq.ParquetFile(f, filesystem=self.filesystem)
            layout = layout or detect_layout(meta.schema_arrow, path)
            for g in range(meta.num_row_groups):
                rows = meta.metadata.row_group(g).num_rows
                self.units += [(f, g, lo, min(rows, lo + unit_rows)) for lo in range(0, rows, unit_rows)]
                if holdout is not None:
                    self.masks[(f, g)] = holdout.mask(len(self.masks), rows)
        self.layout = layout or "compact"
        if holdout is None:
            self.num_events = sum(u[3] - u[2] for u in self.units)
        else:
            self.num_events = sum(int(self.masks[u[:2]][u[2]:u[3]].sum()) for u in self.units)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def my_units(self) -> list[tuple[str, int, int, int]]:
        units = list(self.units)
        if self.shuffle:
            np.random.default_rng([self.seed, self.epoch]).shuffle(units)
        mine = units[self.rank::self.world]
        info = torch.utils.data.get_worker_info()
        return mine[info.id::info.num_workers] if info else mine

    def _read(self, unit: tuple[str, int, int, int], cache: dict[tuple[str, int], pa.Table]) -> Events:
        f, group, lo, hi = unit
        if (f, group) not in cache:  # one row group decompressed at a time, then sliced into units
            columns = [c for c in (COMPACT if self.layout == "compact" else (*ANCHOR,))
                       if self.with_particles or c not in ("particles", "GRU_input")]
            cache.clear()
            cache[(f, group)] = pq.ParquetFile(f, filesystem=self.filesystem).read_row_group(group, columns=columns)
        events = decode(cache[(f, group)].slice(lo, hi - lo), self.layout, self.with_particles, self.path)
        if self.holdout is None:
            return events
        return _take(events, np.flatnonzero(self.masks[(f, group)][lo:hi]))

    def _grouped(self, units: list[tuple[str, int, int, int]]) -> list[tuple[str, int, int, int]]:
        """The units with those of one row group next to each other (groups in order of first
        appearance, units within a group in their shuffled order), so each group is read once."""
        order: dict[tuple[str, int], list[tuple[str, int, int, int]]] = {}
        for unit in units:
            order.setdefault(unit[:2], []).append(unit)
        return [u for group in order.values() for u in group]

    def __iter__(self) -> Iterator[Batch]:
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, 1])
        buffer: list[Events] = []
        held = 0
        keep = self.buffer_events if self.shuffle else 0  # in storage order a buffer only costs copies
        cache: dict[tuple[str, int], pa.Table] = {}
        for unit in self._grouped(self.my_units()):
            part = self._read(unit, cache)
            buffer.append(part)
            held += len(part.labels)
            if held >= keep + self.batch_size:
                events = _concat(buffer)
                order = rng.permutation(held) if self.shuffle else np.arange(held)
                n_out = (held - keep) // self.batch_size * self.batch_size
                for index in self._batches(events, order[:n_out], rng):
                    yield collate(events, index)
                rest = order[n_out:]
                buffer, held = [_take(events, np.sort(rest))], len(rest)
        if held:
            events = _concat(buffer)
            order = rng.permutation(held) if self.shuffle else np.arange(held)
            for index in self._batches(events, order, rng):
                yield collate(events, index)

    BUCKET_BATCHES = 50

    def _batches(self, events: Events, order: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        """`order` cut into batches; with `length_buckets`, each run of 50 batches' events sorted by
        length first and the batches then shuffled: a batch's events have similar lengths, so little
        of the padded GRU work is padding."""
        size = self.batch_size
        if not self.length_buckets:
            return [order[lo:lo + size] for lo in range(0, len(order), size)]
        out = []
        for lo in range(0, len(order), self.BUCKET_BATCHES * size):
            chunk = order[lo:lo + self.BUCKET_BATCHES * size]
            chunk = chunk[np.argsort(events.counts[chunk], kind="stable")]
            out += [chunk[i:i + size] for i in range(0, len(chunk), size)]
        rng.shuffle(out)
        return out
