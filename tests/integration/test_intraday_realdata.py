"""Stooq's real 5-minute bars (../shared/data/stooq_5min_2026): exchange times across the March weeks when
US daylight time had started and Europe's had not, and real sessions through Kafka, Spark and Delta."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from tickerlake import lake
from tickerlake.calendar import is_session
from tickerlake.intraday.replay import STOOQ_DIR, exchange_date, read_stooq
from tickerlake.kafka_broker import start_broker, stop_broker
from tickerlake.procs import free_port

pytestmark = [pytest.mark.realdata, pytest.mark.integration]

NY = ZoneInfo("America/New_York")
if not STOOQ_DIR.is_dir():
    pytest.skip(f"{STOOQ_DIR} is not present", allow_module_level=True)

# Sessions that are short in the data (README: 2026-02-26 has 72 bars, 2026-03-23 71; some tickers miss 1-2
# bars on some days): fewer bars, never bars outside 09:30-15:55.
GAP_START, GAP_END = dt.date(2026, 3, 9), dt.date(2026, 3, 27)


def test_every_stooq_bar_falls_in_a_new_york_session():
    bars = read_stooq()
    assert bars["ticker"].nunique() == 31
    local = bars["ts"].dt.tz_convert(NY)
    hhmm = local.dt.strftime("%H:%M")
    assert hhmm.min() == "09:30" and hhmm.max() == "15:55"
    days = exchange_date(bars["ts"])
    assert all(is_session(d) for d in set(days))
    per = bars.assign(day=days).groupby(["day", "ticker"]).size()
    assert per.max() == 78
    # The gap weeks read 14:30 on Stooq's clock: UTC 13:30, New York 09:30.
    march = bars[(days >= GAP_START) & (days <= GAP_END)]
    first = march.assign(day=days).groupby("day")["ts"].min()
    assert (first.dt.strftime("%H:%M") == "13:30").all() and len(first) == 15
    before = bars[days == dt.date(2026, 3, 6)]["ts"].min()
    assert before == pd.Timestamp("2026-03-06T14:30:00Z")


def test_real_sessions_through_kafka_spark_and_delta(make_settings, tmp_path):
    from tickerlake.intraday.drain import BRONZE, QUARANTINE, SILVER
    from tickerlake.intraday.service import drain_and_record

    port, controller = free_port(), free_port()
    settings = make_settings(tmp_path / "home", kafka_port=port, kafka_controller_port=controller,
                             kafka_bootstrap=f"127.0.0.1:{port}", spark_driver_memory="1g")
    env = {**os.environ, "TICKERLAKE_HOME": str(settings.home), "TICKERLAKE_JARS_DIR": str(settings.jars_dir),
           "TICKERLAKE_KAFKA_PORT": str(port), "TICKERLAKE_KAFKA_CONTROLLER_PORT": str(controller),
           "TICKERLAKE_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}"}
    start_broker(settings)
    try:
        # 2026-03-06 (both zones on standard time), 03-09 and 03-10 (US on daylight time, Europe not).
        replay = subprocess.run([sys.executable, "-m", "tickerlake.cli", "replay", "--source", "stooq",
                                 "--start", "2026-03-06", "--end", "2026-03-10", "--speed", "0"],
                                env=env, capture_output=True, text=True, timeout=300)
        assert replay.returncode == 0, replay.stderr
        published = json.loads(replay.stdout[replay.stdout.index("{"):])
        assert published["messages"] == 3 * 31 * 78 and published["tickers"] == 31
        assert published["first_ts"] == "2026-03-06T14:30:00+00:00"
        summary = drain_and_record(settings, "realdata-drain")
    finally:
        stop_broker(settings)
    assert summary["messages"] == 3 * 31 * 78 and summary["quarantined"] == 0
    assert len(lake.read_table(settings, BRONZE)) == 3 * 31 * 78
    assert len(lake.read_table(settings, QUARANTINE)) == 0
    silver = lake.read_table(settings, SILVER)
    assert len(silver) == 3 * 31 * 78 and not silver.duplicated(["ticker", "ts"]).any()
    for day, group in silver.groupby("session"):
        assert len(group) == 31 * 78 and group["ticker"].nunique() == 31
        local = pd.to_datetime(group["ts"], utc=True).dt.tz_convert(NY).dt.strftime("%H:%M")
        assert (local.min(), local.max()) == ("09:30", "15:55"), day
    aapl = silver[(silver["ticker"] == "AAPL")].sort_values("ts")
    first_gap_bar = aapl[aapl["session"] == dt.date(2026, 3, 10)].iloc[0]
    # nasdaq_stocks__1__aapl.us.txt: AAPL.US,5,20260310,143000,257.645,259.9,256.95,259.395,560856,0
    assert pd.Timestamp(first_gap_bar["ts"]) == pd.Timestamp("2026-03-10T13:30:00Z")
    assert (first_gap_bar["open"], first_gap_bar["close"], first_gap_bar["volume"]) == (257.645, 259.395, 560856.0)
    runs = lake.read_table(settings, "ops.pipeline_runs")
    row = runs[runs["run_id"] == "realdata-drain"].iloc[0]
    assert row["rows"] == 3 * 31 * 78 and row["latency_p95_s"] >= row["latency_p50_s"] > 0
    assert json.loads(row["metrics"])["app_id"].startswith("tickerlake.drain.bars_intraday.")
