import numpy as np
import pandas as pd
import pytest

from tickerlake.synthetic import bars_for_interval, generate_bars, universe

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
