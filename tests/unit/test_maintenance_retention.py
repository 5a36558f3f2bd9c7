"""Maintenance arithmetic: VACUUM's retention, the history properties, Delta intervals, lineage tags."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pandas as pd
import pytest

from tickerlake.maintenance import (
    MaintenanceError,
    Pin,
    _file_key,
    _lineage_tags,
    commit_timestamp,
    history_hours,
    history_properties,
    oldest_pins,
    parse_interval_hours,
    required_retention_hours,
    retention_hours_for,
)
from tickerlake.settings import load_settings

pytestmark = pytest.mark.unit

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def test_configured_retention_when_nothing_is_pinned():
    assert required_retention_hours(NOW, None, 168.0, 24.0) == 168.0
    assert required_retention_hours(NOW, None, 1.4, 24.0) == 2.0  # whole hours, rounded up
    assert required_retention_hours(NOW, None, 0.0, 24.0) == 1.0  # never 0: files of a write in flight


def test_pinned_commit_age_rounded_up_plus_margin():
    commit = NOW - dt.timedelta(days=9, seconds=5)  # 216 h 5 s -> 217 h
    assert required_retention_hours(NOW, commit, 1.0, 1.0) == 218.0
    assert required_retention_hours(NOW, commit, 1.0, 0.5) == 218.0  # never rounded down
    assert required_retention_hours(NOW, NOW - dt.timedelta(hours=10), 1.0, 2.0) == 12.0
    assert required_retention_hours(NOW, NOW - dt.timedelta(hours=10), 168.0, 24.0) == 168.0  # configured wins


def test_pinned_commit_in_the_future_keeps_the_configured_floor():
    assert required_retention_hours(NOW, NOW + dt.timedelta(hours=3), 5.0, 1.0) == 5.0


def test_negative_settings_are_refused():
    with pytest.raises(ValueError):
        required_retention_hours(NOW, None, -1.0, 0.0)


def test_history_properties_cover_the_next_run_only_on_pinned_tables():
    assert history_hours(218.0, True, 336.0) == 554.0
    assert history_hours(168.0, False, 336.0) == 168.0


def test_history_properties_set_vacuums_horizon_and_never_shorten_the_log():
    changes, effect = history_properties({}, 553.2)  # Delta's defaults: 7 days, 30 days
    assert changes == {"delta.deletedFileRetentionDuration": "interval 554 hours"}
    assert effect == {"vacuum_retention_hours": 554.0, "log_retention_hours": 720.0}
    changes, effect = history_properties({"delta.logRetentionDuration": "interval 200 hours"}, 242.0)
    assert changes == {"delta.deletedFileRetentionDuration": "interval 242 hours",
                       "delta.logRetentionDuration": "interval 242 hours"}
    assert effect == {"vacuum_retention_hours": 242.0, "log_retention_hours": 242.0}
    # a pin released: VACUUM's horizon comes back down, the log keeps what it had
    changes, effect = history_properties({"delta.deletedFileRetentionDuration": "interval 900 hours",
                                          "delta.logRetentionDuration": "interval 900 hours"}, 168.0)
    assert changes == {"delta.deletedFileRetentionDuration": "interval 168 hours"}
    assert effect == {"vacuum_retention_hours": 168.0, "log_retention_hours": 900.0}
    assert history_properties({"delta.deletedFileRetentionDuration": "interval 1 weeks"}, 168.0)[0] == {}


@pytest.mark.parametrize("text, hours", [
    ("interval 30 days", 720.0), ("interval 1 week", 168.0), ("168 hours", 168.0),
    ("INTERVAL 2 days 6 hours", 54.0), ("interval 90 minutes", 1.5), ("interval 554 hours", 554.0),
])
def test_delta_intervals(text, hours):
    assert parse_interval_hours(text) == pytest.approx(hours)


@pytest.mark.parametrize("text", ["interval 1 month", "forever", "interval 3 fortnights", ""])
def test_intervals_without_fixed_hours_are_refused(text):
    with pytest.raises(ValueError):
        parse_interval_hours(text)


def test_lineage_tags_and_oldest_pins():
    assert _lineage_tags({"features_delta_version": "7", "labels_delta_version": " 3 ", "asof_date": "x"}, "m") == {
        "gold.features_daily": 7, "gold.labels_daily": 3}
    assert _lineage_tags({}, "m") == {}
    assert _lineage_tags({"features_delta_version": ""}, "m") == {}
    with pytest.raises(MaintenanceError, match="model m v1"):
        _lineage_tags({"features_delta_version": "v7"}, "model m v1")
    pins = [Pin("gold.features_daily", 7, "m", "2"), Pin("gold.features_daily", 3, "m", "1"),
            Pin("gold.labels_daily", 5, "m", "1")]
    assert oldest_pins(pins) == {"gold.features_daily": 3, "gold.labels_daily": 5}


def test_file_keys_match_across_spark_and_delta_rs():
    assert _file_key("file:/lake/gold/t/year=2024/part-0.parquet") == "/lake/gold/t/year=2024/part-0.parquet"
    assert _file_key("file:///lake/gold/t/year=2024/part-0.parquet") == "/lake/gold/t/year=2024/part-0.parquet"
    assert _file_key("/lake/gold/t/year=2024/part-0.parquet") == "/lake/gold/t/year=2024/part-0.parquet"
    assert _file_key("s3a://bucket/gold/t/a%3Db/p.parquet") == _file_key("s3://bucket/gold/t/a=b/p.parquet")


def test_retention_hours_for_reads_the_pinned_commit_from_the_delta_log(tmp_path):
    """delta-rs history gives the commit time; no registry is read when the pins are given."""
    from tickerlake import lake

    settings = dataclasses.replace(load_settings(home=tmp_path), maintenance_retention_hours=1.0,
                                   maintenance_margin_hours=2.0)
    day = dt.date(2024, 1, 2)
    frame = pd.DataFrame({"ticker": ["A"], "date": [day], "close": [1.0], "year": [2024]})
    lake.replace_interval(settings, "gold.features_daily", frame, day, day)
    lake.replace_interval(settings, "gold.features_daily", frame.assign(close=2.0), day, day)
    commit = commit_timestamp(settings, "gold.features_daily", 0)
    assert abs((dt.datetime.now(dt.UTC) - commit).total_seconds()) < 600
    later = commit + dt.timedelta(hours=30, minutes=1)
    assert retention_hours_for(settings, "gold.features_daily", later, {"gold.features_daily": 0}) == 33.0
    assert retention_hours_for(settings, "gold.features_daily", later, {}) == 1.0
    with pytest.raises(MaintenanceError, match="recreated"):
        retention_hours_for(settings, "gold.features_daily", later, {"gold.features_daily": 9})
