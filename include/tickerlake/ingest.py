"""Landing market data into bronze, and validating what landed.

Bronze keeps every row received, as received, plus its source, batch id and the run's
logical time. An interval is replaced in one Delta commit, so a rerun of the same interval
gives the same table and a killed write leaves the previous version in place.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging

import pandas as pd
import pyarrow as pa

from tickerlake import lake, synthetic
from tickerlake.calendar import sessions_between
from tickerlake.settings import Settings
from tickerlake.validation import CriticalValidationError, check_coverage, quarantine_schema, validate_bars

log = logging.getLogger(__name__)

MIN_COVERAGE = 0.9


def batch_id(source: str, start: dt.date, end: dt.date) -> str:
    """Deterministic per (source, interval): a rerun lands the same batch id."""
    return hashlib.sha256(f"{source}|{start}|{end}".encode()).hexdigest()[:16]


def fetch_bars(settings: Settings, source: str, start: dt.date, end: dt.date) -> pd.DataFrame:
    if source == "synthetic":
        return synthetic.bars_for_interval(
            settings.universe_size, settings.history_start, start, end, settings.seed
        )
    raise ValueError(f"unknown market data source {source!r} (available: synthetic)")


def land_bars(
    settings: Settings, source: str, start: dt.date, end: dt.date, run_id: str, logical_ts: dt.datetime
) -> dict:
    """Fetch [start, end] from `source` and replace that interval of bronze.bars_daily."""
    if not sessions_between(start, end):
        raise ValueError(f"no NYSE session in [{start}, {end}]")
    bars = fetch_bars(settings, source, start, end)
    if bars.empty:
        raise CriticalValidationError(f"source {source!r} returned no bars for sessions in [{start}, {end}]")
    bars = bars.assign(
        source=source,
        batch_id=batch_id(source, start, end),
        run_id=run_id,
        run_logical_ts=pd.Timestamp(logical_ts).tz_convert("UTC"),
        year=pd.to_datetime(bars["date"]).dt.year.astype("int32"),
    )
    version = lake.replace_interval(settings, "bronze.bars_daily", bars, start, end)
    log.info("landed %d bars for [%s, %s] into bronze.bars_daily v%d", len(bars), start, end, version)
    return {"rows": len(bars), "bronze_version": version, "start": start.isoformat(), "end": end.isoformat()}


def validate_interval(
    settings: Settings, start: dt.date, end: dt.date, run_id: str, expected_tickers: int | None = None
) -> dict:
    """Validate bronze [start, end]; write quarantine rows and the run's counts; stop on critical rules."""
    bronze = lake.read_interval(settings, "bronze.bars_daily", start, end)
    expected = settings.universe_size if expected_tickers is None else expected_tickers
    check_coverage(bronze, expected, MIN_COVERAGE)
    result = validate_bars(bronze, run_id)
    quarantine = result.quarantine.assign(
        year=pd.to_datetime(result.quarantine["date"]).dt.year.astype("int32")
    )
    lake.replace_interval(
        settings, "quarantine.bars_daily",
        pa.Table.from_pandas(quarantine, schema=quarantine_schema(), preserve_index=False), start, end,
    )
    rejected_keys = quarantine.loc[quarantine["severity"] == "reject", ["ticker", "date"]].drop_duplicates()
    rejected_rows = bronze.merge(rejected_keys, on=["ticker", "date"]).shape[0]
    counts = {
        "interval_start": start,
        "interval_end": end,
        "run_id": run_id,
        "rows_received": len(bronze),
        "rows_rejected": int(rejected_rows),
        "rows_to_silver": int(len(bronze) - rejected_rows),
        "rows_warned": int((quarantine["severity"] == "warn").sum()),
        "counts_by_rule": str(dict(sorted(result.counts.items()))),
    }
    runs = pd.DataFrame([counts])
    runs["year"] = pd.to_datetime(runs["interval_start"]).dt.year.astype("int32")
    lake.replace_interval(settings, "ops.validation_runs", runs, start, end, date_column="interval_start")
    return {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in counts.items()}
