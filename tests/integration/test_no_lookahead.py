"""No look-ahead, as a property: for a session D, changing any bar after D changes no feature
dated D or earlier, over the whole catalogue; checked on the Spark feature functions and on the
DuckDB reference, over seeded random draws of D and tickers. A feature planted under an
innocent name that peeks one session ahead is caught by the same check.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from tickerlake import reference_features as rf
from tickerlake.calendar import sessions_between
from tickerlake.catalog import FEATURE_NAMES, LOOKBACK_SESSIONS
from tickerlake.synthetic import generate_bars

pytestmark = pytest.mark.integration

# 4 tickers x 265 sessions: every feature, MOM12_1's 253 sessions included, exists on the drawn D
N_TICKERS, START = 4, dt.date(2023, 1, 3)
END = sessions_between(START, dt.date(2024, 6, 28))[LOOKBACK_SESSIONS + 11]
DRAWS, SEED = 5, 20240611
BARS_SCHEMA = "ticker string, date date, open double, high double, low double, close double, volume double"
# lead(close)/close: tomorrow's close over today's, under a name that sounds like a momentum feature
PEEKING_SQL = {"MOM1": "lead(close, 1) OVER (PARTITION BY ticker ORDER BY date) / close"}

Compute = Callable[[pd.DataFrame], pd.DataFrame]


def perturb_after(bars: pd.DataFrame, day: dt.date, ticker: str, rng: np.random.Generator) -> pd.DataFrame:
    """`bars` with every bar of `ticker` after `day` changed, and some later bars of other tickers:
    new open, close, high, low (still a valid bar) and volume, so every kind of input moves."""
    out = bars.copy()
    later = out["date"] > day
    chosen = later & ((out["ticker"] == ticker) | (rng.random(len(out)) < 0.5))
    k = int(chosen.sum())
    o = out.loc[chosen, "open"].to_numpy() * np.exp(rng.normal(0, 0.05, k))
    c = out.loc[chosen, "close"].to_numpy() * np.exp(rng.normal(0, 0.05, k))
    out.loc[chosen, "open"], out.loc[chosen, "close"] = o, c
    out.loc[chosen, "high"] = np.maximum(o, c) * np.exp(np.abs(rng.normal(0, 0.02, k)))
    out.loc[chosen, "low"] = np.minimum(o, c) * np.exp(-np.abs(rng.normal(0, 0.02, k)))
    out.loc[chosen, "volume"] = np.round(out.loc[chosen, "volume"].to_numpy() * np.exp(rng.normal(0, 0.5, k)))
    return out


def _keyed(frame: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    frame = frame.assign(date=pd.to_datetime(frame["date"]).dt.date)
    return frame.set_index(["ticker", "date"]).sort_index()[names]


def lookahead_violations(compute: Compute, bars: pd.DataFrame, draws: int = DRAWS, seed: int = SEED) -> list[str]:
    """Feature names (columns of `compute(bars)` other than ticker, date, year, event_ts) whose value
    on some session <= D changed when bars after D changed; [] when none did.

    Per draw: a random session D (late enough that every feature has a value on it, with sessions
    after it) and a random ticker whose bars after D all change (other tickers' later bars change at random too); rows dated <= D of every ticker
    must be bit-for-bit the same (missing stays missing). Raises if a draw changed nothing after
    D, so the property cannot pass vacuously.
    """
    rng = np.random.default_rng(seed)
    base_raw = compute(bars)
    names = [c for c in base_raw.columns if c not in ("ticker", "date", "year", "event_ts")]
    base = _keyed(base_raw, names)
    days = sorted(bars["date"].unique())
    tickers = sorted(bars["ticker"].unique())
    offending: dict[str, list[tuple[str, dt.date]]] = {}
    for _ in range(draws):
        day = days[int(rng.integers(min(LOOKBACK_SESSIONS - 1, len(days) - 2), len(days) - 1))]
        ticker = tickers[int(rng.integers(len(tickers)))]
        moved = _keyed(compute(perturb_after(bars, day, ticker, rng)), names)
        assert moved.index.equals(base.index), "the perturbation must not add or drop rows"
        upto = base.index.get_level_values("date") <= day
        for name in names:
            a, b = base[name].to_numpy(dtype=float), moved[name].to_numpy(dtype=float)
            same = (a == b) | (np.isnan(a) & np.isnan(b))
            if not same[upto].all():
                offending.setdefault(name, []).append((ticker, day))
        after = (~upto) & (base.index.get_level_values("ticker") == ticker)
        a, b = base.loc[after, "KMID"].to_numpy(), moved.loc[after, "KMID"].to_numpy()
        assert (a != b).any(), f"draw D={day} {ticker}: nothing changed after D"
    return sorted(offending)


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return generate_bars(N_TICKERS, START, END, seed=7)


@pytest.fixture(scope="module")
def spark(make_settings, tmp_path_factory):
    from tickerlake.spark import get_spark

    return get_spark(make_settings(tmp_path_factory.mktemp("lookahead") / "home"), "test-no-lookahead")


def spark_compute(spark, planted: bool = False) -> Compute:
    """The Spark feature functions on an in-memory frame; `planted` adds the peeking MOM1."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from tickerlake.features import compute_features

    def compute(frame: pd.DataFrame) -> pd.DataFrame:
        df = spark.createDataFrame(frame[["ticker", "date", "open", "high", "low", "close", "volume"]], BARS_SCHEMA)
        out = compute_features(df)
        if planted:  # a test-only extension of the computation
            ahead = F.lead("close", 1).over(Window.partitionBy("ticker").orderBy("date")) / F.col("close")
            out = out.join(df.select("ticker", "date", ahead.alias("MOM1")), ["ticker", "date"])
        return out.toPandas()

    return compute


def test_duckdb_reference_features_never_look_ahead(bars):
    assert lookahead_violations(rf.features, bars) == []


def test_a_peeking_feature_is_caught_in_duckdb(bars):
    assert lookahead_violations(lambda b: rf.features(b, extra=PEEKING_SQL), bars) == ["MOM1"]


def test_spark_features_never_look_ahead(spark, bars):
    compute = spark_compute(spark)
    assert set(compute(bars).columns) >= set(FEATURE_NAMES)
    assert lookahead_violations(compute, bars) == []


def test_a_peeking_feature_is_caught_in_spark(spark, bars):
    # one draw suffices (test_the_check_sees_a_one_session_peek_at_any_draw); Spark runs are slow
    assert lookahead_violations(spark_compute(spark, planted=True), bars, draws=1) == ["MOM1"]


def test_the_check_sees_a_one_session_peek_at_any_draw(bars):
    """Even a single draw catches MOM1: D's own MOM1 reads D+1's close, which always changes."""
    for seed in range(3):
        assert lookahead_violations(lambda b: rf.features(b, extra=PEEKING_SQL), bars, draws=1, seed=seed) == ["MOM1"]
