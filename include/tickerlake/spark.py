"""Spark configuration and sessions.

`write_spark_conf` puts `spark-defaults.conf` and `log4j2.properties` in `settings.spark_conf_dir`;
both in-process sessions (`get_spark`) and spark-submit subprocesses (`spark_env`) read them
through SPARK_CONF_DIR, so every Spark in the project runs with the same Delta setup.

pyspark is imported only inside functions: DAG files import this module at parse time.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tickerlake.jars import check_java, java_home, spark_jars
from tickerlake.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# New Delta tables stay within what delta-rs (deltalake 1.6) and DuckDB's delta extension read
# and write: protocol 1/2 unless a column type needs a feature (timestampNtz is fine). delta-rs
# 1.6 refuses to read deletionVectors, columnMapping, typeWidening and v2Checkpoint tables
# (checked); rowTracking and inCommitTimestamp are off too so delta-rs can also write to them.
# A table may still opt in through its own TBLPROPERTIES.
DELTA_READER_COMPAT = {
    "spark.databricks.delta.properties.defaults.minReaderVersion": "1",
    "spark.databricks.delta.properties.defaults.minWriterVersion": "2",
    "spark.databricks.delta.properties.defaults.enableDeletionVectors": "false",
    "spark.databricks.delta.properties.defaults.enableRowTracking": "false",
    "spark.databricks.delta.properties.defaults.enableInCommitTimestamps": "false",
    "spark.databricks.delta.properties.defaults.enableTypeWidening": "false",
    "spark.databricks.delta.properties.defaults.columnMapping.mode": "none",
    "spark.databricks.delta.properties.defaults.checkpointPolicy": "classic",
}

_LOG4J2 = """\
# Spark at WARN; written by tickerlake.spark.write_spark_conf
rootLogger.level = warn
rootLogger.appenderRef.stdout.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
logger.nativeloader.name = org.apache.hadoop.util.NativeCodeLoader
logger.nativeloader.level = error
logger.parquet1.name = org.apache.parquet
logger.parquet1.level = error
logger.parquet2.name = parquet
logger.parquet2.level = error
logger.stringutils.name = org.apache.spark.util.SparkStringUtils
logger.stringutils.level = error
"""


def spark_conf(settings: Settings) -> dict[str, str]:
    """Everything `spark-defaults.conf` holds; raises JarsMissingError when the jars are absent."""
    from tickerlake.lake import ROW_GROUP_BYTES  # here: DAG files import this module, lake imports pandas

    jars = spark_jars(settings)
    conf = {
        "spark.master": settings.spark_master,
        "spark.driver.memory": settings.spark_driver_memory,
        "spark.jars": ",".join(str(p) for p in jars),
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    }
    if _is_local(settings):  # a cluster's executors must reach the driver: no loopback there
        conf["spark.driver.bindAddress"] = "127.0.0.1"
        conf["spark.driver.host"] = "127.0.0.1"
    conf.update(
        {
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.sql.session.timeZone": "UTC",
            "spark.sql.shuffle.partitions": "8",
            # The feature plan compiles ~230 classes (its window frames and projections); with the
            # default cache of 100, a process that runs it again (sessions one by one, the drain's
            # batches, the tests) compiled them all again each time: ~8 s of a 23 s session.
            "spark.sql.codegen.cache.maxEntries": "2000",
            # PySpark 4 records the Python call site of every DataFrame and Column call for its
            # error messages, with several py4j round trips per call: a daily feature run made
            # 16,300 round trips with it and 4,500 without, and took ~3.5 s less (13-15 s -> 10-11 s).
            "spark.python.sql.dataFrameDebugging.enabled": "false",
            # Delta replays its log with 50 tasks by default: slow for small tables on 2 cores.
            "spark.databricks.delta.snapshotPartitions": "4",
            # toPandas / createDataFrame(pandas) through Arrow: the drain hands each batch's bars to the
            # intraday suite; row by row (pickled) that took ~10 s of a 100k-message batch.
            "spark.sql.execution.arrow.pyspark.enabled": "true",
            # Parquet row groups as lake's delta-rs writers cut them (lake.ROW_GROUP_BYTES says why).
            "spark.hadoop.parquet.block.size": str(ROW_GROUP_BYTES),
            "spark.sql.warehouse.dir": str(settings.home / "spark" / "warehouse"),
            **DELTA_READER_COMPAT,
        }
    )
    return conf


def _is_local(settings: Settings) -> bool:
    return settings.spark_master.startswith("local")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\")  # spark-defaults.conf is read as java.util.Properties


def write_spark_conf(settings: Settings) -> Path:
    """Write spark-defaults.conf and log4j2.properties into settings.spark_conf_dir; returns it."""
    conf = spark_conf(settings)
    conf_dir = settings.spark_conf_dir
    conf_dir.mkdir(parents=True, exist_ok=True)
    body = "# written by tickerlake.spark.write_spark_conf; edit settings, not this file\n"
    body += "".join(f"{key} {_escape(value)}\n" for key, value in conf.items())
    for name, text in (("spark-defaults.conf", body), ("log4j2.properties", _LOG4J2)):
        target = conf_dir / name
        if target.exists() and target.read_text() == text:
            continue
        tmp = target.with_name(f".{name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.replace(target)  # atomic: a concurrent reader sees the old or the new file
    return conf_dir


def spark_env(settings: Settings) -> dict[str, str]:
    """Environment for spark-submit subprocesses, to merge into the inherited one: the conf dir,
    this venv's python for driver and workers (and its bin/ first on PATH, for spark-submit),
    JAVA_HOME, TICKERLAKE_HOME, TICKERLAKE_JARS_DIR and TICKERLAKE_CACHE_DIR. Expects `write_spark_conf` to have run (setup does); no I/O."""
    bin_dir = str(Path(sys.executable).parent)  # spark-submit of the pyspark in this venv
    path = os.environ.get("PATH", "")
    env = {
        "PATH": path if bin_dir in path.split(os.pathsep) else os.pathsep.join(filter(None, [bin_dir, path])),
        "SPARK_CONF_DIR": str(settings.spark_conf_dir),
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "TICKERLAKE_HOME": str(settings.home),
        "TICKERLAKE_JARS_DIR": str(settings.jars_dir),
        "TICKERLAKE_CACHE_DIR": str(settings.cache_dir),
    }
    if _is_local(settings):
        env["SPARK_LOCAL_IP"] = "127.0.0.1"
    home = java_home()
    if home:
        env["JAVA_HOME"] = home
    return env


def get_spark(settings: Settings, app_name: str = "tickerlake") -> SparkSession:
    """The active SparkSession, else a new one configured from settings.

    Inside spark-submit (the JVM is already up with its own conf) or with a session already
    active, that session is returned as is. Otherwise the conf is (re)written, SPARK_CONF_DIR
    set and a session built; missing jars raise JarsMissingError, an unusable Java
    JavaMissingError, both before any JVM starts. One JVM per Python process: after a
    `spark.stop()`, a new session reuses the JVM and the conf it was launched with.
    """
    import logging

    from pyspark.sql import SparkSession

    # py4j logs every gateway close at INFO, also at interpreter exit when handlers are gone.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    launched_here = "PYSPARK_GATEWAY_PORT" not in os.environ  # not launched by spark-submit
    if launched_here:
        # Written even when a session is already active: spark-submit children of these settings
        # (the DAG's path) read their jars and Delta settings from this folder.
        check_java()
        conf_dir = write_spark_conf(settings)
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if launched_here:
        os.environ["SPARK_CONF_DIR"] = str(conf_dir)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        if _is_local(settings):
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    return SparkSession.builder.appName(app_name).getOrCreate()
