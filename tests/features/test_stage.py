"""The features stage on Spark: cut flow, balance, disjoint split, train-only scaling, both layouts."""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from topotrigger.config import FeaturesConfig, GenerateConfig, IngestConfig
from topotrigger.errors import InputError, MissingInputError, OutputExistsError
from topotrigger.features.kernels import definitions as d
from topotrigger.features.stage import features
from topotrigger.generate.stage import generate
from topotrigger.ingest.stage import ingest
from topotrigger.io.provenance import PROVENANCE

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def ingested(spark, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("features")
    generate(GenerateConfig(events=80, files_per_class=1, seed=21, profile="quick"), root / "generate", spark, progress=False, plots=False)
    ingest(IngestConfig(), [str(root / "generate")], str(root / "ingest"), spark)
    return root / "ingest"


@pytest.fixture(scope="module")
def compact(spark, ingested: Path) -> Path:
    out = ingested.parent / "compact"
    features(FeaturesConfig(seed=5), str(ingested), str(out), spark)
    return out


def load(spark, path: Path) -> list:
    return spark.read.parquet(str(path)).collect()


def test_cutflow_adds_up_and_metadata(compact: Path) -> None:
    meta = json.loads((compact / "metadata.json").read_text())
    assert set(meta["cutflow"]) == {"qcd", "ttbar", "wjets"}
    for flow in meta["cutflow"].values():
        steps = [flow[name] for name in d.CUT_NAMES]
        assert steps[0] == 80 and all(a >= b for a, b in zip(steps, steps[1:]))
    assert meta["hlf_names"] == list(d.HLF_NAMES) and meta["particle_names"] == list(d.PARTICLE_NAMES)
    smallest = min(flow["final (finite features)"] for flow in meta["cutflow"].values())
    train, val, test = (next(iter(meta["counts"][s].values())) for s in ("train", "val", "test"))
    assert all(len(set(meta["counts"][s].values())) == 1 for s in ("train", "val", "test"))  # balanced
    assert train + val + test == smallest                                                  # undersampled to the smallest
    assert test == round(0.2 * smallest) and val == round(0.1 * (smallest - test))
    assert meta["intermediate_bytes"]["selected"] > 0 and meta["intermediate_bytes"]["partitioned"] > 0


def test_the_compact_layout_is_declared_without_nulls(compact: Path) -> None:
    """Label, HLF and particles are required at every level (Parquet then writes no null levels);
    the provenance columns stay optional (a dataset without them writes nulls)."""
    import pyarrow.parquet as pq

    schema = pq.ParquetFile(next((compact / "train").glob("*.parquet"))).schema_arrow
    for name in ("label", "hlf", "particles"):
        field = schema.field(name)
        assert not field.nullable
        if name != "label":
            assert not field.type.value_field.nullable
    assert all(not f.nullable for f in schema.field("particles").type.value_type)
    assert [f.name for f in schema.field("particles").type.value_type] == list(d.PARTICLE_NAMES)
    assert all(schema.field(f.name).nullable for f in PROVENANCE)


def test_train_and_test_are_disjoint_and_scaled_on_train(spark, compact: Path) -> None:
    train, test = load(spark, compact / "train"), load(spark, compact / "test")
    key = lambda r: tuple(np.round(r.hlf, 5))
    assert not {key(r) for r in train} & {key(r) for r in test}
    hlf = np.array([r.hlf for r in train])
    varying = hlf.max(axis=0) > hlf.min(axis=0)
    np.testing.assert_allclose(hlf.min(axis=0)[varying], 0.0, atol=1e-6)
    np.testing.assert_allclose(hlf.max(axis=0)[varying], 1.0, atol=1e-6)
    particles = np.concatenate([np.array(r.particles) for r in train])
    assert particles.shape[1] == d.N_PARTICLE_FEATURES
    spread = particles.std(axis=0) > 0
    np.testing.assert_allclose(particles.mean(axis=0)[spread], 0.0, atol=1e-3)
    np.testing.assert_allclose(particles.std(axis=0)[spread], 1.0, atol=1e-3)
    meta = json.loads((compact / "metadata.json").read_text())
    assert len(meta["scaler"]["hlf_min"]) == d.N_HLF and len(meta["scaler"]["particle_mean"]) == d.N_PARTICLE_FEATURES


def test_same_seed_same_datasets_and_anchor_layout(spark, ingested: Path, compact: Path) -> None:
    again = ingested.parent / "again"
    features(FeaturesConfig(seed=5), str(ingested), str(again), spark)
    assert [r.asDict() for r in load(spark, again / "test")] == [r.asDict() for r in load(spark, compact / "test")]
    anchor = ingested.parent / "anchor"
    features(FeaturesConfig(seed=5, layout="anchor"), str(ingested), str(anchor), spark)
    df = spark.read.parquet(str(anchor / "test"))
    # The public 2020 columns, then where each event came from.
    assert df.columns == ["HLF_input", "GRU_input", "encoded_label", "label", "source_file", "source_entry", "event_number"]
    rows, ref = df.collect(), load(spark, compact / "test")
    for row, expected in zip(rows, ref):
        assert len(row.HLF_input) == d.N_HLF and len(row.GRU_input) == d.MAX_PARTICLES
        assert all(len(step) == d.N_PARTICLE_FEATURES for step in row.GRU_input)
        assert row.encoded_label == [1.0 if i == row.label else 0.0 for i in range(3)]
        n = len(expected.particles)
        np.testing.assert_allclose(np.array(row.GRU_input[:n]), np.array(expected.particles), rtol=1e-6)
        assert not np.any(np.array(row.GRU_input[n:]))
        np.testing.assert_allclose(row.HLF_input, expected.hlf, rtol=1e-6)


def test_bad_inputs(spark, ingested: Path, compact: Path, tmp_path: Path) -> None:
    with pytest.raises(OutputExistsError):
        features(FeaturesConfig(), str(ingested), str(compact), spark)
    broken = tmp_path / "broken"
    spark.read.parquet(str(ingested)).drop("Jet").write.parquet(str(broken))
    with pytest.raises(InputError, match="lacks input columns: Jet"):
        features(FeaturesConfig(), str(broken), str(tmp_path / "out"), spark)
    with pytest.raises(MissingInputError, match="not found"):
        features(FeaturesConfig(), str(tmp_path / "missing"), str(tmp_path / "out"), spark)


def test_datasets_do_not_depend_on_how_the_input_is_cut_into_tasks(spark, ingested: Path, compact: Path) -> None:
    from topotrigger.features import ingested as pieces

    # The same events ingested in many small files: many more feature tasks, same datasets.
    generated = ingested.parent / "generate"
    cut = ingested.parent / "ingest-cut"
    ingest(IngestConfig(partition_bytes=20_000), [str(generated)], str(cut), spark)
    assert len(pieces.plan(str(cut))) > 2 * len(pieces.plan(str(ingested)))
    fine = ingested.parent / "fine"
    features(FeaturesConfig(seed=5), str(cut), str(fine), spark)
    for split in ("train", "test"):
        rows = lambda p, split=split: sorted((r.label, tuple(r.hlf)) for r in load(spark, p / split))
        assert rows(fine) == rows(compact)
    meta = lambda p: json.loads((p / "metadata.json").read_text())
    assert meta(fine)["cutflow"] == meta(compact)["cutflow"]
    for name, value in meta(compact)["scaler"].items():  # sums in another order: equal to rounding
        np.testing.assert_allclose(meta(fine)["scaler"][name], value, rtol=1e-12)


def test_an_empty_split_stops_with_one_line_or_is_written_empty(spark, ingested: Path, tmp_path: Path) -> None:
    from topotrigger.train.data import ParquetEvents

    tiny = FeaturesConfig(seed=5, test_fraction=0.001)  # rounds to no test event per class
    with pytest.raises(InputError, match=r"the test split .* would hold no event .*on_empty_split"):
        features(tiny, str(ingested), str(tmp_path / "stop"), spark)
    assert not (tmp_path / "stop").exists()
    out = tmp_path / "written"
    result = features(tiny.model_copy(update={"on_empty_split": "write"}), str(ingested), str(out), spark)
    assert set(result.counts["test"].values()) == {0} and min(result.counts["train"].values()) > 0
    assert ParquetEvents(str(out / "test"), 8).num_events == 0
    assert spark.read.parquet(str(out / "test")).count() == 0


def test_train_val_and_test_are_disjoint_with_the_requested_shares(spark, ingested: Path, tmp_path: Path) -> None:
    out = tmp_path / "three"
    result = features(FeaturesConfig(seed=5, test_fraction=0.25, val_fraction=0.3), str(ingested), str(out), spark)
    rows = {s: spark.read.parquet(str(out / s)).collect() for s in ("train", "val", "test")}
    key = lambda r: (r.label, tuple(np.round(r.hlf, 5)))
    keys = {s: {key(r) for r in rs} for s, rs in rows.items()}
    assert not keys["train"] & keys["val"] and not keys["train"] & keys["test"] and not keys["val"] & keys["test"]
    for name in ("qcd", "ttbar", "wjets"):
        n = {s: result.counts[s][name] for s in rows}
        kept = sum(n.values())
        assert n["test"] == round(0.25 * kept) and n["val"] == round(0.3 * (kept - n["test"]))
    for s, rs in rows.items():  # the counts in metadata.json are the rows on disk
        assert sum(result.counts[s].values()) == len(rs)
    # The validation share comes out of the training events only.
    default = features(FeaturesConfig(seed=5, test_fraction=0.25, val_fraction=0.0, on_empty_split="write"),
                       str(ingested), str(tmp_path / "noval"), spark)
    assert default.counts["test"] == result.counts["test"] and sum(default.counts["val"].values()) == 0
    assert all(default.counts["train"][c] == result.counts["train"][c] + result.counts["val"][c] for c in result.counts["train"])


def test_the_cut_flow_keeps_selection_order_into_metadata_and_the_report(compact: Path, tmp_path: Path) -> None:
    from topotrigger.evaluate.report import write_report

    meta = json.loads((compact / "metadata.json").read_text())
    assert all(list(flow) == list(d.CUT_NAMES) for flow in meta["cutflow"].values())
    metrics = {"class_names": ["qcd", "ttbar", "wjets"], "models": {}, "split": "test", "events": 0, "dataset": "d"}
    page = write_report(tmp_path / "r.html", metrics, [], {"cutflow": meta["cutflow"]}).read_text()
    positions = [page.index(f"<th>{html_escape(name)}</th>") for name in d.CUT_NAMES]
    assert positions == sorted(positions)


def html_escape(text: str) -> str:
    import html

    return html.escape(text)


def test_thresholds_are_the_kth_smallest_h_rid_of_each_class(spark, tmp_path: Path) -> None:
    """The split thresholds found through the h histogram equal a full sort, with ties in h (broken by
    rid), crowded buckets and empty classes; a file changed behind the histogram is refused."""
    import pyarrow as pa

    from topotrigger.features.stage import IpcOutput, _thresholds, h_bucket_codes

    def write(table: pa.Table) -> str:
        output = IpcOutput(str(tmp_path), table.schema)
        output.write(table.to_batches()[0])
        return output.close() or ""

    rng = np.random.default_rng(3)
    label = rng.integers(0, 3, 3000).astype(np.int32)
    h = rng.integers(-(2**63), 2**63 - 1, 3000, dtype=np.int64)
    h[:400] = rng.integers(-5, 5, 400)  # many rows in one bucket, equal h values among them
    rid = rng.permutation(3000).astype(np.int64)
    files = [write(pa.table({"label": label[part], "h": h[part], "rid": rid[part], "x": rid[part]}))
             for part in np.array_split(np.arange(3000), 4)]
    codes, counts = np.unique(h_bucket_codes(label, h), return_counts=True)
    histogram = dict(zip(codes.tolist(), counts.tolist()))
    ranks = [{0: 1, 1: 500, 2: 0}, {0: int((label == 0).sum()), 1: 150, 2: int((label == 2).sum()) - 3}]
    got = _thresholds(spark, str(tmp_path), files, histogram, ranks)
    for per_class, cuts in zip(ranks, got):
        for lab, k in per_class.items():
            mine = np.flatnonzero(label == lab)
            order = mine[np.lexsort((rid[mine], h[mine]))]
            assert cuts[lab] == (None if k == 0 else (int(h[order[k - 1]]), int(rid[order[k - 1]])))
    files[0] = write(pa.table({"label": label, "h": h, "rid": rid, "x": rid}))  # every bucket grows
    with pytest.raises(RuntimeError, match="the select tasks counted"):
        _thresholds(spark, str(tmp_path), files, histogram, [{0: 5, 1: 5, 2: 5}])


def test_split_writes_partition_by_the_shuffling_hash_and_keep_every_kept_event(spark, tmp_path: Path,
                                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The map and reduce tasks of the split writes, called directly: every kept event lands once, in its
    split and in the partition its shuffling hash names, training events in hash order, the others in
    (label, h, rid) order; events the balancing leaves out are written nowhere, and their particle
    lists are not built. (The lists themselves: test_particle_lists_of_kept_events_equal_one_pass.)"""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from topotrigger.features import layouts, stage
    from topotrigger.features.arrow import packed
    from topotrigger.features.scaling import Moments, Scaler
    from topotrigger.features.stage import SELECTED, IpcOutput, partition_task, split_of, write_split_task
    from topotrigger.io.arrow_writer import prepare
    from topotrigger.io.provenance import PROVENANCE_DDL
    from topotrigger.runtime.spark import schemas

    rng = np.random.default_rng(8)
    n = 600
    label = rng.integers(0, 3, n).astype(np.int32)
    h, s = (rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64) for _ in range(2))
    rid = np.arange(n, dtype=np.int64)
    counts = rng.integers(1, 6, n)
    hlf = rng.normal(size=(n, d.N_HLF)).astype(np.float32)
    particles = rng.normal(size=(int(counts.sum()), d.N_PARTICLE_FEATURES)).astype(np.float32)
    columns = {"label": pa.array(label), "sample": pa.array(["x"] * n), "key": pa.array(rid), "rid": pa.array(rid),
               "h": pa.array(h), "s": pa.array(s), "hlf": packed(hlf, np.ones(n))}
    starts = np.concatenate([[0], np.cumsum(counts)])
    built: list[int] = []

    def lists(piece, ids, hlf_of, opts):  # the synthetic events' particles, in the order asked
        assert np.array_equal(hlf_of, hlf[ids])
        built.extend(ids.tolist())
        rows = np.concatenate([np.arange(starts[i], starts[i + 1]) for i in ids]).astype(np.int64)
        return particles[rows], counts[ids].astype(np.int32)

    monkeypatch.setattr(stage, "particle_lists", lists)
    table = pa.table({f.name: columns.get(f.name, pa.nulls(n, f.type)) for f in SELECTED}, schema=SELECTED)
    files = []
    for part in np.array_split(np.arange(n), 3):
        output = IpcOutput(str(tmp_path), SELECTED)
        output.write(table.take(pa.array(part)).to_batches()[0])
        files.append(output.close())
    rank = lambda q: {lab: (int(np.sort(h[label == lab])[int(q * (label == lab).sum())]), n) for lab in range(3)}
    cuts = {"kept": rank(0.9), "held": rank(0.4), "test": rank(0.2)}
    partitions = {"train": 3, "val": 1, "test": 2}
    (tmp_path / "shuffle").mkdir()
    # Two map tasks: the first holds its two pieces' events in one file (buffer_bytes unreached), the
    # second writes its piece alone (a buffer of 1 byte).
    reports = [*partition_task(iter([(None, f) for f in files[:2]]), str(tmp_path), str(tmp_path / "shuffle"), cuts,
                               partitions, (cuts["kept"], cuts["held"]), {}),
               *partition_task(iter([(None, files[2])]), str(tmp_path), str(tmp_path / "shuffle"), cuts,
                               partitions, (cuts["kept"], cuts["held"]), {}, buffer_bytes=1)]
    assert [sorted(r) for r in reports] == [["moments"], ["moments"], ["path", "segments"], ["moments"], ["path", "segments"]]
    maps = [r for r in reports if "segments" in r]
    split = split_of(label, h, rid, cuts)
    assert sorted(built) == np.flatnonzero(split >= 0).tolist()  # the scaler's sample is among the kept
    train = split == 0
    merged = functools.reduce(Moments.merge, [r["moments"] for r in reports if "moments" in r])
    assert merged.n == counts[train].sum()
    np.testing.assert_allclose(merged.hlf_min, hlf[train].min(axis=0))

    _, schema = schemas(layouts.COMPACT_SCHEMA + ", " + PROVENANCE_DDL)
    scaler = Scaler.fit(merged).to_dict()
    first = {"train": 0, "val": 3, "test": 4}
    for name, code in (("train", 0), ("val", 1), ("test", 2)):
        prepare(str(tmp_path / "out" / name))
        for p in range(partitions[name]):
            group = first[name] + p
            sources = [(m["path"], offset, length) for m in maps for g, offset, length in m["segments"] if g == group]
            reports = list(write_split_task(iter([(name, group, sources)]), str(tmp_path / "out"), scaler, "compact", schema))
            got = pa.concat_tables([pq.read_table(r["path"]) for r in reports[0]["files"]]) if sources else None
            mine = np.flatnonzero((split == code) & (s.view(np.uint64) % np.uint64(partitions[name]) == p))
            if name == "train":
                mine = mine[np.argsort(s[mine])]
            else:
                mine = mine[np.lexsort((rid[mine], h[mine], label[mine]))]
            assert (got.num_rows if got is not None else 0) == len(mine)
            if len(mine):
                assert got.column("label").to_pylist() == label[mine].tolist()

    # One task writing several output partitions of a split: each its own file, named by its partition,
    # so nothing is overwritten and the files list in the split's order.
    from topotrigger.io.arrow_writer import commit

    items = [("train", g, [(m["path"], offset, length) for m in maps for x, offset, length in m["segments"] if x == g])
             for g in range(3)]
    prepare(str(tmp_path / "together" / "train"))
    reports = list(write_split_task(iter(items), str(tmp_path / "together"), scaler, "compact", schema))
    assert commit(str(tmp_path / "together" / "train"), [f for r in reports for f in r["files"]]) == {"": int(train.sum())}
    written = pq.read_table(tmp_path / "together" / "train")
    parts = [np.flatnonzero(train & (s.view(np.uint64) % np.uint64(3) == p)) for p in range(3)]
    mine = np.concatenate([part[np.argsort(s[part])] for part in parts])  # partition by partition, each by s
    assert len(mine) == written.num_rows
    assert written.column("label").to_pylist() == label[mine].tolist()


def test_particle_lists_of_kept_events_equal_one_pass(ingested: Path) -> None:
    """Pass 1 selects without particle lists; pass 3 builds them for some selected events, asked in any
    order, from a second read: the same rows as one full pass. An input that selects differently the
    second time is an error, not a dataset made of two versions of it."""
    from topotrigger.features import ingested as reading
    from topotrigger.features.arrow import collections_of
    from topotrigger.features.kernels.events import compute
    from topotrigger.features.stage import particle_lists

    checked = 0
    for piece in reading.plan(str(ingested)):
        batch = pa_concat(list(reading.read(piece)))
        full = compute(collections_of(batch), d.FeatureOptions())
        light = compute(collections_of(batch), d.FeatureOptions(), lists=False)
        assert np.array_equal(light.cut, full.cut) and np.array_equal(light.counts, full.counts)
        final = np.flatnonzero(full.cut == d.CUT_FINAL)
        assert np.array_equal(light.hlf[final], full.hlf[final]) and light.particles.shape[0] == 0
        starts = np.concatenate([[0], np.cumsum(full.counts[final])])
        rid = batch.column("rid").to_numpy()[final]
        some = np.random.default_rng(3).permutation(len(final))[: max(1, len(final) // 2)]
        rows, counts = particle_lists(piece, rid[some], full.hlf[final][some], d.FeatureOptions())
        assert np.array_equal(counts, full.counts[final][some])
        expected = np.concatenate([full.particles[starts[i]:starts[i + 1]] for i in some])
        assert np.array_equal(rows, expected)
        wrong = full.hlf[final][some].copy()
        wrong[0, 0] += 1.0
        with pytest.raises(InputError, match="changed while the features were built"):
            particle_lists(piece, rid[some], wrong, d.FeatureOptions())
        checked += len(some)
    assert checked > 10


def test_a_read_of_some_input_columns_decodes_those_alone(ingested: Path) -> None:
    """The second read decodes only the kernel's columns: their values, and the row ids, as a full read's."""
    import pyarrow.compute as pc

    from topotrigger.features import ingested as reading
    from topotrigger.features.kernels.events import KERNEL_INPUTS

    piece = reading.plan(str(ingested))[0]
    full = pa_concat(list(reading.read(piece)))
    some = pa_concat(list(reading.read(piece, inputs=KERNEL_INPUTS, carry=False)))
    assert some.schema.names == [*KERNEL_INPUTS, "rid"]
    assert some.column("rid").equals(full.column("rid"))
    for name, fields in KERNEL_INPUTS.items():
        assert some.column(name).type.value_type.names == list(fields)
        for f in fields:
            assert pc.list_flatten(some.column(name)).field(f).equals(pc.list_flatten(full.column(name)).field(f))


def test_events_with_a_non_finite_input_are_dropped_whether_ingest_marked_them_or_not(spark, ingested: Path, compact: Path,
                                                                                     tmp_path: Path) -> None:
    """A NaN track vertex or an infinite jet mass drops its event at the last cut-flow step. Where the
    input has ingest's FINITE column, pass 1 reads that instead of the track columns only particle rows
    use; without it, pass 1 reads and checks them all: the same cut flow and datasets either way."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from topotrigger.features import ingested as reading
    from topotrigger.features.arrow import collections_of
    from topotrigger.features.kernels.events import ROW_ONLY, non_finite

    def poisoned(table: pa.Table, name: str, field: str, event: int, value: float) -> pa.Table:
        column = table.column(name).combine_chunks()
        records = column.values
        values = records.field(field).to_numpy(zero_copy_only=False).copy()
        values[column.offsets[event].as_py()] = value
        fields = [pa.array(values, records.type.field(i).type) if records.type.field(i).name == field else records.field(i)
                  for i in range(records.type.num_fields)]
        rebuilt = pa.ListArray.from_arrays(column.offsets, pa.StructArray.from_arrays(fields, fields=list(records.type)))
        return table.set_column(table.schema.get_field_index(name), table.schema.field(name), rebuilt.cast(column.type))

    marked, unmarked = tmp_path / "marked", tmp_path / "unmarked"
    shutil.copytree(ingested, marked)
    dropped = 0
    for path in sorted(marked.rglob("*.parquet")):
        table = pq.read_table(path)
        assert reading.FINITE in table.schema.names and pc.all(table.column(reading.FINITE)).as_py()
        # Final events holding a track (NaN vertex) or a jet (infinite mass); `compact` selected them.
        full = compute_all(table)
        final = np.flatnonzero(full.cut == d.CUT_FINAL)
        tracks = np.diff(table.column("EFlowTrack").combine_chunks().offsets.to_numpy())
        jets = np.diff(table.column("Jet").combine_chunks().offsets.to_numpy())
        first, second = final[tracks[final] > 0][0], final[jets[final] > 0][-1]
        table = poisoned(table, "EFlowTrack", ROW_ONLY["EFlowTrack"][1], int(first), float("nan"))
        table = poisoned(table, "Jet", "Mass", int(second), float("inf"))
        dropped += len({int(first), int(second)})
        bad = non_finite(collections_of(table.combine_chunks().to_batches()[0]), table.num_rows)
        assert set(np.flatnonzero(bad).tolist()) == {int(first), int(second)}
        table = table.set_column(table.schema.get_field_index(reading.FINITE), table.schema.field(reading.FINITE), pa.array(~bad))
        pq.write_table(table, path)
    shutil.copytree(marked, unmarked)
    for path in unmarked.rglob("*.parquet"):
        pq.write_table(pq.read_table(path).drop_columns([reading.FINITE]), path)
    assert all(p.finite for p in reading.plan(str(marked))) and not any(p.finite for p in reading.plan(str(unmarked)))

    outs = [tmp_path / "out-marked", tmp_path / "out-unmarked"]
    for source, out in zip((marked, unmarked), outs):
        features(FeaturesConfig(seed=5), str(source), str(out), spark)
    metas = [json.loads((out / "metadata.json").read_text()) for out in outs]
    clean = json.loads((compact / "metadata.json").read_text())
    assert metas[0]["cutflow"] == metas[1]["cutflow"] and metas[0]["counts"] == metas[1]["counts"]
    final = [sum(flow["final (finite features)"] for flow in m["cutflow"].values()) for m in (clean, metas[0])]
    assert final[0] - final[1] == dropped
    for split in ("train", "val", "test"):
        a, b = (pq.read_table(out / split).sort_by([("source_file", "ascending"), ("source_entry", "ascending")]) for out in outs)
        assert a.equals(b)


def compute_all(table: "object") -> "object":
    from topotrigger.features.arrow import collections_of
    from topotrigger.features.kernels.events import compute

    return compute(collections_of(table.combine_chunks().to_batches()[0]), d.FeatureOptions(), lists=False)


def pa_concat(batches: list) -> "object":
    import pyarrow as pa

    return pa.Table.from_batches(batches).combine_chunks().to_batches()[0]
