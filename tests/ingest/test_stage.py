"""The ingest stage: labels, Parquet layout, manifest, and every kind of bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from topotrigger.config import IngestConfig
from topotrigger.errors import InputError, MissingInputError, OutputExistsError, UserError
from topotrigger.ingest.stage import ingest

from .conftest import write_delphes_like, write_with_corrupt_basket

pytestmark = pytest.mark.spark
CFG = IngestConfig()


def test_ingest_writes_parquet_partitioned_by_label(spark, class_dirs: Path, tmp_path: Path) -> None:
    out = tmp_path / "ingested"
    result = ingest(CFG, [str(class_dirs / c) for c in ("qcd", "ttbar", "wjets")], str(out), spark)
    assert result.counts == {0: 7, 1: 11, 2: 11}
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["label=0", "label=1", "label=2"]
    assert (out / "_SUCCESS").exists()
    df = spark.read.parquet(str(out))
    assert {r.label: r["count"] for r in df.groupBy("label").count().collect()} == {0: 7, 1: 11, 2: 11}
    assert {r.sample for r in df.select("sample").distinct().collect()} == {"qcd", "ttbar", "wjets"}
    assert df.schema["EFlowTrack"].dataType.elementType.fieldNames() == ["PT", "Eta", "Phi", "PID", "Charge", "X", "Y", "Z"]
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["counts"] == {"0": 7, "1": 11, "2": 11}
    assert sum(f["entries"] for f in manifest["inputs"]) == 29 and all(f["bytes"] > 0 for f in manifest["inputs"])
    assert manifest["skipped"] == [] and "fields" in manifest["schema"]
    # lz4, and the floats byte-stream-split (the features stage reads these files twice).
    meta = pq.ParquetFile(next(out.rglob("*.parquet"))).metadata.row_group(0)
    encodings = {meta.column(i).path_in_schema: (meta.column(i).compression, meta.column(i).encodings) for i in range(meta.num_columns)}
    assert encodings["EFlowTrack.list.element.PT"] == ("LZ4", ("RLE", "BYTE_STREAM_SPLIT"))
    assert "BYTE_STREAM_SPLIT" not in encodings["EFlowTrack.list.element.PID"][1]
    # The pipeline's values are required (a reader decodes no definition levels for them), as a ROOT file holds them.
    written = pq.ParquetFile(next(out.rglob("*.parquet"))).schema_arrow
    track = written.field("EFlowTrack")
    assert not track.nullable and not track.type.value_field.nullable
    assert not any(f.nullable for f in track.type.value_type)
    assert written.field("event_number").nullable  # provenance a file may lack stays nullable
    # Output exists: refused, untouched.
    before = sorted(str(p) for p in out.rglob("*"))
    with pytest.raises(OutputExistsError, match="--overwrite"):
        ingest(CFG, [str(class_dirs)], str(out), spark)
    assert sorted(str(p) for p in out.rglob("*")) == before
    again = ingest(CFG, [str(class_dirs)], str(out), spark, overwrite=True)
    assert again.counts == result.counts
    assert not list(tmp_path.glob("ingested.tmp-*"))


def test_ingest_marks_the_events_with_a_non_finite_input_value(spark, tmp_path: Path) -> None:
    """FINITE is false exactly for the events with a NaN or infinite float among their input objects (the
    features stage then need not read every column to drop them)."""
    import awkward as ak
    import numpy as np

    from topotrigger.features.ingested import FINITE

    raw = tmp_path / "raw" / "qcd"
    raw.mkdir(parents=True)
    data = write_delphes_like(raw / "a.root", 40, seed=3)
    has = {c: np.flatnonzero(ak.to_numpy(ak.num(data[c])) > 0) for c in ("EFlowTrack", "Jet", "Electron")}
    poison = {("EFlowTrack", "X", int(has["EFlowTrack"][2])): float("nan"), ("Jet", "Mass", int(has["Jet"][5])): float("inf"),
              ("Electron", "PT", int(has["Electron"][1])): -float("inf"), ("MissingET", "MET", 30): float("nan")}
    write_delphes_like(raw / "a.root", 40, seed=3, values=poison)
    out = tmp_path / "ingested"
    ingest(CFG, [str(raw)], str(out), spark)
    table = pq.read_table(next(out.rglob("*.parquet")))
    assert not table.schema.field(FINITE).nullable
    order = np.argsort(table.column("source_entry").to_numpy())
    assert np.flatnonzero(~table.column(FINITE).to_numpy()[order]).tolist() == sorted({event for _, _, event in poison})


def test_bad_file_stops_before_writing(spark, class_dirs: Path, shared_data: Path, tmp_path: Path) -> None:
    shutil.copy(shared_data / "bad_delphes.root", class_dirs / "ttbar" / "broken.root")
    out = tmp_path / "out"
    with pytest.raises(InputError, match="broken.root"):
        ingest(CFG, [str(class_dirs)], str(out), spark)
    assert not out.exists() and not list(tmp_path.glob("out.tmp-*"))


def test_bad_file_skip_ingests_the_rest(spark, class_dirs: Path, shared_data: Path, tmp_path: Path) -> None:
    shutil.copy(shared_data / "bad_delphes.root", class_dirs / "ttbar" / "broken.root")
    out = tmp_path / "out"
    result = ingest(CFG.model_copy(update={"on_bad_file": "skip"}), [str(class_dirs)], str(out), spark)
    assert result.counts == {0: 7, 1: 11, 2: 11}
    manifest = json.loads((out / "_manifest.json").read_text())
    assert [Path(s["path"]).name for s in manifest["skipped"]] == ["broken.root"]
    assert manifest["skipped"][0]["reason"]


def test_missing_branch_names_it_and_close_matches(spark, tmp_path: Path) -> None:
    (tmp_path / "raw" / "qcd").mkdir(parents=True)
    write_delphes_like(tmp_path / "raw" / "qcd" / "a.root", 5, muon="Muons")
    with pytest.raises(InputError, match=r"branch MuonTight\.PT not found .*a\.root"):
        ingest(CFG, [str(tmp_path / "raw")], str(tmp_path / "out"), spark)


def test_a_missing_pipeline_value_is_an_error_naming_file_and_column(spark, tmp_path: Path) -> None:
    """An RNTuple may declare a pipeline field optional (`?float`): a null there would reach the features as
    a number, so ingest refuses the file."""
    import awkward as ak
    import uproot

    (tmp_path / "raw" / "qcd").mkdir(parents=True)
    data = write_delphes_like(tmp_path / "raw" / "qcd" / "plain.root", 4, rntuple=True)
    jets = data["Jet"]
    pt = ak.mask(jets.PT, ak.local_index(jets.PT) != 0)  # each event's first jet has no pT
    data["Jet"] = ak.zip({f: (pt if f == "PT" else jets[f]) for f in jets.fields})
    with uproot.recreate(tmp_path / "raw" / "qcd" / "holes.root") as f:
        f["Delphes"] = data
    with pytest.raises(InputError, match=r"holes\.root: Jet has missing \(null\) values"):
        ingest(CFG, [str(tmp_path / "raw")], str(tmp_path / "out"), spark)
    assert not (tmp_path / "out").exists()


def test_real_delphes_file_with_muon_alias_and_explicit_label(spark, shared_data: Path, tmp_path: Path) -> None:
    result = ingest(CFG, [str(shared_data / "delphes.root")], str(tmp_path / "out"), spark, label=1)
    assert result.counts == {1: 25}
    table = pq.read_table(tmp_path / "out")
    assert table.num_rows == 25 and "MuonTight" in table.column_names


def test_unlabelled_files_need_a_label(spark, shared_data: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="cannot tell the class"):
        ingest(CFG, [str(shared_data / "delphes.root")], str(tmp_path / "out"), spark)


def test_empty_tree_gives_zero_rows_and_empty_directory_is_an_error(spark, tmp_path: Path) -> None:
    (tmp_path / "raw" / "wjets").mkdir(parents=True)
    write_delphes_like(tmp_path / "raw" / "wjets" / "empty.root", 0)
    result = ingest(CFG, [str(tmp_path / "raw")], str(tmp_path / "out"), spark)
    assert result.counts == {2: 0}
    assert spark.read.parquet(str(tmp_path / "out")).count() == 0 if any((tmp_path / "out").rglob("*.parquet")) else True
    (tmp_path / "nothing").mkdir()
    with pytest.raises(InputError, match="no .root files"):
        ingest(CFG, [str(tmp_path / "nothing")], str(tmp_path / "out2"), spark)
    with pytest.raises(MissingInputError):
        ingest(CFG, [str(tmp_path / "missing")], str(tmp_path / "out3"), spark)


def test_files_shared_out_over_many_tasks_give_every_entry_once(spark, class_dirs: Path, tmp_path: Path) -> None:
    whole = ingest(CFG, [str(class_dirs)], str(tmp_path / "whole"), spark)
    # A tiny byte target cuts every file into several shares of its entries, each its own task.
    shared = ingest(CFG.model_copy(update={"partition_bytes": 4000}), [str(class_dirs)], str(tmp_path / "shared"), spark)
    assert shared.counts == whole.counts == {0: 7, 1: 11, 2: 11}
    assert len(list((tmp_path / "shared").rglob("*.parquet"))) > len(list((tmp_path / "whole").rglob("*.parquet")))
    key = ["label", "sample", "MissingET"]
    a = spark.read.parquet(str(tmp_path / "whole")).orderBy(*key).collect()
    b = spark.read.parquet(str(tmp_path / "shared")).orderBy(*key).collect()
    assert a == b
    assert [f["entries"] for f in shared.files] == [f["entries"] for f in whole.files]


def test_file_breaking_mid_read_is_skipped_whole(spark, class_dirs: Path, tmp_path: Path) -> None:
    write_with_corrupt_basket(class_dirs / "wjets" / "broken.root", 30, baskets=3)
    with pytest.raises(InputError, match=r"broken\.root: entries"):
        ingest(CFG, [str(class_dirs)], str(tmp_path / "stop"), spark)
    assert not (tmp_path / "stop").exists() and not list(tmp_path.glob("stop.tmp-*"))
    result = ingest(CFG.model_copy(update={"on_bad_file": "skip"}), [str(class_dirs)], str(tmp_path / "skip"), spark)
    assert result.counts == {0: 7, 1: 11, 2: 11}
    assert [Path(s["path"]).name for s in result.skipped] == ["broken.root"]
    assert spark.read.parquet(str(tmp_path / "skip")).count() == 29
