"""A standalone cluster from `topotrigger cluster`, the whole pipeline on it (with distributed
training on the executors), and a killed executor that Spark's retries make harmless."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from topotrigger.runtime import cluster

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def standalone(tmp_path_factory: pytest.TempPathFactory):
    state = tmp_path_factory.mktemp("cluster-state")
    status = cluster.start(cluster.ClusterSpec(workers=2, cores_per_worker=1, memory="1g", port=_free_port()), state)
    yield status
    cluster.stop(state)
    assert not cluster.status(state).running


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "topotrigger", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=900)


def test_start_is_idempotent_and_status_reports_workers(standalone) -> None:
    state = Path(standalone.state_dir)
    assert standalone.running and standalone.alive_workers == 2 and standalone.cores == 2
    again = cluster.start(cluster.ClusterSpec(workers=2), state)  # running already: nothing new starts
    assert again.master_url == standalone.master_url
    pids = sorted(p.read_text() for p in (state / "pids").glob("*.pid"))
    assert len(pids) == 3
    assert cluster.status(state).daemons == {"master": True, "worker-1": True, "worker-2": True}
    assert cluster.stop(state / "elsewhere") is False  # a state directory that started nothing stops nothing


def test_pipeline_on_the_cluster_and_a_killed_executor(standalone, tmp_path: Path) -> None:
    config = tmp_path / "tiny.toml"
    config.write_text(textwrap.dedent(f"""
        run_dir = "{tmp_path / 'run'}"
        [spark]
        executor_memory = "1g"
        fast_start = true
        [generate]
        events = 120
        files_per_class = 1
        profile = "quick"
        [train]
        epochs = 2
        workers = 2
        [run]
        models = ["inclusive"]
        tune = false
    """))
    result = _cli("-c", str(config), "--master", standalone.master_url, "run", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run = tmp_path / "run"
    assert (run / "evaluate" / "report.html").is_file() and "report:" in result.stdout
    model = json.loads((run / "models" / "inclusive" / "model.json").read_text())
    assert model["workers"] == 2  # TorchDistributor, barrier tasks on the two executors

    # The features stage again on the cluster, while one executor is killed in the middle of a Python task.
    driver = textwrap.dedent(f"""
        import os, signal, subprocess, threading, time
        from topotrigger.config import FeaturesConfig, SparkConfig
        from topotrigger.features.stage import features
        from topotrigger.runtime import get_spark

        killed = []
        def kill_one_executor():
            deadline = time.time() + 300
            while time.time() < deadline and not killed:
                workers = subprocess.run(["pgrep", "-f", "pyspark.daemon"], capture_output=True, text=True).stdout.split()
                for pid in workers:
                    parent = open(f"/proc/{{pid}}/stat").read().split(")")[1].split()[1]
                    cmd = open(f"/proc/{{parent}}/cmdline").read()
                    if "CoarseGrainedExecutorBackend" in cmd:
                        os.kill(int(parent), signal.SIGKILL)
                        killed.append(parent)
                        break
                time.sleep(0.05)

        spark = get_spark(SparkConfig(master="{standalone.master_url}", executor_memory="1g", fast_start=True), "{tmp_path}")
        threading.Thread(target=kill_one_executor, daemon=True).start()
        features(FeaturesConfig(seed=42), "{run / 'ingest'}", "{tmp_path / 'features-again'}", spark)
        print("killed", killed)
    """)
    again = subprocess.run([sys.executable, "-c", driver], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "killed ['" in again.stdout  # an executor really died
    for split in ("train", "test"):
        want = pd.read_parquet(run / "features" / split)
        got = pd.read_parquet(tmp_path / "features-again" / split)
        assert len(got) == len(want) > 0
        key = lambda df: sorted(zip(df.label, map(lambda h: tuple(h), df.hlf)))
        assert key(got) == key(want)
