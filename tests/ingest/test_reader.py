"""Reading, schema inference and partition planning without Spark."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow as pa
import pytest
import uproot

from topotrigger.errors import InputError, MissingInputError
from topotrigger.ingest import plan, reader, schema
from topotrigger.ingest.paths import expand, redact
from topotrigger.ingest.stage import pipeline_columns

from .conftest import write_delphes_like, write_with_corrupt_basket


def read_all(path: Path, columns: list[schema.Column], step: int = 4) -> pa.Table:
    with uproot.open(path) as f:
        n = f["Delphes"].num_entries
    return pa.Table.from_batches(list(reader.read_range(str(path), "Delphes", columns, 0, n, step)))


@pytest.mark.parametrize("rntuple", [False, True])
def test_collections_round_trip(tmp_path: Path, rntuple: bool) -> None:
    data = write_delphes_like(tmp_path / "a.root", 13, muon="Muon", rntuple=rntuple)
    table = read_all(tmp_path / "a.root", pipeline_columns())
    assert table.num_rows == 13
    for name in ("EFlowTrack", "Jet", "MissingET"):
        assert table.column(name).to_pylist() == ak.to_list(data[name])
    # `Muon` in the file is read as MuonTight; unsigned BTag becomes signed 64-bit.
    assert table.column("MuonTight").to_pylist() == ak.to_list(data["Muon"])
    assert table.schema.field("Jet").type.value_type.field("BTag").type == pa.int64()


def test_real_delphes_file_equals_uproot(shared_data: Path) -> None:
    path = shared_data / "delphes.root"
    table = read_all(path, pipeline_columns(), step=7)
    with uproot.open(path) as f:
        tree = f["Delphes"]
        for collection, field, branch in (("EFlowTrack", "PT", "EFlowTrack/EFlowTrack.PT"),
                                          ("EFlowTrack", "Z", "EFlowTrack/EFlowTrack.Z"),
                                          ("MuonTight", "Charge", "Muon/Muon.Charge"),
                                          ("Jet", "BTag", "Jet/Jet.BTag"),
                                          ("MissingET", "MET", "MissingET/MissingET.MET")):
            expected = ak.to_list(tree[branch].array())
            got = [[item[field] for item in event] for event in table.column(collection).to_pylist()]
            assert got == expected, (collection, field)


def test_infer_columns_groups_collections_and_prunes(shared_data: Path) -> None:
    with uproot.open(shared_data / "delphes.root") as f:
        columns = schema.infer_columns(f["Delphes"], ["Jet.PT", "Jet.BTag", "MissingET.*"])
        everything = schema.infer_columns(f["Delphes"])
    assert [(c.name, [n for n, _ in c.fields]) for c in columns] == [("Jet", ["PT", "BTag"]), ("MissingET", ["MET", "Eta", "Phi"])]
    assert dict(columns[0].fields)["BTag"] == "uint32"
    assert str(columns[0].spark_type().elementType["BTag"].dataType) == "LongType()"
    names = {c.name for c in everything}
    assert {"EFlowTrack", "Muon", "Jet", "Event"} <= names
    assert all(f not in ("fUniqueID", "fBits") for c in everything for f, _ in c.fields)


def test_column_plan_json_round_trip() -> None:
    columns = pipeline_columns() + [schema.Column("weight", "float64", source="Event.Weight")]
    assert schema.from_json(schema.to_json(columns)) == columns
    assert schema.from_spark_schema(schema.spark_schema(columns))[0].fields == columns[0].fields


def test_bad_file_tree_and_branch_errors(shared_data: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"bad_delphes.root: (not a readable ROOT file|no tree .Delphes.)"):
        reader.open_tree(str(shared_data / "bad_delphes.root"), "Delphes")
    with pytest.raises(InputError, match="no tree 'Events'.*Delphes"):
        reader.open_tree(str(shared_data / "delphes.root"), "Events")
    text = tmp_path / "notes.root"
    text.write_text("not ROOT at all\n" * 100)
    with pytest.raises(InputError, match="not a readable ROOT file"):
        reader.open_tree(str(text), "Delphes")
    truncated = tmp_path / "truncated.root"
    truncated.write_bytes((shared_data / "delphes.root").read_bytes()[:20000])
    with pytest.raises(InputError, match="truncated.root"):
        plan.scan_file(str(truncated), "Delphes", pipeline_columns())
    wrong = [schema.Column("Jet", None, (("PT", "float32"), ("Pt_typo", "float32")))]
    with pytest.raises(InputError, match=r"branch Jet\.Pt_typo not found .*closest names in the file: Jet\.PT"):
        plan.scan_file(str(shared_data / "delphes.root"), "Delphes", wrong)


def test_scan_skip_lists_bad_files(shared_data: Path) -> None:
    good, bad = plan.scan([str(shared_data / "delphes.root"), str(shared_data / "bad_delphes.root")], "Delphes",
                          pipeline_columns(), on_bad_file="skip")
    assert [g.entries for g in good] == [25] and good[0].bytes_per_entry > 0
    assert len(bad) == 1 and "bad_delphes.root" in bad[0]["path"] and bad[0]["reason"]


def test_partitions_pack_small_files_and_split_big_ones() -> None:
    small = [plan.FileInfo(f"s{i}", 10, 100.0, 0) for i in range(5)]      # 1 kB each
    big = [plan.FileInfo("big", 1000, 100.0, 0)]                            # 100 kB
    parts = plan.make_partitions(small + big, target_bytes=10_000)
    covered = {}
    for p in parts:
        assert sum((s.stop - s.start) * 100 for s in p.slices) <= 10_000
        for s in p.slices:
            covered.setdefault(s.path, []).append((s.start, s.stop))
    assert len(parts[0].slices) >= 5                     # the small files share the first partition
    assert sum(b - a for a, b in covered["big"]) == 1000  # every entry once
    assert len(parts) == 11
    by_entries = plan.make_partitions(big, target_bytes=1, entries=300)
    assert [(s.start, s.stop) for p in by_entries for s in p.slices] == [(0, 300), (300, 600), (600, 900), (900, 1000)]


def test_expand_files_dirs_globs(class_dirs: Path, tmp_path: Path) -> None:
    files = expand([str(class_dirs)])
    assert len(files) == 4 and files == sorted(files)
    assert expand([str(class_dirs / "wjets" / "*.root"), str(class_dirs / "wjets")]) == files[2:]
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no .root files"):
        expand([str(tmp_path / "empty")])
    with pytest.raises(MissingInputError):
        expand([str(tmp_path / "nope.root")])


def test_redact_hides_credentials() -> None:
    assert redact("s3://key:secret@bucket/a.root") == "s3://bucket/a.root"
    assert redact("root://eos.cern.ch//a.root") == "root://eos.cern.ch//a.root"


def test_empty_tree_reads_zero_rows(tmp_path: Path) -> None:
    write_delphes_like(tmp_path / "empty.root", 0)
    info = plan.scan_file(str(tmp_path / "empty.root"), "Delphes", pipeline_columns())
    assert info.entries == 0
    assert plan.make_partitions([info], 1000) == []
    assert np.isfinite(info.bytes_per_entry)


def test_underscore_naming_variant(tmp_path: Path) -> None:
    """Trees written as `Jet_PT` (counter `Jet_size`) read like `Jet.PT` ones."""
    data = {"Jet": ak.Array([[{"PT": 30.0, "Eta": 1.0}], [], [{"PT": 5.0, "Eta": -1.0}, {"PT": 7.0, "Eta": 0.5}]])}
    with uproot.recreate(tmp_path / "u.root") as f:
        tree = f.mktree("Delphes", {"Jet": data["Jet"].type}, field_name=lambda o, i: f"{o}_{i}",
                        counter_name=lambda c: f"{c}_size")
        tree.extend(data)
    with uproot.open(tmp_path / "u.root") as f:
        assert "Jet_PT" in f["Delphes"]
        inferred = schema.infer_columns(f["Delphes"])
    assert [(c.name, [n for n, _ in c.fields]) for c in inferred] == [("Jet", ["PT", "Eta"])]
    columns = [schema.Column("Jet", None, (("PT", "float64"), ("Eta", "float64")))]
    table = read_all(tmp_path / "u.root", columns)
    assert table.column("Jet").to_pylist() == ak.to_list(data["Jet"])


def test_read_slices_skip_keeps_nothing_of_a_file_that_breaks_half_way(tmp_path: Path) -> None:
    write_delphes_like(tmp_path / "good.root", 12, seed=3)
    write_with_corrupt_basket(tmp_path / "broken.root", 30, baskets=3)
    columns = pipeline_columns()
    slices = [{"path": str(tmp_path / "broken.root"), "start": 0, "stop": 30, "part": 0, "parts": 0},
              {"path": str(tmp_path / "good.root"), "start": 0, "stop": 0, "part": 0, "parts": 1}]
    seen, bad = {}, {}
    # step 10: the first batch of the broken file reads fine before the third fails.
    rows = sum(b.num_rows for b in reader.read_slices(slices, "Delphes", columns, 10, "skip", seen, bad))
    assert rows == 12 and list(bad) == [str(tmp_path / "broken.root")] and "unreadable" in bad[str(tmp_path / "broken.root")]
    assert seen == {str(tmp_path / "broken.root"): 30, str(tmp_path / "good.root"): 12}
    with pytest.raises(InputError, match="broken.root: entries 20-30"):
        list(reader.read_slices(slices, "Delphes", columns, 10, "stop"))


def test_plan_by_size_packs_small_files_and_shares_out_big_ones() -> None:
    sizes = {"a": 100, "b": 100, "c": 100, "big": 1000, "unknown": -1}
    parts = plan.plan_by_size(sizes, expansion=4.0, target_bytes=1000)
    assert [[(s.path, s.part, s.parts) for s in p.slices] for p in parts] == [
        [("a", 0, 1), ("b", 0, 1)],
        [("big", 0, 4)], [("big", 1, 4)], [("big", 2, 4)], [("big", 3, 4)], [("unknown", 0, 1)], [("c", 0, 1)]]
    # Shares of any entry count cover every entry once.
    for entries in (0, 1, 3, 1001):
        ranges = [reader.share(entries, i, 4) for i in range(4)]
        assert ranges[0][0] == 0 and ranges[-1][1] == entries
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    info = plan.FileInfo("f", 100, 40.0, 1000)
    assert plan.expansion_of(info) == 4.0 and plan.expansion_of(plan.FileInfo("e", 0, 0.0, 10)) == 4.0


def test_plan_by_size_splits_files_of_many_small_entries() -> None:
    """Bytes alone would keep a well-compressed file of 5 M tiny entries in one task."""
    parts = plan.plan_by_size({"tiny": 1000, "small": 10}, expansion=4.0, target_bytes=10**9,
                              entries_per_byte=5000.0, max_entries=1_000_000)
    assert [[(s.path, s.part, s.parts) for s in p.slices] for p in parts] == [
        [("tiny", i, 5)] for i in range(5)] + [[("small", 0, 1)]]


def test_plans_fill_the_task_slots_down_to_a_floor() -> None:
    """300 MiB of input is 3 partitions of 128 MiB, which leaves 13 of 16 cores idle; with the
    session's parallelism it is cut into about 16, but never below 4 MiB a partition."""
    mib = 1024 * 1024
    sizes = {f"f{i}": 25 * mib for i in range(3)}  # 300 MiB uncompressed at expansion 4
    assert len(plan.plan_by_size(sizes, expansion=4.0, target_bytes=128 * mib)) == 3
    assert len(plan.plan_by_size(sizes, expansion=4.0, target_bytes=128 * mib, min_partitions=16)) == 18  # 6 shares each
    few = plan.plan_by_size({"a": mib, "b": mib}, expansion=4.0, target_bytes=128 * mib, min_partitions=16)
    assert [[s.path for s in p.slices] for p in few] == [["a"], ["b"]]  # 4 MiB each: the floor
    # The plan's total decides, not one sample's share of it.
    shared = plan.plan_by_size({"a": 25 * mib}, expansion=4.0, target_bytes=128 * mib, min_partitions=16,
                               total_bytes=300 * mib)
    assert len(shared) == 6
    infos = [plan.FileInfo(f"g{i}", 100_000, 1000.0, 1) for i in range(3)]  # 100 MB of entries each
    assert len(plan.make_partitions(infos, 128 * mib)) == 3
    assert len(plan.make_partitions(infos, 128 * mib, min_partitions=16)) == 16
    # 18 partitions of 128 MiB take two waves of 16 tasks (256 MiB a slot); aiming at two full waves of
    # 72 MiB cuts each file in two: 36 of 64 MiB, three short waves (192 MiB a slot).
    eighteen = {f"h{i}": 32 * mib for i in range(18)}
    assert len(plan.plan_by_size(eighteen, expansion=4.0, target_bytes=128 * mib)) == 18
    assert len(plan.plan_by_size(eighteen, expansion=4.0, target_bytes=128 * mib, min_partitions=16)) == 36


def test_the_root_sources_number_options_are_checked() -> None:
    from topotrigger.ingest.source import _count

    assert _count({"minpartitions": "16"}, "minPartitions", 1) == 16 and _count({}, "minPartitions", 1) == 1
    for bad in ("abc", "0", "-3", "1.5"):
        with pytest.raises(InputError, match=f"option minPartitions must be a positive whole number, not '{bad}'"):
            _count({"minpartitions": bad}, "minPartitions", 1)
