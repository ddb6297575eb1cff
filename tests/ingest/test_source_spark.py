"""The `root` Spark data source: schema, values, partitions, remote (XRootD) and multi-executor reads."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import awkward as ak
import pytest
import uproot

from .conftest import write_delphes_like

pytestmark = pytest.mark.spark


def rows(df, order: str = "Number") -> list:
    return [r.asDict(recursive=True) for r in df.collect()]


def test_real_delphes_file_every_value_equals_uproot(spark, shared_data: Path) -> None:
    path = str(shared_data / "delphes.root")
    df = spark.read.format("root").option("branches", "Muon.*,Electron.*,Jet.*,MissingET.*,EFlowPhoton.*,Event.Number").load(path)
    assert df.count() == 25
    got = df.orderBy(df.Event[0].Number).toArrow()
    with uproot.open(path) as f:
        tree = f["Delphes"]
        for column in ("Muon", "Electron", "Jet", "MissingET", "EFlowPhoton"):
            fields = [name for name, _ in got.schema.field(column).type.value_type and
                      [(t.name, t.type) for t in got.schema.field(column).type.value_type]]
            for field in fields:
                key = next(k for k in tree.keys(recursive=True) if re.fullmatch(rf"{column}/{column}\.{field}(\[\d+\])?", k))
                expected = ak.to_list(tree[key].array())
                actual = [[item[field] for item in event] for event in got.column(column).to_pylist()]
                assert actual == expected, f"{column}.{field}"


def test_not_nested_one_array_column_per_branch(spark, shared_data: Path) -> None:
    path = str(shared_data / "delphes.root")
    df = (spark.read.format("root").option("nested", "false")
          .option("branches", "Jet.PT,Jet.BTag,Jet.FracPt,MissingET.MET,Muon,Event.Number").load(path))
    assert "Jet" not in df.columns and "Muon" not in df.columns  # counters named like collections dropped
    assert {"Jet_PT", "Jet_BTag", "Jet_FracPt", "MissingET_MET", "Muon_PT", "Event_Number"} <= set(df.columns)
    assert dict(df.dtypes)["Jet_PT"] == "array<float>" and dict(df.dtypes)["Jet_BTag"] == "array<bigint>"
    got = df.toArrow()
    with uproot.open(path) as f:
        tree = f["Delphes"]
        for column, branch in (("Jet_PT", "Jet/Jet.PT"), ("Jet_BTag", "Jet/Jet.BTag"), ("Jet_FracPt", "Jet/Jet.FracPt[5]"),
                               ("MissingET_MET", "MissingET/MissingET.MET"), ("Muon_PT", "Muon/Muon.PT")):
            assert got.column(column).to_pylist() == ak.to_list(tree[branch].array()), column


def test_user_schema_prunes_branches(spark, shared_data: Path) -> None:
    df = spark.read.format("root").schema("Jet array<struct<PT: float, BTag: bigint>>").load(str(shared_data / "delphes.root"))
    assert df.columns == ["Jet"]
    assert df.selectExpr("sum(size(Jet))").first()[0] == sum(len(j) for j in df.toArrow().column("Jet").to_pylist())


def test_small_files_pack_and_big_files_split(spark, tmp_path: Path) -> None:
    for i in range(4):
        write_delphes_like(tmp_path / f"f{i}.root", 30, seed=i)
    packed = spark.read.format("root").option("branches", "Jet").load(str(tmp_path))
    assert packed.rdd.getNumPartitions() == 1 and packed.count() == 120
    split = spark.read.format("root").option("branches", "Jet").option("partitionEntries", "25").load(str(tmp_path))
    assert split.rdd.getNumPartitions() == 5 and split.count() == 120
    assert sorted(map(str, rows(split))) == sorted(map(str, rows(packed)))


def test_list_of_paths_and_rntuple(spark, tmp_path: Path) -> None:
    a = write_delphes_like(tmp_path / "a.root", 9, seed=1)
    b = write_delphes_like(tmp_path / "b.root", 4, seed=2, rntuple=True)
    df = spark.read.format("root").option("branches", "MissingET.*").load([str(tmp_path / "a.root"), str(tmp_path / "b.root")])
    values = sorted(r.MissingET[0].MET for r in df.collect())
    expected = sorted(ak.to_list(ak.flatten(a["MissingET"].MET)) + ak.to_list(ak.flatten(b["MissingET"].MET)))
    assert values == pytest.approx(expected)


@pytest.fixture(scope="module")
def xrootd_server(tmp_path_factory: pytest.TempPathFactory):
    binary = shutil.which("xrootd")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("xrootd-server is not installed; .ci/run installs it (apt-get install xrootd-server)")
        pytest.skip("xrootd server binary not found (apt-get install xrootd-server)")
    export = tmp_path_factory.mktemp("xrootd-export")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = export / "xrootd.cfg"
    config.write_text(f"all.export {export}\nxrd.trace off\n")
    os.chmod(export, 0o755)
    for parent in export.parents:  # xrootd drops to `nobody`, who must reach the export
        if str(parent) in ("/", "/tmp"):
            break
        os.chmod(parent, os.stat(parent).st_mode | 0o005)
    log = tmp_path_factory.mktemp("xrootd-log") / "xrootd.log"
    with open(log, "w") as sink:  # the server logs to stderr; it cannot write into root-owned dirs as nobody
        proc = subprocess.Popen([binary, "-p", str(port), "-R", "nobody", "-c", str(config)],
                                stdout=sink, stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        if proc.poll() is not None:
            pytest.fail(f"xrootd exited: {log.read_text()[-2000:] if log.exists() else ''}")
        time.sleep(0.2)
    yield export, f"root://127.0.0.1:{port}/"
    proc.terminate()
    proc.wait(timeout=10)


def test_xrootd_read_equals_local(spark, xrootd_server, shared_data: Path) -> None:
    export, url = xrootd_server
    data = export / "data"
    data.mkdir()
    shutil.copy(shared_data / "delphes.root", data / "delphes.root")
    write_delphes_like(data / "gen.root", 12, muon="Muon")
    for p in (data, *data.iterdir()):
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    branches = "Muon.PT,Muon.Eta,Muon.Phi,Muon.Charge,Jet.PT,Jet.BTag,MissingET.MET,MissingET.Phi"
    local = spark.read.format("root").option("branches", branches).load(str(data))
    remote = spark.read.format("root").option("branches", branches).load(f"{url}{data}")
    assert remote.schema == local.schema
    assert remote.count() == 37
    assert rows(remote) == rows(local)


@pytest.mark.cluster
@pytest.mark.slow
def test_multi_executor_read_gives_identical_rows(spark, class_dirs: Path, tmp_path: Path) -> None:
    """local-cluster[2,1,1024]: two executor JVMs, each reading its partitions."""
    out = tmp_path / "cluster.parquet"
    code = f"""
from topotrigger.config import SparkConfig
from topotrigger.runtime import get_spark
spark = get_spark(SparkConfig(master="local-cluster[2,1,1024]", executor_memory="1g", fast_start=True), {str(tmp_path / 'run')!r})
df = spark.read.format("root").option("branches", "Jet,MissingET").option("partitionEntries", "4").load({str(class_dirs)!r})
assert df.rdd.getNumPartitions() > 2
df.write.parquet({str(out)!r})
executors = spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1
print("executors", executors)
spark.stop()
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "executors 2" in proc.stdout
    local = spark.read.format("root").option("branches", "Jet,MissingET").load(str(class_dirs))
    cluster = spark.read.parquet(str(out))
    key = lambda r: str(r)
    assert sorted(map(key, rows(cluster))) == sorted(map(key, rows(local)))
