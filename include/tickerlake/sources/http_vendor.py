"""The `http` market data source: Tiingo's end-of-day prices API.

Request (https://www.tiingo.com/documentation/end-of-day), one per ticker and interval:

    GET {base_url}/tiingo/daily/<ticker>/prices?startDate=YYYY-MM-DD&endDate=YYYY-MM-DD&format=json
    Authorization: Token <key>

The ticker goes in Tiingo's spelling: share classes with a hyphen (`BRK-B`; Tiingo's
symbology appendix: periods are not used in its REST paths). The key travels only in the
Authorization header (Tiingo also accepts `?token=`, which would put it in URLs and access
logs, so it is not used); it is never logged and is redacted from every error message.

Response: a JSON list, one object per session, oldest first:

    {"date": "2015-01-02T00:00:00.000Z", "open": 90.84, "high": 91.0, "low": 89.92, "close": 90.44,
     "volume": 7255394, "adjOpen": ..., "adjHigh": ..., "adjLow": ..., "adjClose": 74.39, "adjVolume": ...,
     "divCash": 0.0, "splitFactor": 1.0}

Raw (unadjusted) open/high/low/close/volume become the bar; `adjClose`, `divCash` and
`splitFactor` are kept as adj_close, div_cash and split_factor. Errors come as a JSON object
with `detail`, e.g. 404 `{"detail": "Error: Ticker 'ZZZZ' not found"}`.

Behaviour:

- 5xx, 429 and timeouts / dropped connections: retried with exponential backoff
  (`backoff_base * 2**attempt`, at most `backoff_max`); a 429's `Retry-After` (seconds or an
  HTTP date) is respected, and one longer than `max_retry_after` (an exhausted hourly or daily
  allowance) fails at once instead of sleeping for an hour.
- any other 4xx: VendorError at once, naming the ticker, the status and the response body.
- a client-side rate limit: at most `requests_per_second` request starts per second,
  retries included (Tiingo's free plan allows 50 requests an hour; paid plans far more).
- a value that is not a number (a string, a boolean) or a missing field: SourceFormatError
  naming ticker, index and field; a JSON null is NaN, kept for validation to quarantine.
- an empty list (no session in the interval, or none yet): no rows for that ticker, logged.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time
from collections.abc import Iterable
from urllib.parse import quote

import numpy as np
import pandas as pd
import requests

from tickerlake.http_retry import retry_after_seconds
from tickerlake.sources import SourceFormatError, VendorError
from tickerlake.tickers import canonical_ticker, vendor_ticker

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_BASE_URL", "TiingoClient", "VendorError", "api_key_from_connection", "fetch_tiingo_bars"]

DEFAULT_BASE_URL = "https://api.tiingo.com"
DEFAULT_CONN_ID = "tiingo_default"
DEFAULT_REQUESTS_PER_SECOND = 1.0
RETRY_STATUSES = frozenset({429, *range(500, 600)})
_FIELDS = {"open": "open", "high": "high", "low": "low", "close": "close", "volume": "volume"}
_EXTRAS = {"adjClose": "adj_close", "divCash": "div_cash", "splitFactor": "split_factor"}
_BODY_LIMIT = 2000


def api_key_from_connection(conn_id: str = DEFAULT_CONN_ID) -> str | None:
    """The Tiingo key: the password of Airflow connection `conn_id`; None if it is not defined or empty."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.sdk import Connection

    try:
        conn = Connection.get(conn_id)
    except AirflowNotFoundException:
        log.info("Airflow connection %s is not defined", conn_id)
        return None
    return conn.password or None


class _RateLimiter:
    """At most `per_second` acquisitions per second (evenly spaced), shared by threads."""

    def __init__(self, per_second: float) -> None:
        if not per_second > 0:
            raise ValueError(f"requests_per_second must be > 0, got {per_second}")
        self.interval = 1.0 / per_second
        self._next = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            now = time.monotonic()
            wait = self._next - now
            if wait > 0:
                time.sleep(wait)
                now = time.monotonic()
            self._next = now + self.interval


class TiingoClient:
    """One HTTP session against Tiingo (or a stand-in at `base_url`) with retries and a rate limit."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = None,
        requests_per_second: float = DEFAULT_REQUESTS_PER_SECOND,
        timeout: float = 30.0,
        max_retries: int = 5,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        max_retry_after: float = 300.0,
    ) -> None:
        if not api_key or not api_key.strip():
            raise ValueError("a Tiingo API key is required (Airflow connection tiingo_default, password)")
        self._key = api_key.strip()
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_retry_after = max_retry_after
        self.limiter = _RateLimiter(requests_per_second)
        self.session = requests.Session()
        self.session.headers.update({"Content-Type": "application/json", "Accept": "application/json"})
        self.requests_sent = 0

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> TiingoClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _redact(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def daily_prices(self, ticker: str, start: dt.date, end: dt.date) -> list[dict]:
        """Tiingo's JSON list for one ticker and [start, end], after retries; VendorError otherwise."""
        symbol = vendor_ticker(ticker, "tiingo")
        url = f"{self.base_url}/tiingo/daily/{quote(symbol, safe='-')}/prices"
        params = {"startDate": start.isoformat(), "endDate": end.isoformat(), "format": "json"}
        headers = {"Authorization": f"Token {self._key}"}
        attempt = 0
        while True:
            self.limiter.acquire()
            self.requests_sent += 1
            try:
                response = self.session.get(url, params=params, headers=headers, timeout=self.timeout)
            except (requests.Timeout, requests.ConnectionError) as exc:
                problem = f"{type(exc).__name__}: {self._redact(str(exc))}"
                delay = self._backoff(attempt)
            else:
                if response.status_code == 200:
                    return self._json_list(response, ticker)
                body = self._redact(response.text[:_BODY_LIMIT])
                problem = f"HTTP {response.status_code}: {body}"
                if response.status_code not in RETRY_STATUSES:
                    raise VendorError(
                        f"Tiingo refused {ticker} ({symbol}) [{start}, {end}]: {problem}"
                    )
                delay = self._backoff(attempt)
                if response.status_code == 429:
                    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
                    if retry_after is not None:
                        if retry_after > self.max_retry_after:
                            raise VendorError(
                                f"Tiingo rate limit for {ticker}: Retry-After {retry_after:.0f}s exceeds "
                                f"{self.max_retry_after:.0f}s: {problem}"
                            )
                        delay = max(retry_after, 0.0)
            if attempt >= self.max_retries:
                raise VendorError(
                    f"Tiingo gave no answer for {ticker} ({symbol}) [{start}, {end}] after "
                    f"{attempt + 1} attempts; last: {problem}"
                )
            log.warning("Tiingo %s [%s, %s] attempt %d failed (%s); retrying in %.2fs",
                        ticker, start, end, attempt + 1, problem[:200], delay)
            time.sleep(delay)
            attempt += 1

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff_max, self.backoff_base * (2**attempt))

    def _json_list(self, response: requests.Response, ticker: str) -> list[dict]:
        try:
            payload = response.json()
        except ValueError as exc:
            raise SourceFormatError(
                f"Tiingo answer for {ticker} is not JSON: {self._redact(response.text[:_BODY_LIMIT])!r}"
            ) from exc
        if not isinstance(payload, list):
            raise SourceFormatError(
                f"Tiingo answer for {ticker} is not a list of prices: {self._redact(response.text[:_BODY_LIMIT])}"
            )
        return payload


def fetch_tiingo_bars(
    tickers: Iterable[str],
    start: dt.date,
    end: dt.date,
    api_key: str,
    *,
    base_url: str | None = None,
    requests_per_second: float = DEFAULT_REQUESTS_PER_SECOND,
    timeout: float = 30.0,
    max_retries: int = 5,
    backoff_base: float = 1.0,
    backoff_max: float = 60.0,
    max_retry_after: float = 300.0,
) -> pd.DataFrame:
    """Daily bars of [start, end] for `tickers`, one request per ticker (sequential, rate limited)."""
    names = list(dict.fromkeys(canonical_ticker(t) for t in tickers))
    if not names:
        raise ValueError("no tickers to request")
    frames = []
    with TiingoClient(
        api_key, base_url=base_url, requests_per_second=requests_per_second, timeout=timeout,
        max_retries=max_retries, backoff_base=backoff_base, backoff_max=backoff_max,
        max_retry_after=max_retry_after,
    ) as client:
        for ticker in names:
            payload = client.daily_prices(ticker, start, end)
            frame = parse_prices(payload, ticker)
            outside = frame[(frame["date"] < start) | (frame["date"] > end)]
            if len(outside):
                log.warning("Tiingo sent %d bar(s) of %s outside [%s, %s]; not landed", len(outside), ticker, start, end)
                frame = frame.drop(outside.index)
            if frame.empty:
                log.warning("Tiingo has no bars for %s in [%s, %s]", ticker, start, end)
            frames.append(frame)
        log.info("Tiingo: %d tickers, %d requests, %d bars for [%s, %s]",
                 len(names), client.requests_sent, sum(len(f) for f in frames), start, end)
    return pd.concat(frames, ignore_index=True)


def parse_prices(payload: list, ticker: str) -> pd.DataFrame:
    """Tiingo's JSON list for canonical `ticker` -> the source columns (strict: no silent casts)."""
    columns = {"ticker": [], "date": [], **{c: [] for c in _FIELDS.values()}, **{c: [] for c in _EXTRAS.values()}}
    for index, item in enumerate(payload):
        where = f"Tiingo {ticker} item {index}"
        if not isinstance(item, dict):
            raise SourceFormatError(f"{where}: expected an object, got {item!r}")
        raw_date = item.get("date")
        try:
            day = dt.date.fromisoformat(str(raw_date)[:10])
        except ValueError:
            raise SourceFormatError(f"{where} field 'date': {raw_date!r} is not a date") from None
        columns["ticker"].append(ticker)
        columns["date"].append(day)
        for field, name in _FIELDS.items():
            if field not in item:
                raise SourceFormatError(f"{where}: field {field!r} is missing")
            columns[name].append(_number(item[field], f"{where} field {field!r}"))
        for field, name in _EXTRAS.items():
            columns[name].append(_number(item.get(field), f"{where} field {field!r}"))
    frame = pd.DataFrame(columns)
    frame = frame.astype({c: "float64" for c in (*_FIELDS.values(), *_EXTRAS.values())})
    frame["source_file"] = f"tiingo:{ticker}"
    frame["source_row"] = np.arange(len(frame), dtype=np.int64)
    return frame


def _number(value, where: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SourceFormatError(f"{where}: {value!r} is not a number")
    if math.isinf(value):
        raise SourceFormatError(f"{where}: {value!r} is not a finite number")
    return float(value)


