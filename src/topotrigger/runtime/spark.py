"""The one way every stage gets its SparkSession.

`get_spark(cfg, run_dir)` finds Java, points Spark's Python workers at this interpreter, keeps
Spark's scratch and warehouse inside the run directory, hides Spark's log noise unless verbose,
registers topotrigger's data sources, and sizes shuffles to the cores it got.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from topotrigger.config import SparkConfig
from topotrigger.errors import ConfigError, MissingInputError
from topotrigger.runtime.java import find_java, launcher_home
from topotrigger.runtime.tasks import default_parallelism

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import SparkSession
    from pyspark.sql.types import StructType

FAST_START_JAVA_OPTS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"

_LOG4J = """rootLogger.level = {level}
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{{HH:mm:ss}} %p %c{{1}}: %m%n
logger.jetty.name = org.sparkproject.jetty
logger.jetty.level = {quiet}
# Spark's interpreter mode resets a non-WARN root level (and says so on stderr); quieten by package instead.
logger.spark.name = org.apache.spark
logger.spark.level = {level}
logger.sparkproject.name = org.sparkproject
logger.sparkproject.level = {level}
logger.hadoop.name = org.apache.hadoop.util.NativeCodeLoader
logger.hadoop.level = error
"""


def spark_conf(cfg: SparkConfig, run_dir: Path) -> dict[str, str]:
    """The Spark properties topotrigger sets, before the user's `spark.conf` overrides."""
    scratch = (run_dir / "spark").resolve()
    java_opts = [FAST_START_JAVA_OPTS] if cfg.fast_start else []
    conf = {
        "spark.master": cfg.master,
        "spark.app.name": cfg.app_name,
        "spark.driver.memory": cfg.driver_memory,
        "spark.local.dir": str(scratch / "scratch"),
        "spark.sql.warehouse.dir": str(scratch / "warehouse"),
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.execution.pythonUDF.arrow.enabled": "true",
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
        "spark.python.worker.reuse": "true",
    }
    if java_opts:
        conf["spark.driver.extraJavaOptions"] = " ".join(java_opts)
    if cfg.executor_memory:
        conf["spark.executor.memory"] = cfg.executor_memory
    if cfg.fast_start:
        conf["spark.ui.enabled"] = "false"
    if cfg.fast_start or not sys.stderr.isatty():  # a progress bar redrawn with \r is noise in a log file
        conf["spark.ui.showConsoleProgress"] = "false"
    conf.update(cfg.conf)
    return conf


def get_spark(cfg: SparkConfig, run_dir: Path | str = Path("."), verbose: bool = False) -> "SparkSession":
    """A SparkSession for `cfg` (Spark Connect when `cfg.remote` is set), or the active one if a session
    is already running in this process."""
    from pyspark.sql import SparkSession

    run_dir = Path(run_dir)
    if cfg.remote:
        return _connect(cfg)
    active = SparkSession.getActiveSession()
    if active is not None:
        _register_sources(active)
        return active

    os.environ["JAVA_HOME"] = str(launcher_home(find_java().home))
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable

    conf = spark_conf(cfg, run_dir)
    scratch = run_dir.resolve() / "spark"
    (scratch / "scratch").mkdir(parents=True, exist_ok=True)
    # Spark puts SPARK_CONF_DIR on the driver's classpath, where log4j2 finds its configuration.
    conf_dir = scratch / ("conf-verbose" if verbose else "conf")
    conf_dir.mkdir(exist_ok=True)
    level, quiet = ("info", "warn") if verbose else ("error", "error")
    (conf_dir / "log4j2.properties").write_text(_LOG4J.format(level=level, quiet=quiet))
    if "SPARK_CONF_DIR" not in os.environ or os.environ.get("TOPOTRIGGER_OWNS_SPARK_CONF_DIR"):
        os.environ["SPARK_CONF_DIR"] = str(conf_dir)
        os.environ["TOPOTRIGGER_OWNS_SPARK_CONF_DIR"] = "1"

    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    _classic_log_level(spark, verbose)
    cores = default_parallelism(spark)
    if "spark.sql.shuffle.partitions" not in cfg.conf:
        spark.conf.set("spark.sql.shuffle.partitions", str(max(2, 2 * cores)))
    _register_sources(spark)
    return spark


def _connect(cfg: SparkConfig) -> "SparkSession":
    """A Spark Connect session: the cluster's settings are the server's; this side sets what a session may."""
    from pyspark.sql import SparkSession

    url = cfg.remote or ""
    if url.startswith("sc://"):
        _check_reachable(url)
    else:  # local[N]: the server runs in this process, on our Java
        os.environ["JAVA_HOME"] = str(launcher_home(find_java().home))
        os.environ["PYSPARK_PYTHON"] = sys.executable
    try:
        spark = SparkSession.builder.remote(url).appName(cfg.app_name).getOrCreate()
    except ImportError as exc:
        raise ConfigError(f"Spark Connect needs the connect extra (pip install 'topotrigger[connect]'): {exc}") from None
    if "spark.sql.shuffle.partitions" not in cfg.conf:
        spark.conf.set("spark.sql.shuffle.partitions", str(max(2, 2 * default_parallelism(spark))))
    for key, value in cfg.conf.items():
        if key.startswith("spark.sql."):  # session settings; the rest belong to the server
            spark.conf.set(key, value)
    _register_sources(spark)
    return spark


def _check_reachable(url: str, timeout_s: float = 5.0) -> None:
    """One line at once when nothing listens at the endpoint (the gRPC client would retry for minutes)."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url.split(";", 1)[0])
    host, port = parts.hostname or "localhost", parts.port or 15002
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        raise MissingInputError(f"cannot reach the Spark Connect endpoint {host}:{port} ({exc.strerror or exc})") from None


def _classic_log_level(spark: "SparkSession", verbose: bool) -> None:
    spark.sparkContext.setLogLevel("INFO" if verbose else "ERROR")


def _register_sources(spark: "SparkSession") -> None:
    from topotrigger.ingest.source import register

    register(spark)


def schemas(ddl: str) -> tuple["StructType", "pa.Schema"]:
    """A DDL row schema ("label int, hlf array<float>") as Spark's struct and as the Arrow schema its
    `mapInArrow` batches must match exactly."""
    from pyspark.sql.pandas.types import to_arrow_schema
    from pyspark.sql.types import DataType, StructType

    struct = DataType.fromDDL(ddl)
    if not isinstance(struct, StructType):
        raise ValueError(f"not a row schema: {ddl}")
    return struct, to_arrow_schema(struct)
