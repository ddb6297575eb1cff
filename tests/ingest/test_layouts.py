"""The `root` source on the layouts real files use: every value equals what uproot reads."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import pytest
import uproot

from topotrigger.errors import InputError
from topotrigger.ingest import schema

from . import layouts

pytestmark = pytest.mark.spark


def read(spark, path: Path, tree: str, branches: str | None = None) -> tuple[list[str], list[dict]]:
    df = spark.read.format("root").option("tree", tree)
    if branches:
        df = df.option("branches", branches)
    df = df.load(str(path))
    return df.columns, [r.asDict(recursive=True) for r in df.collect()]


def records(array: ak.Array) -> list:
    return ak.to_list(array)


def test_counter_named_like_its_collection_and_dotted_scalars(spark, tmp_path: Path) -> None:
    data = layouts.delphes_with_counters(tmp_path / "d.root")
    columns, rows = read(spark, tmp_path / "d.root", "Delphes")
    assert sorted(columns) == ["Jet", "xTrigDecisionAux_smk"]
    assert [r["Jet"] for r in rows] == records(data["Jet"])
    assert [r["xTrigDecisionAux_smk"] for r in rows] == data["xTrigDecisionAux.smk"].tolist()
    for selection in ("Jet", "Jet.PT,xTrigDecisionAux.smk"):
        columns, rows = read(spark, tmp_path / "d.root", "Delphes", selection)
        assert "Jet" in columns and [len(r["Jet"]) for r in rows] == [1, 0, 2]


def test_nanoaod_by_the_files_own_names_and_by_collection(spark, tmp_path: Path) -> None:
    data = layouts.nanoaod(tmp_path / "n.root")
    columns, rows = read(spark, tmp_path / "n.root", "Events", "Muon_pt,run,event,HLT_IsoMu24")
    assert sorted(columns) == ["HLT_IsoMu24", "Muon", "event", "run"]
    assert [[m["pt"] for m in r["Muon"]] for r in rows] == ak.to_list(data["Muon"].pt)
    assert [r["event"] for r in rows] == data["event"].tolist() and [r["run"] for r in rows] == [1, 1, 2]
    assert [r["HLT_IsoMu24"] for r in rows] == data["HLT_IsoMu24"].tolist()
    _, rows = read(spark, tmp_path / "n.root", "Events", "Muon")
    assert [r["Muon"] for r in rows] == records(data["Muon"])


def test_jagged_branches_of_no_collection_are_arrays(spark, tmp_path: Path) -> None:
    data = layouts.plain_jagged(tmp_path / "p.root")
    columns, rows = read(spark, tmp_path / "p.root", "T")
    assert sorted(columns) == ["Jet_Px", "hits", "nJet_Px", "nhits"]
    assert [r["Jet_Px"] for r in rows] == ak.to_list(data["Jet_Px"]) and [r["hits"] for r in rows] == ak.to_list(data["hits"])
    _, rows = read(spark, tmp_path / "p.root", "T", "Jet_Px")
    assert [r["Jet_Px"] for r in rows] == ak.to_list(data["Jet_Px"])


def test_rntuple_with_unusual_types(spark, tmp_path: Path) -> None:
    data = layouts.rntuple_unusual(tmp_path / "r.root")
    columns, rows = read(spark, tmp_path / "r.root", "R")
    assert sorted(columns) == ["Jet", "hits", "name", "nested", "rec_a", "rec_b", "x"]
    for name in ("x", "hits", "nested", "name", "Jet"):
        assert [r[name] for r in rows] == ak.to_list(data[name]), name
    assert [r["rec_a"] for r in rows] == [0, 1, 2]


def test_values_that_may_be_missing_stay_null_and_the_rest_is_declared_never_null(spark, tmp_path: Path) -> None:
    # A null read as NaN (or as a number from numpy's filler) would be a silently wrong value.
    layouts.rntuple_optional(tmp_path / "o.root")
    df = spark.read.format("root").option("tree", "R").load(str(tmp_path / "o.root"))
    expected = [{"Jet": [{"PT": 30.0, "q": 1.0}], "opt": [1.0, None], "sopt": 1.0, "rec_a": 1.0, "rec_b": None},
                {"Jet": [], "opt": [], "sopt": None, "rec_a": 2.0, "rec_b": 1},
                {"Jet": [{"PT": 5.0, "q": None}], "opt": [2.0], "sopt": 3.0, "rec_a": 3.0, "rec_b": 2}]
    names = list(expected[0])
    assert [r.asDict(recursive=True) for r in df.select(*names).collect()] == expected
    # The same through a schema the user gives, which says nothing of what the file may leave out.
    given = spark.read.format("root").option("tree", "R").schema("sopt double, rec_b bigint, opt array<double>")
    assert [r.asDict() for r in given.load(str(tmp_path / "o.root")).collect()] == [
        {k: e[k] for k in ("sopt", "rec_b", "opt")} for e in expected]
    nullable = {f.name: f.nullable for f in df.schema.fields}
    assert nullable == {"Jet": False, "nJet": False, "opt": True, "sopt": True, "rec_a": False, "rec_b": True}
    jet = df.schema["Jet"].dataType
    assert not jet.containsNull and {f.name: f.nullable for f in jet.elementType.fields} == {"PT": False, "q": True}
    assert df.schema["opt"].dataType.containsNull


def test_delphes_values_are_declared_never_null(spark, shared_data: Path) -> None:
    # ROOT cannot store a missing number: declaring so spares Spark a null check per value.
    df = spark.read.format("root").option("branches", "Jet.PT,Jet.BTag,Event").load(str(shared_data / "delphes.root"))
    flat = spark.read.format("root").option("nested", "false").option("branches", "Jet.PT").load(
        str(shared_data / "delphes.root"))
    for field in [*df.schema.fields, *flat.schema.fields]:
        t = field.dataType
        assert not t.containsNull and (not field.nullable or field in flat.schema.fields), field
        numbers = [f for f in getattr(t.elementType, "fields", []) if not hasattr(f.dataType, "fields")]
        assert numbers == [] or not any(f.nullable for f in numbers), field


def test_a_type_with_no_spark_counterpart_is_an_error_naming_it(tmp_path: Path) -> None:
    union = ak.Array([1.0, [2.0], 3.0])  # a union of number and list
    with uproot.recreate(tmp_path / "u.root") as f:
        f["R"] = {"odd": union, "x": ak.Array([1.0, 2.0, 3.0])}
    with uproot.open(tmp_path / "u.root") as f:
        with pytest.raises(InputError, match="branch odd has type"):
            schema.infer_columns(f["R"])
        assert [c.name for c in schema.infer_columns(f["R"], ["x"])] == ["x"]


def test_real_delphes_file_with_all_branches(spark, shared_data: Path) -> None:
    path = shared_data / "delphes.root"
    df = spark.read.format("root").load(str(path))
    assert df.count() == 25
    assert {"Jet", "Track", "Tower", "GenJet", "Event", "Particle"} <= set(df.columns)
    jets = df.select("Jet").toArrow().column("Jet").to_pylist()
    with uproot.open(path) as f:
        tree = f["Delphes"]
        for field in ("PT", "BTag", "FracPt"):
            branch = "Jet/Jet.FracPt[5]" if field == "FracPt" else f"Jet/Jet.{field}"
            assert [[j[field] for j in event] for event in jets] == ak.to_list(tree[branch].array()), field
        assert "Particle" not in {f.name for f in df.schema["Track"].dataType.elementType.fields}  # a TRef


def test_big_rntuple_is_split_into_entry_ranges(spark, tmp_path: Path) -> None:
    import numpy as np

    with uproot.recreate(tmp_path / "big.root") as f:
        f["R"] = {"x": np.arange(30_000, dtype="int64")}
    df = (spark.read.format("root").option("tree", "R").option("partitionMaxEntries", "10000")
          .load(str(tmp_path / "big.root")))
    assert df.rdd.getNumPartitions() == 3
    assert sorted(r.x for r in df.collect()) == list(range(30_000))
