"""The whole pipeline and `predict` through Spark Connect (`--remote sc://HOST:PORT`) against a locally
started server, and the datasets and scores it writes equal to those a classic session writes from the
same input."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from topotrigger.config import FeaturesConfig, IngestConfig
from topotrigger.features.stage import features
from topotrigger.ingest.stage import ingest
from topotrigger.predict.stage import predict
from topotrigger.runtime import cluster

pytestmark = [pytest.mark.spark, pytest.mark.cluster, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_pipeline_through_spark_connect_equals_classic(spark, tmp_path: Path) -> None:
    pytest.importorskip("grpc")
    state = tmp_path / "connect-state"
    url = cluster.start_connect(state, _free_port(), master="local[2]")
    try:
        config = tmp_path / "tiny.toml"
        config.write_text(textwrap.dedent(f"""
            run_dir = "{tmp_path / 'run'}"
            [generate]
            events = 40
            files_per_class = 1
            profile = "quick"
            [train]
            epochs = 1
            [run]
            models = ["hlf"]
            tune = false
        """))
        done = subprocess.run([sys.executable, "-m", "topotrigger", "-c", str(config), "--remote", url, "run"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert "report:" in done.stdout and (tmp_path / "run" / "evaluate" / "report.html").is_file()
        run = tmp_path / "run"
        scored = subprocess.run([sys.executable, "-m", "topotrigger", "--remote", url, "predict", "--model",
                                 str(run / "models" / "hlf"), "--input", str(run / "ingest"), "--out", str(run / "predict")],
                                cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert scored.returncode == 0, scored.stdout[-3000:] + scored.stderr[-3000:]
    finally:
        assert cluster.stop_connect(state)
    # The classic session, from the same generated events and seeds, writes the same datasets.
    run = tmp_path / "run"
    ingest(IngestConfig(), [str(run / "generate")], str(tmp_path / "classic-ingest"), spark)
    features(FeaturesConfig(), str(tmp_path / "classic-ingest"), str(tmp_path / "classic"), spark)
    predict(str(run / "models" / "hlf"), str(run / "ingest"), str(tmp_path / "classic-predict"), spark)
    order = [("file", "ascending"), ("row", "ascending")]
    connect_scores = pq.read_table(run / "predict").sort_by(order)
    assert connect_scores.num_rows > 0 and connect_scores.equals(pq.read_table(tmp_path / "classic-predict").sort_by(order))
    for split in ("train", "val", "test"):
        connect_rows = pq.read_table(run / "features" / split)
        classic_rows = pq.read_table(tmp_path / "classic" / split)
        assert connect_rows.num_rows > 0 and connect_rows.equals(classic_rows), split
