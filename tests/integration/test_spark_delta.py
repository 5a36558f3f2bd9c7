"""Spark writes Delta with the pinned jars; delta-rs and DuckDB read exactly what it wrote.

A real local Spark (the conf `write_spark_conf` writes), a temporary TICKERLAKE_HOME and the
shared jar cache. No mocks.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path

import pytest

from tickerlake.settings import Settings

pytestmark = pytest.mark.integration

COLUMNS = ["ticker", "date", "ts_us", "close", "volume"]
FIRST = [
    ("AAPL", dt.date(2024, 7, 1), dt.datetime(2024, 7, 1, 20, 0, tzinfo=dt.UTC), 216.75, 60_402_900),
    ("BRK.B", dt.date(2024, 7, 1), dt.datetime(2024, 7, 1, 20, 0, tzinfo=dt.UTC), 409.12, 3_010_000),
    ("MSFT", dt.date(2024, 7, 1), dt.datetime(2024, 7, 1, 20, 0, tzinfo=dt.UTC), 456.73, 16_100_000),
]
SECOND = [
    ("AAPL", dt.date(2024, 7, 2), dt.datetime(2024, 7, 2, 20, 0, tzinfo=dt.UTC), 220.27, 58_046_200),
    ("MSFT", dt.date(2024, 7, 2), dt.datetime(2024, 7, 2, 20, 0, tzinfo=dt.UTC), 459.28, 13_979_800),
]
SCHEMA = "ticker string, date date, ts timestamp, close double, volume long"


def _expected(rows) -> list[tuple]:
    return sorted((t, d, int(ts.timestamp() * 1_000_000), c, v) for t, d, ts, c, v in rows)


@pytest.fixture(scope="module")
def spark_settings(make_settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(tmp_path_factory.mktemp("spark_home"), spark_driver_memory="1g")


@pytest.fixture(scope="module")
def spark(spark_settings: Settings):
    from tickerlake.spark import get_spark

    session = get_spark(spark_settings, "test-spark-delta")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def table(spark, spark_settings: Settings) -> str:
    """bronze.bars written by Spark: version 0 = FIRST, version 1 = FIRST + SECOND."""
    path = spark_settings.table_path("bronze.bars")
    spark.createDataFrame(FIRST, SCHEMA).write.format("delta").save(path)
    spark.createDataFrame(SECOND, SCHEMA).write.format("delta").mode("append").save(path)
    return path


def _spark_rows(df) -> list[tuple]:
    from pyspark.sql import functions as F

    cols = [
        F.col("ticker"),
        F.col("date"),
        F.unix_micros("ts").alias("ts_us"),
        F.col("close"),
        F.col("volume"),
    ]
    return sorted(tuple(r) for r in df.select(*cols).collect())


def _duckdb_delta_extension() -> Path:
    import duckdb

    spec = importlib.util.find_spec("duckdb_ext")
    assert spec is not None and spec.submodule_search_locations, "pip package duckdb-ext-delta missing"
    with duckdb.connect() as con:
        platform = con.execute("SELECT platform FROM pragma_platform()").fetchone()[0]
    base = Path(next(iter(spec.submodule_search_locations)))
    return base / "extensions" / f"v{duckdb.__version__}" / platform / "delta.duckdb_extension"


def test_spark_conf_is_applied(spark, spark_settings: Settings):
    conf_file = spark_settings.spark_conf_dir / "spark-defaults.conf"
    assert conf_file.is_file() and (spark_settings.spark_conf_dir / "log4j2.properties").is_file()
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert spark.conf.get("spark.sql.shuffle.partitions") == "8"
    assert spark.conf.get("spark.sql.extensions") == "io.delta.sql.DeltaSparkSessionExtension"
    # Launch settings such as the driver memory are fixed when the process starts its one JVM
    # (an earlier test may have started it), so check what the conf file hands to spark-submit.
    assert "spark.driver.memory 1g" in " ".join(conf_file.read_text().split())
    assert "delta-spark_4.1_2.13-4.4.0.jar" in spark.sparkContext.getConf().get("spark.jars")


def test_write_append_read_and_time_travel(spark, table: str):
    current = spark.read.format("delta").load(table)
    assert _spark_rows(current) == _expected(FIRST + SECOND)
    v0 = spark.read.format("delta").option("versionAsOf", 0).load(table)
    v1 = spark.read.format("delta").option("versionAsOf", 1).load(table)
    assert _spark_rows(v0) == _expected(FIRST)
    assert _spark_rows(v1) == _expected(FIRST + SECOND)


def test_delta_rs_reads_what_spark_wrote(table: str):
    from deltalake import DeltaTable

    dt_table = DeltaTable(table)
    assert dt_table.version() == 1
    protocol = dt_table.protocol()
    assert (protocol.min_reader_version, protocol.reader_features) == (1, None)
    assert dt_table.metadata().configuration.get("delta.enableDeletionVectors") == "false"
    df = dt_table.to_pandas()
    rows = sorted(
        (r.ticker, r.date, int(r.ts.value // 1000), r.close, int(r.volume))
        for r in df.itertuples(index=False)
    )
    assert rows == _expected(FIRST + SECOND)
    assert len(DeltaTable(table, version=0).to_pandas()) == len(FIRST)


def test_duckdb_reads_what_spark_wrote(table: str):
    import duckdb

    with duckdb.connect() as con:  # allow_unsigned_extensions stays off: the extension is signed
        con.execute(f"LOAD '{_duckdb_delta_extension()}'")
        rows = con.execute(
            f"SELECT ticker, date, epoch_us(ts), close, volume FROM delta_scan('{table}') ORDER BY ALL"
        ).fetchall()
    assert rows == _expected(FIRST + SECOND)


def test_row_level_delete_stays_readable_by_delta_rs_and_duckdb(spark, spark_settings: Settings):
    """A DELETE would write deletion vectors, which delta-rs 1.6 cannot read, were they enabled."""
    import duckdb
    from deltalake import DeltaTable

    path = spark_settings.table_path("silver.bars")
    spark.createDataFrame(FIRST + SECOND, SCHEMA).write.format("delta").save(path)
    spark.sql(f"DELETE FROM delta.`{path}` WHERE ticker = 'MSFT'")
    expected = _expected([r for r in FIRST + SECOND if r[0] != "MSFT"])
    assert _spark_rows(spark.read.format("delta").load(path)) == expected
    assert sorted(DeltaTable(path).to_pandas()["ticker"]) == sorted(r[0] for r in expected)
    with duckdb.connect() as con:
        con.execute(f"LOAD '{_duckdb_delta_extension()}'")
        (count,) = con.execute(f"SELECT count(*) FROM delta_scan('{path}')").fetchone()
    assert count == len(expected)


SUBMITTED_JOB = """
import sys
from tickerlake.settings import load_settings
from tickerlake.spark import get_spark

spark = get_spark(load_settings(), "test-submit")
spark.range(5).write.format("delta").save(sys.argv[1])
print("TZ=" + spark.conf.get("spark.sql.session.timeZone"))
spark.stop()
"""


def test_spark_submit_with_spark_env_writes_delta(spark_settings: Settings, spark, tmp_path: Path):
    """The DAG's path: spark-submit in a subprocess with `spark_env`, conf from SPARK_CONF_DIR."""
    import os
    import subprocess

    from deltalake import DeltaTable

    from tickerlake.spark import spark_env

    job = tmp_path / "job.py"
    job.write_text(SUBMITTED_JOB)
    target = spark_settings.table_path("gold.submitted")
    env = {**os.environ, **spark_env(spark_settings)}
    proc = subprocess.run(
        ["spark-submit", str(job), target], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "TZ=UTC" in proc.stdout
    assert sorted(DeltaTable(target).to_pandas()["id"]) == [0, 1, 2, 3, 4]


def _row_groups(table_path: str) -> list[tuple[int, int]]:
    """(rows, uncompressed bytes) of every row group of every data file of a Delta table; each
    column chunk must be Snappy-compressed (as every writer of the lake compresses)."""
    import pyarrow.parquet as pq
    from deltalake import DeltaTable

    table = DeltaTable(table_path)
    out = []
    for uri in table.file_uris():
        meta = pq.ParquetFile(uri.removeprefix("file://")).metadata
        for i in range(meta.num_row_groups):
            group = meta.row_group(i)
            codecs = {group.column(c).compression for c in range(group.num_columns)}
            assert codecs == {"SNAPPY"}, f"{uri}: {codecs}"
            out.append((group.num_rows, group.total_byte_size))
    return out


def test_wide_tables_get_row_groups_of_about_row_group_bytes_from_spark_and_delta_rs(spark, spark_settings: Settings):
    """A one-ticker read decodes whole row groups: Spark and delta-rs both cut a wide table's rows
    into groups of about lake.ROW_GROUP_BYTES, not one group per file (their defaults)."""
    from deltalake import DeltaTable
    from pyspark.sql import functions as F

    from tickerlake import lake

    rows, width = 60_000, 80  # ~38 MiB of doubles: several groups at 16 MiB, one at the defaults
    wide = spark.range(rows).select(F.lit(dt.date(2024, 7, 1)).alias("date"), F.lit(2024).alias("year"),
                                    *[F.rand(seed=i).alias(f"f{i}") for i in range(width)])
    spark_path = spark_settings.table_path("gold.wide_spark")
    wide.coalesce(1).write.format("delta").save(spark_path)
    from_spark = DeltaTable(spark_path).to_pyarrow_table()
    lake.replace_interval(spark_settings, "gold.wide_rs", from_spark, dt.date(2024, 7, 1), dt.date(2024, 7, 1))

    for name, path in (("spark", spark_path), ("delta-rs", spark_settings.table_path("gold.wide_rs"))):
        groups = _row_groups(path)
        assert sum(n for n, _ in groups) == rows, name
        assert len(groups) >= 2, f"{name}: {groups}"
        # Spark's writer checks the size every few thousand rows, so a group may run a little over
        assert all(size <= 1.25 * lake.ROW_GROUP_BYTES for _, size in groups), f"{name}: {groups}"
        assert max(size for _, size in groups) >= 0.5 * lake.ROW_GROUP_BYTES, f"{name}: {groups}"
