"""Great Expectations suites as code, and quarantine rows built from their results.

Critical rules stop the run (schema, coverage). Row rules send the offending rows to
`quarantine.bars_daily` with the rule, the severity and the values, straight from the
unexpected rows Great Expectations reports; silver is bronze minus the rows a rejecting
rule holds. Switching an expectation off therefore lets its rows through.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field

import pandas as pd

log = logging.getLogger(__name__)

PRICE_COLUMNS = ("open", "high", "low", "close")
BAR_COLUMNS = {"ticker": "string", "date": "date", **{c: "float" for c in PRICE_COLUMNS}, "volume": "float"}
KEY = ["ticker", "date"]


def quarantine_schema():
    """Arrow schema of quarantine.bars_daily (explicit, so an empty run writes the right types)."""
    import pyarrow as pa

    return pa.schema([("ticker", pa.string()), ("date", pa.date32()), ("rule", pa.string()),
                      ("severity", pa.string()), ("values", pa.string()), ("run_id", pa.string()),
                      ("year", pa.int32())])


class CriticalValidationError(RuntimeError):
    """A critical rule failed: the run stops and nothing lands downstream."""


@dataclass(frozen=True)
class RowRule:
    """A row-level expectation and what its failures mean."""

    name: str
    severity: str  # "reject" (kept out of silver) or "warn" (flagged, let through)
    expectation_type: str
    kwargs: dict = field(default_factory=dict)

    def build(self):
        import great_expectations as gx

        cls = getattr(gx.expectations, self.expectation_type)
        return cls(**self.kwargs)


def daily_bar_rules() -> list[RowRule]:
    rules = [RowRule(f"not_null_{c}", "reject", "ExpectColumnValuesToNotBeNull", {"column": c}) for c in (*PRICE_COLUMNS, "volume")]
    rules += [
        RowRule(f"positive_{c}", "reject", "ExpectColumnValuesToBeBetween", {"column": c, "min_value": 0, "strict_min": True})
        for c in PRICE_COLUMNS
    ]
    rules += [
        RowRule("volume_non_negative", "reject", "ExpectColumnValuesToBeBetween", {"column": "volume", "min_value": 0}),
        RowRule("high_ge_low", "reject", "ExpectColumnPairValuesAToBeGreaterThanB",
                {"column_A": "high", "column_B": "low", "or_equal": True, "ignore_row_if": "either_value_is_missing"}),
        RowRule("high_ge_open", "reject", "ExpectColumnPairValuesAToBeGreaterThanB",
                {"column_A": "high", "column_B": "open", "or_equal": True, "ignore_row_if": "either_value_is_missing"}),
        RowRule("high_ge_close", "reject", "ExpectColumnPairValuesAToBeGreaterThanB",
                {"column_A": "high", "column_B": "close", "or_equal": True, "ignore_row_if": "either_value_is_missing"}),
        RowRule("open_ge_low", "reject", "ExpectColumnPairValuesAToBeGreaterThanB",
                {"column_A": "open", "column_B": "low", "or_equal": True, "ignore_row_if": "either_value_is_missing"}),
        RowRule("close_ge_low", "reject", "ExpectColumnPairValuesAToBeGreaterThanB",
                {"column_A": "close", "column_B": "low", "or_equal": True, "ignore_row_if": "either_value_is_missing"}),
        RowRule("unique_ticker_date", "reject", "ExpectCompoundColumnsToBeUnique", {"column_list": KEY}),
    ]
    return rules


def check_schema(frame: pd.DataFrame) -> None:
    """Critical: every bar column present with its type; a price arriving as text fails hard."""
    missing = [c for c in BAR_COLUMNS if c not in frame.columns]
    if missing:
        raise CriticalValidationError(f"bars are missing columns {missing}")
    for col, kind in BAR_COLUMNS.items():
        if kind == "float" and not pd.api.types.is_numeric_dtype(frame[col]):
            raise CriticalValidationError(
                f"column {col!r} arrived as {frame[col].dtype}, expected a number (no silent cast)"
            )


def check_coverage(frame: pd.DataFrame, expected_tickers: int, min_coverage: float) -> None:
    """Critical: each session covers enough of the expected universe."""
    if expected_tickers <= 0:
        return
    per_day = frame.groupby("date")["ticker"].nunique()
    low = per_day[per_day < min_coverage * expected_tickers]
    if len(low):
        day, count = low.index[0], int(low.iloc[0])
        raise CriticalValidationError(
            f"coverage {count}/{expected_tickers} tickers on {day} is below {min_coverage:.0%}"
        )


@dataclass(frozen=True)
class ValidationResult:
    quarantine: pd.DataFrame  # ticker, date, rule, severity, values, run_id
    counts: dict[str, int]
    success: bool


def validate_bars(frame: pd.DataFrame, run_id: str, rules: list[RowRule] | None = None) -> ValidationResult:
    """Run the row rules through Great Expectations and turn the unexpected rows into quarantine rows."""
    import great_expectations as gx

    rules = daily_bar_rules() if rules is None else rules
    check_schema(frame)
    data = frame.reset_index(drop=True).copy()
    data["_row"] = range(len(data))
    context = gx.get_context(mode="ephemeral")
    _quiet(context)
    asset = context.data_sources.add_pandas("bars").add_dataframe_asset("bars_daily")
    batch = asset.add_batch_definition_whole_dataframe("interval").get_batch(batch_parameters={"dataframe": data})
    suite = gx.ExpectationSuite(name="bars_daily")
    by_id = {}
    for rule in rules:
        expectation = rule.build()
        expectation.meta = {"rule": rule.name, "severity": rule.severity}
        suite.add_expectation(expectation)
        by_id[rule.name] = rule
    result_format = {"result_format": "COMPLETE", "unexpected_index_column_names": ["_row"]}
    outcome = batch.validate(suite, result_format=result_format)

    rows: list[dict] = []
    counts: dict[str, int] = {rule.name: 0 for rule in rules}
    for res in outcome.results:
        rule = by_id[res.expectation_config.meta["rule"]]
        index_list = res.result.get("unexpected_index_list") or []
        row_ids = sorted({int(item["_row"]) for item in index_list})
        counts[rule.name] = len(row_ids)
        for rid in row_ids:
            rec = data.iloc[rid]
            rows.append(
                {
                    "ticker": rec["ticker"],
                    "date": rec["date"],
                    "rule": rule.name,
                    "severity": rule.severity,
                    "values": json.dumps({c: _jsonable(rec[c]) for c in (*PRICE_COLUMNS, "volume")}),
                    "run_id": run_id,
                }
            )
    quarantine = pd.DataFrame(rows, columns=["ticker", "date", "rule", "severity", "values", "run_id"])
    return ValidationResult(quarantine=quarantine, counts=counts, success=quarantine.empty)


def _quiet(context) -> None:
    """No progress bars in task logs."""
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context.variables.progress_bars = ProgressBarsConfig(globally=False)


def _jsonable(value):
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    if isinstance(value, dt.date):
        return value.isoformat()
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)
