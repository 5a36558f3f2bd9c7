"""Feature benchmark: the Spark feature job against the DuckDB reference on the same bars in the
same run (`tickerlake bench features --out FILE.json [--tiers ...]`).

Per tier: the bars (synthetic, or the real Kaggle S&P 500 set) are written once as a Delta table
shaped like silver's adjusted bars; then
- spark_startup_s: a fresh SparkSession (JVM start, Delta extension) on its own;
- backfill: `features.compute_features` over the whole table, written to a Delta table (the job's
  work without landing and validation): wall seconds, rows per second, the JVM's peak resident
  memory (VmHWM of the driver JVM: local mode runs every task in it);
- incremental: one session computed from the lookback it needs (catalog.LOOKBACK_SESSIONS) and
  written, with and without a fresh Spark start-up (the daily run's cost);
- duckdb: `reference_features.features` on the same bars (the parity test's reference), wall
  seconds and this process's peak memory;
- spark_vs_duckdb: backfill wall / DuckDB wall, both from this run (the ratio holds on a noisy
  machine where the seconds do not).
Goals (issue 4, 2 cores): 5,000 x 20 years backfill <= 15 min and <= 12 GiB; one incremental
session for 5,000 tickers <= 60 s including start-up; Spark / DuckDB <= 4.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from pathlib import Path

from tickerlake.bench import SHARED_SP500, report_header, write_report
from tickerlake.settings import Settings

TIERS = {
    "synthetic_100x2y": {"source": "synthetic", "tickers": 100, "start": "2024-01-02", "end": "2025-12-31"},
    "synthetic_500x5y": {"source": "synthetic", "tickers": 500, "start": "2021-01-04", "end": "2025-12-31"},
    "synthetic_5000x20y": {"source": "synthetic", "tickers": 5000, "start": "2006-01-03", "end": "2025-12-31"},
    "sp500_5yr": {"source": "csv", "path": str(SHARED_SP500)},
}
DEFAULT_TIERS = ["synthetic_100x2y", "synthetic_500x5y", "sp500_5yr"]
GOALS = {"backfill_5000x20y_s": 900, "backfill_5000x20y_peak_gib": 12, "incremental_5000_s": 60,
         "spark_vs_duckdb": 4}


def _bars(spec: dict, seed: int):
    import pandas as pd

    if spec["source"] == "synthetic":
        from tickerlake.synthetic import generate_bars

        return generate_bars(spec["tickers"], spec["start"], spec["end"], seed=seed)
    from tickerlake.sources.csv_files import read_drop_folder

    # the real set as it comes, minus the rows no bar can be made of (blank prices): defects that
    # validation would reject cost the same to compute
    frame = read_drop_folder(spec["path"]).dropna(subset=["open", "high", "low", "close", "volume"])
    frame = frame.drop_duplicates(["ticker", "date"]).reset_index(drop=True)
    return pd.DataFrame(frame[["ticker", "date", "open", "high", "low", "close", "volume"]])


def _vm_hwm_gib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 2**20, 2)
    except OSError:
        return None
    return None


def _jvm_pid(spark) -> int:
    return int(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())


def _run_tier(settings: Settings, name: str, spec: dict, progress) -> dict:
    from deltalake import write_deltalake
    from pyspark.sql import functions as F

    from tickerlake import reference_features as rf
    from tickerlake.catalog import LOOKBACK_SESSIONS
    from tickerlake.features import compute_features
    from tickerlake.spark import get_spark, write_spark_conf

    home = Path(settings.home) / "bench" / f"features_{name}"
    shutil.rmtree(home, ignore_errors=True)
    s = dataclasses.replace(settings, home=home, lake_root=f"file://{home / 'lake'}")
    write_spark_conf(s)
    bars = _bars(spec, settings.seed)
    bars["date"] = bars["date"].astype("datetime64[s]").dt.date if bars["date"].dtype != object else bars["date"]
    silver = home / "silver_bars"
    write_deltalake(str(silver), bars)
    rows, tickers = len(bars), bars["ticker"].nunique()
    progress(f"{name}: {rows:,} rows, {tickers} tickers; DuckDB reference ...")
    t0 = time.perf_counter()
    ref = rf.features(bars)
    duckdb_s = time.perf_counter() - t0
    assert len(ref) == rows
    del ref
    duckdb_peak = _vm_hwm_gib(os.getpid())
    try:
        progress(f"{name}: Spark start-up ...")
        t0 = time.perf_counter()
        spark = get_spark(s, f"bench-features-{name}")
        startup_s = time.perf_counter() - t0
        progress(f"{name}: Spark backfill ...")
        t0 = time.perf_counter()
        frame = spark.read.format("delta").load(str(silver))
        out = compute_features(frame).withColumn("year", F.year("date"))
        out.write.format("delta").mode("overwrite").partitionBy("year").save(str(home / "features"))
        backfill_s = time.perf_counter() - t0
        peak = _vm_hwm_gib(_jvm_pid(spark))
        last = max(bars["date"])
        dates = sorted(set(bars["date"]))
        lookback_start = dates[-min(LOOKBACK_SESSIONS, len(dates))]
        progress(f"{name}: Spark incremental session {last} ...")
        t0 = time.perf_counter()
        window = spark.read.format("delta").load(str(silver)).where(F.col("date") >= F.lit(lookback_start))
        one = compute_features(window).where(F.col("date") == F.lit(last)).withColumn("year", F.year("date"))
        one.write.format("delta").mode("overwrite").option("replaceWhere", f"date = '{last}'").save(
            str(home / "features"))
        incremental_s = time.perf_counter() - t0
        spark.stop()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return {
        "rows": rows, "tickers": int(tickers), "interval": [str(min(bars["date"])), str(max(bars["date"]))],
        "spark_startup_s": round(startup_s, 2),
        "backfill_s": round(backfill_s, 2),
        "backfill_rows_per_s": round(rows / backfill_s),
        "spark_peak_gib": peak,
        "incremental_session_s": round(incremental_s, 2),
        "incremental_with_startup_s": round(incremental_s + startup_s, 2),
        "duckdb_s": round(duckdb_s, 2),
        "duckdb_rows_per_s": round(rows / duckdb_s),
        "duckdb_process_peak_gib": duckdb_peak,
        "spark_vs_duckdb": round(backfill_s / duckdb_s, 2),
    }


def bench_features(settings: Settings, out_path: str | os.PathLike[str], tiers: list[str] | None = None,
                   progress=print) -> dict:
    """Run the tiers (default DEFAULT_TIERS), print the figures, write JSON to `out_path`."""
    report = report_header("features", goals=GOALS)
    for name in tiers or DEFAULT_TIERS:
        spec = TIERS[name]
        if spec["source"] == "csv" and not Path(spec["path"]).is_dir():
            report["tiers"][name] = {"skipped": f"{spec['path']} is not present"}
            progress(f"{name}: skipped ({spec['path']} is not present)")
            continue
        f = _run_tier(settings, name, spec, progress)
        report["tiers"][name] = f
        progress(f"{name}: {f['rows']:,} rows; Spark backfill {f['backfill_s']}s ({f['backfill_rows_per_s']:,} rows/s, "
                 f"peak {f['spark_peak_gib']} GiB), start-up {f['spark_startup_s']}s, one incremental session "
                 f"{f['incremental_session_s']}s; DuckDB {f['duckdb_s']}s; Spark/DuckDB = {f['spark_vs_duckdb']}")
        out = Path(out_path)
        write_report(out, report)  # after each tier: partial figures survive
    big = report["tiers"].get("synthetic_5000x20y", {})
    if "backfill_s" in big:
        report["goal_backfill_5000x20y_met"] = big["backfill_s"] <= GOALS["backfill_5000x20y_s"]
        report["goal_incremental_5000_met"] = big["incremental_with_startup_s"] <= GOALS["incremental_5000_s"]
    ratios = {n: f["spark_vs_duckdb"] for n, f in report["tiers"].items() if "spark_vs_duckdb" in f}
    report["spark_vs_duckdb"] = ratios
    out = Path(out_path)
    write_report(out, report)
    progress(f"wrote {out}")
    return report
