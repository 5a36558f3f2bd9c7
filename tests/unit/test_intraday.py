"""Intraday pieces without services: the message contract, Stooq's clock, the session gate, synthetic bars."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from zoneinfo import ZoneInfo

import jsonschema
import numpy as np
import pandas as pd
import pytest

from tickerlake.intraday.replay import read_stooq, session_bar_starts, stooq_clock_to_utc, synthetic_bars
from tickerlake.intraday.schedule import session_for_intraday_run
from tickerlake.intraday.schema import classify, encode_bar, json_schema
from tickerlake.settings import load_settings

pytestmark = pytest.mark.unit

NY = ZoneInfo("America/New_York")
UTC = dt.UTC
T0 = dt.datetime(2026, 3, 10, 13, 30, tzinfo=UTC)
GOOD = json.loads(encode_bar("BRK.B", T0, 10.0, 11.0, 9.5, 10.5, 1234.5, "test"))

POISON = {
    b"not json {": "bad_json",
    b"\xff\xfe\x00garbage": "bad_json",
    b'{"schema": "tickerlake.bar_5m", "version": 1, "open": NaN}': "bad_json",
    b'{"a": 1, "a": 2}': "bad_json",
    b"[1, 2, 3]": "wrong_schema",
    b'"a string"': "wrong_schema",
    json.dumps({**GOOD, "version": 2}).encode(): "wrong_schema",
    json.dumps({**GOOD, "version": True}).encode(): "wrong_schema",
    json.dumps({**GOOD, "schema": "other"}).encode(): "wrong_schema",
    json.dumps({k: v for k, v in GOOD.items() if k != "volume"}).encode(): "wrong_schema",
    json.dumps({**GOOD, "open": "10.0"}).encode(): "wrong_schema",
    json.dumps({**GOOD, "close": None}).encode(): "wrong_schema",
    json.dumps({**GOOD, "ticker": "aapl"}).encode(): "wrong_schema",
    json.dumps({**GOOD, "ts": "2026-03-10T13:30:00+00:00"}).encode(): "wrong_schema",
    json.dumps({**GOOD, "ts": "2026-02-30T13:30:00Z"}).encode(): "wrong_schema",
    json.dumps({**GOOD, "open": -0.01}).encode(): "negative_price",
    json.dumps({**GOOD, "volume": -1}).encode(): "negative_volume",
    json.dumps({**GOOD, "high": 9.0}).encode(): "high_below_low",
}


def test_a_good_message_round_trips_and_matches_the_schema_file():
    value = encode_bar("BRK.B", T0, 10.0, 11.0, 9.5, 10.5, 1234.5, "test")
    jsonschema.validate(json.loads(value), json_schema())
    rule, bar = classify(value)
    assert rule is None
    assert bar == {"ticker": "BRK.B", "ts": T0, "source": "test", "open": 10.0, "high": 11.0, "low": 9.5,
                   "close": 10.5, "volume": 1234.5}
    assert classify(json.dumps({**GOOD, "extra": [1]}).encode())[0] is None  # unknown fields are ignored


@pytest.mark.parametrize("payload", list(POISON), ids=[r + str(i) for i, r in enumerate(POISON.values())])
def test_each_dead_letter_gets_its_rule(payload):
    assert classify(payload) == (POISON[payload], None)


# The file says what the reader does, except a calendar check (2026-02-30), beyond JSON Schema's patterns.
SCHEMA_FILE_CASES = [p for p, r in POISON.items() if r in ("wrong_schema", "negative_price", "negative_volume")
                     and b"2026-02-30" not in p]


@pytest.mark.parametrize("payload", SCHEMA_FILE_CASES)
def test_the_schema_file_rejects_what_the_reader_rejects(payload):
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(json.loads(payload), json_schema())


def test_naive_timestamps_are_refused():
    with pytest.raises(ValueError):
        encode_bar("AAPL", dt.datetime(2026, 3, 10, 9, 30), 1, 1, 1, 1, 1, "x")  # noqa: DTZ001 (the point)


@pytest.mark.parametrize(
    ("date", "time", "utc", "new_york"),
    [
        (20260306, 153000, "2026-03-06T14:30:00+00:00", "09:30"),  # both on standard time: Warsaw = NY + 6h
        (20260309, 143000, "2026-03-09T13:30:00+00:00", "09:30"),  # US on daylight time, Europe not: + 5h
        (20260327, 205500, "2026-03-27T19:55:00+00:00", "15:55"),  # the gap's last session, last bar
        (20260330, 153000, "2026-03-30T13:30:00+00:00", "09:30"),  # both on daylight time again
        (20260126, 215500, "2026-01-26T20:55:00+00:00", "15:55"),
    ],
)
def test_stooq_clock_is_europe_warsaw(date, time, utc, new_york):
    ts = stooq_clock_to_utc(pd.Series([date]), pd.Series([time]))[0]
    assert ts.isoformat() == utc
    assert ts.tz_convert(NY).strftime("%H:%M") == new_york


def test_a_time_warsaw_skips_is_an_error_not_a_guess():
    with pytest.raises(Exception, match="2026-03-29 02:30:00"):
        stooq_clock_to_utc(pd.Series([20260329]), pd.Series([23000]))


def test_read_stooq_converts_filters_and_sorts(tmp_path):
    header = "<TICKER>,<PER>,<DATE>,<TIME>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<VOL>,<OPENINT>\n"
    (tmp_path / "aapl.us.txt").write_text(header + "AAPL.US,5,20260309,143000,1,2,0.5,1.5,10.5,0\n"
                                          "AAPL.US,5,20260306,153000,1,2,0.5,1.5,10,0\n")
    (tmp_path / "brk-b.us.txt").write_text(header + "BRK-B.US,5,20260309,143000,1,2,0.5,1.5,7,0\n")
    bars = read_stooq(tmp_path, start=dt.date(2026, 3, 9), end=dt.date(2026, 3, 9))
    assert list(bars["ticker"]) == ["AAPL", "BRK.B"]
    assert (bars["ts"] == pd.Timestamp("2026-03-09T13:30:00Z")).all()
    assert list(bars["volume"]) == [10.5, 7.0]
    assert len(read_stooq(tmp_path)) == 3


def _ny(day: str, hhmm: str) -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T{hhmm}").replace(tzinfo=NY)


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (_ny("2026-03-10", "09:30"), None),  # the first bar is not complete yet
        (_ny("2026-03-10", "09:35"), "2026-03-10"),
        (_ny("2026-03-10", "16:10"), "2026-03-10"),  # stragglers of the last bar
        (_ny("2026-03-10", "16:15"), None),
        (_ny("2026-11-27", "13:10"), "2026-11-27"),  # day after Thanksgiving: early close at 13:00
        (_ny("2026-11-27", "13:15"), None),
        (_ny("2026-11-27", "15:00"), None),
        (_ny("2026-11-26", "11:00"), None),  # Thanksgiving
        (_ny("2026-03-14", "11:00"), None),  # a Saturday
    ],
)
def test_intraday_runs_only_in_session_windows(when, expected):
    assert session_for_intraday_run(when) == expected
    assert session_for_intraday_run(when.astimezone(UTC)) == expected


def test_session_bars_follow_the_calendar():
    normal = session_bar_starts(dt.date(2026, 3, 10))
    assert len(normal) == 78 and normal[0].astimezone(NY).strftime("%H:%M") == "09:30"
    assert normal[-1].astimezone(NY).strftime("%H:%M") == "15:55"
    early = session_bar_starts(dt.date(2026, 11, 27))
    assert len(early) == 42 and early[-1].astimezone(NY).strftime("%H:%M") == "12:55"


def test_synthetic_bars_bridge_the_daily_bar_and_repeat():
    from tickerlake.synthetic import bars_for_interval

    settings = dataclasses.replace(load_settings(), universe_size=5, history_start="2026-01-02")
    day = dt.date(2026, 3, 10)
    bars = synthetic_bars(settings, day, day)
    assert len(bars) == 5 * 78 and not bars.duplicated(["ticker", "ts"]).any()
    assert bars.equals(synthetic_bars(settings, day, day))  # deterministic
    daily = bars_for_interval(5, "2026-01-02", day, day, settings.seed).set_index("ticker")
    for ticker, g in bars.sort_values("ts").groupby("ticker"):
        assert g["open"].iloc[0] == pytest.approx(daily.loc[ticker, "open"], rel=1e-4)
        assert g["close"].iloc[-1] == pytest.approx(daily.loc[ticker, "close"], rel=1e-4)
        assert g["volume"].sum() == pytest.approx(daily.loc[ticker, "volume"], rel=1e-3)
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
    assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
    for row in bars.head(50).itertuples():
        value = encode_bar(row.ticker, row.ts.to_pydatetime(), row.open, row.high, row.low, row.close,
                           row.volume, "synthetic")
        assert classify(value)[0] is None


def test_intraday_features_of_the_latest_bar():
    from tickerlake.intraday.scoring import intraday_features

    day, prev = dt.date(2026, 3, 10), dt.date(2026, 3, 9)
    t = [pd.Timestamp("2026-03-10T13:30:00Z") + pd.Timedelta(minutes=5 * i) for i in range(3)]
    today = pd.DataFrame({
        "ticker": ["AAA"] * 3 + ["BBB"], "ts": t + [t[0]],
        "open": [100.0, 101.0, 102.0, 50.0], "high": [101, 102, 104, 51], "low": [99, 100, 101, 49],
        "close": [101.0, 102.0, 103.0, 50.5], "volume": [10.0, 20.0, 30.0, 5.0],
    })
    h = [pd.Timestamp("2026-03-09T13:30:00Z") + pd.Timedelta(minutes=5 * i) for i in range(3)]
    history = pd.DataFrame({"ticker": ["AAA"] * 6, "session": [prev] * 3 + [dt.date(2026, 3, 6)] * 3,
                            "ts": h + [x - pd.Timedelta(days=3) + pd.Timedelta(hours=1) for x in h],
                            "volume": [5.0, 5.0, 5.0, 10.0, 10.0, 10.0]})
    prev_close = pd.Series({"AAA": 98.0})  # BBB unknown
    out = intraday_features(today, history, prev_close).set_index("ticker")
    assert out.loc["AAA", "bar_ts"] == t[2]
    assert out.loc["AAA", "ret_open"] == pytest.approx(103 / 100 - 1)
    assert out.loc["AAA", "ret_last_bar"] == pytest.approx(103 / 102 - 1)
    # 60 traded by 09:40; the usual by 09:40 is the median of 15 (03-09) and 30 (03-06, one hour later in UTC
    # because 03-06 was on standard time: the same 09:40 New York slot) = 22.5
    assert out.loc["AAA", "vol_tod_ratio"] == pytest.approx(60 / 22.5)
    assert out.loc["AAA", "gap_open"] == pytest.approx(100 / 98 - 1)
    assert np.isnan(out.loc["BBB", "ret_last_bar"]) and np.isnan(out.loc["BBB", "gap_open"])
    assert np.isnan(out.loc["BBB", "vol_tod_ratio"])  # no history for BBB
    assert day == out.loc["AAA", "bar_ts"].tz_convert(NY).date()


def test_the_intraday_dag_is_one_run_at_a_time_every_5_minutes_gated_by_the_calendar():
    import importlib.util
    from pathlib import Path

    from tickerlake.settings import PROJECT_ROOT

    spec = importlib.util.spec_from_file_location("intraday_dag", PROJECT_ROOT / "dags" / "tickerlake_intraday.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = module.dag
    assert dag.dag_id == "tickerlake_intraday" and dag.max_active_runs == 1 and not dag.catchup
    assert dag.timetable.summary == "*/5 9-16 * * 1-5"
    assert str(dag.timetable._timezone) in ("America/New_York", "Timezone('America/New_York')")
    tasks = {t.task_id: t for t in dag.tasks}
    assert set(tasks) == {"session_gate", "drain", "score"}
    assert tasks["drain"].upstream_task_ids == {"session_gate"}
    assert tasks["score"].upstream_task_ids == {"session_gate", "drain"}
    assert Path(tasks["drain"].application).name == "intraday_drain_job.py"
    assert Path(tasks["drain"].application).is_file()
    assert tasks["drain"].application_args == ["--run-id", "{{ run_id }}"]


def test_an_intraday_push_names_a_missing_column_and_refuses_two_rows_of_a_ticker(tmp_path):
    from tickerlake.feast_store import INTRADAY_FEATURES, push_intraday_predictions
    from tickerlake.settings import load_settings

    settings = load_settings(home=tmp_path / "home")
    rows = pd.DataFrame({"ticker": ["AAA", "BBB"], "bar_ts": pd.Timestamp("2026-01-02T14:30Z"),
                         **{name: [0.1, 0.2] for name in INTRADAY_FEATURES}})
    with pytest.raises(ValueError, match=r"lack column\(s\) \['gap_open'\]"):
        push_intraday_predictions(settings, rows.drop(columns="gap_open"))
    with pytest.raises(ValueError, match="one prediction per ticker"):
        push_intraday_predictions(settings, pd.concat([rows, rows.iloc[:1]]))
    assert push_intraday_predictions(settings, rows.iloc[:0]) == 0  # nothing to push, no store touched
    assert not (tmp_path / "home" / "feast").exists()
