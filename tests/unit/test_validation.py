"""Daily bar rules: one test per defect class, on small frames.

Each defect is planted in an otherwise clean frame and must come back from Great Expectations
as a quarantine row of the expected rule (and nothing else); switching the expectation off
lets the row through.
"""

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from tickerlake.calendar import sessions_between
from tickerlake.validation import (
    CriticalValidationError,
    RowRule,
    RuleParams,
    build_suite,
    check_coverage,
    check_schema,
    daily_bar_rules,
    validate_bars,
)

pytestmark = pytest.mark.unit

D = dt.date(2024, 1, 2)
SESSIONS = sessions_between("2024-01-02", "2024-02-15")


def bars(overrides=None):
    frame = pd.DataFrame({"ticker": ["AAA", "BBB", "CCC"], "date": [D] * 3, "open": [10.0, 20.0, 30.0],
                          "high": [11.0, 21.0, 31.0], "low": [9.0, 19.0, 29.0], "close": [10.5, 20.5, 30.5],
                          "volume": [100.0, 200.0, 300.0]})
    for (col, row), value in (overrides or {}).items():
        frame.loc[row, col] = value
    return frame


def series(closes, ticker="AAA", opens=None, start=0, volume=1000.0):
    """One ticker over consecutive sessions; open defaults to the previous close, a 1% wick each side."""
    closes = np.asarray(closes, dtype=float)
    if opens is None:
        opens = np.concatenate([[closes[0]], closes[:-1]])
    opens = np.asarray(opens, dtype=float)
    high = np.maximum(opens, closes) * 1.01
    low = np.minimum(opens, closes) * 0.99
    days = SESSIONS[start:start + len(closes)]
    vol = volume + np.arange(len(closes))  # never two equal bars by accident
    return pd.DataFrame({"ticker": ticker, "date": days, "open": opens, "high": high, "low": low,
                         "close": closes, "volume": vol})


def walk(n=12, base=50.0, ticker="AAA", seed=1):
    rng = np.random.default_rng(seed)
    return base * np.exp(np.cumsum(rng.normal(0, 0.01, n)))


def flagged(frame, rules=None, **kw):
    q = validate_bars(frame, "r1", rules, **kw).quarantine
    return {(t, pd.Timestamp(d).date(), r) for t, d, r in zip(q["ticker"], q["date"], q["rule"], strict=True)}, q


def without(*names):
    return [r for r in daily_bar_rules() if r.name not in names]


# --- the existing row rules ---------------------------------------------------------------------


def test_clean_bars_pass():
    result = validate_bars(bars(), "r1")
    assert result.success and result.quarantine.empty
    assert set(result.counts) == {r.name for r in daily_bar_rules()}


def test_clean_history_passes_every_rule():
    frame = pd.concat([series(walk(30, seed=s), ticker=t) for s, t in enumerate(["AAA", "BBB", "CCC"])])
    assert validate_bars(frame, "r1").quarantine.empty


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


def test_volume_as_text_and_ticker_as_number_fail_hard():
    with pytest.raises(CriticalValidationError, match="volume"):
        check_schema(bars().astype({"volume": str}))
    with pytest.raises(CriticalValidationError, match="ticker"):
        check_schema(bars().assign(ticker=[1, 2, 3]))
    with pytest.raises(CriticalValidationError, match="missing columns"):
        check_schema(bars().drop(columns=["low"]))


def test_coverage_is_critical():
    check_coverage(bars(), expected_tickers=3, min_coverage=0.9)
    with pytest.raises(CriticalValidationError, match="coverage 3/10"):
        check_coverage(bars(), expected_tickers=10, min_coverage=0.9)


def test_coverage_per_session_and_missing_session():
    two = pd.concat([bars(), bars().assign(date=SESSIONS[2])])  # SESSIONS[1] has no bar at all
    with pytest.raises(CriticalValidationError, match=f"0/3 tickers on {SESSIONS[1]}"):
        check_coverage(two, expected_tickers=3, min_coverage=0.9)
    out = check_coverage(bars(), expected_tickers={D: 3}, min_coverage=0.9)
    assert out["worst_coverage"] == 1.0


# --- one test per defect class --------------------------------------------------------------------


def test_blank_prices():
    got, q = flagged(bars({("open", 0): np.nan, ("high", 0): np.nan, ("low", 0): np.nan}))
    assert got == {("AAA", D, "not_null_open"), ("AAA", D, "not_null_high"), ("AAA", D, "not_null_low")}


def test_high_below_low():
    # AOS 2014-05-19: high 23.595 under low 23.85 (open and close then lie outside too)
    got, _ = flagged(bars({("open", 0): 23.89, ("high", 0): 23.595, ("low", 0): 23.85, ("close", 0): 24.445}))
    assert got == {("AAA", D, "high_ge_low"), ("AAA", D, "high_ge_open"), ("AAA", D, "high_ge_close")}


def test_close_outside_range():
    got, _ = flagged(bars({("close", 1): 10.0}))  # LNT-like: half the day's low
    assert got == {("BBB", D, "close_ge_low")}
    got, _ = flagged(bars({("close", 1): 25.0}))
    assert got == {("BBB", D, "high_ge_close")}


def test_open_outside_range():
    got, _ = flagged(bars({("open", 2): 18.77}))  # CHD-like: open far under the day's low
    assert got == {("CCC", D, "open_ge_low")}


def test_zero_price():
    got, _ = flagged(bars({("close", 0): 0.0, ("low", 0): 0.0}))
    assert ("AAA", D, "positive_close") in got and ("AAA", D, "positive_low") in got
    assert {r for *_, r in got} <= {"positive_close", "positive_low"}


def test_negative_volume():
    got, _ = flagged(bars({("volume", 0): -1.0}))
    assert got == {("AAA", D, "volume_non_negative")}


def test_duplicate_bar_same_bar_in_two_files():
    frame = pd.concat([bars().assign(source_file="a.csv", source_row=[2, 3, 4]),
                       bars().iloc[[1]].assign(source_file="b.csv", source_row=[2])], ignore_index=True)
    got, q = flagged(frame)
    assert got == {("BBB", D, "unique_ticker_date")}
    assert sorted(q["source_file"]) == ["a.csv", "b.csv"]
    assert sorted(q["source_row"].astype(int)) == [2, 3]


def test_date_not_a_session_and_timezone_slip():
    saturday = dt.date(2024, 1, 6)
    frame = bars().assign(date=[D, saturday, D])
    got, _ = flagged(frame)
    assert got == {("BBB", saturday, "date_is_session")}
    # a Monday-morning UTC bar stamped on the previous New York evening: Sunday
    monday = series(walk(6), start=0)
    monday = monday[monday["date"] == dt.date(2024, 1, 8)].assign(date=dt.date(2024, 1, 7))
    got, _ = flagged(pd.concat([series(walk(4), ticker="BBB"), monday]))
    assert got == {("AAA", dt.date(2024, 1, 7), "date_is_session")}


def test_stale_bar_is_the_repeat_not_the_original():
    frame = series(walk(10))
    frame.loc[5, ["open", "high", "low", "close", "volume"]] = frame.loc[4, ["open", "high", "low", "close", "volume"]].to_numpy()
    got, q = flagged(frame)
    assert got == {("AAA", SESSIONS[5], "stale_bar")}
    assert json.loads(q["values"].iloc[0])["prev_day"] == SESSIONS[4].isoformat()
    assert flagged(frame, without("stale_bar"))[0] == set()


def test_decimal_shift_that_reverts_is_rejected_and_the_next_day_is_clean():
    closes = walk(12)
    for scale in (100.0, 0.01):
        frame = series(closes)
        frame.loc[6, ["open", "high", "low", "close"]] *= scale
        got, q = flagged(frame)
        assert got == {("AAA", SESSIONS[6], "jump_reverts")}, scale
        values = json.loads(q["values"].iloc[0])
        assert values["revert_jump_factor"] > 50
        # switched off, the excursion is no longer rejected (it then looks like a non-reverting jump? no:
        # the context rules still see it revert, so only the warn rules could fire)
        off, _ = flagged(frame, without("jump_reverts"))
        assert ("AAA", SESSIONS[6], "jump_reverts") not in off


def test_next_session_rule_is_provisional_until_the_next_session_lands():
    frame = series(walk(8))
    frame.loc[7, ["open", "high", "low", "close"]] *= 100  # the last session: no next one yet
    got, _ = flagged(frame)
    assert got == {("AAA", SESSIONS[7], "corporate_action")}  # a 100x jump, not yet known to revert
    nxt = series(walk(9))
    nxt.loc[7, ["open", "high", "low", "close"]] *= 100
    report = (nxt["date"] == SESSIONS[8]).to_numpy()
    rejudge = (nxt["date"] == SESSIONS[7]).to_numpy()
    result = validate_bars(nxt, "r2", report=report, rejudge=rejudge)
    got = set(zip(result.quarantine["ticker"], result.quarantine["date"], result.quarantine["rule"], strict=True))
    assert got == {("AAA", SESSIONS[7], "jump_reverts")}  # re-judged late; the new session itself is clean
    assert result.rejudged_counts["jump_reverts"] == 1 and result.counts["jump_reverts"] == 0


def test_unadjusted_split_is_a_warning():
    closes = walk(12)
    for ratio, other in ((2.0, {"corporate_action"}), (1.5, set()), (3.0, {"corporate_action"})):
        frame = series(closes)
        frame.loc[6:, ["open", "high", "low", "close"]] /= ratio
        frame.loc[6:, "volume"] *= ratio
        frame.loc[6, "open"] = frame.loc[5, "close"] / ratio * 1.002
        frame.loc[6, "high"] = max(frame.loc[6, "high"], frame.loc[6, "open"])
        got, q = flagged(frame)
        assert {r for *_, r in got} == {"unadjusted_split"} | other, ratio
        assert {(t, d) for t, d, _ in got} == {("AAA", SESSIONS[6])}
        assert set(q["severity"]) == {"warn"}
        split = q[q["rule"] == "unadjusted_split"]
        assert json.loads(split["values"].iloc[0])["split_ratio"] == pytest.approx(1 / ratio)


def test_spin_off_drop_is_a_corporate_action():
    closes = walk(12)
    frame = series(closes)
    frame.loc[6:, ["open", "high", "low", "close"]] *= 0.37  # NI 2015-07-02: kept 37%
    got, q = flagged(frame)
    assert got == {("AAA", SESSIONS[6], "corporate_action")}
    assert q["severity"].tolist() == ["warn"]
    assert json.loads(q["values"].iloc[0])["jump_factor"] == pytest.approx(1 / 0.37, rel=0.05)


def test_real_moves_are_not_errors():
    """A real one-day drop of a third (CHK 2016-02-08: open -16%, close -33%) and a +62% jump
    (VRTX 2013-04-19) are neither rejected nor flagged."""
    closes = walk(12)
    drop = closes.copy()
    drop[6:] *= 2 / 3
    opens = np.concatenate([[drop[0]], drop[:-1]])
    opens[6] = closes[5] * 0.837
    assert flagged(series(drop, opens=opens))[0] == set()
    jump = closes.copy()
    jump[6:] *= 1.62
    opens = np.concatenate([[jump[0]], jump[:-1]])
    opens[6] = closes[5] * 1.54
    assert flagged(series(jump, opens=opens))[0] == set()


def test_a_rejected_neighbour_is_no_context():
    """The session after a row-rule reject is compared with the last good bar, not the bad one."""
    closes = walk(10)
    frame = series(closes)
    frame.loc[4, "close"] = frame.loc[4, "low"] * 0.5  # close outside the range: rejected by a row rule
    got, _ = flagged(frame)
    assert got == {("AAA", SESSIONS[4], "close_ge_low")}


def test_the_previous_bar_must_be_recent():
    frame = series(walk(30))
    frame = frame.drop(index=range(5, 20))  # a 15-session gap, longer than the context window
    frame.loc[20, ["open", "high", "low", "close", "volume"]] = frame.loc[4, ["open", "high", "low", "close", "volume"]].to_numpy()
    assert flagged(frame, params=RuleParams(context_sessions=10))[0] == set()
    assert ("AAA", SESSIONS[20], "stale_bar") in flagged(frame, params=RuleParams(context_sessions=20))[0]


def test_switching_a_context_rule_off_lets_its_rows_through():
    frame = series(walk(12))
    frame.loc[6:, ["open", "high", "low", "close"]] *= 0.37
    assert flagged(frame, without("corporate_action"))[0] == set()


def test_report_mask_limits_what_is_returned():
    frame = pd.concat([bars({("close", 0): 0.0}), bars({("close", 1): 0.0}).assign(date=SESSIONS[1], volume=[7.0, 8.0, 9.0])],
                      ignore_index=True)
    result = validate_bars(frame, "r1", report=(frame["date"] == SESSIONS[1]).to_numpy())
    assert set(result.quarantine["ticker"]) == {"BBB"}
    assert result.counts["positive_close"] == 1


def test_chunked_validation_equals_one_batch():
    rng = np.random.default_rng(3)
    frame = pd.concat([series(walk(25, seed=i), ticker=f"T{i:02d}") for i in range(40)], ignore_index=True)
    bad = rng.choice(len(frame), 30, replace=False)
    frame.loc[bad, "close"] = 0.0
    frame = pd.concat([frame, frame.iloc[[7, 400, 999]]], ignore_index=True)  # duplicates, far apart
    whole = validate_bars(frame, "r1").quarantine
    chunked = validate_bars(frame.sample(frac=1.0, random_state=1), "r1", chunk_rows=97).quarantine
    key = ["ticker", "date", "rule"]
    pd.testing.assert_frame_equal(whole.sort_values(key)[key].reset_index(drop=True),
                                  chunked.sort_values(key)[key].reset_index(drop=True))
    assert (whole["rule"] == "unique_ticker_date").sum() == 6


def test_context_verdicts_do_not_depend_on_the_frame_order():
    """Bronze comes date-ordered (context sorts by ticker alone); any other order takes the full
    (ticker, session) sort: both give the same verdicts and quarantine values."""
    frames = []
    for i in range(6):
        f = series(walk(20, seed=i), ticker=f"T{i}")
        if i == 1:
            f.loc[8, ["open", "high", "low", "close"]] *= 100  # an excursion that reverts
        if i == 2:
            f.loc[10:, ["open", "high", "low", "close"]] /= 2.0  # an unadjusted 2:1 split
        if i == 3:
            f.loc[12, ["open", "high", "low", "close", "volume"]] = f.loc[11, ["open", "high", "low", "close", "volume"]].to_numpy()
        frames.append(f)
    by_date = pd.concat(frames, ignore_index=True).sort_values(["date", "ticker"], kind="stable").reset_index(drop=True)
    shuffled = by_date.sample(frac=1.0, random_state=4).reset_index(drop=True)
    key = ["ticker", "date", "rule"]
    a = validate_bars(by_date, "r1").quarantine.sort_values(key).reset_index(drop=True)
    b = validate_bars(shuffled, "r1").quarantine.sort_values(key).reset_index(drop=True)
    assert {"jump_reverts", "unadjusted_split", "stale_bar"} <= set(a["rule"])
    pd.testing.assert_frame_equal(a, b)


def test_the_duplicate_rule_finds_what_a_compound_unique_rule_finds():
    """The one-number key flags what ExpectCompoundColumnsToBeUnique over (ticker, date) flags:
    repeats before 1970 too, repeats with one key part missing, never rows missing both parts."""
    old = [dt.date(1965, 3, 1), dt.date(1965, 3, 2)]
    frame = pd.DataFrame({
        "ticker": ["AAA", "AAA", "BBB", "AAA", "CCC", "CCC", None, None, None, None],
        "date": [old[0], old[1], old[1], old[1], None, None, old[0], old[0], None, None],
        "open": 10.0, "high": 11.0, "low": 9.0, "close": 10.0, "volume": np.arange(10.0)})
    unique = [r for r in daily_bar_rules() if r.name == "unique_ticker_date"]
    got = validate_bars(frame, "r1", rules=unique).quarantine
    assert sorted(got["values"].map(lambda v: json.loads(v)["volume"])) == [1.0, 3.0, 4.0, 5.0, 6.0, 7.0]

    import great_expectations as gx

    from tickerlake.validation import _encode

    enc = _encode(frame)
    reference = pd.DataFrame({"t": enc["ticker_id"], "d": enc["date_id"]})
    context = gx.get_context(mode="ephemeral")
    batch = context.data_sources.add_pandas("ref").add_dataframe_asset("a").add_batch_definition_whole_dataframe("b")
    compound = batch.get_batch(batch_parameters={"dataframe": reference}).validate(
        gx.expectations.ExpectCompoundColumnsToBeUnique(column_list=["t", "d"]), result_format="COMPLETE")
    assert sorted(compound.result["unexpected_index_list"]) == [1, 3, 4, 5, 6, 7]


def test_great_expectations_does_not_fingerprint_our_batches():
    """The batch fingerprint (an MD5 over every row) is switched off; this fails loudly if a Great
    Expectations upgrade moves the switch."""
    from great_expectations.validator.v1_validator import Validator

    from tickerlake.validation import _Gx

    gx = _Gx.get()
    frame = pd.DataFrame({"x": np.arange(1000.0)})
    validator = Validator(batch_definition=gx.batch_definition, batch_parameters={"dataframe": frame})
    suite = build_suite("fingerprint_check", [RowRule("not_null_x", "reject", "ExpectColumnValuesToNotBeNull", {"column": "x"})])
    markers = validator.validate_expectation_suite(suite).meta["batch_markers"]
    assert "ge_load_time" in markers and "pandas_data_fingerprint" not in markers
