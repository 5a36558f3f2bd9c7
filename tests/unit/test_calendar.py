import datetime as dt

import pytest

from tickerlake import calendar
from tickerlake.pipeline import session_for_run

pytestmark = pytest.mark.unit


def test_holidays_and_early_closes():
    assert not calendar.is_session("2025-12-25")
    assert calendar.is_session("2025-12-24")
    assert calendar.session_close_utc("2025-12-24") == dt.datetime(2025, 12, 24, 18, 0, tzinfo=dt.UTC)
    assert calendar.session_close_utc("2025-07-07") == dt.datetime(2025, 7, 7, 20, 0, tzinfo=dt.UTC)
    assert calendar.session_close_utc("2025-01-06") == dt.datetime(2025, 1, 6, 21, 0, tzinfo=dt.UTC)


def test_unscheduled_closure_is_not_a_session():
    # 2025-01-09: national day of mourning for President Carter.
    assert not calendar.is_session("2025-01-09")


def test_next_and_previous_sessions():
    assert calendar.next_session("2025-12-24") == dt.date(2025, 12, 26)
    assert calendar.next_session("2025-12-25") == dt.date(2025, 12, 26)
    assert calendar.previous_session("2025-12-26") == dt.date(2025, 12, 24)
    assert calendar.sessions_back(dt.date(2025, 12, 26), 2) == dt.date(2025, 12, 23)


def test_run_session_from_logical_date_in_new_york_time():
    ny = calendar.EXCHANGE_TZ
    assert session_for_run(dt.datetime(2025, 12, 24, 18, 30, tzinfo=ny)) == "2025-12-24"
    assert session_for_run(dt.datetime(2025, 12, 25, 18, 30, tzinfo=ny)) is None
    # 23:30 UTC on the 24th is still the 24th in New York.
    assert session_for_run(dt.datetime(2025, 12, 24, 23, 30, tzinfo=dt.UTC)) == "2025-12-24"
    with pytest.raises(ValueError):
        session_for_run(dt.datetime(2025, 12, 24, 18, 30))  # noqa: DTZ001 - naive on purpose
