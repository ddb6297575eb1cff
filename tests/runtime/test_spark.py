from __future__ import annotations

import sys
from pathlib import Path

import pytest

from topotrigger.config import SparkConfig
from topotrigger.runtime.spark import FAST_START_JAVA_OPTS, spark_conf


def test_conf_keeps_scratch_in_run_dir_and_uses_this_python(tmp_path: Path) -> None:
    conf = spark_conf(SparkConfig(), tmp_path)
    assert conf["spark.master"] == "local[*]"
    assert conf["spark.local.dir"].startswith(str(tmp_path.resolve()))
    assert conf["spark.sql.warehouse.dir"].startswith(str(tmp_path.resolve()))
    assert conf["spark.pyspark.python"] == sys.executable
    assert conf["spark.sql.execution.arrow.pyspark.enabled"] == "true"
    assert "spark.ui.enabled" not in conf


def test_fast_start_profile(tmp_path: Path) -> None:
    conf = spark_conf(SparkConfig(fast_start=True), tmp_path)
    assert conf["spark.ui.enabled"] == "false"
    assert FAST_START_JAVA_OPTS in conf["spark.driver.extraJavaOptions"]


def test_cluster_master_leaves_executor_options_to_cluster(tmp_path: Path) -> None:
    conf = spark_conf(SparkConfig(master="spark://127.0.0.1:7077", executor_memory="1g"), tmp_path)
    assert conf["spark.master"] == "spark://127.0.0.1:7077"
    assert conf["spark.executor.memory"] == "1g"
    assert "spark.executor.extraJavaOptions" not in conf


def test_user_conf_overrides(tmp_path: Path) -> None:
    conf = spark_conf(SparkConfig(conf={"spark.sql.execution.arrow.pyspark.enabled": "false"}), tmp_path)
    assert conf["spark.sql.execution.arrow.pyspark.enabled"] == "false"


@pytest.mark.spark
def test_session_fixture_runs_jobs_with_this_interpreter(spark) -> None:
    import sys as _sys

    def interpreter(_: object) -> str:
        import sys

        return sys.executable

    seen = set(spark.sparkContext.parallelize(range(4), 2).map(interpreter).collect())
    assert seen == {_sys.executable}
    assert int(spark.conf.get("spark.sql.shuffle.partitions")) >= 2
