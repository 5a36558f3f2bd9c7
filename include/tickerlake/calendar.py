"""NYSE trading calendar (exchange_calendars): sessions, early closes and closures."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo

EXCHANGE_TZ = ZoneInfo("America/New_York")
_CALENDAR_START = "1990-01-02"
_CALENDAR_END = "2030-12-31"


@lru_cache(maxsize=1)
def _xnys():
    import exchange_calendars as xcals

    # Explicit bounds: the package's default window moves with the wall clock.
    return xcals.get_calendar("XNYS", start=_CALENDAR_START, end=_CALENDAR_END)


def to_date(value: dt.date | dt.datetime | str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def is_session(day: dt.date | str) -> bool:
    return bool(_xnys().is_session(to_date(day).isoformat()))


def sessions_between(start: dt.date | str, end: dt.date | str) -> list[dt.date]:
    """Sessions in [start, end], both inclusive."""
    s, e = to_date(start), to_date(end)
    if e < s:
        return []
    return [ts.date() for ts in _xnys().sessions_in_range(s.isoformat(), e.isoformat())]


def all_sessions() -> list[dt.date]:
    """Every session the calendar knows, oldest first."""
    return sessions_between(_CALENDAR_START, _CALENDAR_END)


def next_session(day: dt.date | str) -> dt.date:
    """The first session strictly after `day`."""
    return _xnys().date_to_session(to_date(day).isoformat(), direction="next").date() if not is_session(
        day
    ) else _xnys().next_session(to_date(day).isoformat()).date()


def previous_session(day: dt.date | str) -> dt.date:
    """The last session strictly before `day`."""
    d = to_date(day)
    if is_session(d):
        return _xnys().previous_session(d.isoformat()).date()
    return _xnys().date_to_session(d.isoformat(), direction="previous").date()


def sessions_back(day: dt.date | str, n: int) -> dt.date:
    """The session n sessions before `day` (a session); n=0 gives `day` itself."""
    d = to_date(day)
    cal = _xnys()
    return cal.session_offset(d.isoformat(), -n).date()


def session_close_utc(day: dt.date | str) -> dt.datetime:
    """The session's close (early closes included) as an aware UTC datetime."""
    close = _xnys().session_close(to_date(day).isoformat())
    return close.to_pydatetime().astimezone(dt.UTC)


def session_of_logical_date(logical_date: dt.datetime) -> dt.date:
    """The exchange-local date a daily run's logical date stands for."""
    if logical_date.tzinfo is None:
        raise ValueError("logical_date must be timezone-aware")
    return logical_date.astimezone(EXCHANGE_TZ).date()
