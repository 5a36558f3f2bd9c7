"""Which rows Tickerlake's Redis store writes: the batch's latest per key, unless Redis holds a newer one."""

from __future__ import annotations

import datetime as dt

import pytest

from tickerlake.feast_redis import _timestamp, rows_to_write

pytestmark = pytest.mark.unit

T0 = dt.datetime(2024, 7, 2, 20, tzinfo=dt.UTC)


def row(tag: str, at: dt.datetime):
    return (None, {"tag": tag}, at, None)


def held(at: dt.datetime) -> bytes:
    return _timestamp(at).SerializeToString()


def test_equal_event_time_replaces_older_is_skipped_newer_wins() -> None:
    later = T0 + dt.timedelta(days=1)
    rows = [(b"same", row("restated", T0)), (b"older", row("backfill", T0)), (b"newer", row("next", later)),
            (b"new", row("first", T0))]
    stored = {b"same": held(T0), b"older": held(later), b"newer": held(T0), b"new": None}
    chosen = rows_to_write(rows, stored)
    assert {key: r[1]["tag"] for key, r in chosen.items()} == {b"same": "restated", b"newer": "next", b"new": "first"}


def test_within_a_batch_the_latest_event_time_wins_and_the_last_row_breaks_a_tie() -> None:
    later = T0 + dt.timedelta(microseconds=1)
    rows = [(b"k", row("a", later)), (b"k", row("b", T0)), (b"k", row("c", later))]
    assert rows_to_write(rows, {})[b"k"][1]["tag"] == "c"


def test_a_naive_event_time_is_utc() -> None:
    naive = T0.replace(tzinfo=None)
    # equal to what Redis holds when read as UTC: replaced (at any other offset it would be older or newer)
    assert rows_to_write([(b"k", row("a", naive))], {b"k": held(T0)})[b"k"][1]["tag"] == "a"
    # read as UTC, it is a microsecond older than what Redis holds: skipped
    assert rows_to_write([(b"k", row("a", naive))], {b"k": held(T0 + dt.timedelta(microseconds=1))}) == {}
