"""Spark feature pipeline: silver bars, gold features and gold labels.

Pure DataFrame -> DataFrame functions built from Spark's own window, aggregate and
higher-order functions (no Python UDFs), and one `run` that does the I/O for an interval. A
feature row for session D reads only bars up to D; labels (forward returns) live in their own
table. The catalogue (names, formulas, semantics) is tickerlake.catalog.

Splits: a split the vendor did not adjust is flagged by validation (`unadjusted_split`, with its
price ratio) and kept in `silver.split_factors`. Silver keeps the vendor's raw prices and adds
adjusted ones (`adj_*`) *forward* from the ticker's first bar: adj = raw / (product of the price
ratios of its splits up to that day). History is then never rewritten when a new split lands,
so a daily run equals a backfill; every feature is scale-free, so it is the same as with the
usual backward adjustment. A flagged corporate action (`corporate_action`: a spin-off, a share
dividend) starts a new segment of the ticker's series: no window, Ref() or label crosses it.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from tickerlake.calendar import all_sessions, session_close_utc, sessions_back, sessions_between
from tickerlake.catalog import (
    ALPHA158_WINDOWS,
    BAR_FEATURE_NAMES,
    CROSS_SECTIONAL_BASE,
    FEATURE_NAMES,
    LABEL_HORIZONS,
    LOOKBACK_SESSIONS,
    MACRO_SERIES,
)
from tickerlake.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

T = TypeVar("T")

RAW_COLUMNS = ["open", "high", "low", "close", "volume"]
BAR_COLUMNS = ["ticker", "date", *RAW_COLUMNS]
ADJ_COLUMNS = [f"adj_{c}" for c in RAW_COLUMNS]
SILVER_COLUMNS = [*BAR_COLUMNS, *ADJ_COLUMNS, "split_factor", "corporate_action"]
LABEL_LOOKBACK = max(LABEL_HORIZONS) + 1
MARKET_TICKER = "__MARKET__"
SPLIT_RULE = "unadjusted_split"
BREAK_RULE = "corporate_action"


# --- silver ----------------------------------------------------------------------------------


def split_factors(quarantine: DataFrame) -> DataFrame:
    """silver.split_factors: (ticker, date, ratio) of each flagged split, ratio = new / old price."""
    from pyspark.sql import functions as F

    return (
        quarantine.where((F.col("rule") == SPLIT_RULE) & (F.col("severity") == "warn"))
        .select("ticker", "date", F.get_json_object("values", "$.split_ratio").cast("double").alias("ratio"))
        .where(F.col("ratio").isNotNull() & (F.col("ratio") > 0))
        .dropDuplicates(["ticker", "date"])
    )


def silver_bars(bronze: DataFrame, quarantine: DataFrame, splits: DataFrame | None = None) -> DataFrame:
    """Bronze minus the rows a rejecting rule holds, one row per (ticker, date), raw prices beside
    split-adjusted ones. `splits` (silver.split_factors, all of history up to the interval's end)
    gives each day's cumulative factor; without it the factor is 1."""
    from pyspark.sql import functions as F

    rejected = quarantine.where(F.col("severity") == "reject").select("ticker", "date").distinct()
    breaks = (quarantine.where((F.col("rule") == BREAK_RULE) & (F.col("severity") == "warn"))
              .select("ticker", "date").distinct().withColumn("corporate_action", F.lit(True)))
    bars = bronze.select(*BAR_COLUMNS).join(rejected, ["ticker", "date"], "left_anti")
    bars = bars.join(breaks, ["ticker", "date"], "left").fillna(False, ["corporate_action"])
    if splits is None:
        bars = bars.withColumn("split_factor", F.lit(1.0))
    else:
        # the product of the ratios of every split on or before the day (sum of logs: an aggregate)
        s = splits.select(F.col("ticker").alias("_t"), F.col("date").alias("_d"), F.log("ratio").alias("_lr"))
        factor = (bars.select("ticker", "date").join(s, (F.col("_t") == F.col("ticker")) & (F.col("_d") <= F.col("date")))
                  .groupBy("ticker", "date").agg(F.exp(F.sum("_lr")).alias("split_factor")))
        # exp(log) is not exact: round to the ratios' own precision (products of k:1 ratios)
        factor = factor.withColumn("split_factor", F.round("split_factor", 12))
        bars = bars.join(factor, ["ticker", "date"], "left").fillna(1.0, ["split_factor"])
    prices = [(F.col(c) / F.col("split_factor")).alias(f"adj_{c}") for c in RAW_COLUMNS[:4]]
    volume = (F.col("volume") * F.col("split_factor")).alias("adj_volume")
    return bars.select(*BAR_COLUMNS, *prices, volume, "split_factor", "corporate_action")


# --- the session grid -------------------------------------------------------------------------


def on_sessions(bars: DataFrame) -> DataFrame:
    """Each ticker on every session of the frame from its first bar to its last, with `present` 1
    where it has a bar and null where that session is missing (a rejected row), and `segment`
    counting the corporate actions so far: windows partitioned by (ticker, segment) and
    guarded by a count of `present` then count sessions, not rows, never reach over a gap or a
    corporate action, and a daily run (which reads a lookback in sessions) sees the same
    windows as a backfill.

    `bars` has ticker, date, open, high, low, close, volume and optionally corporate_action.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if "corporate_action" not in bars.columns:
        bars = bars.withColumn("corporate_action", F.lit(False))
    sessions = bars.select("date").distinct()
    span = bars.groupBy("ticker").agg(F.min("date").alias("_first"), F.max("date").alias("_last"))
    grid = span.join(F.broadcast(sessions), sessions["date"].between(span["_first"], span["_last"]))
    out = grid.select("ticker", "date").join(bars.withColumn("present", F.lit(1)), ["ticker", "date"], "left")
    upto = Window.partitionBy("ticker").orderBy("date").rowsBetween(Window.unboundedPreceding, 0)
    return out.withColumn("segment", F.sum(F.col("corporate_action").cast("int")).over(upto)).drop("corporate_action")


def _by_date():
    from pyspark.sql import Window

    return Window.partitionBy("ticker", "segment").orderBy("date")


def _rows(n: int):
    return _by_date().rowsBetween(-(n - 1), 0)


def _full(series: Column, value: Column, n: int) -> Column:
    """`value` only where `series` has a value on all n sessions of the window ending at the row."""
    from pyspark.sql import functions as F

    return F.when(F.count(series).over(_rows(n)) == n, value)


def _ratio(num: Column, den: Column) -> Column:
    """num / den, null where den is 0 (x/0 is null in the catalogue, whatever the SQL mode)."""
    from pyspark.sql import functions as F

    return F.when(den != 0, num / den)


def _corr(a: Column, b: Column, rows) -> Column:
    """Pearson's correlation over a window frame, null when either series is constant there.
    Spark's corr() divides by zero then, which raises in ANSI mode (Spark 4's default)."""
    from pyspark.sql import functions as F

    spread = F.sqrt(F.var_samp(a).over(rows) * F.var_samp(b).over(rows))
    return F.try_divide(F.covar_samp(a, b).over(rows), F.when(spread > 0, spread))


def _ema_weights(n: int) -> list[float]:
    a = 1 - 2 / (n + 1)
    w = [a**k for k in range(n)]
    total = math.fsum(w)
    return [x / total for x in w]


# Rolling sums and means come from running sums: sum over the d sessions ending at t is
# S(t) - S(t-d), O(1) a row where Spark's sliding frames re-aggregate the whole frame for every
# row. The running sums are DECIMAL(38, 18) so they are exact: the difference does not depend on
# where the frame read starts, and a daily run gives the backfill's value to the last bit.
_EXACT = "decimal(38,18)"
_LONGEST_ARRAY = max(ALPHA158_WINDOWS)
_SESSION_X: list = []  # [(the SparkSession, its date -> x frame)]


def _built_once(slot: list, owner: object, build: Callable[[], T]) -> T:
    """`build()`, kept in `slot` while `owner` (the SparkContext or SparkSession it belongs to) is
    the same object: a new session or context builds it again."""
    if not slot or slot[0][0] is not owner:
        slot[:] = [(owner, build())]
    return slot[0][1]


def _session_numbers(spark: SparkSession) -> DataFrame:
    """date -> its number in the exchange calendar (every session it knows, 1990-2030; validation
    rejects bars outside it): the regressions' x, the same in every run. Built once per SparkSession."""
    return _built_once(_SESSION_X, spark, lambda: spark.createDataFrame(
        [(d, float(k)) for k, d in enumerate(all_sessions())], "date date, x double"))


def _step1(grid: DataFrame, session_x: DataFrame) -> DataFrame:
    """Per-row series the rolling features aggregate (Ref(x, 1) differences, log volumes, the true
    range, the EMAs of the MACD) and their exact running sums."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    w = _by_date()
    upto = w.rowsBetween(Window.unboundedPreceding, 0)
    o, h, lo, c, v = (F.col(x) for x in ("open", "high", "low", "close", "volume"))
    both = F.count("present").over(_rows(2)) == 2
    c1 = F.when(both, F.lag(c, 1).over(w))
    v1 = F.when(both, F.lag(v, 1).over(w))
    base = grid.join(F.broadcast(session_x), "date").select(
        "ticker", "segment", "date", "present", "x", o.alias("open"), h.alias("high"), lo.alias("low"),
        c.alias("close"), v.alias("volume"), c1.alias("c1"), v1.alias("v1"),
        *[_full(F.col("present"), sum((F.lag(c, k).over(w) * wk for k, wk in enumerate(_ema_weights(n))),
                                      F.lit(0.0)), n).alias(f"ema{n}") for n in (12, 26)],
    )
    dc, dv = F.col("close") - F.col("c1"), F.col("volume") - F.col("v1")
    wv = F.abs(_ratio(F.col("close"), F.col("c1")) - 1) * F.col("volume")
    # greatest() skips nulls in Spark; Qlib's Greater does not: no previous close, no true range
    tr = F.when(F.col("c1").isNotNull(), F.greatest(F.col("high") - F.col("low"), F.abs(F.col("high") - F.col("c1")),
                                                    F.abs(F.col("low") - F.col("c1"))))
    series = {
        "one": F.col("present"), "c": F.col("close"), "v": F.col("volume"),
        "up": F.greatest(dc, F.lit(0.0)), "dn": F.greatest(-dc, F.lit(0.0)), "adc": F.abs(dc),
        "cup": (dc > 0).cast("int"), "cdn": (dc < 0).cast("int"), "ndc": dc.isNotNull().cast("int"),
        "vup": F.greatest(dv, F.lit(0.0)), "vdn": F.greatest(-dv, F.lit(0.0)), "adv": F.abs(dv),
        "ndv": dv.isNotNull().cast("int"), "wv": wv, "nwv": wv.isNotNull().cast("int"), "tr": tr,
        "ntr": tr.isNotNull().cast("int"),
    }
    return base.select(
        "*",
        dc.alias("dc"), wv.alias("wv"), F.log(F.col("volume") + 1).alias("lv"),
        _ratio(F.col("close"), F.col("c1")).alias("cr"), F.log(_ratio(F.col("volume"), F.col("v1")) + 1).alias("lvr"),
        (F.col("ema12") - F.col("ema26")).alias("dif"),
        *[F.sum(F.coalesce(col.cast(_EXACT), F.lit(0).cast(_EXACT))).over(upto).alias(f"S_{name}")
          for name, col in series.items()],
    )


def _window_arrays() -> dict[str, Column]:
    """Per window d, what the array features read, once a row: the window's closes sorted, its
    highest high and lowest low, and the positions of their first occurrence (1-based, oldest
    first). Written inline in each feature, Spark sorted a window up to six times a row (no
    common-subexpression elimination inside CASE WHEN): about 40% of a backfill."""
    from pyspark.sql import functions as F

    long = _rows(_LONGEST_ARRAY)
    arrays = {name: F.collect_list(name).over(long) for name in ("close", "high", "low")}
    out: dict[str, Column] = {}
    for d in ALPHA158_WINDOWS:
        high, low = F.slice(arrays["high"], -d, d), F.slice(arrays["low"], -d, d)
        out[f"_sorted_close{d}"] = F.array_sort(F.slice(arrays["close"], -d, d))
        out[f"_max_high{d}"], out[f"_min_low{d}"] = F.array_max(high), F.array_min(low)
        out[f"_at_max_high{d}"] = F.array_position(high, F.array_max(high)).cast("double")
        out[f"_at_min_low{d}"] = F.array_position(low, F.array_min(low)).cast("double")
    return out


def bar_feature_columns() -> dict[str, Column]:
    """Catalogue name -> Spark column over `_step1`'s frame with `_window_arrays` (the BAR_FEATURES)."""
    from pyspark.sql import functions as F

    o, h, lo, c, v = (F.col(x) for x in ("open", "high", "low", "close", "volume"))
    x = F.col("x")
    w = _by_date()

    def wsum(name: str, d: int) -> Column:
        """The exact sum of a series over the d sessions ending at the row, as a double."""
        run = F.col(f"S_{name}")
        return (run - F.coalesce(F.lag(run, d).over(w), F.lit(0).cast(_EXACT))).cast("double")

    def ref(col: Column, d: int) -> Column:  # null when any of the d+1 sessions has no bar
        return F.when(wsum("one", d + 1) == d + 1, F.lag(col, d).over(w))

    cols: dict[str, Column] = {
        "KMID": (c - o) / o,
        "KLEN": (h - lo) / o,
        "KMID2": (c - o) / (h - lo + 1e-12),
        "KUP": (h - F.greatest(o, c)) / o,
        "KUP2": (h - F.greatest(o, c)) / (h - lo + 1e-12),
        "KLOW": (F.least(o, c) - lo) / o,
        "KLOW2": (F.least(o, c) - lo) / (h - lo + 1e-12),
        "KSFT": (2 * c - h - lo) / o,
        "KSFT2": (2 * c - h - lo) / (h - lo + 1e-12),
        "OPEN0": o / c,
        "HIGH0": h / c,
        "LOW0": lo / c,
    }
    for d in ALPHA158_WINDOWS:
        rows = _rows(d)
        full = wsum("one", d) == d  # every session of the window has a bar
        full_d = wsum("ndc", d) == d  # and the one before it: d differences
        full_v = wsum("ndv", d) == d

        def on(value: Column, guard: Column = full) -> Column:
            return F.when(guard, value)

        mean_c = wsum("c", d) / d
        std_c = F.stddev_samp(c).over(rows)
        # least squares on the session number (evenly spaced over a full window): the slope is
        # cov(x, c) / var(x) and var(x) of d consecutive numbers is (d^2 - 1) / 12
        slope = F.regr_slope(c, x).over(rows)
        closes = F.col(f"_sorted_close{d}")
        first_at = F.array_position(closes, c)  # 1-based; the latest close is in its window
        last_at = F.lit(d + 1) - F.array_position(F.reverse(closes), c)
        hi_d, lo_d = F.col(f"_max_high{d}"), F.col(f"_min_low{d}")
        idx_max, idx_min = F.col(f"_at_max_high{d}"), F.col(f"_at_min_low{d}")
        adc = wsum("adc", d) + 1e-12
        adv = wsum("adv", d) + 1e-12

        def quantile(q: float, closes: Column = closes, d: int = d) -> Column:  # numpy's linear
            p = q * (d - 1)
            k = math.floor(p)
            lo_v = F.element_at(closes, k + 1)
            return lo_v if p == k else lo_v + (F.element_at(closes, min(k + 2, d)) - lo_v) * (p - k)

        cols.update({
            f"ROC{d}": ref(c, d) / c,
            f"MA{d}": on(mean_c) / c,
            f"STD{d}": on(std_c) / c,
            f"BETA{d}": on(slope) / c,
            f"RSQR{d}": on(F.pow(_corr(c, x, rows), 2)),  # null for a constant close
            # the latest close minus the fitted one: x's mean lies (d-1)/2 sessions before the latest
            f"RESI{d}": on(c - mean_c - slope * ((d - 1) / 2)) / c,
            f"MAX{d}": on(hi_d) / c,
            f"MIN{d}": on(lo_d) / c,
            f"QTLU{d}": on(quantile(0.8)) / c,
            f"QTLD{d}": on(quantile(0.2)) / c,
            # (count below + (count equal + 1) / 2) / d, ties averaged
            f"RANK{d}": on(((first_at - 1) + (last_at - first_at + 2) / 2) / d),
            f"RSV{d}": (c - on(lo_d)) / (on(hi_d) - on(lo_d) + 1e-12),
            f"IMAX{d}": on(idx_max) / d,
            f"IMIN{d}": on(idx_min) / d,
            f"IMXD{d}": on(idx_max - idx_min) / d,
            f"CORR{d}": on(_corr(c, F.col("lv"), rows)),
            f"CORD{d}": F.when((F.count("cr").over(rows) == d) & (F.count("lvr").over(rows) == d),
                               _corr(F.col("cr"), F.col("lvr"), rows)),
            f"CNTP{d}": on(wsum("cup", d) / d, full_d),
            f"CNTN{d}": on(wsum("cdn", d) / d, full_d),
            f"CNTD{d}": on((wsum("cup", d) - wsum("cdn", d)) / d, full_d),
            f"SUMP{d}": on(wsum("up", d) / adc, full_d),
            f"SUMN{d}": on(wsum("dn", d) / adc, full_d),
            f"SUMD{d}": on((wsum("up", d) - wsum("dn", d)) / adc, full_d),
            f"VMA{d}": on(wsum("v", d) / d) / (v + 1e-12),
            f"VSTD{d}": on(F.stddev_samp(v).over(rows)) / (v + 1e-12),
            f"WVMA{d}": on(F.stddev_samp("wv").over(rows) / (wsum("wv", d) / d + 1e-12), wsum("nwv", d) == d),
            f"VSUMP{d}": on(wsum("vup", d) / adv, full_v),
            f"VSUMN{d}": on(wsum("vdn", d) / adv, full_v),
            f"VSUMD{d}": on((wsum("vup", d) - wsum("vdn", d)) / adv, full_v),
        })
    stdp20 = F.stddev_pop(c).over(_rows(20))
    mean20 = wsum("c", 20) / 20
    dif = F.col("dif")
    signal = _full(dif, sum((F.lag(dif, k).over(w) * wk for k, wk in enumerate(_ema_weights(9))), F.lit(0.0)), 9)
    cols.update({
        "RSI14": F.when(wsum("ndc", 14) == 14, 100 * wsum("up", 14) / (wsum("adc", 14) + 1e-12)),
        "MACD": dif / c,
        "MACDSIG": signal / c,
        "MACDHIST": (dif - signal) / c,
        "BBP20": F.when(wsum("one", 20) == 20, (c - mean20 + 2 * stdp20) / (4 * stdp20 + 1e-12)),
        "ATR14": F.when(wsum("ntr", 14) == 14, wsum("tr", 14) / 14) / c,
        "MOM12_1": F.when(wsum("one", 253) == 253, F.lag(c, 21).over(w) / F.lag(c, 252).over(w) - 1),
        "REV1": -(c / ref(c, 1) - 1),
        "REV5": -(c / ref(c, 5) - 1),
    })
    missing = set(BAR_FEATURE_NAMES) ^ set(cols)
    if missing:
        raise AssertionError(f"catalogue and Spark bar features disagree on {sorted(missing)}")
    return {name: cols[name] for name in BAR_FEATURE_NAMES}


def _cross_sectional(frame: DataFrame) -> DataFrame:
    """CSR_/CSZ_ of the main features and the market-relative returns, per session over the
    rows of the frame (the tickers with a bar that session)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    # ordered by ticker over the whole session: sums then run in one fixed order, so a value is the
    # same to the last bit in every run (a shuffle delivers a session's rows in any order)
    session = Window.partitionBy("date").orderBy("ticker").rowsBetween(Window.unboundedPreceding,
                                                                       Window.unboundedFollowing)
    cols = []
    for f in CROSS_SECTIONAL_BASE:  # one select: a withColumn each would re-analyse the wide plan
        x = F.col(f)
        ranked = Window.partitionBy("date", x.isNull()).orderBy(x)
        sd = F.stddev_samp(x).over(session)
        cols += [F.when(x.isNotNull(), F.percent_rank().over(ranked)).alias(f"CSR_{f}"),
                 F.when(sd > 0, (x - F.avg(x).over(session)) / sd).alias(f"CSZ_{f}")]
    for d in (1, 5, 20):
        r = F.col(f"_ret{d}")
        cols.append((r - F.avg(r).over(session)).alias(f"MKTREL{d}"))
    out = frame.select("*", *cols)
    return out


def _alternative(frame: DataFrame, sentiment: DataFrame | None, macro: DataFrame | None) -> DataFrame:
    """Sentiment and message counts per (ticker, session) and market-wide, macro series as known
    at the session. Inside a source's coverage a ticker without messages counts 0; outside it,
    or without the table, the features are null (absent, never zero)."""
    from pyspark.sql import functions as F

    out = frame
    if sentiment is None:
        out = out.select("*", *[F.lit(None).cast("double").alias(n) for n in ("SENT", "MSGCNT", "MKT_SENT", "MKT_MSGCNT")])
    else:
        for market, sent, cnt in ((False, "SENT", "MSGCNT"), (True, "MKT_SENT", "MKT_MSGCNT")):
            rows = sentiment.where((F.col("ticker") == MARKET_TICKER) == F.lit(market))
            cover = rows.agg(F.min("date").alias("_lo"), F.max("date").alias("_hi"))
            keys = ["date"] if market else ["ticker", "date"]
            part = rows.select(*keys, F.col("sentiment").cast("double").alias(sent),
                               F.col("message_count").cast("double").alias(f"_{cnt}"))
            out = out.join(part, keys, "left").crossJoin(F.broadcast(cover))
            inside = F.col("date").between(F.col("_lo"), F.col("_hi"))
            out = (out.withColumn(cnt, F.when(inside, F.coalesce(F.col(f"_{cnt}"), F.lit(0.0))))
                   .withColumn(sent, F.when(inside, F.col(sent))).drop(f"_{cnt}", "_lo", "_hi"))
    if macro is None:
        out = out.select("*", *[F.lit(None).cast("double").alias(f"MACRO_{s}") for s in MACRO_SERIES])
    else:
        wide = (macro.where(F.col("series_id").isin(*MACRO_SERIES))
                .groupBy("date").pivot("series_id", list(MACRO_SERIES)).agg(F.first(F.col("value").cast("double"))))
        out = out.join(F.broadcast(wide.select("date", *[F.col(s).alias(f"MACRO_{s}") for s in MACRO_SERIES])),
                       "date", "left")
    return out


_BAR_SELECT: list = []  # [(the SparkContext, the columns)]


def _bar_feature_select() -> list[Column]:
    """The bar features as double columns, built once per SparkContext: building the ~1,500
    expressions costs about 2.7 s of py4j calls, and an unresolved Column suits any frame, so a
    process that computes many intervals (a run of daily sessions, the tests) builds them once."""
    from pyspark import SparkContext

    return _built_once(_BAR_SELECT, SparkContext._active_spark_context,
                       lambda: [col.cast("double").alias(n) for n, col in bar_feature_columns().items()])


def compute_features(bars: DataFrame, sentiment: DataFrame | None = None, macro: DataFrame | None = None,
                     extra: dict[str, Column] | None = None) -> DataFrame:
    """gold.features_daily rows for every bar of `bars` (ticker, date, open, high, low, close,
    volume: split-adjusted prices; optionally corporate_action). `extra` adds named columns over
    the same frame (how a test plants a feature the catalogue does not have)."""
    from pyspark.sql import functions as F

    grid = on_sessions(bars)
    step = _step1(grid, _session_numbers(bars.sparkSession))
    step = step.select("*", *[col.alias(name) for name, col in _window_arrays().items()])
    w = _by_date()
    rets = [F.when(F.count("present").over(_rows(d + 1)) == d + 1, F.col("close") / F.lag("close", d).over(w) - 1)
            .alias(f"_ret{d}") for d in (1, 5, 20)]
    extra = extra or {}
    per_ticker = (
        step.select("ticker", "date", "present", *_bar_feature_select(), *rets,
                    *[col.alias(n) for n, col in extra.items()])
        .where(F.col("present") == 1)
        .drop("present")
    )
    out = _alternative(_cross_sectional(per_ticker), sentiment, macro)
    return (out.select("ticker", "date", *[F.col(n).cast("double").alias(n) for n in FEATURE_NAMES], *extra)
            .withColumn("year", F.year("date").cast("int")))


def compute_labels(bars: DataFrame) -> DataFrame:
    """Forward returns a signal at D's close can trade: open(D+1) -> open(D+1+h), and their
    per-session rank; null when a session from D+1 to the exit has no bar or a corporate action
    lies between them."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    by_date = _by_date()

    def forward(h: int) -> Column:  # from this session's open, h sessions on, all in one segment
        complete = F.count("present").over(by_date.rowsBetween(0, h)) == 1 + h
        return F.when(complete, F.lead("open", h).over(by_date) / F.col("open") - 1)

    # The label at D enters at the next session's open: the forward return of the next row of
    # the ticker's session grid (null when that session has no bar). Shifted across segments on
    # purpose: a label dated the session before a corporate action enters after it.
    next_row = Window.partitionBy("ticker").orderBy("date")
    out = (
        on_sessions(bars)
        .select("ticker", "date", "present", *[forward(h).alias(f"_fwd{h}") for h in LABEL_HORIZONS])
        .select("ticker", "date", "present",
                *[F.lead(f"_fwd{h}", 1).over(next_row).alias(f"ret_{h}d") for h in LABEL_HORIZONS])
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


def adjusted(silver: DataFrame) -> DataFrame:
    """The adjusted bars of silver under the plain bar names, as the feature functions read them."""
    from pyspark.sql import functions as F

    return silver.select("ticker", "date", *[F.col(f"adj_{c}").alias(c) for c in RAW_COLUMNS], "corporate_action")


def _replace(frame: DataFrame, uri: str, start: dt.date, end: dt.date) -> None:
    """Overwrite exactly [start, end] of a year-partitioned table, atomically (one Delta commit).
    A concurrent writer's commit conflict is retried (the write is idempotent)."""
    from tickerlake.lake import retry_on_conflict

    retry_on_conflict(lambda: (
        frame.write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", f"date >= '{start.isoformat()}' AND date <= '{end.isoformat()}'")
        .partitionBy("year")
        .save(uri)
    ))


def _optional(spark: SparkSession, settings: Settings, name: str, version: int | None = None) -> DataFrame | None:
    """A whole table (at `version` when given) when it exists (a source's coverage is its whole span:
    the same in a daily run and a backfill), else None."""
    from tickerlake.lake import table_exists

    if not table_exists(settings, name):
        return None
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(settings.table_uri(name))


def run(spark: SparkSession, settings: Settings, start: dt.date, end: dt.date) -> dict:
    """Silver for [start, end], then features for [start, end] and labels as far back as they complete.

    A late verdict (a session before `start` rejected or released when [start, end] was
    validated, see ingest.restated_since) moves the start back to that session: its silver rows
    and every feature and label whose window reaches it are computed again.
    """
    from pyspark.sql import functions as F

    from tickerlake.altdata.macro import ASOF as MACRO_ASOF
    from tickerlake.altdata.macro import write_macro_daily
    from tickerlake.ingest import restated_since
    from tickerlake.lake import table_exists, table_version

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
    _replace(split_factors(quarantine).withColumn("year", F.year("date").cast("int")),
             settings.table_uri("silver.split_factors"), start, end)
    # every split up to the interval's end: a factor is cumulative from the ticker's first bar
    splits = spark.read.format("delta").load(settings.table_uri("silver.split_factors")).where(F.col("date") <= F.lit(end))
    silver = silver_bars(bronze, quarantine, splits).withColumn("year", F.year("date").cast("int"))
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

    lookback_start = sessions_back(start, LOOKBACK_SESSIONS - 1)
    history = adjusted(interval(settings.table_uri("silver.bars_daily"), lookback_start, until))
    sentiment = _optional(spark, settings, "silver.sentiment_daily")
    # one snapshot of the macro panel for the features and gold.macro_daily alike
    macro_version = table_version(settings, MACRO_ASOF) if table_exists(settings, MACRO_ASOF) else None
    macro = _optional(spark, settings, MACRO_ASOF, macro_version)
    if macro is not None:
        macro = macro.where(F.col("date").between(F.lit(start), F.lit(until)))
    features = compute_features(history, sentiment, macro).where(F.col("date").between(F.lit(start), F.lit(until)))
    features = with_event_ts(spark, features, start, until)
    _replace(features, settings.table_uri("gold.features_daily"), start, until)
    # The market-wide view's table, from the same silver.macro_asof rows the features joined.
    write_macro_daily(settings, start, until, asof_version=macro_version)

    label_start = sessions_back(start, LABEL_LOOKBACK)
    labels = compute_labels(adjusted(interval(settings.table_uri("silver.bars_daily"), label_start, until)))
    labels = labels.where(F.col(f"ret_{LABEL_HORIZONS[0]}d").isNotNull())
    _replace(labels, settings.table_uri("gold.labels_daily"), label_start, until)
    return {"start": start.isoformat(), "end": until.isoformat(), "sessions": len(sessions_between(start, until)),
            "restated_from": restated.isoformat() if restated else None}
