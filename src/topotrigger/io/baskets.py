"""A vectorised path for the commonest TTree branches: numbers, and lists of numbers stored flat with
one offset per entry (Delphes `Jet.PT`, NanoAOD `Muon_pt`).

uproot decides what each branch is (its interpretation) and decompresses; this module only finds a
branch's baskets in the file, reads them with one memory map (local files) or one vectored request
(remote), and glues their data and offsets with numpy. uproot's generic path spends ≈ 0.4 ms of
Python per basket building objects; here it is a few array operations: 1.6× faster on Delphes files
(docs/performance.md). Anything else (another interpretation, baskets still held in the TBranch, a basket
whose entry count disagrees with the branch's table) returns None and the caller reads the branch
with uproot: this path never guesses.
"""

from __future__ import annotations

import os
import queue
import struct
from typing import Any

import awkward as ak
import numpy as np

from topotrigger.io.storage import absolute, is_remote

# TKey + TBasket header fields (ROOT's TKey::Streamer, TBasket::Streamer), big-endian.
_KEY = struct.Struct(">ihiIhh")  # fNbytes, fVersion, fObjlen, fDatime, fKeylen, fCycle
_BASKET = struct.Struct(">Hiiii")  # fVersion, fBufferSize, fNevBufSize, fNevBuf, fLast; 1 flag byte follows


def _plain_dtype(interpretation: Any) -> np.dtype | None:
    from uproot.interpretation.numerical import AsDtype

    if type(interpretation) is not AsDtype:  # subclasses (in place, doubles32, ...) transform the values
        return None
    dtype: np.dtype = np.dtype(interpretation.from_dtype)
    if dtype.shape or dtype.fields or dtype.kind not in "biuf":
        return None
    return dtype


def layout_of(branch: Any) -> tuple[np.dtype, bool] | None:
    """(stored dtype, jagged) when this path can read the branch, else None."""
    from uproot.interpretation.jagged import AsJagged

    interpretation = branch.interpretation
    if type(interpretation) is AsJagged:
        if interpretation.header_bytes != 0:  # std::vector and friends carry a header per entry
            return None
        dtype = _plain_dtype(interpretation.content)
        return None if dtype is None else (dtype, True)
    dtype = _plain_dtype(interpretation)
    return None if dtype is None else (dtype, False)


class Bytes:
    """The raw bytes of one file: a memory map when it is local, else uproot's own source."""

    def __init__(self, file: Any) -> None:
        path = str(file.file_path)
        self.source = file.source
        self.map = None
        if not is_remote(path) and os.path.isfile(absolute(path)):
            self.map = np.memmap(absolute(path), np.uint8, "r")

    def chunks(self, ranges: list[tuple[int, int]]) -> list[Any]:
        from uproot.source.chunk import Chunk

        if self.map is not None:
            return [Chunk.wrap(self.source, self.map[a:b], a) for a, b in ranges]
        chunks = self.source.chunks(ranges, notifications=queue.Queue())
        for chunk in chunks:
            chunk.wait()
        return list(chunks)


def _content(chunk: Any, start: int) -> tuple[np.ndarray, int, int, int]:
    """(uncompressed basket buffer, fKeylen, fNevBuf, fLast) of the basket at `start`."""
    from uproot.compression import decompress
    from uproot.source.cursor import Cursor

    raw = chunk.raw_data
    nbytes, _, objlen, _, keylen, _ = _KEY.unpack_from(raw, 0)
    _, _, _, nevbuf, last = _BASKET.unpack_from(raw, keylen - _BASKET.size - 1)
    if nbytes - keylen != objlen:
        data = decompress(chunk, Cursor(start + keylen), {}, nbytes - keylen, objlen).raw_data
    else:
        data = raw[keylen:keylen + objlen]
    return np.frombuffer(data, np.uint8), keylen, nevbuf, last


def read(branch: Any, entry_start: int, entry_stop: int, source: Bytes) -> ak.Array | None:
    """Entries [start, stop) of the branch as an awkward array in native byte order, or None."""
    layout = layout_of(branch)
    written = int(branch.member("fWriteBasket"))
    if layout is None or branch.num_baskets != written:  # baskets still in memory at close: uproot's path
        return None
    dtype, jagged = layout
    edges = np.asarray(branch.member("fBasketEntry")[:written + 1], dtype=np.int64)
    if len(edges) != written + 1 or edges[0] != 0 or np.any(np.diff(edges) < 0):
        return None
    entry_stop = min(entry_stop, int(edges[-1]))
    if entry_start >= entry_stop:
        return _empty(dtype, jagged)
    first = int(np.searchsorted(edges, entry_start, side="right")) - 1
    last = int(np.searchsorted(edges, entry_stop, side="left"))  # baskets [first, last)
    seeks = branch.member("fBasketSeek")[first:last]
    sizes = branch.member("fBasketBytes")[first:last]
    ranges = [(int(s), int(s) + int(n)) for s, n in zip(seeks, sizes)]
    datas, offsets, base = [], [np.zeros(1, np.int64)], 0
    for i, (chunk, (start, _)) in enumerate(zip(source.chunks(ranges), ranges)):
        content, keylen, entries, border = _content(chunk, start)
        border -= keylen
        if entries != edges[first + i + 1] - edges[first + i]:
            return None
        if entries == 0:
            if border != 0:
                return None
            continue
        if jagged:
            # The entry offsets follow the data: a count, then one offset per entry from the key's start.
            raw = content[border:border + 4 * (entries + 2)]
            if len(raw) < 4 * (entries + 2):
                return None
            own = raw.view(">i4")[1:].astype(np.int64) - keylen
            if own[0] != 0:
                return None
            own = own[1:] + base
            own[-1] = base + border
            offsets.append(own)
        elif border != entries * dtype.itemsize:
            return None
        datas.append(content[:border])
        base += border
    if jagged:
        bytes_at = np.concatenate(offsets)
        steps = np.diff(bytes_at)
        if np.any(steps < 0) or np.any(steps % dtype.itemsize) or bytes_at[-1] != base:
            return None
    values = np.concatenate(datas).view(dtype)
    lo = entry_start - int(edges[first])  # the range's first entry within the first basket read
    if not jagged:
        return ak.Array(values[lo:lo + entry_stop - entry_start].astype(dtype.newbyteorder("=")))
    bounds = (bytes_at // dtype.itemsize)[lo:lo + entry_stop - entry_start + 1]
    numbers = values[bounds[0]:bounds[-1]].astype(dtype.newbyteorder("="))
    return ak.Array(ak.contents.ListOffsetArray(ak.index.Index64(bounds - bounds[0]), ak.contents.NumpyArray(numbers)))


def _empty(dtype: np.dtype, jagged: bool) -> ak.Array:
    numbers = np.zeros(0, dtype.newbyteorder("="))
    if not jagged:
        return ak.Array(numbers)
    return ak.Array(ak.contents.ListOffsetArray(ak.index.Index64(np.zeros(1, np.int64)), ak.contents.NumpyArray(numbers)))
