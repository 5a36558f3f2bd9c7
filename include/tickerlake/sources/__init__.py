"""Market data sources: vendor files (`csv`) and one end-of-day vendor API (`http`, Tiingo).

Every source returns the same frame, one row per bar as received:

    ticker (canonical, see tickerlake.tickers), date (datetime.date), open, high, low, close,
    volume (float64; a blank or null value is NaN, kept so that validation quarantines it),
    source_file (file name, or `tiingo:<TICKER>`), source_row (line number in the file, 1-based,
    the header being line 1; or the index in the vendor's JSON list, 0-based)

plus, from `fetch_bars`, the optional vendor columns `adj_close`, `div_cash` and
`split_factor` (NaN where the source has none), so the frame's schema is the same for every
source. Nothing is deduplicated or repaired here: that is validation's job. Defects in the
input raise a `SourceError` subclass that names the file and line (or the ticker and HTTP
status); nothing is skipped silently. The synthetic source lives in `tickerlake.ingest`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

BAR_COLUMNS = ("ticker", "date", "open", "high", "low", "close", "volume")
LINEAGE_COLUMNS = ("source_file", "source_row")
EXTRA_COLUMNS = ("adj_close", "div_cash", "split_factor")
OUTPUT_COLUMNS = (*BAR_COLUMNS, *LINEAGE_COLUMNS, *EXTRA_COLUMNS)
SOURCES = ("csv", "http")


class SourceError(RuntimeError):
    """A market data source could not deliver its bars; the message says where and why."""


class SourceFormatError(SourceError, ValueError):
    """A vendor file or response is malformed (names the file, line and column where it can)."""


class NoDataError(SourceError):
    """The source holds no bar for the requested interval (empty drop folder, header-only files...)."""


class VendorError(SourceError):
    """The vendor API refused the request or kept failing after the retries."""


def fetch_bars(
    source: str,
    start: dt.date | str,
    end: dt.date | str,
    *,
    path: str | Path | None = None,
    tickers: list[str] | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    fmt: str | None = None,
    requests_per_second: float | None = None,
) -> pd.DataFrame:
    """Bars of [start, end] from `source`: `csv` reads the drop folder (or file, or glob) `path`,
    `http` asks Tiingo for each of `tickers` with `api_key`. Columns: OUTPUT_COLUMNS.

    `fmt` (csv): a format name from `csv_files.FORMATS`, or None / "auto" to detect each file's
    from its header. `base_url` (http): the vendor's address (default https://api.tiingo.com).
    """
    start_d, end_d = _to_date(start), _to_date(end)
    if end_d < start_d:
        raise ValueError(f"empty interval: end {end_d} is before start {start_d}")
    if source == "csv":
        from tickerlake.sources.csv_files import read_drop_folder

        if path is None:
            raise ValueError("source 'csv' needs path (the drop folder)")
        frame = read_drop_folder(path, start_d, end_d, fmt=None if fmt in (None, "", "auto") else fmt)
    elif source == "http":
        from tickerlake.sources.http_vendor import DEFAULT_REQUESTS_PER_SECOND, fetch_tiingo_bars

        if not tickers:
            raise ValueError("source 'http' needs the list of tickers to request")
        if not api_key:
            raise ValueError("source 'http' needs an API key (Airflow connection tiingo_default, password)")
        frame = fetch_tiingo_bars(
            tickers, start_d, end_d, api_key, base_url=base_url,
            requests_per_second=requests_per_second or DEFAULT_REQUESTS_PER_SECOND,
        )
    else:
        raise ValueError(f"unknown market data source {source!r} (this module serves: {', '.join(SOURCES)})")
    return with_output_columns(frame)


def with_output_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with exactly OUTPUT_COLUMNS, the vendor extras NaN where the source has none."""
    out = frame.copy()
    for col in EXTRA_COLUMNS:
        if col not in out.columns:
            out[col] = float("nan")
    unknown = [c for c in out.columns if c not in OUTPUT_COLUMNS]
    if unknown:
        raise ValueError(f"source frame has unexpected columns {unknown}")
    out = out[list(OUTPUT_COLUMNS)]
    return out.astype({c: "float64" for c in EXTRA_COLUMNS})


def _to_date(value: dt.date | dt.datetime | str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))
