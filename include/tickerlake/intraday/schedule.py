"""Which 5-minute runs of the intraday DAG fall in a session (XNYS calendar, early closes included).

The DAG's cron fires every 5 minutes from 09:00 to 16:55 New York time on weekdays; a run works
when its logical time lies in [open + 5 min, close + GRACE] of a session: the first run drains the
first bar, the last ones catch the final bar's stragglers. Holidays, weekends and the hours after an
early close (13:00) are skipped.
"""

from __future__ import annotations

import datetime as dt

from tickerlake.calendar import EXCHANGE_TZ, is_session, session_close_utc

OPEN = dt.time(9, 30)
FIRST_RUN_AFTER = dt.timedelta(minutes=5)
GRACE = dt.timedelta(minutes=10)
CRON = "*/5 9-16 * * 1-5"


def session_window(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[first run, last run] of a session as aware UTC datetimes."""
    open_utc = dt.datetime.combine(day, OPEN, tzinfo=EXCHANGE_TZ).astimezone(dt.UTC)
    return open_utc + FIRST_RUN_AFTER, session_close_utc(day) + GRACE


def session_for_intraday_run(logical_date: dt.datetime) -> str | None:
    """The session (ISO date) an intraday run at `logical_date` drains for, or None outside sessions."""
    if logical_date.tzinfo is None:
        raise ValueError("logical_date must be timezone-aware")
    day = logical_date.astimezone(EXCHANGE_TZ).date()
    if not is_session(day):
        return None
    first, last = session_window(day)
    return day.isoformat() if first <= logical_date.astimezone(dt.UTC) <= last else None
