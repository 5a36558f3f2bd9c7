"""Macro series: FRED-format files and the FRED/ALFRED API into bronze.macro, and the point-in-time
panel silver.macro_asof.

Files (`<SERIES>.csv` with `date,value`, empty or `.` = missing; FRED's own download header
`observation_date,<SERIES>` or `DATE,<SERIES>` is read too) hold the LATEST VINTAGE: revised
values, with no record of when each was published. So each series has a release lag below
(RELEASE_LAGS) and an observation counts as known only from its approximate release date =
end of its period (the observation date itself for daily and weekly series, the month's or
quarter's last day for monthly and quarterly ones) + the lag. These are approximations of the
publishers' calendars, chosen on the late side; the values are still revised ones, which a
point-in-time lag cannot undo. The API connector removes both approximations: it asks ALFRED for
the values as they were known (`realtime_start`/`realtime_end`), and each row's `realtime_start`
is then its real publication date.

Missing values (empty, `.`) are landed in bronze as null and never published: the panel shows,
for each session, the latest observation that was released by then and had a value, with its
observation date, so a missing month (2025-10 CPI) shows as the previous month, visibly stale,
never as a value of its own.

Validation (suites.py): parsed observations, from files and from the API, are judged by the
Great Expectations suite `macro.rows` before they land (a rejected one goes to quarantine.macro
with its rule instead of bronze); the panel is judged by `macro_asof.rows` before its write,
every rule critical (a value released after its session would be a look-ahead).
"""

from __future__ import annotations

import calendar as pycalendar
import csv
import datetime as dt
import http.client
import json
import logging
import math
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd
import pyarrow as pa

from tickerlake.altdata import (
    batch_id,
    quarantine_predicate,
    quarantine_schema,
    read_where,
    sql_in,
    utc_timestamp,
)
from tickerlake.calendar import sessions_between
from tickerlake.http_retry import retry_after_seconds
from tickerlake.lake import date_predicate, replace_rows
from tickerlake.settings import Settings
from tickerlake.sql import sql_string_literal
from tickerlake.suites import validate_macro, validate_macro_asof

log = logging.getLogger(__name__)

BRONZE = "bronze.macro"
QUARANTINE = "quarantine.macro"
ASOF = "silver.macro_asof"
FILE_SOURCE = "fred_file"
API_SOURCE = "fred_api"
FRED_BASE_URL = "https://api.stlouisfed.org"
OBSERVATIONS_PATH = "/fred/series/observations"
_OPEN_END = dt.date(9999, 12, 31)  # FRED's "still current" realtime_end


# --- release lags (the configuration of the point-in-time rule) -----------------------------

Anchor = Literal["observation", "month_end", "quarter_end"]


@dataclass(frozen=True)
class ReleaseLag:
    anchor: Anchor  # what the lag counts from
    days: int
    note: str


def _d(days: int, note: str) -> ReleaseLag:
    return ReleaseLag("observation", days, note)


def _m(days: int, note: str) -> ReleaseLag:
    return ReleaseLag("month_end", days, note)


# Approximate, late-side release delays of the series in ../shared/data/fred_macro. A series not
# listed here cannot be built into silver.macro_asof (a clear error, not a guessed lag).
RELEASE_LAGS: dict[str, ReleaseLag] = {
    # daily market and rates series: published the next business day (1 calendar day; the
    # panel only has sessions, so a Friday value is first seen on Monday)
    "DGS10": _d(1, "H.15 / Treasury, next day"),
    "DGS2": _d(1, "H.15 / Treasury, next day"),
    "DGS30": _d(1, "H.15 / Treasury, next day"),
    "T10Y2Y": _d(1, "derived from H.15, next day"),
    "T10YIE": _d(1, "breakeven, next day"),
    "T5YIE": _d(1, "breakeven, next day"),
    "VIXCLS": _d(1, "Cboe close, next day"),
    "SP500": _d(1, "S&P close, next day"),
    "BAMLC0A0CM": _d(1, "ICE BofA OAS, next day"),
    "BAMLH0A0HYM2": _d(1, "ICE BofA OAS, next day"),
    "RRPONTSYD": _d(1, "NY Fed RRP, same afternoon"),
    "DCOILWTICO": _d(7, "EIA spot prices, weekly update"),
    "DCOILBRENTEU": _d(7, "EIA spot prices, weekly update"),
    "DTWEXBGS": _d(7, "H.10, weekly on Monday"),
    # weekly series, dated by the week they describe
    "ICSA": _d(5, "week ending Saturday, released Thursday"),
    "ANFCI": _d(5, "week ending Friday, released Wednesday"),
    "STLFSI4": _d(6, "week ending Friday, released Thursday"),
    "WALCL": _d(2, "Wednesday level, H.4.1 Thursday after the close"),
    "MORTGAGE30US": _d(0, "dated on its Thursday noon release"),
    "GASREGW": _d(1, "Monday price, released Monday evening"),
    "WM2NS": _d(35, "H.6, monthly release of weekly data"),
    # monthly series, counted from the end of the month they describe
    "CPIAUCSL": _m(15, "CPI, mid next month"),
    "CPILFESL": _m(15, "CPI, mid next month"),
    "PPIFIS": _m(15, "PPI, mid next month"),
    "UNRATE": _m(10, "Employment Situation, first Friday (sometimes second)"),
    "PAYEMS": _m(10, "Employment Situation, first Friday (sometimes second)"),
    "CIVPART": _m(10, "Employment Situation, first Friday (sometimes second)"),
    "U6RATE": _m(10, "Employment Situation, first Friday (sometimes second)"),
    "AHETPI": _m(10, "Employment Situation, first Friday (sometimes second)"),
    "FEDFUNDS": _m(1, "monthly average, next business day"),
    "UMCSENT": _m(0, "Michigan final, end of the same month"),
    "MICH": _m(0, "Michigan final, end of the same month"),
    "INDPRO": _m(18, "G.17, mid next month"),
    "RSXFS": _m(17, "advance retail sales, mid next month"),
    "HOUST": _m(19, "new residential construction, ~18th"),
    "BUSLOANS": _m(14, "H.8 monthly average"),
    "CFNAI": _m(25, "Chicago Fed, late next month"),
    "HSN1F": _m(26, "new home sales, ~25th"),
    "M2SL": _m(28, "H.6, fourth Tuesday"),
    "PCEPILFE": _m(31, "Personal Income and Outlays, end of next month"),
    "DGORDER": _m(35, "M3 full report, early in the second month"),
    "JTSJOL": _m(40, "JOLTS, ~6 weeks"),
    "CSUSHPINSA": _m(60, "Case-Shiller, last Tuesday two months later"),
    "PCOPPUSDM": _m(95, "IMF primary commodity prices, updated irregularly"),
    "PALLFNFINDEXM": _m(95, "IMF primary commodity prices, updated irregularly"),
    "OILPRICE": _m(15, "discontinued 2013"),
    "USREC": _m(365, "NBER turning points are dated many months later; values are revised"),
    # quarterly
    "GDP": ReleaseLag("quarter_end", 30, "advance estimate ~4 weeks after the quarter"),
    "GDPC1": ReleaseLag("quarter_end", 30, "advance estimate ~4 weeks after the quarter"),
}


def period_end(day: dt.date, anchor: Anchor) -> dt.date:
    if anchor == "observation":
        return day
    if anchor == "month_end":
        return dt.date(day.year, day.month, pycalendar.monthrange(day.year, day.month)[1])
    if anchor == "quarter_end":
        last_month = ((day.month - 1) // 3 + 1) * 3
        return dt.date(day.year, last_month, pycalendar.monthrange(day.year, last_month)[1])
    raise ValueError(f"unknown anchor {anchor!r}")


def release_date(series_id: str, observation_date: dt.date, lags: dict[str, ReleaseLag] | None = None) -> dt.date:
    """The first date an observation of a latest-vintage file counts as known."""
    lags = RELEASE_LAGS if lags is None else lags
    if series_id not in lags:
        raise KeyError(series_id)
    lag = lags[series_id]
    return period_end(observation_date, lag.anchor) + dt.timedelta(days=lag.days)


# --- bronze ---------------------------------------------------------------------------------


def bronze_schema() -> pa.Schema:
    return pa.schema(
        [
            ("series_id", pa.string()),
            ("date", pa.date32()),  # observation date: the interval key
            ("value", pa.float64()),  # null = missing as received
            ("value_raw", pa.string()),
            ("realtime_start", pa.date32()),  # ALFRED vintage (API rows); null for files
            ("realtime_end", pa.date32()),  # 9999-12-31 = still current
            ("source", pa.string()),  # fred_file | fred_api
            ("source_file", pa.string()),
            ("line_number", pa.int64()),
            ("batch_id", pa.string()),
            ("run_id", pa.string()),
            ("run_logical_ts", pa.timestamp("us", tz="UTC")),
            ("year", pa.int32()),
        ]
    )


def parse_value(raw: str) -> tuple[float | None, bool]:
    """(value, ok): empty and `.` are missing (None, True); a non-number is (None, False)."""
    s = raw.strip()
    if s in ("", "."):
        return None, True
    try:
        v = float(s)
    except ValueError:
        return None, False
    return (v, True) if math.isfinite(v) else (None, False)


@dataclass
class FredFile:
    series_id: str | None  # None: not a series file (skipped_reason says why)
    rows: list[dict] = field(default_factory=list)  # date, value, value_raw, line_number
    quarantine: list[dict] = field(default_factory=list)  # date, rule, values, line_number
    skipped_reason: str | None = None


def parse_fred_csv(text: str, file_name: str) -> FredFile:
    """One series file -> rows and quarantine rows (pure). The header decides the format."""
    lines = [line.rstrip("\r") for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        return FredFile(None, skipped_reason="empty file")
    header = [c.strip() for c in next(csv.reader([lines[0]]))]
    stem = Path(file_name).name.split(".")[0]
    if [c.lower() for c in header] == ["date", "value"]:
        series = stem.upper()
    elif len(header) == 2 and header[0].lower() in ("observation_date", "date") and header[1]:
        series = header[1].upper()
    else:
        return FredFile(None, skipped_reason=f"header {','.join(header)!r} is not date,value")
    out = FredFile(series)
    for number, line in enumerate(lines[1:], start=2):
        cells = next(csv.reader([line])) if line.strip() else []
        if len(cells) != 2:
            out.quarantine.append({"date": None, "rule": "bad_row_shape", "values": line, "line_number": number})
            continue
        try:
            day = dt.date.fromisoformat(cells[0].strip())
        except ValueError:
            out.quarantine.append({"date": None, "rule": "bad_date", "values": line, "line_number": number})
            continue
        value, ok = parse_value(cells[1])
        if not ok:
            out.quarantine.append({"date": day, "rule": "bad_value", "values": line, "line_number": number})
            continue
        out.rows.append({"date": day, "value": value, "value_raw": cells[1], "line_number": number})
    return out


def land_macro(
    settings: Settings,
    source_path: str | os.PathLike[str],
    start: dt.date,
    end: dt.date,
    run_id: str,
    series: Sequence[str] | None = None,
    logical_ts: dt.datetime | None = None,
) -> dict:
    """Replace observations [start, end] of the series found in `source_path` (a folder of
    FRED-format CSVs, or one file; only `series` when given) in bronze.macro and
    quarantine.macro. Files that are not series files (metadata.csv) are listed, not read.
    One commit per table; received == landed + quarantined."""
    if end < start:
        raise ValueError(f"interval end {end} is before start {start}")
    root = Path(source_path)
    if root.is_file():
        paths = [root]
    elif root.is_dir():
        paths = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() == ".csv")
    else:
        raise FileNotFoundError(f"macro source {root} does not exist")
    wanted = None if series is None else {s.upper() for s in series}
    logical = utc_timestamp(logical_ts)
    parsed: list[tuple[Path, FredFile]] = []
    skipped: dict[str, str] = {}
    for path in paths:
        f = parse_fred_csv(path.read_bytes().decode("utf-8-sig", errors="replace"), path.name)
        if f.series_id is None:
            skipped[path.name] = f.skipped_reason or "not a series file"
        elif wanted is None or f.series_id in wanted:
            parsed.append((path, f))
    landed_series = sorted({f.series_id for _, f in parsed if f.series_id})
    if wanted is not None and (missing := sorted(wanted - set(landed_series))):
        raise FileNotFoundError(f"no file for series {missing} under {source_path}")
    if len(landed_series) != len(parsed):
        dupes = sorted({f.series_id for _, f in parsed if sum(g.series_id == f.series_id for _, g in parsed) > 1})
        raise ValueError(f"series {dupes} come from more than one file under {source_path}")
    bid = batch_id(FILE_SOURCE, start, end, ",".join(landed_series))

    rows: list[dict] = []
    quarantine: list[dict] = []
    counts = {"received": 0, "landed": 0, "missing_values": 0, "quarantined": 0,
              "quarantined_undated": 0, "outside_interval": 0}
    for path, f in parsed:
        for r in f.rows:
            if not start <= r["date"] <= end:
                counts["outside_interval"] += 1
                continue
            rows.append({"series_id": f.series_id, "date": r["date"], "value": r["value"], "value_raw": r["value_raw"],
                         "realtime_start": None, "realtime_end": None, "source": FILE_SOURCE,
                         "source_file": path.name, "line_number": r["line_number"], "batch_id": bid,
                         "run_id": run_id, "run_logical_ts": logical, "year": r["date"].year})
            counts["missing_values"] += r["value"] is None
        for q in f.quarantine:
            if q["date"] is not None and not start <= q["date"] <= end:
                counts["outside_interval"] += 1
                continue
            quarantine.append({"key": f.series_id, "date": q["date"], "rule": q["rule"], "severity": "reject",
                               "values": q["values"], "source": FILE_SOURCE, "source_file": path.name,
                               "line_number": q["line_number"], "batch_id": bid, "run_id": run_id})
            counts["quarantined" if q["date"] is not None else "quarantined_undated"] += 1
    # Great Expectations judges the parsed observations before they land: a rejected one goes to
    # quarantine with its rule instead of bronze (so never into silver.macro_asof).
    judged = validate_macro(pd.DataFrame(rows, columns=bronze_schema().names), run_id)
    rows = [r for r, keep in zip(rows, judged.keep, strict=True) if keep]
    quarantine += [{**q, "batch_id": bid} for q in judged.quarantine.to_dict("records")]
    counts["quarantined"] += int(judged.result.rejected.sum())
    counts["missing_values"] = sum(r["value"] is None for r in rows)
    counts["landed"] = len(rows)
    counts["received"] = counts["landed"] + counts["quarantined"]
    counts["warned"] = int(judged.result.warned.sum())

    source_clause = f"source = {sql_string_literal(FILE_SOURCE)}"
    series_clause = sql_in("series_id", landed_series)
    bronze_version = replace_rows(
        settings, BRONZE, pa.Table.from_pylist(rows, schema=bronze_schema()),
        f"{date_predicate('date', start, end)} AND {source_clause} AND {series_clause}", ("year",),
    )
    q_version = replace_rows(
        settings, QUARANTINE, pa.Table.from_pylist(quarantine, schema=quarantine_schema()),
        quarantine_predicate(start, end, source_clause, sql_in("key", landed_series)), None,
    )
    result = {"start": start.isoformat(), "end": end.isoformat(), "batch_id": bid, "series": len(landed_series),
              **counts, "skipped_files": skipped, "validation": judged.summary(), "bronze_version": bronze_version,
              "quarantine_version": q_version}
    log.info("macro files [%s, %s]: %s", start, end, {k: v for k, v in result.items() if k != "skipped_files"})
    return result


# --- the FRED / ALFRED API ------------------------------------------------------------------


class FredApiError(RuntimeError):
    """The FRED API refused or kept failing. Never carries the API key or the request URL."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def _redact(text: str, api_key: str) -> str:
    return text.replace(api_key, "***") if api_key else text


def observation_params(
    series_id: str,
    start: dt.date,
    end: dt.date,
    realtime_start: dt.date,
    realtime_end: dt.date,
    offset: int = 0,
    limit: int = 100_000,
) -> dict[str, str]:
    """Query parameters of fred/series/observations (without the key)."""
    return {
        "series_id": series_id,
        "observation_start": start.isoformat(),
        "observation_end": end.isoformat(),
        "realtime_start": realtime_start.isoformat(),
        "realtime_end": realtime_end.isoformat(),
        "file_type": "json",
        "sort_order": "asc",
        "limit": str(limit),
        "offset": str(offset),
    }


def parse_observations(payload: dict, series_id: str) -> list[dict]:
    """The `observations` of a fred/series/observations JSON answer -> typed rows (pure)."""
    if "error_code" in payload or "error_message" in payload:
        raise FredApiError(f"FRED error {payload.get('error_code')}: {payload.get('error_message')}")
    obs = payload.get("observations")
    if not isinstance(obs, list):
        raise FredApiError("FRED answer has no observations list")
    rows = []
    for o in obs:
        problem = None
        try:
            value, ok = parse_value(str(o["value"]))
            row = {
                "series_id": series_id,
                "date": dt.date.fromisoformat(o["date"]),
                "value": value,
                "value_raw": str(o["value"]),
                "realtime_start": dt.date.fromisoformat(o["realtime_start"]),
                "realtime_end": dt.date.fromisoformat(o["realtime_end"]),
            }
            if not ok:
                problem = f"value {o['value']!r} is not a number"
        except (KeyError, TypeError, ValueError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if problem:
            raise FredApiError(f"malformed FRED observation {o!r}: {problem}")
        rows.append(row)
    return rows


@dataclass(frozen=True)
class _Answer:
    status: int | None  # None: no HTTP answer (timeout, connection refused)
    body: bytes
    retry_after: float | None
    reason: str


def _get(url: str, timeout: float) -> _Answer:
    """One GET; every failure becomes an _Answer (so nothing raised here carries the URL)."""
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "tickerlake"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # https, or loopback in tests
            return _Answer(resp.status, resp.read(), None, "ok")
    except urllib.error.HTTPError as exc:
        try:
            wait = retry_after_seconds(exc.headers.get("Retry-After")) if exc.headers else None
        except ValueError:
            wait = None
        try:
            body = exc.read() if exc.fp else b""
        except (OSError, http.client.HTTPException):
            body = b""
        return _Answer(exc.code, body, wait, f"HTTP {exc.code}")
    except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, resets, truncated bodies
        reason = getattr(exc, "reason", exc)
        return _Answer(None, b"", None, type(reason).__name__)


def fetch_fred_series(
    series_id: str,
    start: dt.date,
    end: dt.date,
    api_key: str,
    realtime_start: dt.date,
    realtime_end: dt.date,
    base_url: str = FRED_BASE_URL,
    *,
    timeout: float = 30.0,
    max_attempts: int = 5,
    backoff_seconds: float = 1.0,
    min_interval_seconds: float = 0.5,
    page_limit: int = 100_000,
    sleep: Callable[[float], None] = time.sleep,
) -> pd.DataFrame:
    """Observations [start, end] of `series_id` as known in the real-time period
    [realtime_start, realtime_end] (ALFRED vintages), from FRED's fred/series/observations.

    One row per (observation date, vintage): series_id, date, value (None = missing `.`),
    value_raw, realtime_start, realtime_end. Pages through `count` with limit/offset. Retries
    5xx, 429 (honouring Retry-After) and timeouts with exponential backoff, up to max_attempts;
    fails at once on any other 4xx. Keeps min_interval_seconds between requests (FRED allows
    120 requests a minute). The key is sent as FRED requires (query parameter `api_key`) and
    appears in no log line and no exception.
    """
    if not api_key:
        raise FredApiError("no FRED API key (set it in the Airflow connection)")
    endpoint = base_url.rstrip("/") + OBSERVATIONS_PATH
    rows: list[dict] = []
    offset = 0
    last_request = -math.inf
    while True:
        params = observation_params(series_id, start, end, realtime_start, realtime_end, offset, page_limit)
        url = endpoint + "?" + urllib.parse.urlencode({**params, "api_key": api_key})
        answer = None
        for attempt in range(1, max_attempts + 1):
            wait = min_interval_seconds - (time.monotonic() - last_request)
            if wait > 0:
                sleep(wait)
            last_request = time.monotonic()
            log.info("GET %s series_id=%s offset=%d attempt %d", endpoint, series_id, offset, attempt)
            answer = _get(url, timeout)
            retryable = answer.status is None or answer.status == 429 or answer.status >= 500
            if answer.status == 200 or not retryable:
                break
            if attempt < max_attempts:
                delay = answer.retry_after if answer.retry_after is not None else backoff_seconds * 2 ** (attempt - 1)
                log.warning("FRED %s for %s (%s); retry in %.2fs", answer.reason, series_id, endpoint, delay)
                sleep(delay)
        assert answer is not None
        if answer.status != 200:
            message = _error_message(answer.body)
            detail = f": {_redact(message, api_key)}" if message else ""
            if answer.status is None or answer.status == 429 or answer.status >= 500:
                raise FredApiError(
                    f"FRED {answer.reason} for {series_id} after {max_attempts} attempts{detail}", answer.status
                )
            raise FredApiError(f"FRED refused {series_id} ({answer.reason}){detail}", answer.status)
        page, count, problem = _parse_page(answer.body, series_id)
        if problem is not None:  # raised outside any except block: no chained exception
            raise FredApiError(_redact(problem, api_key), 200)
        rows.extend(page)
        offset += len(page)
        if not page or offset >= count:
            break
    frame = pd.DataFrame(rows, columns=["series_id", "date", "value", "value_raw", "realtime_start", "realtime_end"])
    log.info("FRED %s: %d observation vintages [%s, %s] known in [%s, %s]",
             series_id, len(frame), start, end, realtime_start, realtime_end)
    return frame


def _parse_page(body: bytes, series_id: str) -> tuple[list[dict], int, str | None]:
    """(rows, the answer's total count, problem); never raises."""
    try:
        payload = json.loads(body)
    except ValueError:
        return [], 0, f"FRED answer for {series_id} is not JSON"
    if not isinstance(payload, dict):
        return [], 0, f"FRED answer for {series_id} is not a JSON object"
    try:
        rows = parse_observations(payload, series_id)
    except FredApiError as exc:
        return [], 0, str(exc)
    try:
        count = int(payload.get("count", len(rows)))
    except (TypeError, ValueError):
        return [], 0, f"FRED answer for {series_id} has a bad count {payload.get('count')!r}"
    return rows, count, None


def _error_message(body: bytes) -> str:
    try:
        payload = json.loads(body)
    except ValueError:
        return ""
    return str(payload.get("error_message", "")) if isinstance(payload, dict) else ""


def land_fred_api(
    settings: Settings,
    series_ids: Sequence[str],
    start: dt.date,
    end: dt.date,
    api_key: str,
    realtime_start: dt.date,
    realtime_end: dt.date,
    run_id: str,
    base_url: str = FRED_BASE_URL,
    logical_ts: dt.datetime | None = None,
    **fetch_options,
) -> dict:
    """Fetch each series' vintages and replace, in bronze.macro, its fred_api rows of
    observations [start, end] whose vintage starts in [realtime_start, realtime_end]. One commit;
    all series are fetched before anything is written."""
    series_ids = sorted({s.upper() for s in series_ids})
    frames = [
        fetch_fred_series(s, start, end, api_key, realtime_start, realtime_end, base_url, **fetch_options)
        for s in series_ids
    ]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    bid = batch_id(API_SOURCE, start, end, realtime_start, realtime_end, ",".join(series_ids))
    logical = utc_timestamp(logical_ts)
    rows = [
        {**r, "source": API_SOURCE, "source_file": OBSERVATIONS_PATH.lstrip("/"), "line_number": None,
         "batch_id": bid, "run_id": run_id, "run_logical_ts": logical, "year": r["date"].year}
        for r in frame.to_dict("records")
    ]
    for r in rows:
        r["value"] = None if r["value"] is None or (isinstance(r["value"], float) and math.isnan(r["value"])) else r["value"]
    received = len(rows)
    # the same suite as the files (a vintage twice, a vintage ending before it starts are rejected)
    judged = validate_macro(pd.DataFrame(rows, columns=bronze_schema().names), run_id)
    rows = [r for r, keep in zip(rows, judged.keep, strict=True) if keep]
    quarantine = [{**q, "batch_id": bid} for q in judged.quarantine.to_dict("records")]
    predicate = (
        f"{date_predicate('date', start, end)} AND source = {sql_string_literal(API_SOURCE)} AND "
        f"{sql_in('series_id', series_ids)} AND "
        f"{date_predicate('realtime_start', realtime_start, realtime_end)}"
    )
    version = replace_rows(settings, BRONZE, pa.Table.from_pylist(rows, schema=bronze_schema()), predicate, ("year",))
    # this batch's quarantine rows (the batch id names the series, dates and vintage window)
    q_version = replace_rows(settings, QUARANTINE, pa.Table.from_pylist(quarantine, schema=quarantine_schema()),
                              f"source = {sql_string_literal(API_SOURCE)} AND batch_id = {sql_string_literal(bid)}", None)
    return {"series": len(series_ids), "received": received, "landed": len(rows),
            "quarantined": int(judged.result.rejected.sum()), "warned": int(judged.result.warned.sum()),
            "missing_values": sum(r["value"] is None for r in rows), "batch_id": bid, "bronze_version": version,
            "quarantine_version": q_version, "validation": judged.summary()}


# --- point in time --------------------------------------------------------------------------


def asof_schema() -> pa.Schema:
    return pa.schema(
        [
            ("series_id", pa.string()),
            ("date", pa.date32()),  # the session
            ("value", pa.float64()),  # the latest released observation with a value
            ("observation_date", pa.date32()),
            ("release_date", pa.date32()),  # from when this value was known
            ("vintage", pa.string()),  # "alfred": a real vintage; "file+lag": latest vintage, lagged
            ("year", pa.int32()),
        ]
    )


def known_observations(bronze: pd.DataFrame, lags: dict[str, ReleaseLag] | None = None) -> pd.DataFrame:
    """Bronze rows with a value -> (series_id, date, value, known_from, known_until, vintage).

    File rows are known from their approximate release date and forever after; API rows from
    their vintage's realtime_start to its realtime_end. Raises on file series without a lag."""
    lags = RELEASE_LAGS if lags is None else lags
    frame = bronze.loc[bronze["value"].notna()].copy()
    is_file = frame["realtime_start"].isna()
    unknown = sorted(set(frame.loc[is_file, "series_id"]) - set(lags))
    if unknown:
        raise ValueError(f"no release lag for series {unknown}: add them to altdata.macro.RELEASE_LAGS")
    known_from = [
        release_date(s, d, lags) if f else rs
        for s, d, rs, f in zip(frame["series_id"], frame["date"], frame["realtime_start"], is_file, strict=True)
    ]
    until = [None if (f or re is None or re >= _OPEN_END) else re
             for re, f in zip(frame["realtime_end"], is_file, strict=True)]
    return pd.DataFrame({
        "series_id": frame["series_id"].to_numpy(),
        "date": pd.to_datetime(pd.Series(frame["date"].to_numpy())),
        "value": frame["value"].astype("float64").to_numpy(),
        "known_from": pd.to_datetime(pd.Series(known_from)),
        "known_until": pd.to_datetime(pd.Series(until)),
        "vintage": ["file+lag" if f else "alfred" for f in is_file],
    })


def asof_panel(known: pd.DataFrame, sessions: Sequence[dt.date]) -> pd.DataFrame:
    """For each session and series: the latest observation known by that session, and its value
    as known then (pure). Sessions before a series' first release have no row."""
    columns = ["series_id", "date", "value", "observation_date", "release_date", "vintage"]
    if known.empty or not sessions:
        return pd.DataFrame(columns=columns)
    series = sorted(known["series_id"].unique())
    grid = pd.DataFrame(
        [(s, d) for d in sorted(sessions) for s in series], columns=["series_id", "session"]
    )
    grid["session"] = pd.to_datetime(grid["session"])
    grid = grid.sort_values("session", kind="stable")

    # 1. the latest observation date released by each session (first release of each observation)
    first = known.groupby(["series_id", "date"], as_index=False)["known_from"].min()
    first = first.sort_values(["series_id", "known_from", "date"])
    first["latest_obs"] = first.groupby("series_id")["date"].cummax()
    first = first.sort_values("known_from", kind="stable")
    panel = pd.merge_asof(grid, first[["series_id", "known_from", "latest_obs"]], left_on="session",
                          right_on="known_from", by="series_id", direction="backward")
    panel = panel.dropna(subset=["latest_obs"]).drop(columns="known_from")

    # 2. that observation's value in the vintage current at the session
    vintages = known.sort_values("known_from", kind="stable").rename(columns={"date": "latest_obs"})
    panel = pd.merge_asof(panel.sort_values("session", kind="stable"), vintages, left_on="session",
                          right_on="known_from", by=["series_id", "latest_obs"], direction="backward")
    current = panel["known_from"].notna() & (panel["known_until"].isna() | (panel["session"] <= panel["known_until"]))
    panel = panel.loc[current]
    out = pd.DataFrame({
        "series_id": panel["series_id"].to_numpy(),
        "date": panel["session"].dt.date.to_numpy(),
        "value": panel["value"].to_numpy(),
        "observation_date": panel["latest_obs"].dt.date.to_numpy(),
        "release_date": panel["known_from"].dt.date.to_numpy(),
        "vintage": panel["vintage"].to_numpy(),
    })
    return out.sort_values(["series_id", "date"]).reset_index(drop=True)


def build_macro_asof(
    settings: Settings, start: dt.date, end: dt.date, series: Sequence[str] | None = None
) -> dict:
    """Replace sessions [start, end] of silver.macro_asof (only `series` when given) from all of
    bronze.macro observed up to `end`. One commit."""
    try:
        sessions = sessions_between(start, end)
    except Exception as exc:  # exchange_calendars raises its own out-of-bounds errors
        raise ValueError(f"no NYSE calendar for [{start}, {end}]: {exc}") from exc
    filters: list[tuple] = [("date", "<=", end)]
    wanted = None if series is None else sorted({s.upper() for s in series})
    if wanted is not None:
        filters.append(("series_id", "in", wanted))
    table, bronze_version = read_where(settings, BRONZE, filters=filters,
                       columns=["series_id", "date", "value", "realtime_start", "realtime_end"])
    if table is None:
        raise FileNotFoundError("bronze.macro does not exist: land macro series first")
    bronze = table.to_pandas()
    known = known_observations(bronze)
    panel = asof_panel(known, sessions)
    # critical: a value from after the session (or a duplicate, a null) stops the run before the write
    checked = validate_macro_asof(panel)
    panel["year"] = [d.year for d in panel["date"]]
    predicate = date_predicate("date", start, end)
    if wanted is not None:
        predicate += f" AND {sql_in('series_id', wanted)}"
    version = replace_rows(
        settings, ASOF, pa.Table.from_pandas(panel[asof_schema().names], schema=asof_schema(), preserve_index=False),
        predicate, ("year",),
    )
    result = {"start": start.isoformat(), "end": end.isoformat(), "sessions": len(sessions),
              "series": int(panel["series_id"].nunique()), "rows": len(panel),
              "bronze_rows_read": len(bronze), "observations_with_value": len(known),
              "input_versions": {BRONZE: bronze_version}, "validation": checked.counts, "version": version}
    log.info("macro as-of [%s, %s]: %s", start, end, result)
    return result


# --- gold.macro_daily: the market-wide macro features, one row per session ---------------------
MACRO_DAILY = "gold.macro_daily"


def macro_daily_schema() -> pa.Schema:
    from tickerlake.catalog import MACRO_FEATURE_NAMES

    return pa.schema([("date", pa.date32()), ("event_ts", pa.timestamp("us", tz="UTC")),
                      *((name, pa.float64()) for name in MACRO_FEATURE_NAMES), ("year", pa.int32())])


def macro_daily_frame(asof: pd.DataFrame, sessions: Sequence[dt.date]) -> pd.DataFrame:
    """One row per session: each MACRO_<series> as silver.macro_asof (series_id, date, value) knows
    it at that session (what the feature job joins to every ticker's row), null where it has none.
    `event_ts` is the session's close in UTC, Feast's event time of a daily row."""
    from tickerlake.calendar import session_close_utc
    from tickerlake.catalog import MACRO_SERIES

    wide = (asof[asof["series_id"].isin(MACRO_SERIES)]
            .pivot(index="date", columns="series_id", values="value")
            .reindex(index=list(sessions), columns=list(MACRO_SERIES)))
    out = pd.DataFrame({"date": list(sessions),
                        "event_ts": pd.to_datetime([session_close_utc(d) for d in sessions], utc=True)})
    for series in MACRO_SERIES:
        out[f"MACRO_{series}"] = wide[series].astype("float64").to_numpy()
    out["year"] = [d.year for d in sessions]
    return out


def write_macro_daily(settings: Settings, start: dt.date, end: dt.date, asof_version: int | None = None) -> int:
    """Replace sessions [start, end] of gold.macro_daily from silver.macro_asof (at `asof_version`, the
    snapshot the feature job read, when given; all null without the table), so Feast's market-wide
    view always has its table. Returns the sessions written."""
    from tickerlake.lake import read_table, retry_on_conflict, table_exists

    sessions = sessions_between(start, end)
    columns = ["series_id", "date", "value"]
    asof = (read_table(settings, ASOF, version=asof_version, filters=[("date", ">=", start), ("date", "<=", end)],
                       columns=columns)
            if table_exists(settings, ASOF) else pd.DataFrame(columns=columns))
    table = pa.Table.from_pandas(macro_daily_frame(asof, sessions), schema=macro_daily_schema(), preserve_index=False)
    retry_on_conflict(lambda: replace_rows(settings, MACRO_DAILY, table, date_predicate("date", start, end),
                                            ("year",)))
    return len(sessions)


def ensure_macro_daily(settings: Settings) -> int:
    """Setup's upgrade step for a lake from before gold.macro_daily (or one whose daily run wrote it
    for its own session first): write the sessions of gold.features_daily that gold.macro_daily lacks,
    from the first to the last of them. Returns the sessions written."""
    import pyarrow.compute as pc

    from tickerlake.lake import read_table, table_exists

    if not table_exists(settings, "gold.features_daily"):
        return 0
    dates, _ = read_where(settings, "gold.features_daily", columns=["date"])
    feature_days = set(pc.unique(dates.column("date")).to_pylist())
    have = (set(read_table(settings, MACRO_DAILY, columns=["date"])["date"])
            if table_exists(settings, MACRO_DAILY) else set())
    missing = sorted(feature_days - have)
    if not missing:
        return 0
    return write_macro_daily(settings, missing[0], missing[-1])

