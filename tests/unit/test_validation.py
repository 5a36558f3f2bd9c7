import datetime as dt

import numpy as np
import pandas as pd
import pytest

from tickerlake.validation import CriticalValidationError, check_coverage, daily_bar_rules, validate_bars

pytestmark = pytest.mark.unit

D = dt.date(2024, 1, 2)


def bars(overrides=None):
    frame = pd.DataFrame({"ticker": ["AAA", "BBB", "CCC"], "date": [D] * 3, "open": [10.0, 20.0, 30.0],
                          "high": [11.0, 21.0, 31.0], "low": [9.0, 19.0, 29.0], "close": [10.5, 20.5, 30.5],
                          "volume": [100.0, 200.0, 300.0]})
    for (col, row), value in (overrides or {}).items():
        frame.loc[row, col] = value
    return frame


def test_clean_bars_pass():
    result = validate_bars(bars(), "r1")
    assert result.success and result.quarantine.empty
    assert set(result.counts) == {r.name for r in daily_bar_rules()}


def test_one_bad_row_fails_and_is_named():
    result = validate_bars(bars({("high", 1): 18.0}), "r1")
    assert not result.success
    assert set(result.quarantine["ticker"]) == {"BBB"}
    assert set(result.quarantine["rule"]) >= {"high_ge_low", "high_ge_open", "high_ge_close"}
    assert (result.quarantine["severity"] == "reject").all()
    assert '"high": 18.0' in result.quarantine["values"].iloc[0]


def test_blank_price_and_duplicate_key():
    frame = pd.concat([bars({("open", 0): np.nan}), bars().iloc[[2]]], ignore_index=True)
    q = validate_bars(frame, "r1").quarantine
    assert q[q["rule"] == "not_null_open"]["ticker"].tolist() == ["AAA"]
    assert sorted(q[q["rule"] == "unique_ticker_date"]["ticker"]) == ["CCC", "CCC"]


def test_switching_a_rule_off_lets_its_rows_through():
    frame = bars({("volume", 2): -5.0})
    rules = [r for r in daily_bar_rules() if r.name != "volume_non_negative"]
    assert validate_bars(frame, "r1", rules).quarantine.empty
    assert validate_bars(frame, "r1").quarantine["rule"].tolist() == ["volume_non_negative"]


def test_price_as_text_fails_hard():
    frame = bars().astype({"close": str})
    with pytest.raises(CriticalValidationError, match="close"):
        validate_bars(frame, "r1")


def test_coverage_is_critical():
    check_coverage(bars(), expected_tickers=3, min_coverage=0.9)
    with pytest.raises(CriticalValidationError, match="coverage 3/10"):
        check_coverage(bars(), expected_tickers=10, min_coverage=0.9)
