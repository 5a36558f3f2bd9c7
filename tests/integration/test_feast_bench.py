"""The Feast benchmark on a tiny tier, for real: feast apply, a Delta features table, stock materialization
into the SQLite online store, timed online reads, and the answers checked against the table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tickerlake import feast_bench
from tickerlake.catalog import FEATURE_NAMES
from tickerlake.settings import load_settings

pytestmark = pytest.mark.integration


def test_tiny_tier_materializes_reads_and_checks_its_answers(tmp_path: Path):
    settings = load_settings(home=tmp_path / "home")
    out = tmp_path / "feast.json"
    feast_bench.bench_feast(settings, out, tiers=["tiny"], calls=15, specs={"tiny": {"tickers": 20, "sessions": 3}},
                            progress=print)
    report = json.loads(out.read_text())
    f = report["tiers"]["tiny"]
    assert report["goals"] == feast_bench.GOALS and report["calls"] == 15
    assert f["entity_rows"] == 60 and f["sessions"] == 3 and f["features"] == len(FEATURE_NAMES)
    m = f["materialize"]
    for side in ("ours", "stock"):
        assert m[f"{side}_s"] > 0 and m[f"{side}_entity_rows_per_s"] == pytest.approx(60 / m[f"{side}_s"], rel=0.01)
        assert m[f"{side}_db_bytes"] > 0
    assert m["vs_stock"] == pytest.approx(m["stock_s"] / m["ours_s"], rel=0.01)
    assert f["goal_materialize_10x_stock"] == (m["vs_stock"] >= 10)
    assert f["answers_identical_to_stock"] is True  # values, statuses and event times, unknown ticker included
    for key in ("online_1_ticker_ms", "stock_online_1_ticker_ms"):
        one = f[key]
        assert one["calls"] == 15 and 0 < one["p50"] <= one["p99"] <= one["max"]
    assert "online_500_tickers_ms" not in f  # 20 tickers: no 500-ticker read
    assert f["goal_p99_1_ticker"] == (f["online_1_ticker_ms"]["p99"] <= 3.0)
    assert not (tmp_path / "home" / "bench" / "feast_tiny").exists()  # the tier's folder is removed


def test_the_frame_has_every_feature_a_close_per_session_and_some_nulls():
    import datetime as dt

    days = [dt.date(2025, 12, 30), dt.date(2025, 12, 31)]
    frame = feast_bench.features_frame(50, days)
    assert len(frame) == 100 and list(frame.columns[2:-2]) == list(FEATURE_NAMES)
    assert frame["event_ts"].dt.hour.eq(21).all()  # 16:00 New York in winter
    share = frame[list(FEATURE_NAMES)].isna().to_numpy().mean()
    assert 0.01 < share < 0.03
