"""The promotion gates as a pure function of out-of-sample rows: each gate fails on its own cause."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from tickerlake.calendar import sessions_between
from tickerlake.settings import load_settings
from tickerlake.training import gate
from tickerlake.walkforward import WalkForwardConfig

pytestmark = pytest.mark.unit

CFG = WalkForwardConfig()


def oos(strength: float, n_sessions: int = 60, n_tickers: int = 40, seed: int = 1, width: float = 1.2816) -> pd.DataFrame:
    """Rows with score = signal, label = strength * signal + noise; the interval pred +- width sd
    covers 80% of a standard normal label noise when width = 1.2816."""
    rng = np.random.default_rng(seed)
    days = sessions_between("2024-01-02", "2024-12-31")[:n_sessions]
    n = n_sessions * n_tickers
    signal = rng.standard_normal(n)
    frame = pd.DataFrame({"ticker": np.tile([f"T{i}" for i in range(n_tickers)], n_sessions),
                          "date": np.repeat(days, n_tickers), "fold": 1, "score": signal})
    frame["label"] = strength * signal + rng.standard_normal(n)
    frame["pred_return"] = strength * signal
    frame["pred_lo"], frame["pred_hi"] = frame["pred_return"] - width, frame["pred_return"] + width
    frame["base_reversal_1d"] = rng.standard_normal(n)
    return frame


@pytest.fixture
def settings(tmp_path):
    return dataclasses.replace(load_settings(home=tmp_path), promotion_window_sessions=50)


def test_a_good_first_model_passes_every_gate(settings):
    result = gate(settings, CFG, oos(0.3), schema_missing=[])
    assert result["passed"], result["gates"]
    assert result["sessions"] == 50 and abs(result["coverage"] - 0.8) < 0.03
    assert "beats_champion" not in result["gates"]


def test_each_gate_fails_on_its_own_cause(settings):
    good = oos(0.3)
    swapped = good.assign(score=good["base_reversal_1d"], base_reversal_1d=good["score"])  # the baseline has the signal
    assert not gate(settings, CFG, swapped, schema_missing=[])["gates"]["beats_best_baseline"]
    holed = good.copy()
    holed.loc[holed.index[-5:], "score"] = np.nan
    assert gate(settings, CFG, holed, schema_missing=[])["gates"] == {
        **gate(settings, CFG, good, schema_missing=[])["gates"], "no_missing_predictions": False}
    assert not gate(settings, CFG, good, schema_missing=["KMID"])["gates"]["feature_schema_compatible"]
    assert not gate(settings, CFG, oos(0.3, width=0.6), schema_missing=[])["gates"]["interval_coverage"]
    short = dataclasses.replace(settings, promotion_window_sessions=80)
    assert not gate(short, CFG, good, schema_missing=[])["gates"]["enough_sessions"]


def test_the_champion_comparison_is_paired_on_the_same_sessions(settings):
    better, worse = oos(0.3, seed=1), oos(0.3, seed=1)
    worse["score"] = 0.2 * worse["score"] + np.random.default_rng(9).standard_normal(len(worse))
    passed = gate(settings, CFG, better, champion_oos=worse, schema_missing=[])
    assert passed["gates"]["beats_champion"] and passed["paired"]["mean_diff"] > 0 and passed["paired"]["n"] == 50
    failed = gate(settings, CFG, worse, champion_oos=better, schema_missing=[])
    assert not failed["gates"]["beats_champion"] and not failed["passed"]
    same = gate(settings, CFG, better, champion_oos=better, schema_missing=[], same_configuration=True)
    assert same["gates"]["beats_champion"] and same["paired"]["mean_diff"] == 0


def test_the_live_record_joins_only_once_it_holds_enough_sessions(settings):
    good = oos(0.3)
    young = gate(settings, CFG, good, champion_live={"sessions": 30, "rank_ic": 0.9}, schema_missing=[])
    assert "beats_champion_live" not in young["gates"] and young["passed"]
    old = gate(dataclasses.replace(settings, promotion_live_sessions=30), CFG, good,
               champion_live={"sessions": 30, "rank_ic": 0.9}, schema_missing=[])
    assert old["gates"]["beats_champion_live"] is False and not old["passed"]
