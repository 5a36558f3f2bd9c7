"""The suites of suites.py, run for real through Great Expectations on small frames.

For every rule: a defect planted in an otherwise clean frame comes back from Great Expectations
as that rule's verdict on exactly the planted rows (and no other rule fires); clean frames pass
every rule; switching the rule off lets the row through. Critical rules raise
CriticalValidationError naming the rule; schema and coverage problems are critical too.
"""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pandas as pd
import pytest

from tickerlake import suites
from tickerlake.catalog import FEATURE_NAMES
from tickerlake.validation import CriticalValidationError

pytestmark = pytest.mark.unit

D1, D2 = dt.date(2024, 1, 2), dt.date(2024, 1, 3)
R = 1  # the row a case plants its defect in


# --- clean frames ---------------------------------------------------------------------------------


def intraday() -> pd.DataFrame:
    # 2024-01-02: the session opens 09:30 New York = 14:30 UTC
    ts = pd.to_datetime(["2024-01-02 14:30", "2024-01-02 14:35", "2024-01-02 20:55"] * 2, utc=True)
    return pd.DataFrame({"ticker": ["AAA"] * 3 + ["BRK.B"] * 3, "ts": ts, "open": 10.0, "high": 11.0, "low": 9.0,
                         "close": 10.5, "volume": [100.0, 0.0, 50.0] * 2})


def messages() -> pd.DataFrame:
    created = pd.to_datetime(["2024-01-02 15:00", "2024-01-02 16:00", "2024-01-02 22:00"], utc=True)
    return pd.DataFrame({"message_id": ["m1", "m2", "m3"], "ticker": ["AAPL", "BRK.B", "MSFT"], "ticker_raw": ["AAPL", "BRK-B", "MSFT"],
                         "created_at": created, "created_at_raw": ["raw"] * 3, "date": [D1] * 3,
                         "text": ["$ aapl good", "buffett letter", "msft strong"], "user_id": ["1", "2", "3"],
                         "source": "stocknet", "source_file": ["AAPL/2024-01-02", "BRK-B/2024-01-02", "MSFT/2024-01-02"],
                         "line_number": [1, 1, 1]})


def headlines() -> pd.DataFrame:
    return pd.DataFrame({"news_id": ["n1", "n2", "n3"], "ticker": None, "date": [D1, D1, D2],
                         "date_raw": ["2024-01-02"] * 2 + ["2024-01-03"], "headline": ["Stocks rally", "Fed holds", "Oil slips"],
                         "source": "cnbc", "source_file": "cnbc_headlines.csv", "line_number": [2, 3, 4]})


def observations() -> pd.DataFrame:
    return pd.DataFrame({"series_id": ["DGS10"] * 3, "date": [dt.date(2025, 11, d) for d in (24, 25, 26)],
                         "value": [4.0, np.nan, 4.1], "value_raw": ["4.0", ".", "4.1"], "realtime_start": None,
                         "realtime_end": None, "source": "fred_file", "source_file": "DGS10.csv", "line_number": [2, 3, 4]})


def panel() -> pd.DataFrame:
    return pd.DataFrame({"series_id": ["DGS10", "DGS10", "CPIAUCSL"], "date": [dt.date(2025, 11, 26), dt.date(2025, 11, 28)] + [dt.date(2025, 11, 28)],
                         "value": [4.0, 4.1, 320.0], "observation_date": [dt.date(2025, 11, 25), dt.date(2025, 11, 26), dt.date(2025, 9, 1)],
                         "release_date": [dt.date(2025, 11, 26), dt.date(2025, 11, 27), dt.date(2025, 10, 15)],
                         "vintage": "file+lag"})


def features() -> pd.DataFrame:
    rows = [(t, d) for d in (D1, D2) for t in ("AAA", "BBB", "CCC")]
    frame = pd.DataFrame({"ticker": [t for t, _ in rows], "date": [d for _, d in rows]})
    for f in FEATURE_NAMES:
        lo, hi = suites.FEATURE_BOUNDS[f]
        frame[f] = (lo + hi) / 2
    frame.loc[0, "ROC20"] = np.nan  # a warm-up value is missing, not a defect
    frame["year"] = np.int32(2024)
    return frame


def silver_of(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[["ticker", "date"]].dropna().copy()


def predictions() -> pd.DataFrame:
    pred = np.array([0.01, -0.01, 0.0, 0.02])
    return pd.DataFrame({"ticker": ["AAA", "BBB", "CCC", "DDD"], "asof_date": D1, "target_session": D2,
                         "pred_return": pred, "pred_lo": pred - 0.05, "pred_hi": pred + 0.05,
                         "rank": np.int32([2, 4, 3, 1]), "percentile": [0.75, 0.25, 0.5, 1.0],
                         "signal": ["neutral", "short", "neutral", "long"], "model_name": "m", "model_version": "3",
                         "features_version": np.int64(7), "run_id": "r1", "published": False})


# --- the suites, one call shape -----------------------------------------------------------------


def run(suite: str, frame: pd.DataFrame, rules=None):
    """Judged for `frame` (macro_asof: a SuiteResult wrapped as Judged; it has no quarantine)."""
    if suite == "intraday":
        return suites.validate_intraday(frame, "r1", rules)
    if suite == "social":
        return suites.validate_social(frame, "r1", rules)
    if suite == "news":
        return suites.validate_news(frame, "r1", rules)
    if suite == "macro":
        return suites.validate_macro(frame, "r1", rules)
    if suite == "macro_asof":
        result = suites.validate_macro_asof(frame, rules)
        return suites.Judged(result, pd.DataFrame(), ~result.rejected)
    if suite == "features":
        silver = silver_of(frame)
        silver = silver[silver["ticker"] != "ZZZ"]  # ZZZ: a feature row whose silver bar is gone
        return suites.validate_features_frame(frame, "r1", silver=silver, rules=rules)
    if suite == "predictions":
        return suites.validate_predictions(frame, "r1", rules=rules)
    raise AssertionError(suite)


RULES = {
    "intraday": suites.intraday_rules, "social": suites.social_rules, "news": suites.news_rules,
    "macro": suites.macro_rules, "macro_asof": suites.macro_asof_rules, "features": suites.feature_rules,
    "predictions": suites.prediction_rules,
}
CLEAN = {"intraday": intraday, "social": messages, "news": headlines, "macro": observations, "macro_asof": panel,
         "features": features, "predictions": predictions}


def setv(col, value, row=R):
    def mutate(frame):
        frame[col] = frame[col].astype(object) if value is None or isinstance(value, str) else frame[col]
        frame.loc[row, col] = value
        return frame
    return mutate


def dup(frame):
    return pd.concat([frame, frame.iloc[[R]]], ignore_index=True)


def both(*mutations):
    def mutate(frame):
        for m in mutations:
            frame = m(frame)
        return frame
    return mutate


DUP = {R, "last"}

# (suite, case id, mutation, {rule: rows}); "last" = the appended row
CASES = [
    ("intraday", "blank_open", setv("open", np.nan), {"not_null_open": {R}}),
    ("intraday", "blank_volume", setv("volume", np.nan), {"not_null_volume": {R}}),
    ("intraday", "no_ticker", setv("ticker", None), {"not_null_ticker": {R}}),
    ("intraday", "no_ts", setv("ts", pd.NaT), {"not_null_ts": {R}}),
    ("intraday", "zero_prices", both(*[setv(c, 0.0) for c in ("open", "high", "low", "close")]),
     {f"positive_{c}": {R} for c in ("open", "high", "low", "close")}),
    *[("intraday", f"blank_{c}", setv(c, np.nan), {f"not_null_{c}": {R}}) for c in ("high", "low", "close")],
    ("intraday", "negative_close", setv("close", -1.0), {"positive_close": {R}, "close_ge_low": {R}}),
    ("intraday", "high_below_low", setv("high", 8.5), {"high_ge_low": {R}, "high_ge_open": {R}, "high_ge_close": {R}}),
    ("intraday", "close_above_high", setv("close", 12.0), {"high_ge_close": {R}}),
    ("intraday", "open_above_high", setv("open", 11.5), {"high_ge_open": {R}}),
    ("intraday", "open_below_low", setv("open", 8.0), {"open_ge_low": {R}}),
    ("intraday", "negative_volume", setv("volume", -1.0), {"volume_non_negative": {R}}),
    ("intraday", "same_bar_twice", dup, {"unique_ticker_ts": DUP}),
    ("intraday", "before_open", setv("ts", pd.Timestamp("2024-01-02 14:25", tz="UTC")), {"ts_in_session": {R}}),
    ("intraday", "after_close", setv("ts", pd.Timestamp("2024-01-02 21:00", tz="UTC")), {"ts_in_session": {R}}),
    ("intraday", "saturday", setv("ts", pd.Timestamp("2024-01-06 15:00", tz="UTC")), {"ts_in_session": {R}}),
    # 2025-11-28 closes early at 13:00 New York = 18:00 UTC
    ("intraday", "after_early_close", setv("ts", pd.Timestamp("2025-11-28 18:00", tz="UTC")), {"ts_in_session": {R}}),
    ("intraday", "off_grid", setv("ts", pd.Timestamp("2024-01-02 14:37", tz="UTC")), {"ts_on_bar_grid": {R}}),
    ("social", "no_ticker", setv("ticker", None), {"not_null_ticker": {R}}),
    ("social", "no_created_at", setv("created_at", pd.NaT), {"not_null_created_at": {R}}),
    ("social", "no_text", setv("text", None), {"not_null_text": {R}}),
    ("social", "lower_case_ticker", setv("ticker", "brk-b"), {"ticker_canonical": {R}}),
    ("social", "blank_text", setv("text", "   "), {"text_not_blank": {R}}),
    ("social", "epoch_date", setv("created_at", pd.Timestamp("1985-01-01 12:00", tz="UTC")), {"created_at_in_calendar": {R}}),
    ("social", "merged_lines", setv("text", "word " * 500), {"text_length": {R}}),
    ("social", "duplicate", setv("message_id", "m1"), {"duplicate_message": {0, R}}),
    ("social", "no_user", setv("user_id", None), {"not_null_user_id": {R}}),
    ("news", "no_date", setv("date", None), {"not_null_date": {R}}),
    ("news", "no_headline", setv("headline", None), {"not_null_headline": {R}}),
    ("news", "number_headline", setv("headline", "12,345.6"), {"headline_has_letters": {R}}),
    ("news", "date_outside_calendar", setv("date", dt.date(2031, 1, 2)), {"date_in_calendar": {R}}),
    ("news", "article_as_headline", setv("headline", "Markets " * 70), {"headline_length": {R}}),
    ("news", "duplicate", setv("news_id", "n1"), {"duplicate_headline": {0, R}}),
    ("macro", "no_series", setv("series_id", None), {"not_null_series_id": {R}}),
    ("macro", "no_date", setv("date", None), {"not_null_date": {R}}),
    ("macro", "bad_series_id", setv("series_id", "dgs-10"), {"series_id_format": {R}}),
    ("macro", "date_twice", dup, {"unique_series_date": DUP}),
    ("macro", "infinite_value", setv("value", np.inf), {"value_finite": {R}}),
    ("macro", "vintage_upside_down", both(setv("realtime_start", dt.date(2025, 12, 1)), setv("realtime_end", dt.date(2025, 11, 1))),
     {"vintage_ordered": {R}}),
    ("macro_asof", "no_value", setv("value", np.nan), {"not_null_value": {R}}),
    ("macro_asof", "infinite_value", setv("value", np.inf), {"value_finite": {R}}),
    ("macro_asof", "no_release", setv("release_date", None), {"not_null_release_date": {R}}),
    ("macro_asof", "no_observation", setv("observation_date", None), {"not_null_observation_date": {R}}),
    ("macro_asof", "no_series", setv("series_id", None), {"not_null_series_id": {R}}),
    ("macro_asof", "no_session", setv("date", None), {"not_null_date": {R}}),
    ("macro_asof", "session_twice", dup, {"unique_series_session": DUP}),
    ("macro_asof", "observed_later", setv("observation_date", dt.date(2025, 11, 29)),
     {"observed_by_session": {R}, "released_after_observation": {R}}),
    ("macro_asof", "released_later", setv("release_date", dt.date(2025, 12, 1)), {"released_by_session": {R}}),
    ("macro_asof", "released_before_observed", setv("release_date", dt.date(2025, 11, 20)), {"released_after_observation": {R}}),
    ("features", "no_ticker", both(lambda f: dup(f), setv("ticker", None, row=6)), {"not_null_ticker": {6}}),
    ("features", "no_date", both(lambda f: dup(f), setv("date", None, row=6)), {"not_null_date": {6}}),
    ("features", "key_twice", dup, {"unique_ticker_date": DUP}),
    ("features", "not_a_session", both(lambda f: dup(f), setv("date", dt.date(2024, 1, 6), row=6)), {"date_is_session": {6}}),
    # every feature's rules at once: test_each_feature_rule_catches_its_own_row
    ("features", "infinite_value", setv("KMID", np.inf), {"finite_KMID": {R}}),
    ("features", "minus_infinity", setv("ROC5", -np.inf), {"finite_ROC5": {R}}),
    ("features", "extreme_fall", setv("REV1", -6.0), {"extreme_REV1": {R}}),
    ("features", "rsv_out_of_range", setv("RSV10", 1.5), {"extreme_RSV10": {R}}),
    ("features", "row_without_silver_bar", both(lambda f: dup(f), setv("ticker", "ZZZ", row=6)), {"has_silver_bar": {6}}),
    ("predictions", "no_ticker", both(lambda f: dup(f), setv("ticker", None, row=4)), {"not_null_ticker": {4}}),
    ("predictions", "ticker_twice", dup, {"unique_ticker": DUP}),
    ("predictions", "nan_prediction", setv("pred_return", np.nan), {"finite_pred_return": {R}}),
    ("predictions", "infinite_prediction", setv("pred_return", np.inf), {"finite_pred_return": {R}}),
    ("predictions", "infinite_interval", setv("pred_lo", -np.inf), {"finite_pred_lo": {R}}),
    ("predictions", "nan_interval", setv("pred_hi", np.nan), {"finite_pred_hi": {R}}),
    ("predictions", "no_model_version", setv("model_version", None), {"not_null_model_version": {R}}),
    ("predictions", "blank_model_version", setv("model_version", " "), {"model_version_present": {R}}),
    ("predictions", "unknown_signal", setv("signal", "buy"), {"signal_known": {R}}),
    ("predictions", "out_of_range", both(setv("pred_return", 0.9), setv("pred_lo", 0.85), setv("pred_hi", 0.95)),
     {"pred_in_range": {R}}),
    ("predictions", "interval_upside_down", both(setv("pred_lo", 0.2), setv("pred_hi", -0.2)), {"interval_ordered": {R}}),
]


def rows_of(expected: set, n: int) -> set[int]:
    return {n - 1 if r == "last" else r for r in expected}


def severity(suite: str, rule: str) -> str:
    return next(r.severity for r in RULES[suite]() if r.name == rule)


# --- every rule --------------------------------------------------------------------------------


@pytest.mark.parametrize("suite", sorted(RULES))
def test_clean_frames_pass_every_rule(suite):
    judged = run(suite, CLEAN[suite]())
    assert set(judged.counts) == {r.name for r in RULES[suite]()}
    assert sum(judged.counts.values()) == 0 and judged.keep.all()


@pytest.mark.parametrize("suite", sorted(RULES))
def test_rule_names_are_unique_and_severities_known(suite):
    rules = RULES[suite]()
    assert len({r.name for r in rules}) == len(rules)
    assert {r.severity for r in rules} <= set(suites.SEVERITIES)


def test_every_rule_has_a_case():
    covered = {(s, rule) for s, _, _, expected in CASES for rule in expected}
    covered |= {("features", f"{kind}_{f}") for kind in ("finite", "extreme") for f in FEATURE_NAMES}
    assert covered == {(s, r.name) for s in RULES for r in RULES[s]()}


@pytest.mark.parametrize(("suite", "case", "mutate", "expected"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_planted_defect_is_caught_by_its_rule_and_switching_it_off_lets_it_through(suite, case, mutate, expected):
    frame = mutate(CLEAN[suite]())
    n = len(frame)
    expected = {rule: rows_of(rows, n) for rule, rows in expected.items()}
    severities = {severity(suite, rule) for rule in expected}
    assert len(severities) == 1, "a case plants one kind of defect"
    sev = severities.pop()

    if sev == suites.CRITICAL:
        with pytest.raises(CriticalValidationError) as err:
            run(suite, frame)
        for rule, rows in expected.items():
            assert f"{rule} failed for {len(rows)} row(s)" in str(err.value)
        fired = [r.name for r in RULES[suite]() if f"{r.name} failed" in str(err.value)]
        assert set(fired) == set(expected)
    else:
        judged = run(suite, frame)
        got = {rule: set(judged.result.flagged[rule].tolist()) for rule, c in judged.counts.items() if c}
        assert got == expected
        planted = sorted(set().union(*expected.values()))
        # reject: kept out; warn: let through
        assert judged.keep[planted].tolist() == [sev == suites.WARN] * len(planted)
        assert judged.keep.sum() == n - (0 if sev == suites.WARN else len(planted))
        q = judged.quarantine
        assert sorted(zip(q["rule"], q["severity"], strict=True)) == sorted(
            (rule, sev) for rule, rows in expected.items() for _ in rows)
        assert (q["run_id"] == "r1").all() and all(isinstance(json.loads(v), dict) for v in q["values"])

    # switched off, the same frame passes (the row goes on, no quarantine row, nothing raised)
    rules = [r for r in RULES[suite]() if r.name not in expected]
    judged = run(suite, frame, rules)
    assert sum(judged.counts.values()) == 0 and judged.keep.all()
    assert judged.quarantine.empty or suite == "macro_asof"


@pytest.mark.parametrize("kind", ["finite", "extreme"])
def test_each_feature_rule_catches_its_own_row(kind):
    """One row per catalogue feature, that feature infinite (or beyond its bounds) in that row only."""
    base = features().iloc[[1]]
    frame = pd.concat([base] * len(FEATURE_NAMES), ignore_index=True)
    frame["ticker"] = [f"T{i}" for i in range(len(FEATURE_NAMES))]
    for i, f in enumerate(FEATURE_NAMES):
        lo, hi = suites.FEATURE_BOUNDS[f]
        bad = (np.inf if i % 2 else -np.inf) if kind == "finite" else (hi * 2 + 1 if i % 2 else lo - abs(lo) - 1)
        frame.loc[i, f] = bad
    judged = suites.validate_features_frame(frame, "r1", silver=silver_of(frame))
    got = {rule: judged.result.flagged[rule].tolist() for rule, c in judged.counts.items() if c}
    assert got == {f"{kind}_{f}": [i] for i, f in enumerate(FEATURE_NAMES)}
    assert judged.keep.all() and set(judged.quarantine["severity"]) == {"warn"}
    rules = [r for r in suites.feature_rules() if not r.name.startswith(kind)]
    assert sum(suites.validate_features_frame(frame, "r1", rules=rules).counts.values()) == 0


# --- quarantine rows --------------------------------------------------------------------------------


def test_intraday_quarantine_row_names_key_rule_and_values():
    frame = setv("close", -1.0)(intraday())
    q = suites.validate_intraday(frame, "run-7").quarantine.sort_values("rule").reset_index(drop=True)
    assert q["rule"].tolist() == ["close_ge_low", "positive_close"]
    assert q["ticker"].tolist() == ["AAA"] * 2 and (q["ts"] == pd.Timestamp("2024-01-02 14:35", tz="UTC")).all()
    assert json.loads(q["values"][0]) == {"open": 10.0, "high": 11.0, "low": 9.0, "close": -1.0, "volume": 0.0}


def test_social_quarantine_rows_fit_the_alt_data_quarantine_table():
    import pyarrow as pa

    from tickerlake.altdata import quarantine_schema

    frame = setv("created_at", pd.Timestamp("1985-01-01 12:00", tz="UTC"))(messages())
    q = suites.validate_social(frame, "r1").quarantine
    row = q.iloc[0]
    assert (row["key"], row["date"], row["rule"], row["severity"], row["source_file"], row["line_number"]) == (
        "BRK.B", D1, "created_at_in_calendar", "reject", "BRK-B/2024-01-02", 1)
    assert json.loads(row["values"])["created_at"] == "1985-01-01T12:00:00+00:00"
    records = [{**r, "batch_id": "b"} for r in q.to_dict("records")]
    assert pa.Table.from_pylist(records, schema=quarantine_schema()).num_rows == 1


def test_feature_quarantine_values_carry_every_feature_and_infinities():
    q = suites.validate_features_frame(setv("KMID", np.inf)(features()), "r1").quarantine
    assert q[["ticker", "date", "rule", "severity"]].values.tolist() == [["BBB", D1, "finite_KMID", "warn"]]
    values = json.loads(q["values"][0])
    assert set(values) == set(FEATURE_NAMES) and values["KMID"] == "inf"


def test_prediction_quarantine_rows_name_the_model_version():
    frame = both(setv("pred_return", 0.9), setv("pred_lo", 0.85), setv("pred_hi", 0.95))(predictions())
    q = suites.validate_predictions(frame, "r1").quarantine
    assert q[["ticker", "asof_date", "rule", "severity", "model_version"]].values.tolist() == [
        ["BBB", D1, "pred_in_range", "warn", "3"]]
    assert math.isclose(json.loads(q["values"][0])["pred_return"], 0.9)


# --- critical: schema and coverage --------------------------------------------------------------------


def test_intraday_naive_timestamps_and_text_prices_fail_hard():
    with pytest.raises(CriticalValidationError, match="no time zone"):
        suites.validate_intraday(intraday().assign(ts=lambda f: f["ts"].dt.tz_localize(None)), "r1")
    with pytest.raises(CriticalValidationError, match="'close' arrived as object"):
        suites.validate_intraday(intraday().astype({"close": str}), "r1")


def test_macro_value_as_text_fails_hard():
    with pytest.raises(CriticalValidationError, match="'value'"):
        suites.validate_macro(observations().assign(value=["4.0", None, "4.1"]), "r1")


def test_features_missing_catalogue_column_or_non_float_fails_hard():
    with pytest.raises(CriticalValidationError, match=r"missing columns \['STD20'\]"):
        suites.validate_features_frame(features().drop(columns=["STD20"]), "r1")
    with pytest.raises(CriticalValidationError, match="'KLEN' is int64, expected a float"):
        suites.validate_features_frame(features().assign(KLEN=1), "r1")
    with pytest.raises(CriticalValidationError, match="'MA5' arrived as object"):
        suites.validate_features_frame(features().astype({"MA5": str}), "r1")


def test_features_must_cover_every_silver_ticker_of_each_session():
    frame = features()
    silver = pd.concat([silver_of(frame), pd.DataFrame({"ticker": ["DDD"], "date": [D2]})], ignore_index=True)
    with pytest.raises(CriticalValidationError, match=r"coverage 3/4 on 2024-01-03 .*missing \['DDD'\]"):
        suites.validate_features_frame(frame, "r1", silver=silver)
    # a session with silver bars and no feature row at all
    with pytest.raises(CriticalValidationError, match="coverage 0/3 on 2024-01-03"):
        suites.validate_features_frame(frame[frame["date"] == D1], "r1", silver=silver_of(frame))
    judged = suites.validate_features_frame(frame, "r1", silver=silver, min_coverage=0.75)
    assert judged.keep.all()


def test_predictions_must_cover_every_ticker_with_features():
    with pytest.raises(CriticalValidationError, match=r"1 of 5 tickers with features have no prediction: \['EEE'\]"):
        suites.validate_predictions(predictions(), "r1", expected_tickers=["AAA", "BBB", "CCC", "DDD", "EEE"])
    assert suites.validate_predictions(predictions(), "r1", expected_tickers=["AAA", "BBB"]).keep.all()


def test_critical_message_names_rows():
    frame = setv("pred_return", np.nan)(predictions())
    with pytest.raises(CriticalValidationError, match=r"predictions_daily.rows: critical rule finite_pred_return "
                                                      r"failed for 1 row\(s\) \(BBB 2024-01-02\)"):
        suites.validate_predictions(frame, "r1")


def test_dates_beyond_pandas_range_are_judged_as_dates():
    far = dt.datetime(2500, 1, 2, 15, 0, tzinfo=dt.UTC)  # a corrupted year still parses
    frame = messages()
    frame["created_at"] = [frame["created_at"][0].to_pydatetime(), far, frame["created_at"][2].to_pydatetime()]
    judged = suites.validate_social(frame, "r1")
    assert {k: v for k, v in judged.counts.items() if v} == {"created_at_in_calendar": 1}
    assert judged.keep.tolist() == [True, False, True]
    news = setv("date", dt.date(1, 1, 1))(headlines())
    assert {k: v for k, v in suites.validate_news(news, "r1").counts.items() if v} == {"date_in_calendar": 1}


def test_empty_frames_pass():
    for suite, clean in CLEAN.items():
        judged = run(suite, clean().iloc[0:0])
        assert sum(judged.counts.values()) == 0 and len(judged.keep) == 0, suite


def test_feature_bounds_cover_the_catalogue():
    assert set(suites.FEATURE_BOUNDS) == set(FEATURE_NAMES)
    assert all(lo < hi for lo, hi in suites.FEATURE_BOUNDS.values())
