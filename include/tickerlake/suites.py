"""Great Expectations suites as code for intraday bars, social, news, macro, features and predictions.

The daily-bar suites live in `validation.py`; this module reuses its pieces (RowRule, the suite
cache, the Great Expectations runner `_run_suite`, CriticalValidationError) for every other
table, so there is one way to run an expectation and turn its unexpected rows into verdicts.

Each suite is a list of RowRule: a plain Great Expectations expectation with a name and a
severity. Where a rule needs more than the row's own columns (the session's trading hours,
whether a value is finite, whether a silver bar exists), a helper column is computed in numpy
and the rule is an expectation over that column, so every verdict still comes from Great
Expectations. Severities:

- `critical`: the run stops (CriticalValidationError) and nothing of it is written. Schema and
  type problems and coverage are critical too; they are checked in pandas before the suite
  (`check_columns`, `check_coverage_of`), because they are not row verdicts.
- `reject`: the row goes to quarantine with its rule and stays out of everything downstream.
- `warn`: the row goes to quarantine with its rule and is let through.

Switching a rule off (leaving it out of the list passed in) lets its rows through.

Suites and where they run:

| suite | judges | wired into |
|---|---|---|
| `bars_intraday.rows` | 5-minute bars (ticker, ts UTC, OHLCV) | `intraday.drain` (each micro-batch's parsed bars) |
| `social.rows` | parsed messages before bronze.social | `altdata.social.land_social` |
| `news.rows` | parsed headlines before bronze.news | `altdata.news.land_news` |
| `macro.rows` | observations before bronze.macro | `altdata.macro.land_macro`, `land_fred_api` |
| `macro_asof.rows` | silver.macro_asof before its write | `altdata.macro.build_macro_asof` |
| `features_daily.rows` | gold.features_daily of an interval | `pipeline.validate_features` |
| `predictions_daily.rows` | a run's scored rows before the append | `predict.publish_predictions` |
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from tickerlake.catalog import FEATURE_NAMES
from tickerlake.tickers import _CANONICAL
from tickerlake.validation import CriticalValidationError, RowRule, _run_suite

CRITICAL, REJECT, WARN = "critical", "reject", "warn"
SEVERITIES = (CRITICAL, REJECT, WARN)

INTRADAY_SUITE = "bars_intraday.rows"
SOCIAL_SUITE = "social.rows"
NEWS_SUITE = "news.rows"
MACRO_SUITE = "macro.rows"
MACRO_ASOF_SUITE = "macro_asof.rows"
FEATURES_SUITE = "features_daily.rows"
PREDICTIONS_SUITE = "predictions_daily.rows"

FEATURES_QUARANTINE = "quarantine.features_daily"
PREDICTIONS_QUARANTINE = "quarantine.predictions_daily"

PRICE_COLUMNS = ("open", "high", "low", "close")
TICKER_PATTERN = rf"^(?:{_CANONICAL.pattern})$"
SERIES_PATTERN = r"^[A-Z0-9_]+$"
_EPOCH = dt.date(1970, 1, 1)
_PAIR = {"or_equal": True, "ignore_row_if": "either_value_is_missing"}

# Dates outside the NYSE calendar (calendar._CALENDAR_START/_END) cannot be given a session.
CALENDAR_FIRST = dt.date(1990, 1, 2)
CALENDAR_LAST = dt.date(2030, 12, 31)
SOCIAL_TEXT_MAX = 2_000  # characters; a tweet is at most 280 (StockNet's tokens add spaces)
HEADLINE_MAX = 500  # characters; a longer "headline" is a merged line or a whole article
PREDICTION_RANGE = (-0.5, 0.5)  # a predicted next-session return outside it is flagged

# Plausible range of each catalogue feature (warn outside), by family (catalog.FEATURES). Ratios
# and shares bounded by construction get that bound (a hair wider for rounding); price ratios a
# range no real one-day or window move reaches (more than 5x up or an 80% fall in a session).
_EPS = 1e-9
_UNIT = (-_EPS, 1 + _EPS)  # a share or a position in a range: [0, 1]
_SIGNED_UNIT = (-1 - _EPS, 1 + _EPS)  # a correlation or a difference of shares: [-1, 1]
_PRICE_RATIO = (0.02, 50.0)  # a price over the latest close
_BY_NAME: dict[str, tuple[float, float]] = {
    "KMID": (-0.8, 4.0),  # (close - open) / open
    "KLEN": (0.0, 4.0),  # (high - low) / open
    "KUP": (0.0, 4.0),
    "KLOW": (0.0, 1.0),
    "KSFT": (-4.0, 4.0),
    "KMID2": _SIGNED_UNIT, "KUP2": _UNIT, "KLOW2": _UNIT, "KSFT2": _SIGNED_UNIT,  # over (high - low)
    "OPEN0": (0.2, 5.0), "HIGH0": (0.2, 5.0), "LOW0": (0.2, 5.0),
    "ROC5": (0.2, 5.0),  # Ref(close, 5) / close
    "RSI14": (-_EPS, 100 + _EPS),
    "MACD": (-2.0, 2.0), "MACDSIG": (-2.0, 2.0), "MACDHIST": (-2.0, 2.0),  # EMA differences over close
    "BBP20": (-1.0, 2.0),  # a z-score of 20 values is within +-(n-1)/sqrt(n): %B in [-0.6, 1.6]
    "ATR14": (0.0, 4.0),
    "MOM12_1": (-0.99, 50.0),
    "REV1": (-4.0, 0.8),  # -(close / Ref(close, 1) - 1)
    "REV5": (-9.0, 0.9),
    "SENT": _SIGNED_UNIT, "MKT_SENT": _SIGNED_UNIT,  # mean polarity
    "MSGCNT": (0.0, 1e7), "MKT_MSGCNT": (0.0, 1e7),
}
_BY_PREFIX: dict[str, tuple[float, float]] = {
    "ROC": _PRICE_RATIO, "MA": _PRICE_RATIO, "MAX": _PRICE_RATIO, "MIN": _PRICE_RATIO,
    "QTLU": _PRICE_RATIO, "QTLD": _PRICE_RATIO,
    "STD": (0.0, 5.0), "BETA": (-0.5, 0.5), "RESI": (-5.0, 5.0), "RSQR": _UNIT, "RANK": _UNIT, "RSV": _UNIT,
    "IMAX": _UNIT, "IMIN": _UNIT, "IMXD": _SIGNED_UNIT, "CORR": _SIGNED_UNIT, "CORD": _SIGNED_UNIT,
    "CNTP": _UNIT, "CNTN": _UNIT, "CNTD": _SIGNED_UNIT, "SUMP": _UNIT, "SUMN": _UNIT, "SUMD": _SIGNED_UNIT,
    "VSUMP": _UNIT, "VSUMN": _UNIT, "VSUMD": _SIGNED_UNIT,
    "VMA": (0.0, 1_000.0), "VSTD": (0.0, 1_000.0), "WVMA": (0.0, 100.0),  # over the latest volume
    "CSR_": _UNIT, "CSZ_": (-100.0, 100.0), "MKTREL": (-10.0, 10.0),
    "MACRO_": (-100.0, 1_000.0),  # levels of rates, spreads, VIX and stress indices
}


def _bounds(name: str) -> tuple[float, float]:
    if name in _BY_NAME:
        return _BY_NAME[name]
    for prefix in sorted(_BY_PREFIX, key=len, reverse=True):  # the longest prefix: VSUMP before VMA
        if name.startswith(prefix) and (prefix.endswith("_") or name[len(prefix):].isdigit()):
            return _BY_PREFIX[prefix]
    raise AssertionError(f"no plausible range for feature {name!r}: add it to suites._BY_NAME or _BY_PREFIX")


FEATURE_BOUNDS: dict[str, tuple[float, float]] = {name: _bounds(name) for name in FEATURE_NAMES}
if set(FEATURE_BOUNDS) != set(FEATURE_NAMES):  # pragma: no cover - a catalogue change must add its bounds
    raise AssertionError(f"FEATURE_BOUNDS and the catalogue disagree on {sorted(set(FEATURE_BOUNDS) ^ set(FEATURE_NAMES))}")


# --- running a suite ------------------------------------------------------------------------


@dataclass(frozen=True)
class SuiteResult:
    """Great Expectations' verdicts on one frame: rule -> positions (0..n-1) of the failing rows."""

    suite: str
    rules: tuple[RowRule, ...]
    flagged: dict[str, np.ndarray]
    n_rows: int

    @property
    def counts(self) -> dict[str, int]:
        """Rule -> rows it flagged (every rule of the suite, zeros included)."""
        return {r.name: int(len(self.flagged[r.name])) for r in self.rules}

    @property
    def severity(self) -> dict[str, str]:
        return {r.name: r.severity for r in self.rules}

    def mask(self, *severities: str) -> np.ndarray:
        """Rows flagged by at least one rule of these severities."""
        out = np.zeros(self.n_rows, dtype=bool)
        for rule in self.rules:
            if rule.severity in severities:
                out[self.flagged[rule.name]] = True
        return out

    @property
    def rejected(self) -> np.ndarray:
        return self.mask(REJECT)

    @property
    def warned(self) -> np.ndarray:
        return self.mask(WARN)

    def verdicts(self, *severities: str) -> list[tuple[int, RowRule]]:
        """(row position, rule) for every flagged row of these severities (all by default)."""
        wanted = severities or SEVERITIES
        return [(int(i), r) for r in self.rules if r.severity in wanted for i in self.flagged[r.name]]

    def raise_on_critical(self, describe: Callable[[int], str]) -> None:
        """CriticalValidationError naming each failed critical rule, its count and a few rows."""
        failed = [(r, self.flagged[r.name]) for r in self.rules if r.severity == CRITICAL and len(self.flagged[r.name])]
        if not failed:
            return
        parts = []
        for rule, ids in failed:
            sample = ", ".join(describe(int(i)) for i in ids[:5])
            parts.append(f"{rule.name} failed for {len(ids)} row(s) ({sample}{', ...' if len(ids) > 5 else ''})")
        raise CriticalValidationError(f"{self.suite}: critical rule " + "; ".join(parts))


def run_suite(name: str, rules: Sequence[RowRule], frame: pd.DataFrame, sort_key: np.ndarray | None = None) -> SuiteResult:
    """Validate `frame` (the suite's columns) with Great Expectations through validation's runner.

    `sort_key`: an order for the runner's chunks (it cuts large frames at `date_id` boundaries,
    so a key that includes the date is never split)."""
    rules = tuple(rules)
    names = [r.name for r in rules]
    if len(set(names)) != len(names):
        raise ValueError(f"suite {name} has duplicate rule names")
    for rule in rules:
        if rule.severity not in SEVERITIES:
            raise ValueError(f"rule {rule.name} has severity {rule.severity!r}, expected one of {SEVERITIES}")
    data = frame.reset_index(drop=True)
    n = len(data)
    empty = np.zeros(0, dtype=np.int64)
    if n == 0 or not rules:
        return SuiteResult(name, rules, {r.name: empty for r in rules}, n)
    order = np.arange(n) if sort_key is None else np.argsort(np.asarray(sort_key), kind="stable")
    found = _run_suite(name, list(rules), data, order, None)
    flagged = {r.name: np.unique(np.asarray(found.get(r.name, empty), dtype=np.int64)) for r in rules}
    return SuiteResult(name, rules, flagged, n)


# --- critical checks outside the suite --------------------------------------------------------


def _date_order(gxf: pd.DataFrame) -> np.ndarray:
    """The runner's sort key: by `date_id`, missing dates last (a key with a date stays in one chunk)."""
    return np.nan_to_num(gxf["date_id"].to_numpy(dtype=np.float64), nan=np.inf)


def check_columns(frame: pd.DataFrame, spec: Mapping[str, str], what: str) -> None:
    """Critical: every column of `spec` present with its kind, no silent cast.

    Kinds: `float` (a number, not bool), `string` (text or empty), `date` (dates or datetimes),
    `timestamp` (timezone-aware datetimes: a naive timestamp has an unknown zone), `any`."""
    missing = [c for c in spec if c not in frame.columns]
    if missing:
        raise CriticalValidationError(f"{what} is missing columns {missing}")
    if len(frame) == 0:
        return  # no value can have the wrong type
    for col, kind in spec.items():
        s = frame[col]
        if kind == "float":
            if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
                raise CriticalValidationError(f"{what}: column {col!r} arrived as {s.dtype}, expected a number")
        elif kind == "string":
            inferred = pd.api.types.infer_dtype(s, skipna=True)
            if inferred not in ("string", "empty"):
                raise CriticalValidationError(f"{what}: column {col!r} arrived as {inferred}, expected text")
        elif kind == "date":
            if not pd.api.types.is_datetime64_any_dtype(s):
                inferred = pd.api.types.infer_dtype(s, skipna=True)
                if inferred not in ("date", "datetime", "datetime64", "empty"):
                    raise CriticalValidationError(f"{what}: column {col!r} arrived as {inferred}, expected dates")
        elif kind == "timestamp":
            if pd.api.types.is_datetime64_any_dtype(s):
                if getattr(s.dt, "tz", None) is None:
                    raise CriticalValidationError(f"{what}: column {col!r} has no time zone (naive timestamps)")
            else:
                inferred = pd.api.types.infer_dtype(s, skipna=True)
                if inferred == "empty":
                    continue
                if inferred != "datetime" or any(v.tzinfo is None for v in s.dropna()):
                    raise CriticalValidationError(
                        f"{what}: column {col!r} arrived as {inferred}, expected timezone-aware timestamps")
        elif kind != "any":
            raise ValueError(f"unknown column kind {kind!r}")


def check_coverage_of(expected: pd.DataFrame, actual: pd.DataFrame, by: str, key: str, what: str,
                      min_coverage: float = 1.0) -> dict:
    """Critical: for each value of `by` (a session), the share of `expected`'s `key`s present in
    `actual` is at least `min_coverage`. Returns the worst group's coverage."""
    if expected.empty:
        return {}
    exp = expected[[by, key]].dropna().drop_duplicates()
    have = actual[[by, key]].dropna().drop_duplicates()
    joined = exp.merge(have, on=[by, key], how="left", indicator=True)
    joined["_present"] = (joined["_merge"] == "both").to_numpy()
    per = joined.groupby(by)["_present"].agg(["sum", "count"])
    per["ratio"] = per["sum"] / per["count"]
    worst = per["ratio"].idxmin()
    low = per[per["ratio"] < min_coverage]
    if len(low):
        group = low.index[0]
        missing = joined.loc[(joined[by] == group) & ~joined["_present"], key].astype(str).tolist()
        raise CriticalValidationError(
            f"{what}: coverage {int(per.loc[group, 'sum'])}/{int(per.loc[group, 'count'])} on {_text(group)} is "
            f"below {min_coverage:.0%}; missing {missing[:10]}{' ...' if len(missing) > 10 else ''}"
            + (f" ({len(low)} groups below)" if len(low) > 1 else "")
        )
    return {"worst": _text(worst), "worst_coverage": round(float(per.loc[worst, "ratio"]), 4)}


# --- quarantine rows ------------------------------------------------------------------------


def _jsonable(value):
    if value is None:
        return None
    if isinstance(value, float | np.floating):
        v = float(value)
        if math.isnan(v):
            return None
        return v if math.isfinite(v) else ("inf" if v > 0 else "-inf")
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    if isinstance(value, pd.Timestamp | dt.datetime | dt.date):
        return None if pd.isna(value) else value.isoformat()
    if value is pd.NaT or value is pd.NA:
        return None
    return value


def _key_value(value):
    """A key cell as Arrow takes it: missing -> None, a whole float (an int column with a gap) -> int."""
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return None
        return int(value) if float(value).is_integer() else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def values_json(frame: pd.DataFrame, pos: int, columns: Iterable[str]) -> str:
    """The row's `columns` as a JSON object (NaN as null, infinities as "inf"/"-inf")."""
    row = frame.iloc[pos]
    return json.dumps({c: _jsonable(row[c]) for c in columns if c in frame.columns})


def _text(value) -> str:
    return value.isoformat() if isinstance(value, dt.date | pd.Timestamp) else str(value)


def _day_numbers(values: pd.Series) -> np.ndarray:
    """Days since 1970-01-01 as float (NaN where missing or not a date)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        s = values.dt.tz_convert("UTC").dt.tz_localize(None) if getattr(values.dt, "tz", None) else values
        days = s.to_numpy(dtype="datetime64[D]")
    else:
        days = pd.to_datetime(values, errors="coerce", utc=True).dt.tz_localize(None).to_numpy(dtype="datetime64[D]")
    out = days.astype(np.int64).astype(np.float64)
    out[np.isnat(days)] = np.nan
    # a date pandas cannot hold in nanoseconds (year 2500, year 1) is still a date: judge it as one
    for i in np.flatnonzero(np.isnat(days) & values.notna().to_numpy()):
        v = values.iloc[i]
        if isinstance(v, dt.datetime):
            v = (v.astimezone(dt.UTC) if v.tzinfo else v).date()
        if isinstance(v, dt.date):
            out[i] = float((v - _EPOCH).days)
    return out


def _day(d: dt.date) -> float:
    return float((d - _EPOCH).days)


def _codes(values: pd.Series) -> np.ndarray:
    codes, _ = pd.factorize(values, use_na_sentinel=True)
    out = codes.astype(np.float64)
    out[codes < 0] = np.nan
    return out


def _finite_flag(values: pd.Series, missing_ok: bool) -> np.ndarray:
    """1.0 finite, 0.0 infinite (or NaN when missing is not ok), NaN for a missing value that is ok."""
    v = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    flag = np.isfinite(v).astype(np.float64)
    if missing_ok:
        flag[np.isnan(v)] = np.nan
    return flag


def _not_null(*columns: str, severity: str = REJECT, prefix: str = "not_null_") -> list[RowRule]:
    return [RowRule(f"{prefix}{c}", severity, "ExpectColumnValuesToNotBeNull", {"column": c}) for c in columns]


def _named_not_null(pairs: Iterable[tuple[str, str]], severity: str) -> list[RowRule]:
    """(rule suffix, gx column): not-null rules named after the table's column, not the encoding."""
    return [RowRule(f"not_null_{name}", severity, "ExpectColumnValuesToNotBeNull", {"column": col}) for name, col in pairs]


# --- intraday bars ----------------------------------------------------------------------------

INTRADAY_COLUMNS = {"ticker": "string", "ts": "timestamp", **{c: "float" for c in PRICE_COLUMNS}, "volume": "float"}


def intraday_rules(bar_minutes: int = 5) -> list[RowRule]:
    """5-minute bars: as the daily rules, keyed by (ticker, ts), and inside the session's hours."""
    rules = _named_not_null([("ticker", "ticker_id"), ("ts", "ts_s")], REJECT)
    rules += _not_null(*PRICE_COLUMNS, "volume")
    rules += [RowRule(f"positive_{c}", REJECT, "ExpectColumnValuesToBeBetween",
                      {"column": c, "min_value": 0, "strict_min": True}) for c in PRICE_COLUMNS]
    rules += [
        RowRule("volume_non_negative", REJECT, "ExpectColumnValuesToBeBetween", {"column": "volume", "min_value": 0}),
        RowRule("high_ge_low", REJECT, "ExpectColumnPairValuesAToBeGreaterThanB", {"column_A": "high", "column_B": "low", **_PAIR}),
        RowRule("high_ge_open", REJECT, "ExpectColumnPairValuesAToBeGreaterThanB", {"column_A": "high", "column_B": "open", **_PAIR}),
        RowRule("high_ge_close", REJECT, "ExpectColumnPairValuesAToBeGreaterThanB", {"column_A": "high", "column_B": "close", **_PAIR}),
        RowRule("open_ge_low", REJECT, "ExpectColumnPairValuesAToBeGreaterThanB", {"column_A": "open", "column_B": "low", **_PAIR}),
        RowRule("close_ge_low", REJECT, "ExpectColumnPairValuesAToBeGreaterThanB", {"column_A": "close", "column_B": "low", **_PAIR}),
        RowRule("unique_ticker_ts", REJECT, "ExpectCompoundColumnsToBeUnique", {"column_list": ["ticker_id", "ts_s"]}),
        # the bar starts at or after its session's open and before its close (early closes included)
        RowRule("ts_in_session", REJECT, "ExpectColumnValuesToBeInSet", {"column": "in_session", "value_set": [1.0]}),
        # seconds past the bar grid: a bar stamped off its 5-minute boundary is flagged, not dropped
        RowRule("ts_on_bar_grid", WARN, "ExpectColumnValuesToBeBetween",
                {"column": "grid_offset_s", "min_value": 0, "max_value": 0}),
    ]
    return rules


@lru_cache(maxsize=1)
def _session_hours() -> tuple[np.ndarray, np.ndarray]:
    """Open and close of every NYSE session in the calendar, as UTC epoch seconds (sorted)."""
    from tickerlake.calendar import _xnys

    cal = _xnys()
    opens = cal.opens.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[s]").astype(np.int64)
    closes = cal.closes.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[s]").astype(np.int64)
    return opens, closes


def _intraday_frame(frame: pd.DataFrame, bar_minutes: int) -> pd.DataFrame:
    ts = pd.to_datetime(frame["ts"], utc=True)
    secs = ts.dt.tz_localize(None).to_numpy(dtype="datetime64[s]")
    missing = np.isnat(secs)
    ts_s = secs.astype(np.int64).astype(np.float64)
    ts_s[missing] = np.nan
    opens, closes = _session_hours()
    pos = np.searchsorted(opens, np.nan_to_num(ts_s, nan=0).astype(np.int64), side="right") - 1
    ok = pos >= 0
    pc = np.clip(pos, 0, len(opens) - 1)
    in_session = (ok & (np.nan_to_num(ts_s, nan=0) < closes[pc])).astype(np.float64)
    in_session[missing] = np.nan
    grid = np.mod(np.nan_to_num(ts_s, nan=0), bar_minutes * 60)
    grid[missing] = np.nan
    out = pd.DataFrame({"ticker_id": _codes(frame["ticker"]), "ts_s": ts_s,
                        "date_id": np.floor(ts_s / 86_400), "in_session": in_session, "grid_offset_s": grid})
    for c in (*PRICE_COLUMNS, "volume"):
        out[c] = frame[c].to_numpy(dtype=np.float64, na_value=np.nan)
    return out


@dataclass(frozen=True)
class Judged:
    """A frame judged by a suite: the verdicts, the quarantine rows and which rows go on."""

    result: SuiteResult
    quarantine: pd.DataFrame
    keep: np.ndarray  # rows not rejected (warned rows included)

    @property
    def counts(self) -> dict[str, int]:
        return self.result.counts

    def summary(self) -> dict:
        """Counts for a task's result: rows judged, rejected, warned, and rows by rule."""
        return {"suite": self.result.suite, "rows": self.result.n_rows, "rejected": int(self.result.rejected.sum()),
                "warned": int(self.result.warned.sum()), "counts_by_rule": self.counts,
                "severity_by_rule": self.result.severity}


def _quarantine(result: SuiteResult, frame: pd.DataFrame, keys: Mapping[str, Callable[[pd.DataFrame], pd.Series]],
                value_columns: Sequence[str], run_id: str) -> pd.DataFrame:
    """Quarantine rows (key columns, rule, severity, values, run_id) of the reject and warn verdicts."""
    verdicts = result.verdicts(REJECT, WARN)
    ids = np.asarray([i for i, _ in verdicts], dtype=np.int64)
    out = {name: [_key_value(v) for v in f(frame).iloc[ids].tolist()] if len(ids) else [] for name, f in keys.items()}
    out["rule"] = [r.name for _, r in verdicts]
    out["severity"] = [r.severity for _, r in verdicts]
    out["values"] = [values_json(frame, i, value_columns) for i in ids]
    out["run_id"] = [run_id] * len(ids)
    return pd.DataFrame(out)


def validate_intraday(frame: pd.DataFrame, run_id: str, rules: list[RowRule] | None = None,
                      bar_minutes: int = 5) -> Judged:
    """Intraday bars (ticker, ts as UTC bar start, OHLCV). Critical: schema (a naive ts fails).
    Quarantine rows: ticker, ts, rule, severity, values, run_id (the dead letters)."""
    check_columns(frame, INTRADAY_COLUMNS, "intraday bars")
    data = frame.reset_index(drop=True)
    rules = intraday_rules(bar_minutes) if rules is None else rules
    gxf = _intraday_frame(data, bar_minutes)
    result = run_suite(INTRADAY_SUITE, rules, gxf, np.nan_to_num(gxf["date_id"].to_numpy(), nan=np.inf))
    result.raise_on_critical(lambda i: f"{data['ticker'].iloc[i]} {data['ts'].iloc[i]}")
    q = _quarantine(result, data, {"ticker": lambda f: f["ticker"], "ts": lambda f: pd.to_datetime(f["ts"], utc=True)},
                    (*PRICE_COLUMNS, "volume"), run_id)
    return Judged(result, q, ~result.rejected)


# --- social and news ----------------------------------------------------------------------------

SOCIAL_COLUMNS = {"message_id": "string", "ticker": "string", "created_at": "timestamp", "text": "string"}


def social_rules() -> list[RowRule]:
    return [
        *_named_not_null([("ticker", "ticker"), ("created_at", "created_day"), ("text", "text")], REJECT),
        RowRule("ticker_canonical", REJECT, "ExpectColumnValuesToMatchRegex", {"column": "ticker", "regex": TICKER_PATTERN}),
        RowRule("text_not_blank", REJECT, "ExpectColumnValuesToMatchRegex", {"column": "text", "regex": r"\S"}),
        # outside the NYSE calendar a message cannot be given a session
        RowRule("created_at_in_calendar", REJECT, "ExpectColumnValuesToBeBetween",
                {"column": "created_day", "min_value": _day(CALENDAR_FIRST), "max_value": _day(CALENDAR_LAST)}),
        RowRule("text_length", WARN, "ExpectColumnValueLengthsToBeBetween",
                {"column": "text", "min_value": 1, "max_value": SOCIAL_TEXT_MAX}),
        # the same message twice in one batch (sentiment counts it once): flagged, landed
        RowRule("duplicate_message", WARN, "ExpectColumnValuesToBeUnique", {"column": "message_id"}),
        RowRule("not_null_user_id", WARN, "ExpectColumnValuesToNotBeNull", {"column": "user_id"}),
    ]


def validate_social(messages: pd.DataFrame, run_id: str, rules: list[RowRule] | None = None) -> Judged:
    """Parsed social messages (social.collect_interval's records) before they land.
    Quarantine rows in quarantine.social's layout: key (ticker), date, rule, severity, values,
    source, source_file, line_number, run_id (batch_id is added by the landing)."""
    data = messages.reset_index(drop=True)
    if "user_id" not in data.columns:
        data["user_id"] = None
    check_columns(data, SOCIAL_COLUMNS, "social messages")
    gxf = pd.DataFrame({
        "ticker": data["ticker"].astype(object), "text": data["text"].astype(object),
        "message_id": data["message_id"].astype(object), "user_id": data["user_id"].astype(object),
        "created_day": _day_numbers(data["created_at"]),
    })
    gxf["date_id"] = gxf["created_day"]  # the runner cuts large frames at date boundaries
    result = run_suite(SOCIAL_SUITE, social_rules() if rules is None else rules, gxf, _date_order(gxf))
    result.raise_on_critical(lambda i: f"{data['ticker'].iloc[i]} {data['created_at'].iloc[i]}")
    q = _quarantine(result, data, _alt_keys("ticker"),
                    ("ticker", "created_at_raw", "created_at", "user_id", "text"), run_id)
    return Judged(result, q, ~result.rejected)


def _alt_keys(key_column: str | None) -> dict[str, Callable[[pd.DataFrame], pd.Series]]:
    def col(name: str, default=None):
        return lambda f: f[name] if name in f.columns else pd.Series([default] * len(f), index=f.index, dtype=object)

    def day(f: pd.DataFrame) -> pd.Series:
        return pd.Series([None if pd.isna(d) else pd.Timestamp(d).date() for d in f["date"]], index=f.index, dtype=object)

    return {"key": col(key_column) if key_column else col("__none__"), "date": day, "source": col("source"),
            "source_file": col("source_file"), "line_number": col("line_number")}


NEWS_COLUMNS = {"news_id": "string", "date": "date", "headline": "string"}


def news_rules() -> list[RowRule]:
    return [
        *_named_not_null([("date", "date_id"), ("headline", "headline")], REJECT),
        # a "headline" with no letter at all is a shifted column or a stray number
        RowRule("headline_has_letters", REJECT, "ExpectColumnValuesToMatchRegex", {"column": "headline", "regex": r"[A-Za-z]"}),
        RowRule("date_in_calendar", REJECT, "ExpectColumnValuesToBeBetween",
                {"column": "date_id", "min_value": _day(CALENDAR_FIRST), "max_value": _day(CALENDAR_LAST)}),
        RowRule("headline_length", WARN, "ExpectColumnValueLengthsToBeBetween",
                {"column": "headline", "min_value": 1, "max_value": HEADLINE_MAX}),
        # the same headline twice on a day from one publisher (counted once by sentiment)
        RowRule("duplicate_headline", WARN, "ExpectColumnValuesToBeUnique", {"column": "news_id"}),
    ]


def validate_news(rows: pd.DataFrame, run_id: str, rules: list[RowRule] | None = None) -> Judged:
    """Parsed headlines (news_id, date, headline, source, ...) before they land in bronze.news."""
    data = rows.reset_index(drop=True)
    check_columns(data, NEWS_COLUMNS, "news headlines")
    gxf = pd.DataFrame({"date_id": _day_numbers(data["date"]), "headline": data["headline"].astype(object),
                        "news_id": data["news_id"].astype(object)})
    result = run_suite(NEWS_SUITE, news_rules() if rules is None else rules, gxf, _date_order(gxf))
    result.raise_on_critical(lambda i: f"{data['date'].iloc[i]} {data['headline'].iloc[i]!r}")
    q = _quarantine(result, data, _alt_keys(None), ("date_raw", "date", "headline"), run_id)
    return Judged(result, q, ~result.rejected)


# --- macro --------------------------------------------------------------------------------------

MACRO_COLUMNS = {"series_id": "string", "date": "date", "value": "float"}


def macro_rules() -> list[RowRule]:
    return [
        *_named_not_null([("series_id", "series_id"), ("date", "date_id")], REJECT),
        RowRule("series_id_format", REJECT, "ExpectColumnValuesToMatchRegex", {"column": "series_id", "regex": SERIES_PATTERN}),
        # one value per observation date (and vintage): a date twice in a file has no right value
        RowRule("unique_series_date", REJECT, "ExpectCompoundColumnsToBeUnique",
                {"column_list": ["series_code", "date_id", "vintage_id"]}),
        RowRule("value_finite", REJECT, "ExpectColumnValuesToBeInSet", {"column": "value_finite", "value_set": [1.0]}),
        RowRule("vintage_ordered", REJECT, "ExpectColumnPairValuesAToBeGreaterThanB",
                {"column_A": "realtime_end_id", "column_B": "vintage_id", **_PAIR}),
    ]


def validate_macro(rows: pd.DataFrame, run_id: str, rules: list[RowRule] | None = None) -> Judged:
    """Macro observations (series_id, date, value: null = missing as received; optional
    realtime_start / realtime_end for ALFRED vintages) before they land in bronze.macro."""
    data = rows.reset_index(drop=True)
    for col in ("realtime_start", "realtime_end"):
        if col not in data.columns:
            data[col] = None
    if data["value"].dtype == object and data["value"].map(lambda v: v is None or (
            isinstance(v, int | float) and not isinstance(v, bool))).all():
        data["value"] = data["value"].astype(np.float64)  # numbers and nulls only: no text is cast
    check_columns(data, MACRO_COLUMNS, "macro observations")
    start_id = _day_numbers(data["realtime_start"])
    gxf = pd.DataFrame({
        "series_id": data["series_id"].astype(object), "series_code": _codes(data["series_id"]),
        "date_id": _day_numbers(data["date"]), "vintage_id": np.nan_to_num(start_id, nan=-1.0),
        "realtime_end_id": _day_numbers(data["realtime_end"]),
        "value_finite": _finite_flag(data["value"], missing_ok=True),
    })
    gxf.loc[np.isnan(start_id), "realtime_end_id"] = np.nan  # files carry no vintage
    result = run_suite(MACRO_SUITE, macro_rules() if rules is None else rules, gxf, _date_order(gxf))
    result.raise_on_critical(lambda i: f"{data['series_id'].iloc[i]} {data['date'].iloc[i]}")
    q = _quarantine(result, data, _alt_keys("series_id"),
                    ("series_id", "date", "value", "value_raw", "realtime_start", "realtime_end"), run_id)
    return Judged(result, q, ~result.rejected)


def macro_asof_rules() -> list[RowRule]:
    """silver.macro_asof: every rule is critical (a leak from the future poisons every feature)."""
    return [
        *_named_not_null([("series_id", "series_id"), ("date", "date_id"), ("value", "value"),
                          ("observation_date", "observation_id"), ("release_date", "release_id")], CRITICAL),
        RowRule("value_finite", CRITICAL, "ExpectColumnValuesToBeInSet", {"column": "value_finite", "value_set": [1.0]}),
        RowRule("unique_series_session", CRITICAL, "ExpectCompoundColumnsToBeUnique", {"column_list": ["series_code", "date_id"]}),
        RowRule("observed_by_session", CRITICAL, "ExpectColumnPairValuesAToBeGreaterThanB",
                {"column_A": "date_id", "column_B": "observation_id", **_PAIR}),
        RowRule("released_by_session", CRITICAL, "ExpectColumnPairValuesAToBeGreaterThanB",
                {"column_A": "date_id", "column_B": "release_id", **_PAIR}),
        RowRule("released_after_observation", CRITICAL, "ExpectColumnPairValuesAToBeGreaterThanB",
                {"column_A": "release_id", "column_B": "observation_id", **_PAIR}),
    ]


def validate_macro_asof(panel: pd.DataFrame, rules: list[RowRule] | None = None) -> SuiteResult:
    """The point-in-time panel before its write; raises CriticalValidationError on any failure."""
    data = panel.reset_index(drop=True)
    check_columns(data, {"series_id": "string", "date": "date", "value": "float", "observation_date": "date",
                         "release_date": "date"}, "silver.macro_asof")
    gxf = pd.DataFrame({
        "series_id": data["series_id"].astype(object), "series_code": _codes(data["series_id"]),
        "date_id": _day_numbers(data["date"]), "observation_id": _day_numbers(data["observation_date"]),
        "release_id": _day_numbers(data["release_date"]),
        "value": data["value"].to_numpy(dtype=np.float64, na_value=np.nan),
        "value_finite": _finite_flag(data["value"], missing_ok=True),
    })
    result = run_suite(MACRO_ASOF_SUITE, macro_asof_rules() if rules is None else rules, gxf, _date_order(gxf))
    result.raise_on_critical(lambda i: f"{data['series_id'].iloc[i]} {data['date'].iloc[i]}")
    return result


# --- features -----------------------------------------------------------------------------------

FEATURE_KEY = {"ticker": "string", "date": "date"}


def feature_rules(bounds: Mapping[str, tuple[float, float]] | None = None) -> list[RowRule]:
    """gold.features_daily. Critical: a null or duplicate key, a date that is no session (they
    break every join downstream). Warn: an infinite value (null is a warm-up, allowed), a value
    outside its plausible range, a row whose silver bar is gone (a late reject)."""
    b = FEATURE_BOUNDS if bounds is None else bounds
    rules = _named_not_null([("ticker", "ticker_id"), ("date", "date_id")], CRITICAL)
    rules += [
        RowRule("unique_ticker_date", CRITICAL, "ExpectCompoundColumnsToBeUnique", {"column_list": ["ticker_id", "date_id"]}),
        RowRule("date_is_session", CRITICAL, "ExpectColumnValuesToBeInSet", {"column": "is_session", "value_set": [1.0]}),
    ]
    rules += [RowRule(f"finite_{f}", WARN, "ExpectColumnValuesToBeInSet", {"column": f"{f}__finite", "value_set": [1.0]})
              for f in FEATURE_NAMES]
    rules += [RowRule(f"extreme_{f}", WARN, "ExpectColumnValuesToBeBetween",
                      {"column": f, "min_value": b[f][0], "max_value": b[f][1]}) for f in FEATURE_NAMES if f in b]
    rules.append(RowRule("has_silver_bar", WARN, "ExpectColumnValuesToBeInSet", {"column": "in_silver", "value_set": [1.0]}))
    return rules


def _session_flags(days: np.ndarray) -> np.ndarray:
    from tickerlake.validation import _session_days

    sessions = _session_days()
    d = np.nan_to_num(days, nan=-1).astype(np.int64)
    pos = np.clip(np.searchsorted(sessions, d), 0, len(sessions) - 1)
    return np.where(np.isnan(days), np.nan, (sessions[pos] == d).astype(np.float64))


def _key_codes(frame: pd.DataFrame, other: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(ticker, date) of `frame` and `other` as int64 codes in one space (-1 where missing)."""
    both = pd.concat([frame["ticker"], other["ticker"]], ignore_index=True)
    codes, _ = pd.factorize(both, use_na_sentinel=True)
    days = np.concatenate([_day_numbers(frame["date"]), _day_numbers(other["date"])])
    ok = (codes >= 0) & ~np.isnan(days)
    key = np.where(ok, np.nan_to_num(days, nan=0).astype(np.int64) * 10_000_000 + codes, -1)
    return key[: len(frame)], key[len(frame):]


def validate_features_frame(features: pd.DataFrame, run_id: str, silver: pd.DataFrame | None = None,
                            rules: list[RowRule] | None = None, min_coverage: float = 1.0) -> Judged:
    """gold.features_daily rows of an interval. Critical (raised): a catalogue column missing or
    not a float, a critical rule, and - when `silver` (ticker, date of silver.bars_daily, same
    sessions) is given - a session whose silver tickers are not all covered. Quarantine rows:
    ticker, date, rule, severity (warn), values (the row's features), run_id."""
    data = features.reset_index(drop=True)
    check_columns(data, {**FEATURE_KEY, **{f: "float" for f in FEATURE_NAMES}}, "gold.features_daily")
    for f in FEATURE_NAMES:
        if not pd.api.types.is_float_dtype(data[f]):
            raise CriticalValidationError(f"gold.features_daily: column {f!r} is {data[f].dtype}, expected a float")
    days = _day_numbers(data["date"])
    columns: dict[str, np.ndarray] = {"ticker_id": _codes(data["ticker"]), "date_id": days,
                                      "is_session": _session_flags(days)}
    for f in FEATURE_NAMES:
        v = data[f].to_numpy(dtype=np.float64, na_value=np.nan)
        columns[f"{f}__finite"] = _finite_flag(data[f], missing_ok=True)
        columns[f] = np.where(np.isinf(v), np.nan, v)  # an infinity is judged once, by finite_<f>
    if silver is not None:
        fk, sk = _key_codes(data, silver)
        columns["in_silver"] = np.where(fk < 0, np.nan, np.isin(fk, sk[sk >= 0]).astype(np.float64))
    else:
        columns["in_silver"] = np.full(len(data), np.nan)
    gxf = pd.DataFrame(columns)  # built at once: ~400 columns inserted one by one fragment the frame
    result = run_suite(FEATURES_SUITE, feature_rules() if rules is None else rules, gxf,
                       np.nan_to_num(days, nan=np.inf))
    result.raise_on_critical(lambda i: f"{data['ticker'].iloc[i]} {_text(data['date'].iloc[i])}")
    if silver is not None:
        check_coverage_of(_as_dates(silver), _as_dates(data), "date", "ticker",
                          "gold.features_daily vs silver.bars_daily tickers", min_coverage)
    q = _quarantine(result, data, {"ticker": lambda f: f["ticker"], "date": lambda f: _as_dates(f)["date"]},
                    FEATURE_NAMES, run_id)
    return Judged(result, q, ~result.rejected)


def _as_dates(frame: pd.DataFrame, column: str = "date") -> pd.DataFrame:
    out = frame[["ticker", column]].copy()
    out[column] = [None if pd.isna(d) else pd.Timestamp(d).date() for d in out[column]]
    return out


# --- predictions --------------------------------------------------------------------------------

PREDICTION_SCHEMA = {"ticker": "string", "asof_date": "date", "pred_return": "float", "pred_lo": "float",
                     "pred_hi": "float", "percentile": "float", "signal": "string", "model_version": "any"}
SIGNALS = ("long", "short", "neutral")


def prediction_rules(pred_range: tuple[float, float] = PREDICTION_RANGE) -> list[RowRule]:
    """gold.predictions_daily rows of one run. Critical: a null or duplicate ticker, a prediction
    that is null or infinite (it would be ranked, published and traded), no model version, an
    unknown signal. Warn: a prediction outside `pred_range`, an interval that is upside down."""
    rules = _named_not_null([("ticker", "ticker_id")], CRITICAL)
    rules += [
        RowRule("unique_ticker", CRITICAL, "ExpectCompoundColumnsToBeUnique", {"column_list": ["ticker_id", "asof_id"]}),
        *[RowRule(f"finite_{c}", CRITICAL, "ExpectColumnValuesToBeInSet", {"column": f"{c}__finite", "value_set": [1.0]})
          for c in ("pred_return", "pred_lo", "pred_hi")],
        RowRule("not_null_model_version", CRITICAL, "ExpectColumnValuesToNotBeNull", {"column": "model_version"}),
        RowRule("model_version_present", CRITICAL, "ExpectColumnValuesToMatchRegex", {"column": "model_version", "regex": r"\S"}),
        RowRule("signal_known", CRITICAL, "ExpectColumnValuesToBeInSet", {"column": "signal", "value_set": list(SIGNALS)}),
        RowRule("pred_in_range", WARN, "ExpectColumnValuesToBeBetween",
                {"column": "pred_return", "min_value": pred_range[0], "max_value": pred_range[1]}),
        RowRule("interval_ordered", WARN, "ExpectColumnPairValuesAToBeGreaterThanB",
                {"column_A": "pred_hi", "column_B": "pred_lo", **_PAIR}),
    ]
    return rules


def validate_predictions(scored: pd.DataFrame, run_id: str, expected_tickers: Iterable[str] | None = None,
                         rules: list[RowRule] | None = None) -> Judged:
    """One run's scored rows before the append. Critical (raised): schema, a critical rule, and a
    ticker of `expected_tickers` (those with features at asof) without a prediction. Quarantine
    rows: ticker, asof_date, rule, severity (warn), values, run_id, model_version."""
    data = scored.reset_index(drop=True)
    check_columns(data, PREDICTION_SCHEMA, "predictions")
    gxf = pd.DataFrame({"ticker_id": _codes(data["ticker"]), "asof_id": _day_numbers(data["asof_date"]),
                        "model_version": data["model_version"].map(lambda v: None if v is None or (
                            isinstance(v, float) and math.isnan(v)) else str(v)).astype(object),
                        "signal": data["signal"].astype(object)})
    for c in ("pred_return", "pred_lo", "pred_hi"):
        v = data[c].to_numpy(dtype=np.float64, na_value=np.nan)
        gxf[f"{c}__finite"] = _finite_flag(data[c], missing_ok=False)
        gxf[c] = np.where(np.isfinite(v), v, np.nan)  # a non-finite value is judged by finite_<c>
    result = run_suite(PREDICTIONS_SUITE, prediction_rules() if rules is None else rules, gxf,
                       np.nan_to_num(gxf["asof_id"].to_numpy(), nan=np.inf))
    result.raise_on_critical(lambda i: f"{data['ticker'].iloc[i]} {_text(data['asof_date'].iloc[i])}")
    if expected_tickers is not None:
        expected = sorted({t for t in expected_tickers if isinstance(t, str)})
        missing = sorted(set(expected) - set(data["ticker"].dropna()))
        if missing:
            raise CriticalValidationError(
                f"predictions: {len(missing)} of {len(expected)} tickers with features have no prediction: "
                f"{missing[:10]}{' ...' if len(missing) > 10 else ''}")
    keys = {"ticker": lambda f: f["ticker"], "asof_date": lambda f: _as_dates(f, "asof_date")["asof_date"],
            "model_version": lambda f: f["model_version"].astype(str)}
    q = _quarantine(result, data, keys, ("pred_return", "pred_lo", "pred_hi", "percentile", "signal"), run_id)
    return Judged(result, q, ~result.rejected)


# --- quarantine tables of features and predictions -----------------------------------------------


def features_quarantine_schema():
    import pyarrow as pa

    return pa.schema([("ticker", pa.string()), ("date", pa.date32()), ("rule", pa.string()), ("severity", pa.string()),
                      ("values", pa.string()), ("run_id", pa.string())])


def predictions_quarantine_schema():
    import pyarrow as pa

    return pa.schema([("ticker", pa.string()), ("asof_date", pa.date32()), ("rule", pa.string()),
                      ("severity", pa.string()), ("values", pa.string()), ("run_id", pa.string()),
                      ("model_version", pa.string())])


def _arrow(quarantine: pd.DataFrame, schema):
    """The quarantine rows as `schema` (an empty frame has no dtypes to convert from)."""
    import pyarrow as pa

    if quarantine.empty:
        return schema.empty_table()
    return pa.Table.from_pandas(quarantine[schema.names], schema=schema, preserve_index=False)


def write_features_quarantine(settings, quarantine: pd.DataFrame, start: dt.date, end: dt.date) -> int:
    """Replace sessions [start, end] of quarantine.features_daily with this run's rows (one commit)."""

    from tickerlake.lake import date_predicate, replace_rows

    schema = features_quarantine_schema()
    table = _arrow(quarantine, schema)
    return replace_rows(settings, FEATURES_QUARANTINE, table, date_predicate("date", start, end), None)


def write_predictions_quarantine(settings, quarantine: pd.DataFrame, asof: dt.date, run_id: str) -> int:
    """Replace this run's rows for `asof` in quarantine.predictions_daily (a rerun of the same run
    writes the same rows; other runs' rows stay, as their predictions do)."""

    from tickerlake.lake import replace_rows
    from tickerlake.sql import sql_string_literal

    schema = predictions_quarantine_schema()
    table = _arrow(quarantine, schema)
    return replace_rows(settings, PREDICTIONS_QUARANTINE, table,
                         f"asof_date = '{asof.isoformat()}' AND run_id = {sql_string_literal(run_id)}", None)
