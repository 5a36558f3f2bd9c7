"""Market news headlines into bronze.news (market-wide: ticker null), bad lines into quarantine.news.

Input: a folder of CSV files `<publisher>_headlines.csv` (CNBC, Guardian, Reuters), columns
`date,headlines`; a header row is optional (only CNBC's file has one). A header, when present,
names the columns, so the vendors' original exports (`Headlines,Time,Description` for CNBC and
Reuters, `Time,Headlines` for the Guardian) are read too.

Items are dated by day only: `date` is the publication day as the vendor wrote it, parsed from
ISO `2020-07-17` or the vendors' own forms (`7:51  PM ET Fri, 17 July 2020`, `18-Jul-20`,
`Jul 18 2020`). The time of day, where a vendor gives one, is not used: a day-dated item counts
for the next session after its day (see sentiment.py), which is safe whatever the hour.

received = landed + quarantined for the interval's lines; lines whose date cannot be read at
all are quarantined (undated) by every run over the same files. Parsed lines are then judged by
the Great Expectations suite `news.rows` (suites.news_rules): a rejecting rule quarantines the
line instead of landing it, a warning rule lands it and flags it in quarantine.news.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa

from tickerlake.altdata import (
    batch_id,
    content_id,
    quarantine_predicate,
    quarantine_schema,
    sql_in,
    utc_timestamp,
)
from tickerlake.lake import date_predicate, replace_rows
from tickerlake.settings import Settings
from tickerlake.suites import validate_news

log = logging.getLogger(__name__)

BRONZE = "bronze.news"
QUARANTINE = "quarantine.news"
_DATE_HEADERS = ("date", "time", "published", "published_at")
_TEXT_HEADERS = ("headlines", "headline", "title")

_MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1)}
_ISO = re.compile(r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})\s*$")
# `17 July 2020`, `Fri, 17 July 2020`, `7:51  PM ET Fri, 17 July 2020`
_DAY_MONTH_YEAR = re.compile(r"(\d{1,2})\s+([A-Za-z]{3,9})\.?,?\s+(\d{4})\s*$")
# `Jul 18 2020`, `July 18, 2020`
_MONTH_DAY_YEAR = re.compile(r"^\s*([A-Za-z]{3,9})\.?\s+(\d{1,2}),?\s+(\d{4})\s*$")
# `18-Jul-20`, `18-Jul-2020`
_DAY_MON_YY = re.compile(r"^\s*(\d{1,2})-([A-Za-z]{3,9})-(\d{2}|\d{4})\s*$")


def bronze_schema() -> pa.Schema:
    return pa.schema(
        [
            ("news_id", pa.string()),  # content hash: publisher, day, headline
            ("ticker", pa.string()),  # null: market-wide
            ("date", pa.date32()),  # publication day (no time): the interval key
            ("date_raw", pa.string()),
            ("headline", pa.string()),
            ("source", pa.string()),  # publisher: cnbc, guardian, reuters, ...
            ("source_file", pa.string()),
            ("line_number", pa.int64()),
            ("batch_id", pa.string()),
            ("run_id", pa.string()),
            ("run_logical_ts", pa.timestamp("us", tz="UTC")),
            ("year", pa.int32()),
        ]
    )


# --- pure parsing ---------------------------------------------------------------------------


def _month(name: str) -> int | None:
    return _MONTHS.get(name[:3].lower())


def _safe_date(year: int, month: int | None, day: int) -> dt.date | None:
    if month is None:
        return None
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def parse_news_date(raw: str) -> dt.date | None:
    """The publication day of a vendor date string, or None when it is not a date."""
    if raw is None:
        return None
    s = " ".join(str(raw).split())
    if m := _ISO.match(s):
        return _safe_date(int(m[1]), int(m[2]), int(m[3]))
    if m := _DAY_MON_YY.match(s):
        year = int(m[3]) + (2000 if len(m[3]) == 2 else 0)
        return _safe_date(year, _month(m[2]), int(m[1]))
    if m := _MONTH_DAY_YEAR.match(s):
        return _safe_date(int(m[3]), _month(m[1]), int(m[2]))
    if m := _DAY_MONTH_YEAR.search(s):
        return _safe_date(int(m[3]), _month(m[2]), int(m[1]))
    return None


def publisher_of(path: str | os.PathLike[str]) -> str:
    """`cnbc_headlines.csv` -> `cnbc`."""
    stem = Path(path).name.split(".")[0].lower()
    return stem.removesuffix("_headlines") or stem


def _is_header(row: list[str]) -> bool:
    cells = [c.strip().lower() for c in row]
    return any(c in _DATE_HEADERS for c in cells) and any(c in _TEXT_HEADERS for c in cells)


def _columns(header: list[str] | None) -> tuple[int, int]:
    if header is None:
        return 0, 1  # date,headlines
    cells = [c.strip().lower() for c in header]
    date_col = next(i for i, c in enumerate(cells) if c in _DATE_HEADERS)
    text_col = next(i for i, c in enumerate(cells) if c in _TEXT_HEADERS)
    return date_col, text_col


@dataclass
class NewsFile:
    rows: list[dict] = field(default_factory=list)  # date, date_raw, headline, line_number
    quarantine: list[dict] = field(default_factory=list)  # date, rule, values, line_number
    header: bool = False
    lines: int = 0


def parse_news_csv(text: str) -> NewsFile:
    """Split one headlines file into dated rows and quarantine rows (pure)."""
    out = NewsFile()
    raw_lines = [line.rstrip("\r") for line in text.split("\n")]
    reader = csv.reader(io.StringIO(text))
    date_col, text_col = 0, 1
    first = True
    last_line = 0
    for row in reader:
        number = reader.line_num  # the physical line the record ends on
        start_line = last_line + 1
        last_line = number
        raw = "\n".join(raw_lines[start_line - 1 : number])
        if first:
            first = False
            if _is_header(row):
                out.header = True
                date_col, text_col = _columns(row)
                continue
        out.lines += 1
        if not row or all(not c.strip() for c in row):
            out.quarantine.append({"date": None, "rule": "empty_line", "values": raw, "line_number": start_line})
            continue
        if len(row) <= max(date_col, text_col):
            out.quarantine.append({"date": None, "rule": "missing_columns", "values": raw, "line_number": start_line})
            continue
        date_raw, headline = row[date_col], row[text_col].strip()
        day = parse_news_date(date_raw)
        if day is None:
            out.quarantine.append({"date": None, "rule": "bad_date", "values": raw, "line_number": start_line})
            continue
        if not headline:
            out.quarantine.append({"date": day, "rule": "empty_headline", "values": raw, "line_number": start_line})
            continue
        out.rows.append({"date": day, "date_raw": date_raw, "headline": headline, "line_number": start_line})
    return out


# --- landing (I/O) --------------------------------------------------------------------------


def news_files(source_path: str | os.PathLike[str]) -> list[Path]:
    root = Path(source_path)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"news source {root} does not exist")
    return sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() == ".csv")


def land_news(
    settings: Settings,
    source_path: str | os.PathLike[str],
    start: dt.date,
    end: dt.date,
    run_id: str,
    logical_ts: dt.datetime | None = None,
) -> dict:
    """Replace [start, end] (publication day) of bronze.news and quarantine.news for the
    publishers found under `source_path`. One commit per table.

    Returns counts per publisher and in total; received == landed + quarantined.
    """
    if end < start:
        raise ValueError(f"interval end {end} is before start {start}")
    files = news_files(source_path)
    if not files:
        raise FileNotFoundError(f"no headline CSV files under {source_path}")
    publishers = sorted({publisher_of(f) for f in files})
    bid = batch_id("news", start, end, ",".join(publishers))
    logical = utc_timestamp(logical_ts)
    rows: list[dict] = []
    quarantine: list[dict] = []
    per_publisher: dict[str, dict[str, int]] = {}
    for path in files:
        publisher = publisher_of(path)
        # utf-8-sig: a byte-order mark is not part of the first date; undecodable bytes are kept
        # visibly (U+FFFD) rather than crashing the run.
        parsed = parse_news_csv(path.read_bytes().decode("utf-8-sig", errors="replace"))
        counts = per_publisher.setdefault(publisher, {"received": 0, "landed": 0, "quarantined": 0,
                                                      "quarantined_undated": 0, "outside_interval": 0})
        for r in parsed.rows:
            if not start <= r["date"] <= end:
                counts["outside_interval"] += 1
                continue
            rows.append(
                {
                    "news_id": content_id(publisher, r["date"].isoformat(), r["headline"]),
                    "ticker": None,
                    "date": r["date"],
                    "date_raw": r["date_raw"],
                    "headline": r["headline"],
                    "source": publisher,
                    "source_file": path.name,
                    "line_number": r["line_number"],
                    "batch_id": bid,
                    "run_id": run_id,
                    "run_logical_ts": logical,
                    "year": r["date"].year,
                }
            )
            counts["received"] += 1
            counts["landed"] += 1
        for q in parsed.quarantine:
            if q["date"] is not None and not start <= q["date"] <= end:
                counts["outside_interval"] += 1
                continue
            quarantine.append(
                {"key": None, "date": q["date"], "rule": q["rule"], "severity": "reject", "values": q["values"],
                 "source": publisher, "source_file": path.name, "line_number": q["line_number"],
                 "batch_id": bid, "run_id": run_id}
            )
            if q["date"] is None:
                counts["quarantined_undated"] += 1
            else:
                counts["received"] += 1
                counts["quarantined"] += 1

    # Great Expectations judges the parsed headlines before they land: a rejected one goes to
    # quarantine with its rule instead of bronze (and so never reaches sentiment), a warned one
    # lands and is flagged in quarantine too.
    judged = validate_news(pd.DataFrame(rows, columns=bronze_schema().names), run_id)
    for r, keep in zip(rows, judged.keep, strict=True):
        if not keep:
            per_publisher[r["source"]]["landed"] -= 1
            per_publisher[r["source"]]["quarantined"] += 1
    rows = [r for r, keep in zip(rows, judged.keep, strict=True) if keep]
    quarantine += [{**q, "key": None, "batch_id": bid} for q in judged.quarantine.to_dict("records")]

    source_clause = sql_in("source", publishers)
    bronze_version = replace_rows(
        settings, BRONZE, pa.Table.from_pylist(rows, schema=bronze_schema()),
        f"{date_predicate('date', start, end)} AND {source_clause}", ("year",),
    )
    q_version = replace_rows(
        settings, QUARANTINE, pa.Table.from_pylist(quarantine, schema=quarantine_schema()),
        quarantine_predicate(start, end, source_clause), None,
    )
    totals = {k: sum(c[k] for c in per_publisher.values()) for k in next(iter(per_publisher.values()))}
    result = {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "batch_id": bid,
        **totals,
        "by_publisher": per_publisher,
        "warned": int(judged.result.warned.sum()),  # landed, and flagged in quarantine
        "validation": judged.summary(),  # the GE suite's counts by rule
        "bronze_version": bronze_version,
        "quarantine_version": q_version,
    }
    log.info("news [%s, %s]: %s", start, end, result)
    return result

