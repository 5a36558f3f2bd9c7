"""The reference feature computation: `include/sql/features_reference.sql` run by DuckDB.

A second implementation of the catalogue, independent of the Spark job (it does not import
tickerlake.features): the parity test checks Spark against it, the speed benchmark times it.

    features(bars)  ->  ticker, date, one column per catalogue feature
    labels(bars)    ->  ticker, date, ret_1d, ret_5d, ret_1d_rank, ret_5d_rank

`bars` is a pandas DataFrame or an Arrow table with ticker, date, open, high, low, close,
volume (other columns are ignored), or a DuckDB FROM-expression as a string, e.g.
"delta_scan('/path/to/silver/bars_daily')" (needs DuckDB's delta extension).

Semantics (see the SQL file's header): Qlib's formulas on each ticker's session-aligned series;
a value is NULL unless every session it reads has a bar (warm-up, or a rejected row in between).
Adding a feature is adding its expression to the SQL file and its entry to tickerlake.catalog.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from tickerlake.catalog import FEATURE_NAMES

SQL_PATH = Path(__file__).resolve().parents[1] / "sql" / "features_reference.sql"
BAR_COLUMNS = ("ticker", "date", "open", "high", "low", "close", "volume")
LABEL_COLUMNS = ("ret_1d", "ret_5d", "ret_1d_rank", "ret_5d_rank")
_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


@lru_cache(maxsize=4)
def queries(path: Path = SQL_PATH) -> dict[str, str]:
    """The named statements of the SQL file (`-- name: X` opens statement X), trailing ';' removed."""
    text = Path(path).read_text()
    marks = list(_NAME.finditer(text))
    out = {}
    for k, m in enumerate(marks):
        body = text[m.end(): marks[k + 1].start() if k + 1 < len(marks) else len(text)]
        out[m.group(1)] = body.strip().rstrip(";").strip()
    missing = {"features", "labels"} - set(out)
    if missing:
        raise ValueError(f"{path}: no statement named {sorted(missing)}")
    return out


def _connect(bars: Any, con=None):
    """A DuckDB connection with `bars` as a view of exactly the bar columns."""
    import duckdb

    con = con or duckdb.connect()
    if isinstance(bars, str):
        source = bars
        if "delta_scan" in bars:
            con.execute("LOAD delta")
    else:
        table = bars if isinstance(bars, pa.Table) else pa.Table.from_pandas(bars, preserve_index=False)
        con.register("bars_input", table)
        source = "bars_input"
    prices = ", ".join(f"CAST({c} AS DOUBLE) AS {c}" for c in BAR_COLUMNS[2:])
    con.execute(f"CREATE OR REPLACE TEMP VIEW bars AS SELECT ticker, CAST(date AS DATE) AS date, {prices} FROM {source}")
    return con


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas(date_as_object=True)  # dates as datetime.date, like delta-rs reads them


def features(bars: Any, extra: Mapping[str, str] | None = None, con=None) -> pd.DataFrame:
    """Every catalogue feature per (ticker, date), sorted by ticker and date.

    extra: name -> DuckDB expression over `bars` (window functions with their own OVER), added
    as further columns: how a test plants a feature the catalogue does not have.
    """
    con = _connect(bars, con)
    sql = queries()["features"]
    if extra:
        exprs = ", ".join(f'{expr} AS "{name}"' for name, expr in extra.items())
        sql = (
            f"SELECT f.*, x.* EXCLUDE (ticker, date) FROM ({sql}) f "
            f"JOIN (SELECT ticker, date, {exprs} FROM bars) x USING (ticker, date) ORDER BY ticker, date"
        )
    table = con.execute(sql).fetch_arrow_table()
    got = [c for c in table.column_names if c not in ("ticker", "date")]
    expected = [*FEATURE_NAMES, *(extra or {})]
    if got != expected:
        raise AssertionError(f"{SQL_PATH.name} gives {got}, the catalogue (+ extra) has {expected}")
    return _to_pandas(table)


def labels(bars: Any, con=None) -> pd.DataFrame:
    """Forward-return labels and their per-session ranks, only where ret_1d is complete."""
    con = _connect(bars, con)
    table = con.execute(queries()["labels"]).fetch_arrow_table()
    return _to_pandas(table)
