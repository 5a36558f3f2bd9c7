"""Social messages (StockNet layout) into bronze.social, malformed lines into quarantine.social.

Input: the StockNet tweets archive (`tweets_preprocessed.tgz`, read as a stream, nothing is
extracted) or a drop folder with the same layout: one file per ticker and day at
`.../<TICKER>/<YYYY-MM-DD>`, one JSON object per line with `text` (a list of tokens, or a
string), `created_at` (Twitter's `Wed Jan 01 03:59:03 +0000 2014`) and `user_id_str`.

The file's date is NOT the publication date (StockNet files a tweet under a trading day up to
five days after it was written); `created_at` is. So the interval a run owns is the UTC date
of `created_at`, and every file is read (a message can sit in a file named days later).
A line whose `created_at` cannot be read is judged by its file's date; one in a file whose
name is no date has no date (see `altdata.quarantine_predicate`).

Every line of the interval is either landed or quarantined with its reason:
received = landed + quarantined. A line is quarantined by the parser (its rule says what could
not be read) or, parsed, by the Great Expectations suite `social.rows` (suites.social_rules):
a rejecting rule keeps it out of bronze.social, so out of the sentiment built from it; a
warning rule lands it and adds a `warn` row to quarantine.social.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa

from tickerlake.altdata import (
    batch_id,
    canonical_ticker,
    content_id,
    quarantine_predicate,
    quarantine_schema,
    sql_in,
    utc_timestamp,
)
from tickerlake.lake import date_predicate, replace_rows
from tickerlake.settings import Settings
from tickerlake.sql import sql_string_literal
from tickerlake.suites import validate_social

log = logging.getLogger(__name__)

SOURCE = "stocknet"
BRONZE = "bronze.social"
QUARANTINE = "quarantine.social"
_CREATED_AT_FORMAT = "%a %b %d %H:%M:%S %z %Y"
_DATE_NAME = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ARCHIVE_SUFFIXES = (".tgz", ".tar.gz", ".tar")


# The fields of a parsed message (collect_interval's records), before the landing's lineage.
MESSAGE_COLUMNS = ["message_id", "ticker", "ticker_raw", "created_at", "created_at_raw", "date", "text", "user_id",
                   "source", "source_file", "line_number"]


def bronze_schema() -> pa.Schema:
    return pa.schema(
        [
            ("message_id", pa.string()),  # content hash: ticker, created_at, user, text
            ("ticker", pa.string()),  # canonical
            ("ticker_raw", pa.string()),  # as in the path
            ("created_at", pa.timestamp("us", tz="UTC")),
            ("created_at_raw", pa.string()),
            ("date", pa.date32()),  # UTC date of created_at: the interval key
            ("text", pa.string()),  # tokens joined with single spaces
            ("user_id", pa.string()),
            ("source", pa.string()),
            ("source_file", pa.string()),
            ("line_number", pa.int64()),
            ("batch_id", pa.string()),
            ("run_id", pa.string()),
            ("run_logical_ts", pa.timestamp("us", tz="UTC")),
            ("year", pa.int32()),
        ]
    )


# --- pure parsing ---------------------------------------------------------------------------


def parse_created_at(raw: str) -> dt.datetime:
    """Twitter's `Wed Jan 01 03:59:03 +0000 2014` -> aware UTC datetime (ValueError if not)."""
    return dt.datetime.strptime(raw.strip(), _CREATED_AT_FORMAT).astimezone(dt.UTC)


def parse_file_date(name: str) -> dt.date | None:
    if not _DATE_NAME.match(name):
        return None
    try:
        return dt.date.fromisoformat(name)
    except ValueError:
        return None


@dataclass(frozen=True)
class ParsedLine:
    """One input line: a message (`record`) or the reason it was rejected."""

    record: dict | None
    reason: str | None
    created_at: dt.datetime | None = None


def parse_message_line(raw: bytes | str) -> ParsedLine:
    """Parse one JSON line; never raises. Reasons: empty_line, invalid_encoding, invalid_json,
    not_an_object, missing_created_at, bad_created_at, missing_text, bad_text, bad_user_id."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            return ParsedLine(None, "invalid_encoding")
    if not raw.strip():
        return ParsedLine(None, "empty_line")
    try:
        obj = json.loads(raw)
    except ValueError:
        return ParsedLine(None, "invalid_json")
    if not isinstance(obj, dict):
        return ParsedLine(None, "not_an_object")
    created_raw = obj.get("created_at")
    if created_raw is None:
        return ParsedLine(None, "missing_created_at")
    try:
        created = parse_created_at(str(created_raw))
    except ValueError:
        return ParsedLine(None, "bad_created_at")
    text = obj.get("text")
    if text is None:
        return ParsedLine(None, "missing_text", created)
    if isinstance(text, list) and all(isinstance(t, str) for t in text):
        joined = " ".join(text)
    elif isinstance(text, str):
        joined = text
    else:
        return ParsedLine(None, "bad_text", created)
    if not joined.strip():
        return ParsedLine(None, "missing_text", created)
    user = obj.get("user_id_str")
    if user is not None and not isinstance(user, str | int):
        return ParsedLine(None, "bad_user_id", created)
    record = {
        "created_at": created,
        "created_at_raw": str(created_raw),
        "text": joined,
        "user_id": None if user is None else str(user),
    }
    return ParsedLine(record, None, created)


# --- reading the layout (I/O) ---------------------------------------------------------------


@dataclass(frozen=True)
class SourceFile:
    path: str  # member path inside the archive, or the path relative to the drop folder
    ticker_raw: str
    file_date: dt.date | None
    lines: Iterable[bytes]


def _split_layout(path: str) -> tuple[str, dt.date | None]:
    parts = path.replace("\\", "/").rstrip("/").split("/")
    ticker = parts[-2] if len(parts) >= 2 else ""
    return ticker, parse_file_date(parts[-1])


def _wanted(ticker_raw: str, tickers: set[str] | None) -> bool:
    return tickers is None or canonical_ticker(ticker_raw) in tickers


def _iter_archive(archive: Path, tickers: set[str] | None, prefix: str = "") -> Iterator[SourceFile]:
    mode = "r|*"  # a stream: members are read in order, nothing is extracted
    with tarfile.open(archive, mode) as tar:
        for member in tar:
            if not member.isfile():
                continue
            ticker_raw, file_date = _split_layout(member.name)
            if not _wanted(ticker_raw, tickers):
                continue
            handle = tar.extractfile(member)
            if handle is None:
                continue
            yield SourceFile(prefix + member.name, ticker_raw, file_date, handle)


def iter_source_files(source_path: str | os.PathLike[str], tickers: Sequence[str] | None = None) -> Iterator[SourceFile]:
    """Every message file under `source_path` (an archive, or a folder of files and archives)."""
    root = Path(source_path)
    wanted = None if tickers is None else {canonical_ticker(t) for t in tickers}
    if root.is_file():
        yield from _iter_archive(root, wanted)
        return
    if not root.is_dir():
        raise FileNotFoundError(f"social source {root} does not exist")
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        rel = path.relative_to(root).as_posix()
        if path.name.endswith(_ARCHIVE_SUFFIXES):
            yield from _iter_archive(path, wanted, prefix=rel + "!")
            continue
        ticker_raw, file_date = _split_layout(rel)
        if not _wanted(ticker_raw, wanted):
            continue
        with path.open("rb") as handle:
            yield SourceFile(rel, ticker_raw, file_date, handle)


# --- one interval ---------------------------------------------------------------------------


@dataclass
class SocialBatch:
    messages: list[dict] = field(default_factory=list)
    quarantine: list[dict] = field(default_factory=list)
    lines_read: int = 0
    outside_interval: int = 0
    files_read: int = 0
    tickers: set[str] = field(default_factory=set)


def collect_interval(
    files: Iterable[SourceFile], start: dt.date, end: dt.date, source: str = SOURCE
) -> SocialBatch:
    """Split the lines of `files` into the interval's messages and quarantine rows (pure apart
    from reading the iterables); lines dated outside [start, end] are counted, not kept."""
    batch = SocialBatch()
    for f in files:
        batch.files_read += 1
        ticker = canonical_ticker(f.ticker_raw) if f.ticker_raw else None
        for number, raw in enumerate(f.lines, start=1):
            batch.lines_read += 1
            raw = raw.rstrip(b"\r\n") if isinstance(raw, bytes) else raw.rstrip("\r\n")
            parsed = parse_message_line(raw)
            when = parsed.created_at.date() if parsed.created_at is not None else f.file_date
            if when is None or not ticker:
                # No date to judge the line by, or no ticker in the path: quarantined by every run.
                reason = parsed.reason or ("no_ticker_in_path" if not ticker else "no_date_in_path")
                batch.quarantine.append(_quarantine_row(ticker, None, reason, raw, source, f, number))
                continue
            if not start <= when <= end:
                batch.outside_interval += 1
                continue
            batch.tickers.add(ticker)
            if parsed.record is None:
                batch.quarantine.append(_quarantine_row(ticker, when, parsed.reason, raw, source, f, number))
                continue
            rec = parsed.record
            batch.messages.append(
                {
                    "message_id": content_id(ticker, rec["created_at"].isoformat(), rec["user_id"], rec["text"]),
                    "ticker": ticker,
                    "ticker_raw": f.ticker_raw,
                    "created_at": rec["created_at"],
                    "created_at_raw": rec["created_at_raw"],
                    "date": when,
                    "text": rec["text"],
                    "user_id": rec["user_id"],
                    "source": source,
                    "source_file": f.path,
                    "line_number": number,
                }
            )
    return batch


def _quarantine_row(ticker, when, reason, raw, source, f: SourceFile, number: int) -> dict:
    values = raw.decode("utf-8", errors="backslashreplace") if isinstance(raw, bytes) else raw
    return {
        "key": ticker,
        "date": when,
        "rule": reason,
        "severity": "reject",
        "values": values,
        "source": source,
        "source_file": f.path,
        "line_number": number,
    }


def land_social(
    settings: Settings,
    source_path: str | os.PathLike[str],
    start: dt.date,
    end: dt.date,
    run_id: str,
    tickers: Sequence[str] | None = None,
    logical_ts: dt.datetime | None = None,
    source: str = SOURCE,
) -> dict:
    """Replace [start, end] (UTC date of created_at) of bronze.social and quarantine.social for
    `source` (and only `tickers`, when given) with what `source_path` holds. One commit per table.

    Returns counts that reconcile: received == landed + quarantined (lines of the interval),
    plus quarantined_undated (lines with no date at all, rewritten by every run).
    """
    if end < start:
        raise ValueError(f"interval end {end} is before start {start}")
    wanted = None if tickers is None else sorted({canonical_ticker(t) for t in tickers})
    bid = batch_id(source, start, end, ",".join(wanted or ["*"]))
    batch = collect_interval(iter_source_files(source_path, wanted), start, end, source)
    logical = utc_timestamp(logical_ts)

    # Great Expectations judges the parsed messages before they land: rejected ones go to
    # quarantine with their rule instead of bronze, warned ones land and are flagged there too.
    judged = validate_social(pd.DataFrame(batch.messages, columns=MESSAGE_COLUMNS), run_id)
    messages = [
        {**m, "batch_id": bid, "run_id": run_id, "run_logical_ts": logical, "year": m["date"].year}
        for m, keep in zip(batch.messages, judged.keep, strict=True) if keep
    ]
    quarantine = [{**q, "batch_id": bid, "run_id": run_id} for q in batch.quarantine]
    quarantine += [{**q, "batch_id": bid} for q in judged.quarantine.to_dict("records")]
    rejected = int(judged.result.rejected.sum())

    source_clause = f"source = {sql_string_literal(source)}"
    ticker_clause = None if wanted is None else sql_in("ticker", wanted)
    bronze_pred = f"{date_predicate('date', start, end)} AND {source_clause}"
    if ticker_clause:
        bronze_pred += f" AND {ticker_clause}"
    q_extra = None if wanted is None else sql_in("key", wanted)

    bronze_version = replace_rows(
        settings, BRONZE, pa.Table.from_pylist(messages, schema=bronze_schema()), bronze_pred, ("year",)
    )
    q_version = replace_rows(
        settings,
        QUARANTINE,
        pa.Table.from_pylist(quarantine, schema=quarantine_schema()),
        quarantine_predicate(start, end, source_clause, q_extra),
        None,
    )
    dated_q = sum(1 for q in batch.quarantine if q["date"] is not None)
    by_rule: dict[str, int] = {}
    for q in quarantine:
        if q["severity"] == "reject":
            by_rule[q["rule"]] = by_rule.get(q["rule"], 0) + 1
    result = {
        "source": source,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "batch_id": bid,
        "received": len(messages) + dated_q + rejected,
        "landed": len(messages),
        "quarantined": dated_q + rejected,  # lines: a line rejected by two rules counts once
        "quarantined_undated": len(batch.quarantine) - dated_q,
        "warned": int(judged.result.warned.sum()),  # landed, and flagged in quarantine
        "quarantine_by_rule": dict(sorted(by_rule.items())),  # reject rows by rule (parse and GE)
        "validation": judged.summary(),  # the GE suite's counts by rule
        "lines_read": batch.lines_read,
        "lines_outside_interval": batch.outside_interval,
        "files_read": batch.files_read,
        "tickers": len(batch.tickers),
        "bronze_version": bronze_version,
        "quarantine_version": q_version,
    }
    log.info("social %s [%s, %s]: %s", source, start, end, result)
    return result
