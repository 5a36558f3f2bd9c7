"""The Spark feature job against an independent pandas computation, and the label table's rules."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from tickerlake import lake
from tickerlake.ingest import land_bars, validate_interval
from tickerlake.synthetic import generate_bars

pytestmark = pytest.mark.integration

START, END = dt.date(2024, 1, 2), dt.date(2024, 6, 28)


@pytest.fixture(scope="module")
def built(make_settings, tmp_path_factory):
    from tickerlake.features import run
    from tickerlake.spark import get_spark, write_spark_conf

    settings = make_settings(tmp_path_factory.mktemp("features") / "home", universe_size=12,
                             history_start=START.isoformat())
    write_spark_conf(settings)
    logical = dt.datetime(2024, 6, 28, 22, tzinfo=dt.UTC)
    land_bars(settings, "synthetic", START, END, "test", logical)
    validate_interval(settings, START, END, "test")
    spark = get_spark(settings, "test-features")
    run(spark, settings, START, END)
    return settings


def reference(bars: pd.DataFrame) -> pd.DataFrame:
    """Qlib's formulas in pandas, written apart from the Spark code."""
    out = []
    for _, g in bars.sort_values("date").groupby("ticker"):
        c, o, h, lo, v = g["close"], g["open"], g["high"], g["low"], g["volume"]
        f = pd.DataFrame({"ticker": g["ticker"], "date": g["date"]})
        f["KMID"] = (c - o) / o
        f["KSFT"] = (2 * c - h - lo) / o
        f["ROC5"] = c.shift(5) / c
        f["MA20"] = c.rolling(20).mean() / c
        f["STD20"] = c.rolling(20).std() / c
        f["VMA5"] = v.rolling(5).mean() / (v + 1e-12)
        f["RSV10"] = (c - lo.rolling(10).min()) / (h.rolling(10).max() - lo.rolling(10).min() + 1e-12)
        f["REV5"] = -(c / c.shift(5) - 1)
        f["ret_1d"] = o.shift(-2) / o.shift(-1) - 1
        out.append(f)
    return pd.concat(out)


def test_features_match_an_independent_computation(built):
    settings = built
    bars = generate_bars(12, START, END, seed=settings.seed)
    ref = reference(bars)
    got = lake.read_table(settings, "gold.features_daily")
    merged = got.merge(ref, on=["ticker", "date"], suffixes=("", "_ref"))
    assert len(merged) == len(bars) == len(got)
    for name in ("KMID", "KSFT", "ROC5", "MA20", "STD20", "VMA5", "RSV10", "REV5"):
        a, b = merged[name].to_numpy(), merged[f"{name}_ref"].to_numpy()
        assert (np.isnan(a) == np.isnan(b)).all(), f"{name}: warm-up nulls differ"
        np.testing.assert_allclose(a[~np.isnan(a)], b[~np.isnan(b)], rtol=1e-9, atol=1e-12, err_msg=name)
    first = merged[merged["date"] == merged["date"].min()]
    assert first["ROC5"].isna().all() and first["MA20"].isna().all()


def test_event_time_is_the_session_close_in_utc(built):
    got = lake.read_table(built, "gold.features_daily", filters=[("date", "=", dt.date(2024, 6, 28))])
    assert set(got["event_ts"]) == {pd.Timestamp("2024-06-28 20:00", tz="UTC")}
    may31 = lake.read_table(built, "gold.features_daily", filters=[("date", "=", dt.date(2024, 5, 31))])
    assert set(may31["event_ts"]) == {pd.Timestamp("2024-05-31 20:00", tz="UTC")}


def test_labels_are_next_open_to_following_open_and_only_where_complete(built):
    settings = built
    bars = generate_bars(12, START, END, seed=settings.seed)
    ref = reference(bars)[["ticker", "date", "ret_1d"]].dropna()
    labels = lake.read_table(settings, "gold.labels_daily")
    assert labels["date"].max() < END  # the last sessions have no complete label yet
    merged = labels.merge(ref, on=["ticker", "date"], suffixes=("", "_ref"))
    assert len(merged) == len(ref) == len(labels)
    np.testing.assert_allclose(merged["ret_1d"], merged["ret_1d_ref"], rtol=1e-12)
    assert merged.groupby("date")["ret_1d_rank"].agg(["min", "max"]).eq([0.0, 1.0]).all().all()
    features = lake.read_table(settings, "gold.features_daily")
    assert not {"ret_1d", "ret_5d"} & set(features.columns), "labels must never enter the features table"


def test_rerun_of_an_interval_gives_the_same_table(built):
    from tickerlake.features import run
    from tickerlake.spark import get_spark

    settings = built
    before = lake.read_table(settings, "gold.features_daily").sort_values(["ticker", "date"]).reset_index(drop=True)
    run(get_spark(settings, "test-features"), settings, dt.date(2024, 6, 3), END)
    after = lake.read_table(settings, "gold.features_daily").sort_values(["ticker", "date"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(before, after)
