"""What HTTP clients of outside services (the market data vendor, FRED, SendGrid) share."""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Callable


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)  # wall-clock ok: only to turn an HTTP-date Retry-After into a wait


def retry_after_seconds(value: str | None, now: Callable[[], dt.datetime] = utc_now) -> float | None:
    """A Retry-After header as seconds to wait: delta-seconds or an HTTP date (RFC 9110); None when
    absent or unreadable. `now` is the clock an HTTP date is measured against."""
    if value is None:
        return None
    raw = str(value).strip()
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - now()).total_seconds())
