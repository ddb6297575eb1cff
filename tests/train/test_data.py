"""The streaming loader: exactly-once sharding, per-batch padding, both layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.datasets import synthetic_events, write_compact
from topotrigger.errors import InputError
from topotrigger.features.kernels.definitions import PARTICLE_NAMES
from topotrigger.train.data import ParquetEvents


def test_every_event_once_per_epoch_across_ranks(dataset: Path) -> None:
    for epoch in (0, 1):
        seen = []
        for rank in range(2):
            data = ParquetEvents(str(dataset / "train"), 32, rank=rank, world=2, buffer_events=50, unit_rows=40)
            data.set_epoch(epoch)
            seen += [round(float(x) * 1000) for batch in data for x in batch.hlf[:, 0]]
        assert sorted(seen) == list(range(600))


def test_length_buckets_keep_every_event_once_and_shrink_the_padding(dataset: Path) -> None:
    padding = {}
    for buckets in (False, True):
        seen, padded, real = [], 0, 0
        for rank in range(2):
            data = ParquetEvents(str(dataset / "train"), 16, rank=rank, world=2, buffer_events=50, unit_rows=40,
                                 length_buckets=buckets)
            for batch in data:
                seen += [round(float(x) * 1000) for x in batch.hlf[:, 0]]
                padded += batch.particles.shape[0] * batch.particles.shape[1]
                real += int(batch.lengths.sum())
        assert sorted(seen) == list(range(600))
        padding[buckets] = padded / real
    assert padding[True] < padding[False]


def test_batches_are_padded_to_their_longest_event(dataset: Path) -> None:
    data = ParquetEvents(str(dataset / "train"), 16, shuffle=False)
    _, _, particles = synthetic_events(600, 1)
    for i, batch in enumerate(data):
        lengths = batch.lengths.numpy()
        assert batch.particles.shape[1] == lengths.max()
        ids = np.rint(batch.hlf[:, 0].numpy() * 1000).astype(int)
        for row, event in enumerate(ids):
            np.testing.assert_array_equal(batch.particles[row, : lengths[row]].numpy(), particles[event])
            assert not batch.particles[row, lengths[row]:].any()
        if i > 3:
            break


def test_named_and_unnamed_particle_layouts_load_the_same(tmp_path: Path) -> None:
    write_compact(tmp_path / "named", 40, 3)
    write_compact(tmp_path / "unnamed", 40, 3, unnamed=True)
    named = pq.read_table(tmp_path / "named")
    assert named.schema.field("particles").type.value_type.names == list(PARTICLE_NAMES)
    batches = {name: list(ParquetEvents(str(tmp_path / name), 8, shuffle=False)) for name in ("named", "unnamed")}
    for a, b in zip(batches["named"], batches["unnamed"], strict=True):
        assert a.lengths.tolist() == b.lengths.tolist()
        np.testing.assert_array_equal(a.particles.numpy(), b.particles.numpy())
    _, _, particles = synthetic_events(40, 3)
    np.testing.assert_array_equal(batches["named"][0].particles[1, :len(particles[1])].numpy(), particles[1])


def test_particle_records_with_other_fields_are_refused(tmp_path: Path) -> None:
    records = pa.array([[{"pt": 1.0, "eta": 0.5}]], pa.list_(pa.struct([("pt", pa.float32()), ("eta", pa.float32())])))
    (tmp_path / "x").mkdir()
    pq.write_table(pa.table({"label": pa.array([0], pa.int32()), "hlf": pa.array([[0.0] * 14], pa.list_(pa.float32())),
                             "particles": records}), tmp_path / "x" / "p.parquet")
    with pytest.raises(InputError, match="particles has the fields pt, eta"):
        list(ParquetEvents(str(tmp_path / "x"), 4))


def spark_vector(values: np.ndarray) -> dict:
    return {"type": 1, "size": None, "indices": None, "values": [float(v) for v in values]}


def test_anchor_layout_with_spark_ml_vectors_loads(tmp_path: Path) -> None:
    hlf, labels, particles = synthetic_events(20, 5)
    vector = pa.struct([("type", pa.int8()), ("size", pa.int32()), ("indices", pa.list_(pa.int32())),
                        ("values", pa.list_(pa.float64()))])
    padded = np.zeros((20, 801, 19))
    for i, p in enumerate(particles):
        padded[i, : len(p)] = p
    one_hot = [{"type": 0, "size": 3, "indices": [int(y)], "values": [1.0]} for y in labels]
    table = pa.table({"HLF_input": pa.array([spark_vector(h) for h in hlf], vector),
                      "GRU_input": pa.array([list(map(list, e)) for e in padded], pa.list_(pa.list_(pa.float64()))),
                      "encoded_label": pa.array(one_hot, vector)})
    (tmp_path / "anchor").mkdir()
    pq.write_table(table, tmp_path / "anchor" / "part.parquet")
    data = ParquetEvents(str(tmp_path / "anchor"), 8, shuffle=False)
    assert data.layout == "anchor"
    batches = list(data)
    got_labels = np.concatenate([b.labels.numpy() for b in batches])
    assert got_labels.tolist() == labels.tolist()
    first = batches[0]
    assert first.lengths.tolist() == [len(p) for p in particles[:8]]
    np.testing.assert_allclose(first.particles[0, : len(particles[0])].numpy(), particles[0], rtol=1e-6)
    np.testing.assert_allclose(first.hlf.numpy(), hlf[:8], rtol=1e-6)


def test_neither_layout_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    pq.write_table(pa.table({"a": [1, 2]}), tmp_path / "x" / "p.parquet")
    with pytest.raises(InputError, match="neither training layout"):
        ParquetEvents(str(tmp_path / "x"), 4)
