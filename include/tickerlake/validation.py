"""Great Expectations suites as code for daily bars, and quarantine rows built from their results.

Two suites, both plain Great Expectations expectations:

- `bars_daily.rows` judges each row alone: non-null key and OHLCV, prices > 0, low <= open,
  close <= high, volume >= 0, no duplicate (ticker, date), the date is an NYSE session.
- `bars_daily.context` judges a row against the ticker's neighbouring sessions. The context
  is computed in pandas/numpy as helper columns, and the rule is an expectation over that
  column, so its failures still come from Great Expectations:
    * `stale_bar` (reject): `identical_to_prev` = 1 when open, high, low, close and volume
      equal the ticker's previous bar;
    * `jump_reverts` (reject): `revert_jump_factor` = the smaller of the jump into the session
      and the jump out of it, when they go opposite ways; above JUMP_REVERT_FACTOR it is a
      one-session excursion (a decimal shift, a 100x unit error);
    * `unadjusted_split` (warn, a corporate action): `split_distance` = how far (in log) open
      and close are from the previous close times a split ratio; under SPLIT_TOLERANCE the
      jump is a split the vendor did not adjust;
    * `corporate_action` (warn): `jump_factor` = the one-day move as a factor; 2 or more
      (a drop of 50% or more, or a doubling) that does not revert is a spin-off-like event.
  Only rows that pass every rejecting row rule serve as context ("the previous bar" is the
  ticker's previous good bar within CONTEXT_SESSIONS sessions); the session after a reverting
  excursion is compared with the session before it. The three jump rules need the next
  session: a row is judged provisionally when it lands and judged again when the next
  session lands (`rejudge`), which is how a late reject happens.

Critical rules stop the run (schema and types, coverage of the expected universe). Row rules
send the offending rows to `quarantine.bars_daily` with the rule, the severity and the
values, straight from the unexpected rows Great Expectations reports; silver is bronze minus
the rows a rejecting rule holds. Switching an expectation off therefore lets its rows through.

Speed: each suite runs over batches of at most CHUNK_ROWS rows (the setting
`validation_chunk_rows`), cut at date boundaries (a duplicate key is always inside one batch),
holding only numeric columns (the ticker and the date as numbers). Every expectation runs first
with BOOLEAN_ONLY (its condition and count); one that fails runs again with COMPLETE on the same
loaded batch, and its unexpected index list is what quarantine is built from. Great
Expectations runs under pandas copy-on-write, so the batch copies its pandas engine makes before
each metric (dropping missing values) are lazy, and a batch holds only the columns of rules that
share one (the prices, the volume, each key column), so the copies a missing value forces are
narrow. The duplicate rule checks one number per (ticker, date) and the flag rules are range
checks, the cheapest forms of those checks in GE's pandas engine; GE's batch fingerprint (an MD5
of every row) is switched off.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

PRICE_COLUMNS = ("open", "high", "low", "close")
BAR_COLUMNS = {"ticker": "string", "date": "date", **{c: "float" for c in PRICE_COLUMNS}, "volume": "float"}
KEY = ["ticker", "date"]
ROW_SUITE = "bars_daily.rows"
CONTEXT_SUITE = "bars_daily.context"
CHUNK_ROWS = 1_500_000
QUARANTINE_COLUMNS = ["ticker", "date", "rule", "severity", "values", "run_id", "source_file", "source_row"]

# Price ratios (new / old) of the splits the rule knows: 2:1, 3:2, 3:1, 4:1, 5:1, 7:1, 8:1, 10:1
# and the reverse splits 1:2, 1:3, 1:4, 1:5, 1:10.
SPLIT_MOVE = 0.25  # |log| of a one-day move under which no split ratio can be near (see _context_columns)
SPLIT_PRICE_RATIOS = (1 / 2, 2 / 3, 1 / 3, 1 / 4, 1 / 5, 1 / 7, 1 / 8, 1 / 10, 2.0, 3.0, 4.0, 5.0, 10.0)


@dataclass(frozen=True)
class RuleParams:
    """Thresholds of the context rules (settings may override them, see `params_from_settings`)."""

    jump_revert_factor: float = 2.0  # an excursion of more than this factor, in and out, is rejected
    corporate_action_factor: float = 2.0  # a non-reverting one-day move of this factor or more is flagged
    split_tolerance: float = 0.05  # |log(price ratio) - log(split ratio)| for open and close
    context_sessions: int = 10  # the previous / next bar must be at most this many sessions away
    split_ratios: tuple[float, ...] = SPLIT_PRICE_RATIOS
    # excursion_cluster: many tickers with a one-session excursion that reverts, both ways at once
    cluster_excursion_factor: float = 1.06  # an excursion of at least this factor, in and out
    cluster_revert_tolerance: float = 0.03  # |log(next close / previous close)|: back where it was
    cluster_min_tickers: int = 5  # at least this many such tickers in the session ...
    cluster_min_share: float = 0.01  # ... and at least this share of the tickers judged that session
    cluster_min_minority: float = 0.15  # the smaller direction holds at least this share (not a market move)


def params_from_settings(settings) -> RuleParams:
    """RuleParams from the validation settings (`TICKERLAKE_VALIDATION_*`)."""
    return RuleParams(
        jump_revert_factor=float(settings.validation_jump_factor),
        corporate_action_factor=float(settings.validation_corporate_action_factor),
        split_tolerance=float(settings.validation_split_tolerance),
        context_sessions=int(settings.validation_context_sessions),
    )


def quarantine_schema():
    """Arrow schema of quarantine.bars_daily (explicit, so an empty run writes the right types)."""
    import pyarrow as pa

    return pa.schema([("ticker", pa.string()), ("date", pa.date32()), ("rule", pa.string()),
                      ("severity", pa.string()), ("values", pa.string()), ("run_id", pa.string()),
                      ("source_file", pa.string()), ("source_row", pa.int64()), ("year", pa.int32())])


class CriticalValidationError(RuntimeError):
    """A critical rule failed: the run stops and nothing lands downstream."""


@dataclass(frozen=True)
class RowRule:
    """An expectation and what its failures mean.

    stage: "row" (the row alone) or "context" (helper columns from neighbouring sessions);
    needs_next: the verdict may change when the next session lands (judged again then);
    category: "defect" or "corporate_action" (a real event, flagged, not an error).
    """

    name: str
    severity: str  # "reject" (kept out of silver) or "warn" (flagged, let through)
    expectation_type: str
    kwargs: dict = field(default_factory=dict)
    stage: str = "row"
    needs_next: bool = False
    category: str = "defect"

    def build(self):
        import great_expectations as gx

        cls = getattr(gx.expectations, self.expectation_type)
        expectation = cls(**self.kwargs)
        expectation.meta = {"rule": self.name, "severity": self.severity, "category": self.category}
        return expectation


def daily_bar_rules(params: RuleParams | None = None) -> list[RowRule]:
    p = params or RuleParams()
    pair = {"or_equal": True, "ignore_row_if": "either_value_is_missing"}
    rules = [RowRule(f"not_null_{c}", "reject", "ExpectColumnValuesToNotBeNull", {"column": c})
             for c in ("ticker_id", "date_id")]
    rules += [RowRule(f"not_null_{c}", "reject", "ExpectColumnValuesToNotBeNull", {"column": c})
              for c in (*PRICE_COLUMNS, "volume")]
    rules += [
        RowRule(f"positive_{c}", "reject", "ExpectColumnValuesToBeBetween", {"column": c, "min_value": 0, "strict_min": True})
        for c in PRICE_COLUMNS
    ]
    rules += [
        RowRule("volume_non_negative", "reject", "ExpectColumnValuesToBeBetween", {"column": "volume", "min_value": 0}),
        RowRule("high_ge_low", "reject", "ExpectColumnPairValuesAToBeGreaterThanB", {"column_A": "high", "column_B": "low", **pair}),
        RowRule("high_ge_open", "reject", "ExpectColumnPairValuesAToBeGreaterThanB", {"column_A": "high", "column_B": "open", **pair}),
        RowRule("high_ge_close", "reject", "ExpectColumnPairValuesAToBeGreaterThanB", {"column_A": "high", "column_B": "close", **pair}),
        RowRule("open_ge_low", "reject", "ExpectColumnPairValuesAToBeGreaterThanB", {"column_A": "open", "column_B": "low", **pair}),
        RowRule("close_ge_low", "reject", "ExpectColumnPairValuesAToBeGreaterThanB", {"column_A": "close", "column_B": "low", **pair}),
        # one number per (ticker, date) key (see _encode): a one-column duplicate check is a third
        # cheaper than the compound one over two columns, and finds the same rows
        RowRule("unique_ticker_date", "reject", "ExpectColumnValuesToBeUnique", {"column": "ticker_date_key"}),
        # the flag columns below hold 0, 1 or NaN; a range check of [1, 1] (or [0, 0]) is the set
        # check {1} (or {0}) at a quarter of its cost in Great Expectations' pandas engine
        RowRule("date_is_session", "reject", "ExpectColumnValuesToBeBetween", {"column": "is_session", "min_value": 1, "max_value": 1}),
        # context rules
        RowRule("stale_bar", "reject", "ExpectColumnValuesToBeBetween",
                {"column": "identical_to_prev", "min_value": 0, "max_value": 0}, stage="context"),
        RowRule("jump_reverts", "reject", "ExpectColumnValuesToBeBetween",
                {"column": "revert_jump_factor", "max_value": p.jump_revert_factor}, stage="context", needs_next=True),
        RowRule("excursion_cluster", "reject", "ExpectColumnValuesToBeBetween",
                {"column": "in_excursion_cluster", "min_value": 0, "max_value": 0}, stage="context", needs_next=True),
        RowRule("unadjusted_split", "warn", "ExpectColumnValuesToBeBetween",
                {"column": "split_distance", "min_value": p.split_tolerance}, stage="context", needs_next=True,
                category="corporate_action"),
        RowRule("corporate_action", "warn", "ExpectColumnValuesToBeBetween",
                {"column": "jump_factor", "max_value": p.corporate_action_factor, "strict_max": True},
                stage="context", needs_next=True, category="corporate_action"),
    ]
    return rules


# --- critical rules ---------------------------------------------------------------------------


def check_schema(frame: pd.DataFrame) -> None:
    """Critical: every bar column present with its type; a price arriving as text fails hard."""
    missing = [c for c in BAR_COLUMNS if c not in frame.columns]
    if missing:
        raise CriticalValidationError(f"bars are missing columns {missing}")
    for col, kind in BAR_COLUMNS.items():
        series = frame[col]
        if kind == "float" and (not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)):
            raise CriticalValidationError(
                f"column {col!r} arrived as {series.dtype}, expected a number (no silent cast)"
            )
        if kind == "string" and not isinstance(series.dtype, pd.CategoricalDtype):
            inferred = pd.api.types.infer_dtype(series, skipna=True)
            if inferred not in ("string", "empty"):
                raise CriticalValidationError(f"column {col!r} arrived as {inferred}, expected text")
        if kind == "date" and not pd.api.types.is_datetime64_any_dtype(series):
            inferred = pd.api.types.infer_dtype(series, skipna=True)
            if inferred not in ("date", "datetime", "datetime64", "empty"):
                raise CriticalValidationError(f"column 'date' arrived as {inferred}, expected dates")


def check_coverage(
    frame: pd.DataFrame, expected_tickers: int | Mapping[dt.date, int], min_coverage: float
) -> dict[str, float]:
    """Critical: each session covers enough of the expected universe (an int, or one count per session).

    Returns the worst session's coverage; raises CriticalValidationError below `min_coverage`.
    """
    if isinstance(expected_tickers, int) and expected_tickers <= 0:
        return {}
    from tickerlake.calendar import sessions_between

    if len(frame) == 0:
        return {}
    days = _day_numbers(frame["date"])
    codes, _ = pd.factorize(frame["ticker"])
    ok = ~np.isnan(days) & (codes >= 0)
    pairs = np.sort((days[ok].astype(np.int64) + 1_000_000) * 10_000_000 + codes[ok])
    pairs = pairs[np.concatenate([[True], pairs[1:] != pairs[:-1]])] if len(pairs) else pairs
    day_of = pairs // 10_000_000 - 1_000_000  # sorted
    starts = np.flatnonzero(np.concatenate([[True], day_of[1:] != day_of[:-1]])) if len(day_of) else day_of
    uniq_days = day_of[starts]
    n_tickers = np.diff(np.concatenate([starts, [len(day_of)]]))
    first, last = (dt.date(1970, 1, 1) + dt.timedelta(days=int(x)) for x in (np.nanmin(days), np.nanmax(days)))
    per_day = pd.Series(n_tickers, index=[dt.date(1970, 1, 1) + dt.timedelta(days=int(d)) for d in uniq_days])
    per_day = per_day.reindex(sessions_between(first, last), fill_value=0)
    if isinstance(expected_tickers, int):
        expected = pd.Series(expected_tickers, index=per_day.index)
    else:
        expected = pd.Series({d: int(expected_tickers.get(d, 0)) for d in per_day.index}, dtype="int64")
    ratio = (per_day / expected.where(expected > 0)).dropna()
    if ratio.empty:
        return {}
    worst = ratio.idxmin()
    low = ratio[ratio < min_coverage]
    if len(low):
        day = low.index[0]
        raise CriticalValidationError(
            f"coverage {int(per_day[day])}/{int(expected[day])} tickers on {day} is below {min_coverage:.0%}"
            + (f" ({len(low)} sessions below)" if len(low) > 1 else "")
        )
    return {"worst_session": worst.isoformat(), "worst_coverage": round(float(ratio[worst]), 4)}


# --- the validation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ValidationResult:
    quarantine: pd.DataFrame  # ticker, date, rule, severity, values, run_id, source_file, source_row
    counts: dict[str, int]  # rule -> rows flagged among the reported rows
    success: bool
    rejudged_counts: dict[str, int] = field(default_factory=dict)  # next-session rules, rejudged rows
    ge_results: dict = field(default_factory=dict)  # suite name -> aggregated GE suite validation result


def validate_bars(
    frame: pd.DataFrame,
    run_id: str,
    rules: list[RowRule] | None = None,
    *,
    params: RuleParams | None = None,
    report: np.ndarray | pd.Series | None = None,
    rejudge: np.ndarray | pd.Series | None = None,
    keep_ge_results: bool = False,
    chunk_rows: int | None = None,
) -> ValidationResult:
    """Run both suites through Great Expectations and turn the unexpected rows into quarantine rows.

    `frame`: bars (ticker, date, open, high, low, close, volume; optional source_file, source_row),
    context rows included. `report` (bool per row, default all): rows whose verdicts are
    returned. `rejudge` (bool per row, default none): rows, not reported, whose next-session
    rules are returned (their verdict may have changed now that the next session is here).
    `chunk_rows` (default CHUNK_ROWS): the most rows one Great Expectations batch holds.
    """
    check_schema(frame)
    rules = daily_bar_rules(params) if rules is None else rules
    params = params or RuleParams()
    n = len(frame)
    data = frame.reset_index(drop=True)
    report_mask = np.ones(n, dtype=bool) if report is None else np.asarray(report, dtype=bool)
    rejudge_mask = np.zeros(n, dtype=bool) if rejudge is None else np.asarray(rejudge, dtype=bool) & ~report_mask
    row_rules = [r for r in rules if r.stage == "row"]
    ctx_rules = [r for r in rules if r.stage == "context"]

    enc = _encode(data)
    order = np.argsort(np.nan_to_num(enc["date_id"], nan=np.inf), kind="stable")
    ge_results: dict = {}

    # stage 1: each row alone, every row (context rows too: a rejected neighbour is no context)
    flagged: dict[str, np.ndarray] = {}
    if row_rules and n:
        cols = ["open", "high", "low", "close", "volume", "ticker_id", "date_id", "is_session", "ticker_date_key"]
        gx_frame = pd.DataFrame({c: enc[c] for c in cols})
        flagged.update(_run_suite(ROW_SUITE, row_rules, gx_frame, order, ge_results if keep_ge_results else None,
                                  chunk_rows=chunk_rows))
    rejected = np.zeros(n, dtype=bool)
    for rule in row_rules:
        if rule.severity == "reject":
            rejected[flagged[rule.name]] = True

    # stage 2: against the ticker's neighbouring good bars
    helpers = Context(np.full(n, -1, dtype=np.int64), {})
    if ctx_rules and n:
        good = ~rejected & ~np.isnan(enc["ticker_id"]) & ~np.isnan(enc["session_ix"])
        helpers = _context_columns(enc, good, params)
        judged = good & (report_mask | rejudge_mask)
        idx = np.flatnonzero(judged)
        if len(idx):
            gx_frame = pd.DataFrame({c: helpers.take(c, idx) for c in RULE_COLUMNS}, index=idx)
            sub_order = np.argsort(enc["date_id"][idx], kind="stable")
            flagged.update(_run_suite(CONTEXT_SUITE, ctx_rules, gx_frame, sub_order,
                                      ge_results if keep_ge_results else None, chunk_rows=chunk_rows))
        for rule in ctx_rules:
            flagged.setdefault(rule.name, np.zeros(0, dtype=np.int64))

    rows: list[pd.DataFrame] = []
    counts: dict[str, int] = {}
    rejudged_counts: dict[str, int] = {}
    for rule in rules:
        ids = np.asarray(flagged.get(rule.name, np.zeros(0, dtype=np.int64)), dtype=np.int64)
        reported = ids[report_mask[ids]]
        counts[rule.name] = int(len(reported))
        take = reported
        if rule.needs_next:
            again = ids[rejudge_mask[ids]]
            rejudged_counts[rule.name] = int(len(again))
            take = np.concatenate([reported, again])
        if len(take):
            rows.append(_quarantine_rows(data, enc, helpers, np.sort(take), rule, run_id))
    quarantine = (
        pd.concat(rows, ignore_index=True) if rows else pd.DataFrame({c: [] for c in QUARANTINE_COLUMNS})
    )
    quarantine = quarantine[QUARANTINE_COLUMNS]
    return ValidationResult(quarantine=quarantine, counts=counts, success=quarantine.empty,
                            rejudged_counts=rejudged_counts, ge_results=ge_results)


# --- encoding and helper columns -------------------------------------------------------------


def _encode(data: pd.DataFrame) -> dict[str, np.ndarray]:
    """Numeric columns for Great Expectations: prices, volume, ticker id, date id, session flags."""
    ticker = data["ticker"]
    codes, _ = pd.factorize(ticker, use_na_sentinel=True)
    ticker_id = codes.astype(np.float64)
    ticker_id[codes < 0] = np.nan
    days = _day_numbers(data["date"])
    sessions = _session_days()
    pos = np.searchsorted(sessions, np.nan_to_num(days, nan=-1).astype(np.int64))
    pos_c = np.clip(pos, 0, len(sessions) - 1)
    in_cal = (~np.isnan(days)) & (days >= sessions[0]) & (days <= sessions[-1])
    is_session = np.where(np.isnan(days), np.nan, (in_cal & (sessions[pos_c] == days)).astype(np.float64))
    session_ix = np.where(is_session == 1.0, pos_c, np.nan)
    out = {c: data[c].to_numpy(dtype=np.float64, na_value=np.nan) for c in (*PRICE_COLUMNS, "volume")}
    # The (ticker, date) key as one exact float, one-to-one for days within +-2**20 of 1970 (years
    # -901 to 4840). Like the compound-unique rule it stands for, a key with one part missing still
    # takes part (a missing ticker is -1, a missing day 0 after the offset) and one with both
    # missing does not (NaN, which the unique rule skips).
    t_part = np.where(np.isnan(ticker_id), -1.0, ticker_id)
    d_part = np.where(np.isnan(days), 0.0, days + 2.0**20)
    key = np.where(np.isnan(ticker_id) & np.isnan(days), np.nan, t_part * 2.0**21 + d_part)
    out.update(ticker_id=ticker_id, date_id=days, is_session=is_session, session_ix=session_ix, ticker_date_key=key)
    return out


def _day_numbers(dates: pd.Series) -> np.ndarray:
    """Days since 1970-01-01 as float (NaN for a missing date)."""
    if pd.api.types.is_datetime64_any_dtype(dates):
        values = dates.to_numpy(dtype="datetime64[D]")
    else:
        values = pd.to_datetime(dates, errors="coerce").to_numpy(dtype="datetime64[D]")
    out = values.astype(np.int64).astype(np.float64)
    out[np.isnat(values)] = np.nan
    return out


@lru_cache(maxsize=1)
def _session_days() -> np.ndarray:
    from tickerlake.calendar import all_sessions

    days = np.array(all_sessions(), dtype="datetime64[D]")
    return days.astype(np.int64)


RULE_COLUMNS = ("identical_to_prev", "revert_jump_factor", "split_distance", "jump_factor", "in_excursion_cluster")
# for the quarantine values only
DETAIL_COLUMNS = ("cluster_size", "split_ratio", "prev_close", "next_close", "ref_close", "prev_day", "ref_day")


@dataclass(frozen=True)
class Context:
    """The context rules' helper columns, held in (ticker, session) order over the good rows.

    `take(column, ids)` gives a column for frame rows `ids` (NaN where a rule cannot judge, or the
    row is not a good row). The five rule columns go to Great Expectations for the judged rows;
    the other columns (the neighbours' closes and days, the split ratio, the cluster size) are
    read only for the quarantined rows, so no full-length copy of them is ever made.
    """

    position: np.ndarray  # frame row -> position in the sorted order, -1 for a row with no context
    columns: dict[str, np.ndarray]  # sorted order

    def take(self, column: str, ids: np.ndarray) -> np.ndarray:
        if column not in RULE_COLUMNS + DETAIL_COLUMNS:
            raise KeyError(column)
        pos = self.position[np.asarray(ids, dtype=np.int64)]
        values = self.columns.get(column)
        if values is None or not len(values):  # no good row: no context anywhere
            return np.full(len(pos), np.nan)
        return np.where(pos >= 0, values[np.maximum(pos, 0)], np.nan)


def _context_order(enc: dict[str, np.ndarray], idx: np.ndarray) -> np.ndarray:
    """Rows `idx` sorted by (ticker, session). Bronze pieces come in date order, so a stable sort on
    the ticker alone (a radix sort when the ids fit 16 bits) is enough; otherwise a full sort."""
    tid = enc["ticker_id"][idx]
    days = enc["date_id"][idx]
    if len(idx) and float(tid.max()) < 65536 and bool(np.all(days[1:] >= days[:-1])):
        return idx[np.argsort(tid.astype(np.uint16), kind="stable")]
    six = enc["session_ix"][idx]
    return idx[np.argsort(tid.astype(np.int64) * 1_000_000 + six.astype(np.int64), kind="stable")]


def _context_columns(enc: dict[str, np.ndarray], good: np.ndarray, p: RuleParams) -> Context:
    """Helper columns of every good row against its ticker's neighbouring good rows (context = good rows only)."""
    n = len(good)
    idx = np.flatnonzero(good)
    position = np.full(n, -1, dtype=np.int64)
    if not len(idx):
        return Context(position, {})
    rows = _context_order(enc, idx)
    position[rows] = np.arange(len(rows))
    tid, six = enc["ticker_id"][rows], enc["session_ix"][rows]
    o, h, lo, c, v = (enc[k][rows] for k in ("open", "high", "low", "close", "volume"))
    m = len(rows)
    k = np.arange(m)
    link = np.zeros(m, dtype=bool)  # row k-1 is row k's previous bar
    link[1:] = (tid[1:] == tid[:-1]) & (six[1:] - six[:-1] <= p.context_sessions) & (six[1:] > six[:-1])
    prev = np.where(link, k - 1, -1)
    nxt = np.full(m, -1)
    nxt[:-1] = np.where(link[1:], k[1:], -1)
    has_prev, has_next = prev >= 0, nxt >= 0
    pp = np.maximum(prev, 0)
    nn = np.maximum(nxt, 0)

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        same = (o == o[pp]) & (h == h[pp]) & (lo == lo[pp]) & (c == c[pp]) & (v == v[pp])
        identical = np.where(has_prev, same.astype(np.float64), np.nan)
        prev_c, next_c = c[pp], c[nn]
        log_in = np.log(c / prev_c)
        log_out = np.log(next_c / c)
        opposite = np.sign(log_in) * np.sign(log_out) < 0
        revert = np.where(opposite, np.exp(np.minimum(np.abs(log_in), np.abs(log_out))), 1.0)
        revert = np.where(has_prev & has_next, revert, np.nan)
        spike = revert > p.jump_revert_factor  # NaN compares False
        # the reference bar: the previous one, or the one before it when the previous was an excursion
        ref = prev.copy()
        skip = has_prev & spike[pp]
        ref[skip] = prev[pp[skip]]
        has_ref = ref >= 0
        rr = np.maximum(ref, 0)
        has_ref &= (six - six[rr]) <= 2 * p.context_sessions
        judged = has_ref & ~spike
        ref_c = c[rr]
        log_c = np.log(c / ref_c)
        log_o = np.log(o / ref_c)
        jump = np.where(judged, np.exp(np.abs(log_c)), np.nan)
        # the split distance is defined where the move could be a split: every known ratio is at
        # least log(1.5) = 0.405 away from 1, so a move under SPLIT_MOVE (in log) is none
        ratios = np.log(np.asarray(p.split_ratios, dtype=np.float64))
        cand = np.flatnonzero(judged & ((np.abs(log_c) >= SPLIT_MOVE) | (np.abs(log_o) >= SPLIT_MOVE)))
        dist = np.full(m, np.nan)
        split_ratio = np.full(m, np.nan)
        if len(cand):
            dist_all = np.maximum(np.abs(log_o[cand, None] - ratios[None, :]), np.abs(log_c[cand, None] - ratios[None, :]))
            best = np.argmin(np.nan_to_num(dist_all, nan=np.inf), axis=1)
            dist[cand] = dist_all[np.arange(len(cand)), best]
            split_ratio[cand] = np.asarray(p.split_ratios)[best]

    cluster, size = _excursion_clusters(six, log_in, log_out, has_prev & has_next, p)
    day = enc["date_id"][rows]
    nan = np.nan
    return Context(position, {
        "identical_to_prev": identical, "revert_jump_factor": revert, "split_distance": dist,
        "jump_factor": jump, "in_excursion_cluster": cluster,
        "cluster_size": size, "split_ratio": split_ratio,
        "prev_close": np.where(has_prev, prev_c, nan), "next_close": np.where(has_next, next_c, nan),
        "ref_close": np.where(has_ref, ref_c, nan),
        "prev_day": np.where(has_prev, day[pp], nan), "ref_day": np.where(has_ref, day[rr], nan),
    })


def _excursion_clusters(six: np.ndarray, log_in: np.ndarray, log_out: np.ndarray, judged: np.ndarray,
                        p: RuleParams) -> tuple[np.ndarray, np.ndarray]:
    """`in_excursion_cluster` (1 / 0, NaN where not judged) and the cluster's size per row.

    A vendor that files bars under the wrong symbols for a day (sp500_5yr on 2014-10-30 and
    2017-09-14) leaves many tickers with a one-session excursion of 6-40% that returns to the
    previous close the next day, some up and some down. One such ticker is a real event; a
    market-wide move goes one way. So a session's excursions are rejected together when there
    are enough of them (count and share) and the smaller direction holds a real share.
    """
    with np.errstate(invalid="ignore"):
        opposite = np.sign(log_in) * np.sign(log_out) < 0
        size_in = np.minimum(np.abs(log_in), np.abs(log_out))
        member = judged & opposite & (size_in >= np.log(p.cluster_excursion_factor)) & (
            np.abs(log_in + log_out) <= p.cluster_revert_tolerance)
    session = np.where(judged, six, -1).astype(np.int64)
    cluster = np.where(judged, 0.0, np.nan)
    size = np.full(len(six), np.nan)
    if not member.any():
        return cluster, size
    offset = int(session[judged].min())
    bins = session[judged] - offset
    n_judged = np.bincount(bins)
    s_member = session[member] - offset
    n_member = np.bincount(s_member, minlength=len(n_judged))
    n_up = np.bincount(s_member, weights=(log_in[member] > 0).astype(np.float64), minlength=len(n_judged))
    minority = np.minimum(n_up, n_member - n_up)
    hit = (n_member >= p.cluster_min_tickers) & (n_member >= p.cluster_min_share * n_judged) & (
        minority >= p.cluster_min_minority * n_member)
    rows = np.flatnonzero(member)
    flagged = rows[hit[session[rows] - offset]]
    cluster[flagged] = 1.0
    size[flagged] = n_member[session[flagged] - offset]
    return cluster, size


# --- Great Expectations ---------------------------------------------------------------------------


def _no_batch_fingerprint() -> None:
    """Great Expectations' pandas engine fingerprints every batch under HASH_THRESHOLD bytes (1 GB)
    with an MD5 over `hash_pandas_object` of all its rows: a batch marker shown in Data Docs, and a
    sixth of the row suite's time on a 1.5M-row batch. Our batches are identified by the bronze
    version and batch ids in ops.validation_runs, so the fingerprint is switched off (GE is
    pinned; a unit test checks that the switch still takes)."""
    from great_expectations.execution_engine import pandas_execution_engine

    pandas_execution_engine.HASH_THRESHOLD = 0


class _Gx:
    """One ephemeral context per process: data source, asset and batch definition made once."""

    _instance: _Gx | None = None

    def __init__(self) -> None:
        import great_expectations as gx

        _no_batch_fingerprint()
        self.context = gx.get_context(mode="ephemeral")
        _quiet(self.context)
        asset = self.context.data_sources.add_pandas("bars").add_dataframe_asset("bars_daily")
        self.batch_definition = asset.add_batch_definition_whole_dataframe("chunk")

    @classmethod
    def get(cls) -> _Gx:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance


def build_suite(name: str, rules: list[RowRule]):
    import great_expectations as gx

    suite = gx.ExpectationSuite(name=name)
    for rule in rules:
        suite.add_expectation(rule.build())
    return suite


_SUITES: dict[str, object] = {}


def _suite(name: str, rules: list[RowRule]):
    """The suite for `rules`, built once per process (building one is slow in GE)."""
    key = name + json.dumps([(r.name, r.severity, r.expectation_type, r.kwargs) for r in rules], sort_keys=True)
    if key not in _SUITES:
        _SUITES[key] = build_suite(name, rules)
    return _SUITES[key]


def _columns_of(rule: RowRule) -> tuple[str, ...]:
    kw = rule.kwargs
    cols = [kw[k] for k in ("column", "column_A", "column_B") if k in kw] + list(kw.get("column_list", []))
    return tuple(dict.fromkeys(cols))


# Every expectation runs first with BOOLEAN_ONLY (success alone: the condition and its count);
# one that fails runs again on the same loaded batch with COMPLETE, which lists the unexpected
# rows (their index labels). Most chunks pass most expectations, and the lists, values and
# queries COMPLETE builds cost more than the condition itself.
FIRST_PASS = {"result_format": "BOOLEAN_ONLY"}
FAILED_PASS = {"result_format": "COMPLETE", "return_unexpected_index_query": False, "include_unexpected_rows": False}


def _run_suite(name: str, rules: list[RowRule], frame: pd.DataFrame, order: np.ndarray,
               ge_results: dict | None, *, chunk_rows: int | None = None) -> dict[str, np.ndarray]:
    """Validate `frame` in date-ordered chunks of at most `chunk_rows` rows (default CHUNK_ROWS),
    each chunk one batch per group of rules that share columns (`_column_groups`); rule name ->
    frame index labels that Great Expectations reported unexpected."""
    gx = _Gx.get()
    groups = [(_suite(name, group), cols) for group, cols in _column_groups(rules, frame)]
    found: dict[str, list[np.ndarray]] = {r.name: [] for r in rules}
    by_name = {r.name: r for r in rules}
    results = []
    contiguous = len(order) == 0 or bool(np.all(np.diff(order) == 1))
    for lo, hi in _chunks(len(frame), order, frame, chunk_rows or CHUNK_ROWS):
        # copy-on-write while Great Expectations runs: its pandas engine copies the whole batch
        # for each expectation that drops missing values first (dropna, a null filter), even when
        # nothing is dropped; under copy-on-write those copies are lazy until a value is missing
        with pd.option_context("mode.copy_on_write", True):
            if hi - lo == len(frame):  # one chunk: the frame as it is, in any order
                chunk = frame
            else:
                chunk = frame.iloc[order[lo]:order[lo] + (hi - lo)] if contiguous else frame.iloc[order[lo:hi]]
            for suite, cols in groups:
                outcome = _validate_batch(gx.batch_definition, chunk[cols], suite, by_name, found)
                if ge_results is not None:
                    results.append(outcome)
    if ge_results is not None and results:
        ge_results[name] = _aggregate(results, [r.name for r in rules])
    return {k: (np.unique(np.concatenate(v)) if v else np.zeros(0, dtype=np.int64)) for k, v in found.items()}


def _column_groups(rules: list[RowRule], frame: pd.DataFrame) -> list[tuple[list[RowRule], list[str]]]:
    """The rules split into groups that share no column, each with its columns. Great Expectations'
    pandas engine copies the whole batch for each expectation that drops missing values first (a
    real copy once a value is missing), so a batch holds one group's columns, not the suite's."""
    groups: list[tuple[list[RowRule], set[str]]] = []
    for rule in rules:
        cols = set(_columns_of(rule))
        joined = [g for g in groups if g[1] & cols]
        merged = ([rule] + [r for g in joined for r in g[0]], cols.union(*(g[1] for g in joined)))
        groups = [g for g in groups if not (g[1] & cols)] + [merged]
    order = {r.name: i for i, r in enumerate(rules)}
    return [(sorted(g, key=lambda r: order[r.name]), [c for c in frame.columns if c in cols] or list(frame.columns))
            for g, cols in groups]


def _validate_batch(batch_definition, batch: pd.DataFrame, suite, by_name: dict[str, RowRule],
                    found: dict[str, list[np.ndarray]]):
    """One batch through the suite: every expectation with BOOLEAN_ONLY, a failed one again with
    COMPLETE on the same loaded batch; its unexpected index labels are added to `found`."""
    from great_expectations.validator.v1_validator import Validator

    # one Validator per batch: it loads the batch once for both passes
    validator = Validator(batch_definition=batch_definition, batch_parameters={"dataframe": batch},
                          result_format=FIRST_PASS)
    outcome = validator.validate_expectation_suite(suite)
    for i, res in enumerate(outcome.results):
        rule_name = res.expectation_config.meta["rule"]
        _raise_on_exception(rule_name, res.exception_info)
        if res.success and "mostly" not in by_name[rule_name].kwargs:
            res.result = {"element_count": len(batch), "unexpected_count": 0}  # what success means
            continue
        validator.result_format = FAILED_PASS
        res = outcome.results[i] = validator.validate_expectation(_expectation(suite, rule_name))
        _raise_on_exception(rule_name, res.exception_info)
        ids = res.result.get("unexpected_index_list") or []
        if ids:
            found[rule_name].append(np.asarray(ids, dtype=np.int64))
    return outcome


def _expectation(suite, rule_name: str):
    return next(e for e in suite.expectations if (e.meta or {}).get("rule") == rule_name)


def _chunks(n: int, order: np.ndarray, frame: pd.DataFrame, chunk_rows: int = CHUNK_ROWS):
    """Row ranges of `order` of at most `chunk_rows` rows, never cutting a date (a key stays whole)."""
    if n <= chunk_rows:
        yield 0, n
        return
    dates = frame["date_id"].to_numpy()[order] if "date_id" in frame else None
    lo = 0
    while lo < n:
        hi = min(lo + chunk_rows, n)
        if dates is not None and hi < n:
            boundary = dates[hi - 1]
            if np.isnan(boundary):
                hi = n  # missing dates sort last: one chunk for them
            else:
                first = int(np.searchsorted(dates[lo:hi], boundary, side="left")) + lo
                hi = first if first > lo else int(np.searchsorted(dates[lo:], boundary, side="right")) + lo
        yield lo, hi
        lo = hi


def _raise_on_exception(rule_name: str, info) -> None:
    """An expectation that errored is not a pass: stop (GE reports errors per metric or flat)."""
    if not info:
        return
    parts = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    for part in parts:
        if part.get("raised_exception"):
            raise RuntimeError(f"expectation {rule_name} raised: {part.get('exception_message')}")


def _aggregate(outcomes: list, order: list[str] | None = None):
    """One suite result out of several (chunks, column batches, years): counts summed, lists cut."""
    base = outcomes[0]
    by_rule: dict[str, list] = {}
    for outcome in outcomes:
        for res in outcome.results:
            by_rule.setdefault(res.expectation_config.meta["rule"], []).append(res)
    names = [n for n in (order or []) if n in by_rule] + [n for n in by_rule if n not in (order or [])]
    merged = []
    for rule_name in names:
        parts = by_rule[rule_name]
        res = parts[0]
        total = sum(int(p.result.get("element_count", 0) or 0) for p in parts)
        unexpected = sum(int(p.result.get("unexpected_count", 0) or 0) for p in parts)
        missing = sum(int(p.result.get("missing_count", 0) or 0) for p in parts)
        partial = [x for p in parts for x in (p.result.get("partial_unexpected_list") or [])][:20]
        res.result = {
            "element_count": total,
            "unexpected_count": unexpected,
            "unexpected_percent": 100.0 * unexpected / max(total - missing, 1),
            "missing_count": missing,
            "missing_percent": 100.0 * missing / max(total, 1),
            "partial_unexpected_list": partial,
        }
        res.success = all(p.success for p in parts)
        merged.append(res)
    base.results = merged
    base.success = all(r.success for r in merged)
    ok = sum(1 for r in merged if r.success)
    base.statistics.update(
        evaluated_expectations=len(merged), successful_expectations=ok,
        unsuccessful_expectations=len(merged) - ok,
        success_percent=100.0 * ok / max(len(merged), 1),
    )
    return base


def _quarantine_rows(data: pd.DataFrame, enc: dict, helpers: Context, ids: np.ndarray, rule: RowRule,
                     run_id: str) -> pd.DataFrame:
    def num(values: np.ndarray) -> list:
        return [None if (x is None or (isinstance(x, float) and math.isnan(x))) else float(x) for x in values]

    fields = {c: num(enc[c][ids]) for c in (*PRICE_COLUMNS, "volume")}
    extra: dict[str, list] = {}
    if rule.stage == "context":
        wanted = {
            "stale_bar": ("prev_day",),
            "jump_reverts": ("prev_close", "next_close", "revert_jump_factor"),
            "excursion_cluster": ("prev_close", "next_close", "revert_jump_factor", "cluster_size"),
            "unadjusted_split": ("ref_day", "ref_close", "split_ratio", "split_distance"),
            "corporate_action": ("ref_day", "ref_close", "jump_factor", "next_close"),
        }.get(rule.name, ())
        for col in wanted:
            vals = num(helpers.take(col, ids))
            if col.endswith("_day"):
                vals = [None if x is None else (dt.date(1970, 1, 1) + dt.timedelta(days=int(x))).isoformat() for x in vals]
            elif col != "split_ratio":
                vals = [None if x is None else round(x, 6) for x in vals]
            extra[col] = vals
    keys = list(fields) + list(extra)
    columns = [fields[k] if k in fields else extra[k] for k in keys]
    values = [json.dumps(dict(zip(keys, vals, strict=True))) for vals in zip(*columns, strict=True)]
    sub = data.iloc[ids]
    dates = pd.to_datetime(sub["date"], errors="coerce")
    return pd.DataFrame({
        "ticker": sub["ticker"].to_numpy(dtype=object),
        "date": [None if pd.isna(d) else d.date() for d in dates],
        "rule": rule.name,
        "severity": rule.severity,
        "values": values,
        "run_id": run_id,
        "source_file": sub["source_file"].to_numpy(dtype=object) if "source_file" in sub else None,
        "source_row": (pd.array(sub["source_row"], dtype="Int64") if "source_row" in sub
                       else pd.array([None] * len(ids), dtype="Int64")),
    })


def _quiet(context) -> None:
    """No progress bars in task logs."""
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context.variables.progress_bars = ProgressBarsConfig(globally=False)


# --- Data Docs -------------------------------------------------------------------------------------

DOCS_SITE = "tickerlake"


def aggregate_results(outcomes: list):
    """One suite validation result out of several (chunks, years): counts summed, lists cut."""
    return _aggregate(outcomes)


def build_data_docs(settings, ge_results: dict, run_id: str, run_time: dt.datetime | None, batch_label: str,
                    rules: list[RowRule] | None = None) -> Path:
    """Store this run's suite results in the file context under the state folder and render them
    into the static Data Docs site `settings.home / "data_docs"`; returns the run's first page."""
    import fcntl

    import great_expectations as gx
    from great_expectations.data_context.data_context.context_factory import set_context

    site_dir = Path(settings.home) / "data_docs"
    Path(settings.home).mkdir(parents=True, exist_ok=True)
    _cache_docs_templates(Path(settings.cache_dir) / "data_docs_templates")
    with open(Path(settings.home) / ".data_docs.lock", "w") as lock:  # runs of disjoint intervals may overlap
        fcntl.flock(lock, fcntl.LOCK_EX)
        context = gx.get_context(mode="file", project_root_dir=str(settings.home))
        _quiet(context)
        try:
            return _store_and_build(context, site_dir, ge_results, run_id, run_time, batch_label, rules)
        finally:
            if _Gx._instance is not None:  # the validation context stays the active one
                set_context(_Gx._instance.context)


def _cache_docs_templates(cache_dir: Path) -> None:
    """Great Expectations compiles its Data Docs templates afresh for every page (each view makes a
    new jinja Environment): 0.4 s of a run's 0.5 s of Data Docs. A jinja bytecode cache in the
    cache folder (settings.cache_dir) keeps them compiled across pages and processes; jinja keys it by the template
    source's checksum, so a changed template is compiled again."""
    import jinja2
    from great_expectations.render.view import view

    if getattr(view.Environment, "bytecode_cache_dir", None) == str(cache_dir):
        return
    cache_dir.mkdir(parents=True, exist_ok=True)
    cache = jinja2.FileSystemBytecodeCache(str(cache_dir))

    class CachedEnvironment(jinja2.Environment):
        bytecode_cache_dir = str(cache_dir)

        def __init__(self, *args, **kwargs) -> None:
            kwargs.setdefault("bytecode_cache", cache)
            super().__init__(*args, **kwargs)

    view.Environment = CachedEnvironment


def _store_and_build(context, site_dir: Path, ge_results: dict, run_id: str, run_time, batch_label: str,
                     rules) -> Path:
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    if DOCS_SITE not in context.get_site_names():
        context.add_data_docs_site(site_name=DOCS_SITE, site_config={
            "class_name": "SiteBuilder",
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(site_dir)},
        })
    rules = rules if rules is not None else daily_bar_rules()
    when = run_time or dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    keys = []
    for suite_name, result in ge_results.items():
        stage = "row" if suite_name == ROW_SUITE else "context"
        stage_rules = [r for r in rules if r.stage == stage]
        fingerprint = hashlib.sha256(json.dumps(
            [(r.name, r.severity, r.expectation_type, r.kwargs) for r in stage_rules], sort_keys=True).encode()
        ).hexdigest()[:16]
        try:
            stored = context.suites.get(suite_name)
        except Exception:  # not stored yet
            stored = None
        if stored is None or (stored.meta or {}).get("fingerprint") != fingerprint:
            suite = build_suite(suite_name, stage_rules)
            suite.meta = {**(suite.meta or {}), "fingerprint": fingerprint}
            context.suites.add_or_update(suite)
        key = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite_name),
            run_id=RunIdentifier(run_name=run_id, run_time=when),
            batch_identifier=batch_label.replace("/", "_"),
        )
        result.meta = {**(result.meta or {}), "run_id": RunIdentifier(run_name=run_id, run_time=when),
                       "batch_label": batch_label}
        context.validation_results_store.set(key, result)
        keys.append(key)
    context.build_data_docs(site_names=[DOCS_SITE], resource_identifiers=keys)
    run_dir = run_id.replace("/", "_")
    pages = [site_dir / "validations" / Path(*ROW_SUITE.split(".")) / run_dir,
             site_dir / "validations" / Path(*CONTEXT_SUITE.split(".")) / run_dir]
    found = [p for d in pages if d.exists() for p in sorted(d.glob("**/*.html"))]
    return (found or [site_dir / "index.html"])[0]
