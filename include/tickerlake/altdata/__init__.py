"""Alternative data: social messages, news headlines, their daily sentiment, and macro series.

Modules:
  social     StockNet-layout tweets (tgz or drop folder) -> bronze.social, quarantine.social
  news       dated headline CSVs (CNBC, Guardian, Reuters) -> bronze.news, quarantine.news
  sentiment  Loughran-McDonald scoring, point in time by session -> silver.sentiment_daily
  macro      FRED-format files and the FRED/ALFRED API -> bronze.macro, quarantine.macro,
             and the point-in-time panel silver.macro_asof

This module holds the small helpers they share: canonical tickers, batch ids, predicates. They
all write with tickerlake.lake.replace_rows (replace the rows a predicate selects, in one commit).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Iterable

import pyarrow as pa

from tickerlake.settings import Settings
from tickerlake.sql import sql_string_literal
from tickerlake.tickers import canonical_ticker  # noqa: F401 - the one canonical spelling, re-exported

log = logging.getLogger(__name__)

MARKET_TICKER = "__MARKET__"  # the ticker of market-wide rows (items that name no ticker)


def batch_id(*parts: object) -> str:
    """Deterministic per (source, interval, ...): a rerun lands the same batch id."""
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:16]


def content_id(*parts: object) -> str:
    """A stable id for one message from its content (equal messages share it)."""
    return hashlib.sha256("\x1f".join("" if p is None else str(p) for p in parts).encode()).hexdigest()[:24]


def sql_in(column: str, values: Iterable[str]) -> str:
    vals = sorted(set(values))
    if not vals:
        return "FALSE"
    return f"{column} IN ({', '.join(sql_string_literal(v) for v in vals)})"


def read_where(
    settings: Settings, name: str, filters: list[tuple] | None = None, columns: list[str] | None = None
) -> tuple[pa.Table | None, int | None]:
    """Read a Delta table as Arrow, with the version read (lineage); (None, None) when the table
    does not exist yet. Data and version come from one snapshot."""
    from deltalake import DeltaTable

    path = settings.table_path(name)
    if not DeltaTable.is_deltatable(path):
        return None, None
    snapshot = DeltaTable(path)
    return snapshot.to_pyarrow_table(filters=filters, columns=columns), snapshot.version()


def quarantine_schema() -> pa.Schema:
    """quarantine.social / quarantine.news / quarantine.macro: one row per rejected input line.

    `date` is the date the line was judged for (null when the line carries none we can read);
    `values` is the line as received. `key` is the ticker (social) or series id (macro).
    """
    return pa.schema(
        [
            ("key", pa.string()),
            ("date", pa.date32()),
            ("rule", pa.string()),
            ("severity", pa.string()),
            ("values", pa.string()),
            ("source", pa.string()),
            ("source_file", pa.string()),
            ("line_number", pa.int64()),
            ("batch_id", pa.string()),
            ("run_id", pa.string()),
        ]
    )


def quarantine_predicate(start: dt.date, end: dt.date, source_clause: str, extra: str | None = None) -> str:
    """Rows a run of [start, end] owns in a quarantine table: its dates, plus the undated lines of
    the same inputs (every run that reads an undated line rewrites the same row)."""
    from tickerlake.lake import date_predicate

    pred = f"(({date_predicate('date', start, end)}) OR date IS NULL) AND {source_clause}"
    return f"{pred} AND {extra}" if extra else pred


def utc_timestamp(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("logical_ts must be timezone-aware")
    return value.astimezone(dt.UTC)
