"""Incremental against backfill: 20 consecutive daily runs (land the session, validate it, Spark
features.run for that session alone) give exactly the gold rows one backfill over the range gives.

Two lakes from the same synthetic market: `backfill` lands, validates and computes the whole
range in one run; `incremental` has the history before the 20 sessions and then runs session by
session, each run reading only its lookback.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from tickerlake import lake
from tickerlake.calendar import sessions_between
from tickerlake.catalog import FEATURE_NAMES, FEATURES, LOOKBACK_SESSIONS

pytestmark = pytest.mark.integration

N_TICKERS = 5
SESSIONS = sessions_between(dt.date(2023, 1, 3), dt.date(2024, 3, 28))[:LOOKBACK_SESSIONS + 22]
HISTORY = SESSIONS[:-20]  # more than the lookback, so every feature is complete in the 20 sessions
DAILY = SESSIONS[-20:]
# No alternative-data source is landed here: their features are null in both lakes.
BAR_DERIVED = [f.name for f in FEATURES if f.family not in ("sentiment", "macro")]
LOGICAL = dt.datetime.combine(SESSIONS[-1], dt.time(22), tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def lakes(make_settings, tmp_path_factory):
    from tickerlake.features import run
    from tickerlake.ingest import land_bars, validate_interval
    from tickerlake.spark import get_spark

    def settings_for(name: str):
        return make_settings(tmp_path_factory.mktemp(name) / "home", universe_size=N_TICKERS,
                             history_start=SESSIONS[0].isoformat())

    backfill, incremental = settings_for("backfill"), settings_for("incremental")
    spark = get_spark(backfill, "test-incremental-backfill")

    land_bars(backfill, "synthetic", SESSIONS[0], SESSIONS[-1], "backfill", LOGICAL)
    validate_interval(backfill, SESSIONS[0], SESSIONS[-1], "backfill", data_docs=False)
    run(spark, backfill, SESSIONS[0], SESSIONS[-1])

    land_bars(incremental, "synthetic", HISTORY[0], HISTORY[-1], "history", LOGICAL)
    validate_interval(incremental, HISTORY[0], HISTORY[-1], "history", data_docs=False)
    run(spark, incremental, HISTORY[0], HISTORY[-1])
    for day in DAILY:
        logical = dt.datetime.combine(day, dt.time(22), tzinfo=dt.UTC)
        land_bars(incremental, "synthetic", day, day, f"daily-{day}", logical)
        validate_interval(incremental, day, day, f"daily-{day}", data_docs=False)
        summary = run(spark, incremental, day, day)
        assert summary["sessions"] == 1
    return backfill, incremental


def _rows(settings, table: str, start: dt.date, end: dt.date) -> pd.DataFrame:
    frame = lake.read_interval(settings, table, start, end)
    return frame.sort_values(["ticker", "date"]).reset_index(drop=True)[sorted(frame.columns)]


def test_the_setup_is_what_it_claims():
    assert len(DAILY) == 20 and len(HISTORY) > LOOKBACK_SESSIONS


def test_daily_runs_give_the_backfill_features_exactly(lakes):
    backfill, incremental = lakes
    a = _rows(backfill, "gold.features_daily", DAILY[0], DAILY[-1])
    b = _rows(incremental, "gold.features_daily", DAILY[0], DAILY[-1])
    assert len(a) == N_TICKERS * len(DAILY)
    assert a[BAR_DERIVED].notna().all().all(), "every bar-derived feature complete in the compared sessions"
    assert a[[n for n in FEATURE_NAMES if n not in BAR_DERIVED]].isna().all().all(), "no source, no value"
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_daily_runs_give_the_backfill_silver_and_labels_exactly(lakes):
    backfill, incremental = lakes
    for table in ("silver.bars_daily", "gold.labels_daily"):
        a = _rows(backfill, table, SESSIONS[0], SESSIONS[-1])
        b = _rows(incremental, table, SESSIONS[0], SESSIONS[-1])
        assert len(a) > 0, table
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=table)
