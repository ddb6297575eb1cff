"""The generate stage on Spark: files, manifests, determinism, resume, refusal of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import pytest
import uproot

from topotrigger.config import GenerateConfig
from topotrigger.errors import OutputExistsError, UserError
from topotrigger.generate.stage import generate
from topotrigger.io.delphes import PIPELINE_COLLECTIONS, read_collections

pytestmark = pytest.mark.spark

# The default profile (MPI, pile-up) end to end on Spark, with a small minimum-bias library.
CFG = GenerateConfig(events=24, classes=["ttbar", "wjets", "qcd"], files_per_class=2, seed=5, pileup_library=100)


def content(path: Path) -> list:
    with uproot.open(path) as f:
        return ak.to_list(read_collections(f["Delphes"]))


@pytest.fixture(scope="module")
def generated(spark, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("gen") / "out"
    return generate(CFG, out, spark, progress=False)


def test_files_have_delphes_layout_and_counts(generated) -> None:
    out = generated.out
    for process in CFG.classes:
        files = sorted((out / process).glob("*.root"))
        assert [f.name for f in files] == [f"{process}_000.root", f"{process}_001.root"]
        entries = 0
        for f in files:
            with uproot.open(f) as root:
                tree = root["Delphes"]
                keys = set(tree.keys())
                entries += tree.num_entries
            for collection, fields in PIPELINE_COLLECTIONS.items():
                assert f"{collection}_size" in keys
                assert {f"{collection}.{field}" for field in fields} <= keys
            assert {"Event.Number", "Event.Weight", "Event.ProcessID"} <= keys
            assert tree["Jet.BTag"].interpretation.content.to_dtype.kind == "u"
        assert entries == CFG.events == generated.events(process)
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["classes"]) == set(CFG.classes)
    for process, summary in manifest["classes"].items():
        assert 0 < summary["filter_efficiency"] <= 1 and summary["sigma_mb"] > 0
        # Forced b-hadron decays weigh the QCD events by their open fractions (about 0.2 per decay).
        weights = [w for f in (out / process).glob("*.root") for w in uproot.open(f)["Delphes"]["Event.Weight"].array(library="np")]
        assert summary["mean_event_weight"] == pytest.approx(sum(weights) / len(weights), rel=1e-5)
        assert (0.01 < summary["mean_event_weight"] < 0.2) if process == "qcd" else summary["mean_event_weight"] == 1.0
        configurations = 2 if process == "ttbar" else 1
        assert summary["effective_cross_section_pb"] == pytest.approx(
            summary["sigma_mb"] * 1e9 * configurations * summary["filter_efficiency"] * summary["mean_event_weight"], rel=1e-5)
    assert "pythia8mc" in manifest["software"]
    assert all((out / "plots" / f"{p}.png").stat().st_size > 1000 for p in CFG.classes)


def test_rerun_keeps_complete_files_and_redoes_missing_ones(spark, generated) -> None:
    out = generated.out
    victim = out / "wjets" / "wjets_001.root"
    before = content(victim)
    victim.unlink()
    (out / "ttbar" / ".ttbar_000.root.tmp-999").write_bytes(b"half a file")  # a crashed writer's leftover
    again = generate(CFG, out, spark, progress=False, plots=False)
    assert again.skipped == len(again.files) - 1
    assert content(victim) == before  # same seed, same settings: identical events
    assert not list((out / "ttbar").glob(".*tmp*"))


def test_other_settings_are_refused_and_nothing_is_touched(spark, generated) -> None:
    out = generated.out
    stamp = {p: p.stat().st_mtime_ns for p in out.rglob("*.root")}
    with pytest.raises(OutputExistsError, match="differs in: events"):
        generate(CFG.model_copy(update={"events": 30}), out, spark, progress=False)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.root")} == stamp


def test_unwritable_output_is_a_user_error(spark, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UserError, match="not writable"):
        generate(CFG, blocker / "out", spark, progress=False)


def test_real_delphes_file_reads_with_the_same_reader(shared_data: Path) -> None:
    with uproot.open(shared_data / "delphes.root") as f:
        events = read_collections(f["Delphes"])
        direct = f["Delphes"]["Muon/Muon.PT"].array()
    assert len(events) == 25
    assert set(ak.fields(events)) == set(PIPELINE_COLLECTIONS)
    assert ak.to_list(events.MuonTight.PT) == ak.to_list(direct)
