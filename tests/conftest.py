"""Shared fixtures: one SparkSession per test run (fast-start profile), tiny data in tmp dirs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SHARED_DATA = SHARED / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "delphes.root").is_file():
        pytest.skip(f"shared test data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory):
    from topotrigger.config import SparkConfig
    from topotrigger.runtime import get_spark

    run_dir = tmp_path_factory.mktemp("spark-run")
    cfg = SparkConfig(master="local[2]", fast_start=True, driver_memory="2g",
                      conf={"spark.sql.shuffle.partitions": "4"})
    session = get_spark(cfg, run_dir)
    yield session
    session.stop()


@pytest.fixture(autouse=True)
def _no_user_config(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests must not pick up a developer's environment by accident.
    monkeypatch.delenv("TOPOTRIGGER_CONFIG", raising=False)
    os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")
