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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Cluster tests, then slow ones, then the rest (stable within each): with two test processes
    (`make test`), the minutes-long tests start first instead of finishing last, alone."""
    items.sort(key=lambda item: 0 if item.get_closest_marker("cluster") else 1 if item.get_closest_marker("slow") else 2)


@pytest.fixture(autouse=True)
def _no_user_config(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests must not pick up a developer's environment by accident.
    monkeypatch.delenv("TOPOTRIGGER_CONFIG", raising=False)
    os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")


@pytest.fixture(scope="session")
def synthetic_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    """A synthetic training-layout dataset and every model trained on it for two epochs."""
    from tests.datasets import write_compact
    from topotrigger.train.loop import TrainSettings
    from topotrigger.train.models import MODELS
    from topotrigger.train.stage import train

    root = tmp_path_factory.mktemp("synthetic")
    write_compact(root / "features" / "train", 600, 1)
    write_compact(root / "features" / "test", 150, 2)
    models = {}
    for name in MODELS:
        models[name] = root / "models" / name
        train(TrainSettings(model=name, epochs=2, batch_size=32, lr=1e-2), str(root / "features"), str(models[name]))
    return root / "features", models


@pytest.fixture(scope="session")
def pipeline_run(spark, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated → ingested → features → hlf and inclusive models, on a few hundred real events."""
    from topotrigger.config import FeaturesConfig, GenerateConfig, IngestConfig
    from topotrigger.features.stage import features
    from topotrigger.generate.stage import generate
    from topotrigger.ingest.stage import ingest
    from topotrigger.train.loop import TrainSettings
    from topotrigger.train.stage import train

    root = tmp_path_factory.mktemp("pipeline")
    generate(GenerateConfig(events=200, files_per_class=1, seed=77, profile="quick"), root / "generate", spark, progress=False, plots=False)
    ingest(IngestConfig(), [str(root / "generate")], str(root / "ingest"), spark)
    features(FeaturesConfig(seed=3), str(root / "ingest"), str(root / "features"), spark)
    for name in ("hlf", "inclusive"):
        train(TrainSettings(model=name, epochs=3, batch_size=32, lr=5e-3), str(root / "features"),
              str(root / "models" / name))
    return root
