"""An event's identity for seeded sampling: a 64-bit hash of its content.

The same event gets the same key wherever and however it is read (file order, partitioning, number
of executors), so undersampling and the train/test split depend only on the events and the seed.
Hashing the small collections is enough to tell events apart (MET alone is a continuous value) and
avoids hashing thousands of EFlow values; the EFlow multiplicities go in too. Values are hashed by
their float32 / int64 bits with a splitmix64-style mixer.
"""

from __future__ import annotations

import hashlib

import numba
import numpy as np
import pyarrow as pa

from topotrigger.features.kernels.events import Collection

KEYED_COLLECTIONS = ("MissingET", "Electron", "MuonTight", "Jet")
COUNTED_COLLECTIONS = ("EFlowTrack", "EFlowPhoton")

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


@numba.njit(cache=True, inline="always")
def _mix(h: np.uint64, v: np.uint64) -> np.uint64:
    z = (h ^ v) + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True)
def _fold_values(keys: np.ndarray, offsets: np.ndarray, bits: np.ndarray) -> None:
    for ev in range(len(keys)):
        h = _mix(keys[ev], np.uint64(offsets[ev + 1] - offsets[ev]))
        for j in range(offsets[ev], offsets[ev + 1]):
            h = _mix(h, bits[j])
        keys[ev] = h


@numba.njit(cache=True)
def _fold_each(keys: np.ndarray, values: np.ndarray) -> None:
    for ev in range(len(keys)):
        keys[ev] = _mix(keys[ev], values[ev])


def _bits(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "f":
        return values.astype(np.float32).view(np.uint32).astype(np.uint64)
    return values.astype(np.int64).view(np.uint64)


def _string_hash(text: str) -> np.uint64:
    return np.uint64(int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little"))


def event_keys(collections: dict[str, Collection], labels: np.ndarray, samples: pa.Array) -> np.ndarray:
    """int64 key per event from its label, sample name and content."""
    keys = np.zeros(len(labels), dtype=np.uint64)
    _fold_each(keys, _bits(np.asarray(labels)))
    encoded = samples.dictionary_encode()
    names, index = encoded.dictionary.to_pylist(), encoded.indices.to_numpy(zero_copy_only=False)
    _fold_each(keys, np.array([_string_hash(str(n)) for n in names], dtype=np.uint64)[index])
    for name in KEYED_COLLECTIONS:
        c = collections[name]
        offsets = np.ascontiguousarray(c.offsets, dtype=np.int64)
        for values in c.columns.values():
            _fold_values(keys, offsets, _bits(values))
    for name in COUNTED_COLLECTIONS:
        _fold_each(keys, np.diff(collections[name].offsets).astype(np.uint64))
    return keys.view(np.int64)


def seeded(keys: np.ndarray, seed: int) -> np.ndarray:
    """int64 hash of each key under `seed`: the order in which events are sampled, split and shuffled."""
    out = np.full(len(keys), np.uint64(seed & 0xFFFFFFFFFFFFFFFF), dtype=np.uint64)
    _fold_each(out, np.ascontiguousarray(keys).view(np.uint64))
    return out.view(np.int64)
