"""Spark feature pipeline: silver bars, gold features and gold labels.

Pure DataFrame -> DataFrame functions built from Spark's own window and aggregate functions
(no Python UDFs), and one `run` that does the I/O for an interval. A feature row for
session D reads only bars up to D; labels (forward returns) live in their own table.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from tickerlake.calendar import session_close_utc, sessions_back, sessions_between
from tickerlake.catalog import FEATURE_NAMES, LABEL_HORIZONS, LOOKBACK_SESSIONS
from tickerlake.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

BAR_COLUMNS = ["ticker", "date", "open", "high", "low", "close", "volume"]
LABEL_LOOKBACK = max(LABEL_HORIZONS) + 1


def silver_bars(bronze: DataFrame, quarantine: DataFrame) -> DataFrame:
    """Bronze minus the rows a rejecting rule holds, one row per (ticker, date)."""
    from pyspark.sql import functions as F

    rejected = quarantine.where(F.col("severity") == "reject").select("ticker", "date").distinct()
    return bronze.select(*BAR_COLUMNS).join(rejected, ["ticker", "date"], "left_anti")


def _rows(n: int):
    from pyspark.sql import Window

    return Window.partitionBy("ticker").orderBy("date").rowsBetween(-(n - 1), 0)


def _full(col: Column, n: int) -> Column:
    """A value only where all n sessions of the window ending at the row have a bar (warm-up and a
    missing session give null, never a partial value). Needs the `present` column of `_on_sessions`."""
    from pyspark.sql import functions as F

    return F.when(F.count("present").over(_rows(n)) == n, col)


def _on_sessions(bars: DataFrame) -> DataFrame:
    """Each ticker on every session of the frame from its first bar to its last, with `present` 1
    where it has a bar and null where that session is missing (a rejected row): lag() and windows
    then count sessions, not rows, so a value never reaches over a gap, and a daily run (which
    reads a lookback in sessions) sees the same windows as a backfill."""
    from pyspark.sql import functions as F

    sessions = bars.select("date").distinct()
    span = bars.groupBy("ticker").agg(F.min("date").alias("_first"), F.max("date").alias("_last"))
    grid = span.join(F.broadcast(sessions), sessions["date"].between(span["_first"], span["_last"]))
    return grid.select("ticker", "date").join(bars.withColumn("present", F.lit(1)), ["ticker", "date"], "left")


def feature_columns() -> dict[str, Column]:
    """Catalogue name -> Spark column expression over a bars frame (see catalog.FEATURES)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    o, h, lo, c, v = (F.col(x) for x in ("open", "high", "low", "close", "volume"))
    by_date = Window.partitionBy("ticker").orderBy("date")

    def ref(col: Column, n: int) -> Column:  # null when any of the n+1 sessions has no bar
        return _full(F.lag(col, n).over(by_date), n + 1)

    def mean(col: Column, n: int) -> Column:
        return _full(F.avg(col).over(_rows(n)), n)

    def std(col: Column, n: int) -> Column:
        return _full(F.stddev_samp(col).over(_rows(n)), n)

    def rmin(col: Column, n: int) -> Column:
        return _full(F.min(col).over(_rows(n)), n)

    def rmax(col: Column, n: int) -> Column:
        return _full(F.max(col).over(_rows(n)), n)

    cols = {
        "KMID": (c - o) / o,
        "KLEN": (h - lo) / o,
        "KUP": (h - F.greatest(o, c)) / o,
        "KLOW": (F.least(o, c) - lo) / o,
        "KSFT": (2 * c - h - lo) / o,
        "ROC5": ref(c, 5) / c,
        "ROC20": ref(c, 20) / c,
        "MA5": mean(c, 5) / c,
        "MA20": mean(c, 20) / c,
        "STD20": std(c, 20) / c,
        "VMA5": mean(v, 5) / (v + 1e-12),
        "VMA20": mean(v, 20) / (v + 1e-12),
        "RSV10": (c - rmin(lo, 10)) / (rmax(h, 10) - rmin(lo, 10) + 1e-12),
        "REV1": -(c / ref(c, 1) - 1),
        "REV5": -(c / ref(c, 5) - 1),
    }
    missing = set(FEATURE_NAMES) ^ set(cols)
    if missing:
        raise AssertionError(f"catalogue and Spark features disagree on {sorted(missing)}")
    return {name: cols[name] for name in FEATURE_NAMES}


def compute_features(bars: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    cols = feature_columns()
    return (
        _on_sessions(bars)
        .select("ticker", "date", "present", *[col.cast("double").alias(name) for name, col in cols.items()])
        .where(F.col("present") == 1)
        .drop("present")
        .withColumn("year", F.year("date").cast("int"))
    )


def compute_labels(bars: DataFrame) -> DataFrame:
    """Forward returns a signal at D's close can trade: open(D+1) -> open(D+1+h), and their per-session rank."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    by_date = Window.partitionBy("ticker").orderBy("date")
    entry = F.lead("open", 1).over(by_date)

    def forward(h: int) -> Column:  # null when any session from D+1 to D+1+h has no bar
        complete = F.count("present").over(by_date.rowsBetween(1, 1 + h)) == 1 + h
        return F.when(complete, F.lead("open", 1 + h).over(by_date) / entry - 1)

    out = (
        _on_sessions(bars)
        .select("ticker", "date", "present", *[forward(h).alias(f"ret_{h}d") for h in LABEL_HORIZONS])
        .where(F.col("present") == 1)
        .drop("present")
    )
    for h in LABEL_HORIZONS:
        # Partitioned by null-ness too, so missing labels never take part in the ranking.
        session = Window.partitionBy("date", F.col(f"ret_{h}d").isNull()).orderBy(f"ret_{h}d")
        out = out.withColumn(
            f"ret_{h}d_rank", F.when(F.col(f"ret_{h}d").isNotNull(), F.percent_rank().over(session))
        )
    return out.withColumn("year", F.year("date").cast("int"))


def with_event_ts(spark: SparkSession, frame: DataFrame, start: dt.date, end: dt.date) -> DataFrame:
    """Feast's event time of a daily row: its session's close in UTC (early closes included)."""
    from pyspark.sql import functions as F

    closes = spark.createDataFrame(
        [(d, session_close_utc(d)) for d in sessions_between(start, end)], "date date, event_ts timestamp"
    )
    return frame.join(F.broadcast(closes), "date", "left")


def _replace(frame: DataFrame, uri: str, start: dt.date, end: dt.date) -> None:
    (
        frame.write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", f"date >= '{start.isoformat()}' AND date <= '{end.isoformat()}'")
        .partitionBy("year")
        .save(uri)
    )


def run(spark: SparkSession, settings: Settings, start: dt.date, end: dt.date) -> dict:
    """Silver for [start, end], then features for [start, end] and labels as far back as they complete.

    A late verdict (a session before `start` rejected or released when [start, end] was
    validated, see ingest.restated_since) moves the start back to that session: its silver rows
    and every feature and label whose window reaches it are computed again.
    """
    from pyspark.sql import functions as F

    from tickerlake.ingest import restated_since

    sessions = sessions_between(start, end)
    if not sessions:
        raise ValueError(f"no session in [{start}, {end}]")
    start, end = sessions[0], sessions[-1]
    restated = restated_since(settings, start, end)
    if restated is not None:
        start = sessions_between(restated, end)[0]

    def interval(uri: str, s: dt.date, e: dt.date) -> DataFrame:
        return spark.read.format("delta").load(uri).where(F.col("date").between(F.lit(s), F.lit(e)))

    bronze = interval(settings.table_uri("bronze.bars_daily"), start, end)
    quarantine = interval(settings.table_uri("quarantine.bars_daily"), start, end)
    silver = silver_bars(bronze, quarantine).withColumn("year", F.year("date").cast("int"))
    _replace(silver, settings.table_uri("silver.bars_daily"), start, end)

    # Features computed before a restatement whose window reaches the restated session (a rerun
    # of an older interval) are computed again too.
    until = end
    if restated is not None:
        # the last session whose window reaches the restated one
        reach = sessions_between(start, start + dt.timedelta(days=2 * LOOKBACK_SESSIONS + 14))[LOOKBACK_SESSIONS - 1]
        if reach > end:
            latest = interval(settings.table_uri("silver.bars_daily"), end, reach).agg(F.max("date")).first()[0]
            until = max(end, latest or end)

    lookback_start = sessions_back(start, LOOKBACK_SESSIONS)
    history = interval(settings.table_uri("silver.bars_daily"), lookback_start, until).select(*BAR_COLUMNS)
    features = compute_features(history).where(F.col("date").between(F.lit(start), F.lit(until)))
    features = with_event_ts(spark, features, start, until)
    _replace(features, settings.table_uri("gold.features_daily"), start, until)

    label_start = sessions_back(start, LABEL_LOOKBACK)
    labels = compute_labels(interval(settings.table_uri("silver.bars_daily"), label_start, until).select(*BAR_COLUMNS))
    labels = labels.where(F.col(f"ret_{LABEL_HORIZONS[0]}d").isNotNull())
    _replace(labels, settings.table_uri("gold.labels_daily"), label_start, until)
    return {"start": start.isoformat(), "end": until.isoformat(), "sessions": len(sessions_between(start, until)),
            "restated_from": restated.isoformat() if restated else None}
