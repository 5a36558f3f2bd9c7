"""The excursion_cluster rule: bars filed under the wrong symbols for one session.

Planted in a universe of random walks: a handful of tickers jump 6-40% for one session, some
up and some down, and return the next session. One such ticker alone, or a market-wide move
that goes one way, is not a defect.
"""

import json

import numpy as np
import pandas as pd
import pytest

from tickerlake.calendar import sessions_between
from tickerlake.validation import RuleParams, daily_bar_rules, validate_bars

pytestmark = pytest.mark.unit

SESSIONS = sessions_between("2024-01-02", "2024-02-15")
DAY = 10  # the session the excursions happen on


def universe(moves: dict[int, float], n_tickers: int = 100, n_sessions: int = 20, seed: int = 7) -> pd.DataFrame:
    """Random walks; `moves` ticker index -> factor applied to that ticker's bar on session DAY only."""
    rng = np.random.default_rng(seed)
    frames = []
    for t in range(n_tickers):
        closes = 50.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n_sessions)))
        opens = np.concatenate([[closes[0]], closes[:-1]])
        factor = moves.get(t, 1.0)
        closes[DAY] *= factor
        opens[DAY] *= factor
        if factor != 1.0:
            opens[DAY + 1] = closes[DAY + 1]  # the next bar opens where the ticker really is
        frames.append(pd.DataFrame({
            "ticker": f"T{t:03d}", "date": SESSIONS[:n_sessions], "open": opens,
            "high": np.maximum(opens, closes) * 1.01, "low": np.minimum(opens, closes) * 0.99,
            "close": closes, "volume": 1000.0 + t * 100 + np.arange(n_sessions)}))
    return pd.concat(frames, ignore_index=True)


def cluster_rows(frame: pd.DataFrame, rules=None, params=None) -> set[str]:
    q = validate_bars(frame, "t", rules, params=params).quarantine
    hits = q[q["rule"] == "excursion_cluster"]
    assert set(hits["date"]) <= {SESSIONS[DAY]}
    assert (hits["severity"] == "reject").all()
    return set(hits["ticker"])


MIXED = {3: 1.25, 17: 0.80, 40: 1.12, 55: 0.88, 71: 1.35, 90: 1.08}


def test_a_mixed_cluster_of_reverting_excursions_is_rejected():
    assert cluster_rows(universe(MIXED)) == {f"T{t:03d}" for t in MIXED}


def test_quarantine_values_name_the_excursion_and_the_cluster():
    q = validate_bars(universe(MIXED), "t").quarantine
    row = q[(q["rule"] == "excursion_cluster") & (q["ticker"] == "T071")].iloc[0]
    values = json.loads(row["values"])
    assert values["cluster_size"] == len(MIXED)
    assert values["revert_jump_factor"] == pytest.approx(1.35, rel=0.05)


def test_one_excursion_alone_is_not_a_cluster():
    assert cluster_rows(universe({3: 1.25})) == set()


def test_too_few_tickers_are_not_a_cluster():
    four = dict(list(MIXED.items())[:4])
    assert cluster_rows(universe(four)) == set()
    assert cluster_rows(universe(four), params=RuleParams(cluster_min_tickers=4)) == {f"T{t:03d}" for t in four}


def test_a_market_move_that_goes_one_way_is_not_a_cluster():
    everyone_down = {t: 0.9 for t in range(60)} | {77: 1.1}
    assert cluster_rows(universe(everyone_down)) == set()


def test_an_excursion_that_does_not_return_is_not_in_the_cluster():
    frame = universe(MIXED)
    stays = frame["ticker"].eq("T003") & frame["date"].isin(SESSIONS[DAY + 1:20])
    frame.loc[stays, ["open", "high", "low", "close"]] *= 1.25  # T003 stays up: a real move
    assert cluster_rows(frame) == {f"T{t:03d}" for t in MIXED if t != 3}


def test_switching_the_rule_off_lets_the_rows_through():
    rules = [r for r in daily_bar_rules() if r.name != "excursion_cluster"]
    q = validate_bars(universe(MIXED), "t", rules).quarantine
    assert "excursion_cluster" not in set(q["rule"])
