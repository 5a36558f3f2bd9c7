"""The `csv` market data source: a drop folder of end-of-day vendor files.

Formats, recognised from the header (column order free, names compared case-insensitively
and without `<>`), or named with `fmt=`:

| fmt            | header                                                              | ticker from             |
|----------------|---------------------------------------------------------------------|-------------------------|
| `kaggle_sp500` | `date,open,high,low,close,volume,Name` (one or many tickers a file) | the `Name` column       |
| `stooq`        | `Date,Open,High,Low,Close,Volume,OpenInt`                           | file name `aapl.us.txt` |
| `stooq_tagged` | `<TICKER>,<PER>,<DATE>,<TIME>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<VOL>,<OPENINT>` (`<DATE>` YYYYMMDD; `<PER>` must be `D`) | the `<TICKER>` column |
| `yahoo`        | `Date,Open,High,Low,Close,Adj Close,Volume` (`null` = missing)      | file name `BRK-B.csv`   |
| `ohlcv`        | `Date,Open,High,Low,Close,Volume`                                   | file name               |

Tickers are canonical (`tickerlake.tickers.canonical_ticker`). Stooq's `OpenInt` and
`<TIME>` are read and dropped (always 0 / 000000 for daily stock bars); Yahoo's `Adj Close`
is kept as `adj_close`.

What the reader does with a defect (rule 5: a clear error, never a silent loss):

- a price or volume that is not a number (`abc`, `12,5` in quotes, `inf`, `1_000`), a date
  that is not a date, a ticker that is not a ticker: SourceFormatError naming file, line,
  column and value. Nothing is cast silently.
- a blank price or volume (or Yahoo's `null`, or `nan`): NaN, kept; validation quarantines it.
- a line with fewer or more fields than the header (a truncated last line, an unquoted
  `12,5`): SourceFormatError naming file and line.
- a header that matches no format: SourceFormatError naming the unknown column(s) (an extra
  column is an error, not kept: an unexpected column may mean the vendor changed its layout)
  and the missing ones.
- an empty (0-byte) file: SourceFormatError (there is not even a header to judge).
- a header-only file: no bars from that file, logged and listed in
  `frame.attrs["source_report"]["header_only_files"]`; if no file of the folder has a bar in
  [start, end] (empty folder, only header-only files, only other dates), NoDataError says so.
- the same (ticker, date) in two files: both rows kept, each with its own source_file;
  validation's uniqueness rule quarantines them.

Other files in the folder (hidden files, extensions other than .csv/.txt) are not read; they
are logged and listed in the report. `source_row` is the physical line number (the header
is line 1), so every bronze row can be found in the vendor file.
"""

from __future__ import annotations

import csv
import datetime as dt
import glob as globmod
import io
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from tickerlake.sources import NoDataError, SourceFormatError
from tickerlake.tickers import canonical_ticker

log = logging.getLogger(__name__)

__all__ = ["FORMATS", "NoDataError", "SourceFormatError", "detect_format", "read_bar_file", "read_drop_folder"]

DATA_SUFFIXES = (".csv", ".txt")
NUMERIC_ROLES = ("open", "high", "low", "close", "volume", "adj_close")
READ_THREADS = max(2, min(8, os.cpu_count() or 2))


@dataclass(frozen=True)
class Format:
    """A vendor layout: normalised header name -> role (`ticker`, `date`, a bar column, or `_x` = read, dropped)."""

    name: str
    columns: dict[str, str]
    date_format: str
    null_values: tuple[str, ...] = ("", "nan", "NaN")
    daily_period_column: str | None = None  # a column that must read "D"
    roles: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "roles", {role: col for col, role in self.columns.items()})

    @property
    def ticker_from_file(self) -> bool:
        return "ticker" not in self.roles


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("kaggle_sp500", {"date": "date", "open": "open", "high": "high", "low": "low", "close": "close",
                                "volume": "volume", "name": "ticker"}, "%Y-%m-%d"),
        Format("stooq", {"date": "date", "open": "open", "high": "high", "low": "low", "close": "close",
                         "volume": "volume", "openint": "_openint"}, "%Y-%m-%d"),
        Format("stooq_tagged", {"ticker": "ticker", "per": "_per", "date": "date", "time": "_time", "open": "open",
                                "high": "high", "low": "low", "close": "close", "vol": "volume",
                                "openint": "_openint"}, "%Y%m%d", daily_period_column="per"),
        Format("yahoo", {"date": "date", "open": "open", "high": "high", "low": "low", "close": "close",
                         "adj close": "adj_close", "volume": "volume"}, "%Y-%m-%d",
               null_values=("", "null", "nan", "NaN")),
        Format("ohlcv", {"date": "date", "open": "open", "high": "high", "low": "low", "close": "close",
                         "volume": "volume"}, "%Y-%m-%d"),
    )
}

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def _normalise(name: str) -> str:
    return name.strip().strip('"').strip().strip("<>").strip().lower()


def detect_format(header: list[str], fmt: str | None = None, *, where: str = "header") -> Format:
    """The format of a header (any column order); SourceFormatError naming unknown and missing columns."""
    names = [_normalise(h) for h in header]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SourceFormatError(f"{where}: duplicate column(s) {dupes} in header {header}")
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"unknown csv format {fmt!r} (known: {', '.join(FORMATS)})")
    candidates = [FORMATS[fmt]] if fmt else list(FORMATS.values())
    have = set(names)
    for candidate in candidates:
        if have == set(candidate.columns):
            return candidate
    closest = max(candidates, key=lambda f: (len(have & set(f.columns)), -len(set(f.columns) ^ have)))
    unknown = [h for h, n in zip(header, names, strict=True) if n not in closest.columns]
    missing = [c for c in closest.columns if c not in have]
    parts = []
    if unknown:
        parts.append(f"unknown column(s) {unknown}")
    if missing:
        parts.append(f"missing column(s) {missing}")
    named = f"format {fmt!r}" if fmt else f"any known format (closest: {closest.name})"
    raise SourceFormatError(f"{where}: header {header} does not match {named}: {'; '.join(parts)}")


@dataclass
class _FileResult:
    table: pa.Table
    fmt: str
    header_only: bool


def read_bar_file(path: str | Path, fmt: str | None = None) -> pd.DataFrame:
    """Every bar of one vendor file (no date filter): the source columns plus source_file, source_row."""
    result = _read_file(Path(path), fmt)
    return _to_pandas(result.table)


def read_drop_folder(
    path: str | Path,
    start: dt.date | None = None,
    end: dt.date | None = None,
    *,
    fmt: str | None = None,
) -> pd.DataFrame:
    """Bars dated in [start, end] (either bound optional) from a drop folder, one file, or a glob.

    Files are read in name order; rows keep file order. `frame.attrs["source_report"]` lists
    the files read, the header-only and ignored files, and the row counts.
    """
    files, ignored = _list_files(path)
    for name in ignored:
        log.warning("drop folder %s: not a vendor data file, not read: %s", path, name)
    if not files:
        raise NoDataError(
            f"no vendor files (*.csv, *.txt) in {path}"
            + (f"; other files present and not read: {ignored}" if ignored else "")
        )
    if len(files) > 1:
        # pyarrow parses without the GIL: a few threads keep both cores busy on many small files.
        with ThreadPoolExecutor(max_workers=min(READ_THREADS, len(files))) as pool:
            results = list(pool.map(lambda f: _read_file(f, fmt), files))
    else:
        results = [_read_file(files[0], fmt)]
    header_only = [f.name for f, r in zip(files, results, strict=True) if r.header_only]
    for name in header_only:
        log.warning("vendor file %s has a header and no rows", name)
    table = pa.concat_tables([r.table for r in results], promote_options="default")
    rows_read = table.num_rows
    first = last = None
    if rows_read:
        first, last = pc.min(table["date"]).as_py(), pc.max(table["date"]).as_py()
        mask = None
        if start is not None:
            mask = pc.greater_equal(table["date"], pa.scalar(start, pa.date32()))
        if end is not None:
            upper = pc.less_equal(table["date"], pa.scalar(end, pa.date32()))
            mask = upper if mask is None else pc.and_(mask, upper)
        if mask is not None:
            table = table.filter(mask)
    if table.num_rows == 0:
        interval = f"[{start or '-inf'}, {end or '+inf'}]"
        if rows_read:
            reason = f"{rows_read} rows in {len(files)} file(s) dated {first}..{last}, none in {interval}"
        else:
            reason = f"all {len(files)} file(s) are header-only: {header_only[:10]}"
        raise NoDataError(f"no bars for {interval} in {path}: {reason}")
    frame = _to_pandas(table)
    frame.attrs["source_report"] = {
        "path": str(path),
        "files": len(files),
        "formats": sorted({r.fmt for r in results}),
        "rows_read": rows_read,
        "rows_in_interval": len(frame),
        "header_only_files": header_only,
        "ignored_files": ignored,
    }
    log.info("read %d bars in [%s, %s] from %d vendor file(s) in %s (%d rows read)",
             len(frame), start, end, len(files), path, rows_read)
    return frame


# --- one file ---------------------------------------------------------------------------


def _list_files(path: str | Path) -> tuple[list[Path], list[str]]:
    text = str(path)
    if any(ch in text for ch in "*?["):
        candidates = [Path(p) for p in sorted(globmod.glob(text)) if Path(p).is_file()]
    else:
        p = Path(path)
        if p.is_file():
            return [p], []
        if not p.is_dir():
            raise NoDataError(f"drop folder {p} does not exist")
        candidates = sorted(c for c in p.iterdir() if c.is_file())
    files, ignored = [], []
    for c in candidates:
        if not c.name.startswith(".") and c.suffix.lower() in DATA_SUFFIXES:
            files.append(c)
        else:
            ignored.append(c.name)
    return files, ignored


def _read_file(path: Path, fmt: str | None) -> _FileResult:
    name = path.name
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if not data.strip():
        raise SourceFormatError(f"{name}: empty file (no header line)")
    newline = data.find(b"\n")
    header_bytes, body = (data, b"") if newline < 0 else (data[:newline], data[newline + 1 :])
    try:
        header_text = header_bytes.decode("utf-8").rstrip("\r")
    except UnicodeDecodeError as exc:
        raise SourceFormatError(f"{name} line 1: header is not UTF-8 text ({exc})") from exc
    header = next(csv.reader([header_text]))
    form = detect_format(header, fmt, where=f"{name} line 1")
    raw_for = {_normalise(h): h for h in header}
    if not body.strip():
        return _FileResult(_empty_table(form), form.name, header_only=True)

    column_types = {h: pa.string() for h in header}
    for norm, role in form.columns.items():
        if role in NUMERIC_ROLES:
            column_types[raw_for[norm]] = pa.float64()
    try:
        raw = pacsv.read_csv(
            io.BytesIO(body),
            read_options=pacsv.ReadOptions(column_names=header, use_threads=False),
            parse_options=pacsv.ParseOptions(delimiter=",", newlines_in_values=False, ignore_empty_lines=True),
            convert_options=pacsv.ConvertOptions(
                column_types=column_types, null_values=list(form.null_values),
                strings_can_be_null=False, quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        _diagnose(name, data, header, form)
        raise SourceFormatError(f"{name}: {exc}") from exc

    lines = _line_numbers(body)
    if len(lines) != raw.num_rows:
        raise SourceFormatError(
            f"{name}: {raw.num_rows} rows parsed but {len(lines)} non-empty lines (quoted line breaks?)"
        )

    def column(role: str) -> pa.ChunkedArray:
        return raw[raw_for[form.roles[role]]]

    def fail(role: str, index: int, why: str) -> SourceFormatError:
        col = raw_for[form.roles[role]]
        value = raw[col][index].as_py()
        return SourceFormatError(f"{name} line {int(lines[index])} column {col!r}: {value!r} {why}")

    if form.daily_period_column:
        period = raw[raw_for[form.daily_period_column]]
        bad = pc.not_equal(period, "D")
        if pc.any(bad).as_py():
            i = _first_true(bad)
            col = raw_for[form.daily_period_column]
            raise SourceFormatError(
                f"{name} line {int(lines[i])} column {col!r}: period {period[i].as_py()!r} is not daily ('D'); "
                "this source reads daily bars"
            )

    out: dict[str, pa.Array | pa.ChunkedArray] = {}
    if form.ticker_from_file:
        try:
            ticker = canonical_ticker(name)
        except ValueError as exc:
            raise SourceFormatError(f"{name}: no ticker in the file name: {exc}") from exc
        out["ticker"] = pa.array(np.full(raw.num_rows, ticker, dtype=object), pa.string())
    else:
        out["ticker"] = _canonical_column(column("ticker"), lambda i, why: fail("ticker", i, why))
    out["date"] = _parse_dates(column("date"), form.date_format, lambda i, why: fail("date", i, why))
    for role in NUMERIC_ROLES:
        if role not in form.roles:
            continue
        values = column(role)
        infinite = pc.is_inf(values)
        if pc.any(infinite).as_py():
            raise fail(role, _first_true(infinite), "is not a finite number")
        out[role] = values
    out["source_file"] = pa.array(np.full(raw.num_rows, name, dtype=object), pa.string())
    out["source_row"] = pa.array(lines, pa.int64())
    return _FileResult(pa.table(out), form.name, header_only=False)


def _canonical_column(raw: pa.ChunkedArray, fail) -> pa.Array:
    encoded = pc.dictionary_encode(raw).combine_chunks()
    mapped = []
    for i, value in enumerate(encoded.dictionary.to_pylist()):
        try:
            mapped.append(canonical_ticker(value))
        except ValueError as exc:
            first = _first_true(pc.equal(encoded.indices, i))
            raise fail(first, f"is not a ticker ({exc})") from exc
    return pc.take(pa.array(mapped, pa.string()), encoded.indices)


def _parse_dates(raw: pa.ChunkedArray, date_format: str, fail) -> pa.Array:
    try:
        return pc.cast(pc.strptime(raw, format=date_format, unit="s"), pa.date32())
    except pa.ArrowInvalid:
        pass
    example = dt.date(2024, 1, 31).strftime(date_format)
    for i, value in enumerate(raw.to_pylist()):
        try:
            dt.datetime.strptime(value, date_format)  # noqa: DTZ007 - a calendar date, no time zone
        except (TypeError, ValueError):
            raise fail(i, f"is not a date like {example}") from None
    raise AssertionError("unreachable: pyarrow rejected a date that Python accepts")


def _first_true(mask: pa.ChunkedArray | pa.Array) -> int:
    values = mask.to_numpy(zero_copy_only=False) if isinstance(mask, pa.Array) else np.concatenate(
        [c.to_numpy(zero_copy_only=False) for c in mask.chunks]
    )
    return int(np.flatnonzero(values)[0])


def _line_numbers(body: bytes) -> np.ndarray:
    """Physical line numbers (header = 1) of the non-empty lines of `body`, as pyarrow reads them."""
    if b"\n\n" not in body and b"\n\r\n" not in body and not body.startswith((b"\n", b"\r\n")):
        n = body.count(b"\n") + (0 if body.endswith(b"\n") else 1)
        return np.arange(2, n + 2, dtype=np.int64)
    arr = np.frombuffer(body, np.uint8)
    breaks = np.flatnonzero(arr == 10)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [len(arr)]])
    lengths = ends - starts
    has_cr = np.zeros(len(lengths), dtype=bool)
    nonzero = lengths > 0
    has_cr[nonzero] = arr[ends[nonzero] - 1] == 13
    non_empty = (lengths - has_cr) > 0
    return (np.flatnonzero(non_empty) + 2).astype(np.int64)


def _diagnose(name: str, data: bytes, header: list[str], form: Format) -> None:
    """Find the first bad line the fast reader refused, and raise a SourceFormatError naming it."""
    text = data.decode("utf-8", errors="replace")
    lines = [line.rstrip("\r") for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    numeric = {h for h in header if form.columns.get(_normalise(h)) in NUMERIC_ROLES}
    nulls = set(form.null_values)
    for number, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        fields = next(csv.reader([line]))
        if len(fields) != len(header):
            hint = " (truncated line?)" if len(fields) < len(header) and number == len(lines) else ""
            raise SourceFormatError(
                f"{name} line {number}: expected {len(header)} fields {header}, got {len(fields)}{hint}: {line!r}"
            )
        for col, value in zip(header, fields, strict=True):
            if col in numeric and value not in nulls and not _NUMBER.fullmatch(value.strip()):
                raise SourceFormatError(f"{name} line {number} column {col!r}: {value!r} is not a number")
        if "\ufffd" in line:
            raise SourceFormatError(f"{name} line {number}: not UTF-8 text: {line!r}")


def _empty_table(form: Format) -> pa.Table:
    schema = [("ticker", pa.string()), ("date", pa.date32())]
    schema += [(role, pa.float64()) for role in NUMERIC_ROLES if role in form.roles]
    schema += [("source_file", pa.string()), ("source_row", pa.int64())]
    return pa.schema(schema).empty_table()


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    order = ["ticker", "date", "open", "high", "low", "close", "volume", "adj_close", "source_file", "source_row"]
    table = table.select([c for c in order if c in table.column_names])
    return table.to_pandas(date_as_object=True)
