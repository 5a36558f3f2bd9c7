"""The reference feature computation: `include/sql/features_reference.sql` run by DuckDB.

A second implementation of the catalogue, independent of the Spark job (it does not import
tickerlake.features): the parity test checks Spark against it, the speed benchmark times it.

    features(bars, sentiment=, macro=)  ->  ticker, date, one column per catalogue feature
    labels(bars)                        ->  ticker, date, ret_1d, ret_5d, ret_1d_rank, ret_5d_rank

`bars` is a pandas DataFrame or an Arrow table with ticker, date, open, high, low, close,
volume (other columns are ignored), or a DuckDB FROM-expression as a string, e.g.
"delta_scan('/path/to/silver/bars_daily')" (needs DuckDB's delta extension). `sentiment`
(ticker, date, sentiment, message_count; market-wide rows under ticker '__MARKET__', as in
silver.sentiment_daily) and `macro` (series_id, date, value, as in silver.macro_asof) are
optional and take the same kinds of input; without them the alternative-data features are NULL.

Semantics (see the SQL file's header and tickerlake.catalog): Qlib's formulas on each ticker's
session-aligned series; a value is NULL unless every session it reads has a value (warm-up, or a
rejected row in between). The SQL file holds one template per feature or per Alpha158 family
(`{d}` for the window); `queries()` expands them over the catalogue (catalog.ALPHA158_WINDOWS,
CROSS_SECTIONAL_BASE, MACRO_SERIES) into one statement and checks that every catalogue feature
has exactly one template. Adding a feature is adding its template to the SQL file and its entry
to tickerlake.catalog.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from tickerlake.catalog import (
    ALPHA158_WINDOWS,
    BAR_FEATURE_NAMES,
    CROSS_SECTIONAL_BASE,
    FEATURE_NAMES,
    MACRO_SERIES,
)

SQL_PATH = Path(__file__).resolve().parents[1] / "sql" / "features_reference.sql"
BAR_COLUMNS = ("ticker", "date", "open", "high", "low", "close", "volume")
SENTIMENT_COLUMNS = {"ticker": "VARCHAR", "date": "DATE", "sentiment": "DOUBLE", "message_count": "BIGINT"}
MACRO_COLUMNS = {"series_id": "VARCHAR", "date": "DATE", "value": "DOUBLE"}
LABEL_COLUMNS = ("ret_1d", "ret_5d", "ret_1d_rank", "ret_5d_rank")
_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)
_FAMILY = re.compile(r"^--\s*family:\s*(\w+)\s*$", re.MULTILINE)
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_EMA = re.compile(r"\{EMA\((\w+),\s*(\d+)\)\}")
_EMA_DIF = re.compile(r"\{EMA\(DIF\((\w+),\s*(\d+),\s*(\d+)\),\s*(\d+)\)\}")
_IDX = re.compile(r"\{(IDXMAX|IDXMIN)\((\w+),\s*(\d+)\)\}")
_SUM = re.compile(r"\{(SUM|MEAN)\((\w+),\s*(\d+)\)\}")
_LEFTOVER = re.compile(r"\{[A-Za-z]")
_MKTREL = re.compile(r"^MKTREL(\d+)$")


def sections(path: Path = SQL_PATH) -> dict[str, str]:
    """The raw sections of the SQL file (`-- name: X` opens section X), trailing ';' removed."""
    text = Path(path).read_text()
    marks = list(_NAME.finditer(text))
    out = {}
    for k, m in enumerate(marks):
        body = text[m.end(): marks[k + 1].start() if k + 1 < len(marks) else len(text)]
        out[m.group(1)] = body.strip().rstrip(";").strip()
    return out


def families(section: str) -> dict[str, str]:
    """`-- family: F` -> its expression template (comment lines dropped), in file order."""
    marks = list(_FAMILY.finditer(section))
    out = {}
    for k, m in enumerate(marks):
        body = section[m.end(): marks[k + 1].start() if k + 1 < len(marks) else len(section)]
        lines = [ln.rstrip() for ln in body.splitlines() if ln.strip() and not ln.strip().startswith("--")]
        if not lines:
            raise ValueError(f"family {m.group(1)}: no expression")
        out[m.group(1)] = "\n".join(lines)
    return out


def _fill(template: str, **values: object) -> str:
    def one(m: re.Match) -> str:
        if m.group(1) not in values:
            raise ValueError(f"template placeholder {m.group(0)} has no value: {template!r}")
        return str(values[m.group(1)])

    return _PLACEHOLDER.sub(one, template)


def _ema_weights(n: int) -> list[float]:
    """Qlib's finite-window EMA weights, newest first: a^k / sum(a^j), k = 0..n-1, a = 1 - 2/(n+1)."""
    a = 1.0 - 2.0 / (n + 1)
    powers = [a**k for k in range(n)]
    total = sum(powers)
    return [w / total for w in powers]


def _filter(column: str, weights: list[float]) -> str:
    """sum_k weights[k] * lag(column, k) over `by_s`: NULL unless all len(weights) values exist."""
    terms = [f"{w!r} * {column}" if k == 0 else f"{w!r} * lag({column}, {k}) OVER by_s"
             for k, w in enumerate(weights)]
    return "(" + " + ".join(terms) + ")"


def _ema_of_dif(column: str, fast: int, slow: int, n: int) -> str:
    """EMA over n sessions of EMA(column, fast) - EMA(column, slow): a linear filter of `column`
    over n + slow - 1 sessions, its weights the convolution of the two EMAs' weights."""
    dif = [f - s for f, s in zip(_ema_weights(fast) + [0.0] * (slow - fast), _ema_weights(slow), strict=True)]
    signal = [0.0] * (n + slow - 1)
    for i, e in enumerate(_ema_weights(n)):
        for j, w in enumerate(dif):
            signal[i + j] += e * w
    return _filter(column, signal)


def _first_equal(column: str, d: int, aggregate: str) -> str:
    """The 1-based position, from the oldest of the d sessions ending at the row, of the first
    session whose `column` equals the window's `aggregate` (max or min)."""
    target = f"{aggregate}({column}) OVER w{d}"
    whens = [f"WHEN {column if k == 0 else f'lag({column}, {k}) OVER by_s'} = {target} THEN {d - k}"
             for k in range(d - 1, -1, -1)]
    return "(CASE " + " ".join(whens) + " END)"


def _window_sum(m: re.Match) -> str:
    """{SUM(x, d)}: the increase of x's running sum p_x over d sessions; {MEAN(x, d)}: / d."""
    kind, column, d = m.group(1), m.group(2), int(m.group(3))
    total = f"(p_{column} - coalesce(lag(p_{column}, {d}) OVER by_s, 0))"
    return total if kind == "SUM" else f"({total} / {d})"


def _macros(sql: str) -> str:
    """Expand {EMA(DIF(x, n1, n2), m)}, {EMA(x, n)}, {IDXMAX(x, d)}, {IDXMIN(x, d)}, {SUM(x, d)}
    and {MEAN(x, d)} (see the SQL file's header)."""
    sql = _SUM.sub(_window_sum, sql)
    sql = _EMA_DIF.sub(lambda m: _ema_of_dif(m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4))), sql)
    sql = _EMA.sub(lambda m: _filter(m.group(1), _ema_weights(int(m.group(2)))), sql)
    sql = _IDX.sub(lambda m: _first_equal(m.group(2), int(m.group(3)), m.group(1)[3:].lower()), sql)
    left = _LEFTOVER.search(sql)
    if left:
        raise ValueError(f"unexpanded template text: {sql[left.start(): left.start() + 60]!r}")
    return sql


def _columns(expanded: list[tuple[str, str]]) -> str:
    return ",\n        ".join(f'{expr} AS "{name}"' for name, expr in expanded)


def _bar_feature_expressions(raw: dict[str, str], path: Path) -> dict[str, str]:
    """Every bar feature's expression (catalog.BAR_FEATURES order): sections `bar` and
    `indicators` by name, `rolling` by family prefix expanded over catalog.ALPHA158_WINDOWS."""
    single = {**families(raw["bar"]), **families(raw["indicators"])}
    rolling = families(raw["rolling"])
    out, used = {}, set()
    for name in BAR_FEATURE_NAMES:
        m = re.fullmatch(r"([A-Z]+)(\d+)", name)
        if name in single:
            out[name] = single[name]
            used.add(name)
        elif m and m.group(1) in rolling and int(m.group(2)) in ALPHA158_WINDOWS:
            out[name] = _fill(rolling[m.group(1)], d=int(m.group(2)))
            used.add(m.group(1))
        else:
            raise ValueError(f"{path}: no template for catalogue feature {name}")
    unused = (set(single) | set(rolling)) - used
    if unused:
        raise ValueError(f"{path}: templates {sorted(unused)} name no catalogue feature")
    return out


@lru_cache(maxsize=4)
def queries(path: Path = SQL_PATH) -> dict[str, str]:
    """The runnable statements `features` and `labels`, the templates expanded."""
    raw = sections(path)
    missing = {"features", "labels", "bar", "rolling", "indicators", "returns", "cross_sectional_stats",
               "cross_sectional", "macro"} - set(raw)
    if missing:
        raise ValueError(f"{path}: no section named {sorted(missing)}")
    bar = _bar_feature_expressions(raw, path)
    stats, cross, macro = (families(raw[k]) for k in ("cross_sectional_stats", "cross_sectional", "macro"))
    market_windows = [int(m.group(1)) for m in map(_MKTREL.match, FEATURE_NAMES) if m]
    (ret,) = families(raw["returns"]).values()
    returns = [(f"ret{d}", _fill(ret, d=d)) for d in market_windows]
    parts = {
        "bar_features": _columns(list(bar.items())),
        "cross_sectional_inputs": _columns([(f, bar[f]) for f in CROSS_SECTIONAL_BASE] + returns),
        "cross_sectional_stats": _columns(
            [(f"{kind}_{x}", _fill(stats[kind], x=x)) for x in CROSS_SECTIONAL_BASE for kind in ("mean", "sd")]
            + [(f"mean_ret{d}", _fill(stats["mean"], x=f"ret{d}")) for d in market_windows]
        ),
        "cross_sectional": _columns(
            [(f"{kind}_{f}", _fill(cross[kind], f=f)) for kind in ("CSR", "CSZ") for f in CROSS_SECTIONAL_BASE]
            + [(f"MKTREL{d}", _fill(cross["MKTREL"], d=d)) for d in market_windows]
        ),
        "macro": _columns([(f"MACRO_{s}", _fill(macro["MACRO"], s=s)) for s in MACRO_SERIES]),
        "feature_columns": ", ".join(f'"{n}"' for n in FEATURE_NAMES),
    }
    return {"features": _macros(_fill(raw["features"], **parts)), "labels": raw["labels"]}


def _source(con, name: str, data: Any) -> str:
    """A FROM-expression for `data` (a string is one already), registering a frame or table."""
    if isinstance(data, str):
        if "delta_scan" in data:
            con.execute("LOAD delta")
        return data
    table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
    con.register(name, table)
    return name


def _view(con, view: str, data: Any, columns: Mapping[str, str]) -> None:
    """TEMP VIEW `view` of exactly `columns` (cast) from `data`; with data None, an empty one."""
    if data is None:
        cols = ", ".join(f"CAST(NULL AS {t}) AS {c}" for c, t in columns.items())
        con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT {cols} WHERE false")
        return
    source = _source(con, f"{view}_input", data)
    cols = ", ".join(f"CAST({c} AS {t}) AS {c}" for c, t in columns.items())
    con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT {cols} FROM {source}")


def _connect(bars: Any, con=None, sentiment: Any = None, macro: Any = None):
    """A DuckDB connection with `bars`, `sentiment` and `macro` as views of exactly their columns."""
    import duckdb

    con = con or duckdb.connect()
    source = _source(con, "bars_input", bars)
    prices = ", ".join(f"CAST({c} AS DOUBLE) AS {c}" for c in BAR_COLUMNS[2:])
    con.execute(f"CREATE OR REPLACE TEMP VIEW bars AS SELECT ticker, CAST(date AS DATE) AS date, {prices} FROM {source}")
    _view(con, "sentiment", sentiment, SENTIMENT_COLUMNS)
    _view(con, "macro", macro, MACRO_COLUMNS)
    for view, keys in (("bars", "ticker, date"), ("sentiment", "ticker, date"), ("macro", "series_id, date")):
        dupes = con.execute(f"SELECT {keys} FROM {view} GROUP BY ALL HAVING count(*) > 1 LIMIT 3").fetchall()
        if dupes:
            raise ValueError(f"{view}: more than one row per ({keys}), e.g. {dupes}")
    return con


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas(date_as_object=True)  # dates as datetime.date, like delta-rs reads them


def features(
    bars: Any,
    extra: Mapping[str, str] | None = None,
    con=None,
    sentiment: Any = None,
    macro: Any = None,
) -> pd.DataFrame:
    """Every catalogue feature per (ticker, date), sorted by ticker and date.

    extra: name -> DuckDB expression over `bars` (window functions with their own OVER), added
    as further columns: how a test plants a feature the catalogue does not have.
    sentiment, macro: the alternative-data inputs (see the module docstring); None: their
    features are NULL.
    """
    con = _connect(bars, con, sentiment, macro)
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
