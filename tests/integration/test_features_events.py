"""Splits, corporate actions, listings, delistings and alternative data in the Spark feature job,
each with its expected values; alternative-data features against the DuckDB reference."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from tickerlake import reference_features as rf
from tickerlake.calendar import sessions_between
from tickerlake.catalog import MACRO_SERIES

pytestmark = pytest.mark.integration

DAYS = sessions_between(dt.date(2024, 1, 2), dt.date(2024, 3, 1))[:30]
BARS = "ticker string, date date, open double, high double, low double, close double, volume double"
QUARANTINE = "ticker string, date date, rule string, severity string, values string"


@pytest.fixture(scope="module")
def spark(make_settings, tmp_path_factory):
    from tickerlake.spark import get_spark

    return get_spark(make_settings(tmp_path_factory.mktemp("events") / "home"), "test-feature-events")


def steady(ticker: str, days=DAYS, start: float = 100.0, step: float = 1.0, volume: float = 1000.0) -> pd.DataFrame:
    """close_t = start + step*t, open a half step below, high/low one above/below."""
    rows = []
    for t, day in enumerate(days, start=1):
        c = start + step * t
        rows.append((ticker, day, c - step / 2, c + 1, c - step / 2 - 1, c, volume))
    return pd.DataFrame(rows, columns=["ticker", "date", "open", "high", "low", "close", "volume"])


def by_t(frame: pd.DataFrame, ticker: str) -> pd.DataFrame:
    t_of = {d: t for t, d in enumerate(DAYS, start=1)}
    out = frame[frame["ticker"] == ticker]
    return out.assign(t=out["date"].map(t_of)).set_index("t").sort_index()


def features_of(spark, bars: pd.DataFrame, quarantine: list[tuple] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """silver (with splits and corporate actions from `quarantine`), then features and labels."""
    from tickerlake.features import adjusted, compute_features, compute_labels, silver_bars, split_factors

    bronze = spark.createDataFrame(bars, BARS)
    q = spark.createDataFrame(quarantine or [], QUARANTINE)
    silver = silver_bars(bronze, q, split_factors(q)).cache()
    adj = adjusted(silver)
    return compute_features(adj).toPandas(), compute_labels(adj).toPandas(), silver.toPandas()


def test_an_unadjusted_split_is_adjusted_and_returns_stay_continuous(spark):
    """A 2:1 split at t = 21 the vendor did not adjust: raw prices halve; silver keeps them and adds
    adjusted ones (x2 from t = 21), so REV1 and ROC5 over the split are the real moves."""
    bars = steady("SPLT")
    after = bars.index >= 20
    bars.loc[after, ["open", "high", "low", "close"]] /= 2
    bars.loc[after, "volume"] *= 2
    values = json.dumps({"split_ratio": 0.5})
    features, labels, silver = features_of(spark, bars, [("SPLT", DAYS[20], "unadjusted_split", "warn", values)])
    s = by_t(silver, "SPLT")
    assert s.loc[21, "close"] == pytest.approx(121 / 2) and s.loc[21, "adj_close"] == pytest.approx(121)
    assert s.loc[20, "split_factor"] == 1.0 and s.loc[21, "split_factor"] == 0.5 and s.loc[30, "split_factor"] == 0.5
    assert s.loc[25, "adj_volume"] == pytest.approx(1000.0)
    f = by_t(features, "SPLT")
    assert f.loc[21, "REV1"] == pytest.approx(-(121 / 120 - 1), rel=1e-12)  # not the raw -50%
    assert f.loc[23, "ROC5"] == pytest.approx(118 / 123, rel=1e-12)
    lab = by_t(labels, "SPLT")
    assert lab.loc[19, "ret_1d"] == pytest.approx((120.5 / 119.5) - 1, rel=1e-12)  # open_21 adjusted


def test_a_corporate_action_breaks_every_window_and_label_across_it(spark):
    """A spin-off-like drop flagged at t = 16: no Ref, window or label reaches across it; after it
    the series warms up again."""
    bars = steady("SPIN")
    bars.loc[bars.index >= 15, ["open", "high", "low", "close"]] *= 0.55
    features, labels, _ = features_of(spark, bars, [("SPIN", DAYS[15], "corporate_action", "warn", "{}")])
    f = by_t(features, "SPIN")
    assert f.loc[16, ["REV1", "ROC5", "MA5"]].isna().all()
    assert f.loc[17, "REV1"] == pytest.approx(-((117 / 116) - 1), rel=1e-12)  # within the new segment
    assert f.loc[20, "MA5"] == pytest.approx(np.mean([116, 117, 118, 119, 120]) / 120, rel=1e-12)
    assert f.loc[19, "MA5"] != f.loc[19, "MA5"]  # t = 15 is in another segment: null
    assert f.loc[[20, 21, 22, 23, 24, 25, 30], "ROC20"].isna().all()
    lab = by_t(labels, "SPIN")
    assert lab.loc[14, "ret_1d"] != lab.loc[14, "ret_1d"], "open_15 -> open_16 spans the action"
    assert lab.loc[[10, 11, 12, 13, 14], "ret_5d"].isna().all()
    assert lab.loc[9, "ret_5d"] == pytest.approx(114.5 / 109.5 - 1, rel=1e-12)  # opens 10..15: before it
    # entered at open_16, after the action: a real return
    assert lab.loc[15, "ret_1d"] == pytest.approx((116.5 * 0.55) / (115.5 * 0.55) - 1, rel=1e-12)
    assert lab.loc[16, "ret_1d"] == pytest.approx((117.5 * 0.55) / (116.5 * 0.55) - 1, rel=1e-12)


def test_a_new_listing_warms_up_with_nulls_and_a_delisting_ends_its_labels(spark):
    full = steady("FULL")
    listing = steady("NEWL", days=DAYS[9:], start=109.0)  # first bar at t = 10, close 110
    delisted = steady("GONE", days=DAYS[:20])  # last bar at t = 20
    features, labels, _ = features_of(spark, pd.concat([full, listing, delisted], ignore_index=True))
    f = by_t(features, "NEWL")
    assert list(f.index) == list(range(10, 31))
    assert f.loc[10, "KMID"] == pytest.approx((110 - 109.5) / 109.5)
    assert f.loc[10:13, "MA5"].isna().all() and f.loc[14, "MA5"] == pytest.approx(112 / 114, rel=1e-12)
    assert f.loc[10:28, "MA20"].isna().all() and f.loc[29, "MA20"] == pytest.approx(119.5 / 129, rel=1e-12)
    assert not (f["MA20"] == 0).any(), "warm-up is null, never zero"
    lab = by_t(labels, "GONE")
    assert lab["ret_1d"].notna().sum() == 18 and lab.loc[[19, 20], "ret_1d"].isna().all()


def alt_sources() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sentiment for t = 5..20 (coverage), messages on some sessions only; market rows; macro."""
    rng = np.random.default_rng(3)
    rows = []
    for t in range(5, 21):
        for ticker in ("AAA", "BBB"):
            if (t + len(ticker)) % 3:
                rows.append((ticker, DAYS[t - 1], float(rng.uniform(-1, 1)), int(rng.integers(1, 50))))
        if t % 2:
            rows.append(("__MARKET__", DAYS[t - 1], float(rng.uniform(-1, 1)), int(rng.integers(1, 9))))
    sentiment = pd.DataFrame(rows, columns=["ticker", "date", "sentiment", "message_count"])
    macro = pd.DataFrame([(s, d, float(rng.normal())) for s in MACRO_SERIES for d in DAYS[3:25]],
                         columns=["series_id", "date", "value"])
    return sentiment, macro


def test_alternative_features_match_the_duckdb_reference_and_are_null_outside_coverage(spark):
    from tickerlake.features import compute_features

    bars = pd.concat([steady("AAA"), steady("BBB", start=50.0, step=-0.5), steady("CCC")], ignore_index=True)
    sentiment, macro = alt_sources()
    got = compute_features(spark.createDataFrame(bars, BARS),
                           spark.createDataFrame(sentiment, "ticker string, date date, sentiment double, message_count long"),
                           spark.createDataFrame(macro, "series_id string, date date, value double")).toPandas()
    ref = rf.features(bars, sentiment=sentiment, macro=macro)
    names = ["SENT", "MSGCNT", "MKT_SENT", "MKT_MSGCNT", *(f"MACRO_{s}" for s in MACRO_SERIES)]
    merged = got.merge(ref, on=["ticker", "date"], suffixes=("", "_ref"))
    assert len(merged) == len(bars)
    for name in names:
        a, b = merged[name].to_numpy(dtype=float), merged[f"{name}_ref"].to_numpy(dtype=float)
        assert (np.isnan(a) == np.isnan(b)).all(), name
        np.testing.assert_allclose(a[~np.isnan(a)], b[~np.isnan(b)], rtol=1e-12, err_msg=name)
    ccc = by_t(got, "CCC")  # no messages at all, inside the coverage: count 0, sentiment null
    assert (ccc.loc[5:20, "MSGCNT"] == 0).all() and ccc.loc[5:20, "SENT"].isna().all()
    aaa = by_t(got, "AAA")
    assert aaa.loc[list(range(1, 5)) + list(range(21, 31)), ["SENT", "MSGCNT"]].isna().all().all()
    first = sentiment[(sentiment["ticker"] == "AAA")].iloc[0]
    t = DAYS.index(first["date"]) + 1
    assert aaa.loc[t, "SENT"] == pytest.approx(first["sentiment"]) and aaa.loc[t, "MSGCNT"] == first["message_count"]
    assert aaa.loc[[1, 2, 3, 26], "MACRO_VIXCLS"].isna().all() and aaa.loc[4:25, "MACRO_VIXCLS"].notna().all()

    # gold.macro_daily (Feast's market-wide view) holds, per session, the values the job joined to every
    # ticker's row: its pure pivot of the same panel equals the Spark features row by row.
    from tickerlake.altdata.macro import macro_daily_frame

    macro_names = [f"MACRO_{s}" for s in MACRO_SERIES]
    daily = macro_daily_frame(macro, DAYS).set_index("date")
    np.testing.assert_array_equal(daily.loc[list(got["date"]), macro_names].to_numpy(dtype=float),
                                  got[macro_names].to_numpy(dtype=float))
    assert daily[macro_names].notna().to_numpy().sum() == len(MACRO_SERIES) * 22
