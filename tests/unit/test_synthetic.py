import datetime as dt

import numpy as np
import pandas as pd
import pytest

from tickerlake.calendar import sessions_between
from tickerlake.synthetic import (
    DEFECT_CLASSES,
    arrow_bars,
    bars_for_interval,
    generate_bars,
    generate_market,
    listed_counts,
    universe,
)

pytestmark = pytest.mark.unit


def test_one_session_equals_the_same_rows_of_a_backfill():
    full = generate_bars(20, "2024-01-02", "2024-06-28", seed=3)
    one = bars_for_interval(20, "2024-01-02", "2024-06-28", "2024-06-28", seed=3)
    pd.testing.assert_frame_equal(full[full["date"] == one["date"].iloc[0]].reset_index(drop=True), one)


def test_bars_are_consistent_and_seeded():
    bars = generate_bars(30, "2024-01-02", "2024-12-31", seed=1)
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
    assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
    assert (bars[["open", "high", "low", "close", "volume"]] > 0).all().all()
    assert not bars.duplicated(["ticker", "date"]).any()
    other = generate_bars(30, "2024-01-02", "2024-12-31", seed=2)
    assert not np.allclose(bars["close"], other["close"])


def test_universe_names_are_canonical():
    names = universe(30)
    assert len(set(names)) == 30
    assert all(n == n.upper() for n in names)
    assert "SAAJ.B" in names


def test_planted_signal_is_present():
    """The documented signal predicts the next-open to following-open return; 5-day reversal does not."""
    bars = generate_bars(60, "2023-01-03", "2024-12-31", seed=7).sort_values(["ticker", "date"])
    g = bars.groupby("ticker")
    label = g["open"].shift(-2) / g["open"].shift(-1) - 1
    kmid = (bars["close"] - bars["open"]) / bars["open"]
    vr = bars["volume"] / g["volume"].transform(lambda s: s.rolling(20).mean())
    frame = pd.DataFrame({"date": bars["date"], "sig": np.tanh(kmid / 0.02) * (vr - 1), "y": label}).dropna()
    ic = frame.groupby("date").apply(lambda x: x["sig"].rank().corr(x["y"].rank()), include_groups=False)
    assert ic.mean() > 0.03
    assert ic.mean() / ic.std() * np.sqrt(len(ic)) > 4


# --- realism: off by default, deterministic, prefix-stable ------------------------------------------


def test_defaults_are_a_clean_market():
    market = generate_market(25, "2024-01-02", "2024-03-28", seed=4)
    assert market.manifest.empty and market.events.empty
    assert (market.listed == 25).all()
    counts = market.bars.groupby("date")["ticker"].nunique()
    assert (counts == 25).all() and len(counts) == len(sessions_between("2024-01-02", "2024-03-28"))


def test_listings_delistings_and_splits():
    market = generate_market(400, "2010-01-04", "2013-12-31", seed=5, events=True)
    kinds = market.events["event"].value_counts()
    assert kinds["listing"] > 20 and kinds["delisting"] > 10 and kinds["split"] > 5 and kinds["spin_off"] >= 1
    bars = market.bars.sort_values(["ticker", "date"])
    first = bars.groupby("ticker")["date"].min()
    last = bars.groupby("ticker")["date"].max()
    for _, ev in market.events[market.events["event"] == "listing"].head(5).iterrows():
        assert first[ev["ticker"]] == ev["date"]
    for _, ev in market.events[market.events["event"] == "delisting"].head(5).iterrows():
        assert last[ev["ticker"]] == ev["date"]
    # raw prices: the close drops by the split ratio on the split date
    for _, ev in market.events[market.events["event"] == "split"].head(10).iterrows():
        one = bars[bars["ticker"] == ev["ticker"]].set_index("date")["close"]
        i = one.index.get_loc(ev["date"])
        assert one.iloc[i] / one.iloc[i - 1] == pytest.approx(1 / ev["ratio"], rel=0.06)
    assert (market.listed < 400).any()


def test_every_defect_class_is_injected_and_recorded():
    market = generate_market(300, "2018-01-02", "2019-12-31", seed=9, defect_rate=0.004)
    m = market.manifest
    assert set(m["defect"]) == set(DEFECT_CLASSES)
    bars = market.bars
    assert bars.duplicated(["ticker", "date"]).sum() == (m["defect"] == "duplicate_bar").sum()
    blank = m[m["defect"] == "blank_price"].iloc[0]
    row = bars[(bars["ticker"] == blank["ticker"]) & (bars["date"] == blank["date"])]
    assert row["open"].isna().all()
    zero = m[m["defect"] == "zero_price"].iloc[0]
    assert bars[(bars["ticker"] == zero["ticker"]) & (bars["date"] == zero["date"])]["close"].eq(0).all()
    shifted = m[m["defect"] == "shifted_date"].iloc[0]
    moved = shifted["date"] - dt.timedelta(days=1)
    assert ((bars["ticker"] == shifted["ticker"]) & (bars["date"] == moved)).sum() == 1
    # two decisions of one ticker are at least MIN_GAP sessions apart
    gaps = m.sort_values(["ticker", "date"]).groupby("ticker")["date"].diff().dropna()
    assert (gaps >= pd.Timedelta(days=5)).all()


def test_realism_is_deterministic_and_prefix_stable():
    a = generate_market(120, "2015-01-02", "2016-06-30", seed=3, events=True, defect_rate=0.01)
    b = generate_market(120, "2015-01-02", "2016-06-30", seed=3, events=True, defect_rate=0.01)
    pd.testing.assert_frame_equal(a.bars, b.bars)
    pd.testing.assert_frame_equal(a.manifest, b.manifest)
    c = generate_market(120, "2015-01-02", "2016-06-30", seed=4, events=True, defect_rate=0.01)
    assert not a.manifest[["ticker", "date"]].equals(c.manifest[["ticker", "date"]])
    part = bars_for_interval(120, "2015-01-02", "2015-09-01", "2015-12-31", seed=3, events=True, defect_rate=0.01)
    full = generate_bars(120, "2015-01-02", "2016-06-30", seed=3, events=True, defect_rate=0.01)
    lo, hi = dt.date(2015, 9, 1), dt.date(2015, 12, 31)
    full = full[(full["date"] >= lo) & (full["date"] <= hi)]
    key = ["ticker", "date", "open", "high", "low", "close", "volume"]
    pd.testing.assert_frame_equal(full.sort_values(key).reset_index(drop=True)[key],
                                  part.sort_values(key).reset_index(drop=True)[key])


def test_arrow_path_equals_the_frame():
    arrow = arrow_bars(80, "2020-01-02", "2020-03-02", "2020-12-31", seed=2, events=True, defect_rate=0.01,
                       sessions_per_batch=17)
    import pyarrow as pa

    table = pa.Table.from_batches(list(arrow.batches()), schema=arrow.schema).to_pandas(date_as_object=True)
    frame = bars_for_interval(80, "2020-01-02", "2020-03-02", "2020-12-31", seed=2, events=True, defect_rate=0.01)
    key = ["ticker", "date", "open", "high", "low", "close", "volume"]
    pd.testing.assert_frame_equal(table.sort_values(key).reset_index(drop=True)[key],
                                  frame.sort_values(key).reset_index(drop=True)[key])
    assert arrow.rows == len(frame) == sum(arrow.rows_by_date.values())


def test_listed_counts_match_the_bars():
    market = generate_market(200, "2012-01-03", "2013-06-28", seed=8, events=True)
    counts = listed_counts(200, "2012-01-03", "2012-01-03", "2013-06-28", seed=8, events=True)
    per_day = market.bars.groupby("date")["ticker"].nunique()
    assert (counts.reindex(per_day.index) == per_day).all()


def test_a_large_universe_is_fast():
    import time

    t0 = time.perf_counter()  # wall-clock ok: a speed test
    arrow = arrow_bars(2000, "2016-01-04", "2016-01-04", "2020-12-31", seed=1, events=True, defect_rate=0.001)
    elapsed = time.perf_counter() - t0
    assert arrow.rows > 2_000_000
    assert elapsed < 20, f"2,000 tickers x 5 years took {elapsed:.1f}s"
