"""Landing market data into bronze, and validating what landed.

Landing (`land_bars`): every row received, as received, plus its source, batch id, run id,
the run's logical time and, from file sources, the vendor file and line. An interval is
replaced in one Delta commit (overwrite with a date predicate), so a rerun of the same
interval gives the same table and a killed write leaves the previous version in place;
disjoint intervals may land at once (a commit conflict is retried). The commit records how
many rows were received per date, which validation reconciles against.

An interval owns the non-session days just before its first session (a Monday's interval
starts on the Saturday), so a bar dated a weekend by a time zone slip lands, and is
quarantined, with the session it belongs to.

Validation (`validate_interval`): critical rules first (schema, coverage), then the Great
Expectations suites (see tickerlake.validation) over the interval plus the context it
needs, year by year. Quarantine rows for the interval replace the previous ones in one
commit, together with the re-judged next-session verdicts of the sessions just before it (a
late reject restates those sessions; the restatement is recorded). Every run writes one row
of `ops.validation_runs`: counts by rule, the reconciliation (rows received = rows in bronze
= rows to silver + rows rejected; raised if it does not hold) and the restatements.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tickerlake import lake, synthetic
from tickerlake.calendar import sessions_between
from tickerlake.settings import Settings
from tickerlake.validation import (
    CriticalValidationError,
    RuleParams,
    check_coverage,
    check_schema,
    daily_bar_rules,
    params_from_settings,
    quarantine_schema,
    validate_bars,
)

log = logging.getLogger(__name__)

MIN_COVERAGE = 0.9
BRONZE = "bronze.bars_daily"
QUARANTINE = "quarantine.bars_daily"
RUNS = "ops.validation_runs"
COMMIT_RETRIES = 8
META_PREFIX = "tickerlake."
SOURCES = ("synthetic", "csv", "http")
BAR_COLUMNS = ["ticker", "date", "open", "high", "low", "close", "volume"]
VENDOR_EXTRAS = ["adj_close", "div_cash", "split_factor"]


class ReconciliationError(RuntimeError):
    """Rows received, rows in bronze and rows to silver + rejected do not agree."""


def bronze_schema() -> pa.Schema:
    return pa.schema([
        ("ticker", pa.string()), ("date", pa.date32()),
        *[(c, pa.float64()) for c in ("open", "high", "low", "close", "volume")],
        *[(c, pa.float64()) for c in VENDOR_EXTRAS],
        ("source_file", pa.string()), ("source_row", pa.int64()),
        ("source", pa.string()), ("batch_id", pa.string()), ("run_id", pa.string()),
        ("run_logical_ts", pa.timestamp("us", tz="UTC")), ("year", pa.int32()),
    ])


def runs_schema() -> pa.Schema:
    return pa.schema([
        ("interval_start", pa.date32()), ("interval_end", pa.date32()), ("run_id", pa.string()),
        ("rows_received", pa.int64()), ("rows_in_bronze", pa.int64()), ("rows_rejected", pa.int64()),
        ("rows_to_silver", pa.int64()), ("rows_warned", pa.int64()), ("reconciled", pa.bool_()),
        ("counts_by_rule", pa.string()), ("severity_by_rule", pa.string()), ("rejudged_by_rule", pa.string()),
        ("restated_sessions", pa.string()), ("late_rejects", pa.int64()), ("late_releases", pa.int64()),
        ("rows_restated", pa.int64()), ("restated_keys", pa.string()),
        ("coverage_worst", pa.float64()), ("coverage_worst_session", pa.string()),
        ("bronze_version", pa.int64()), ("quarantine_version", pa.int64()), ("batch_ids", pa.string()),
        ("data_docs", pa.string()), ("status", pa.string()), ("error", pa.string()), ("year", pa.int32()),
    ])


def batch_id(source: str, start: dt.date, end: dt.date) -> str:
    """Deterministic per (source, interval): a rerun lands the same batch id."""
    return hashlib.sha256(f"{source}|{start}|{end}".encode()).hexdigest()[:16]


def interval_bounds(start: dt.date, end: dt.date) -> tuple[dt.date, dt.date]:
    """[first day owned, end]: the interval owns the non-session days right before its first session."""
    from tickerlake.calendar import previous_session

    first = previous_session(start) + dt.timedelta(days=1)
    return min(first, start), end


# --- sources -----------------------------------------------------------------------------------


def _synthetic_options(settings: Settings) -> dict:
    return {
        "events": bool(settings.synthetic_events),
        "defect_rate": float(settings.synthetic_defect_rate),
    }


def fetch_bars(
    settings: Settings, source: str, start: dt.date, end: dt.date, path: str | Path | None = None,
    **options,
) -> pd.DataFrame:
    """Bars of [start, end] from `source` (synthetic, csv drop folder `path`, http vendor), as received."""
    if source == "synthetic":
        return synthetic.bars_for_interval(
            settings.universe_size, settings.history_start, start, end, settings.seed, **_synthetic_options(settings)
        )
    if source in ("csv", "http"):
        from tickerlake import sources

        if source == "csv" and path is None:
            path = settings.csv_drop_dir
        if source == "http" and not options.get("api_key"):
            from tickerlake.sources.http_vendor import api_key_from_connection

            options["api_key"] = api_key_from_connection()
        return sources.fetch_bars(source, start, end, path=path, **options)
    raise ValueError(f"unknown market data source {source!r} (available: {', '.join(SOURCES)})")


# --- landing -----------------------------------------------------------------------------------


def land_bars(
    settings: Settings,
    source: str,
    start: dt.date,
    end: dt.date,
    run_id: str,
    logical_ts: dt.datetime,
    path: str | Path | None = None,
    **source_options,
) -> dict:
    """Fetch [start, end] from `source` and replace that interval of bronze.bars_daily in one commit."""
    if not sessions_between(start, end):
        raise ValueError(f"no NYSE session in [{start}, {end}]")
    lo, hi = interval_bounds(start, end)
    ts = pd.Timestamp(logical_ts)
    if ts.tzinfo is None:
        raise ValueError("logical_ts must be timezone-aware")
    batch = batch_id(source, start, end)
    clock = time.perf_counter()  # timings are reported, never used in the logic
    lineage = {"source": source, "batch_id": batch, "run_id": run_id, "run_logical_ts": ts.tz_convert("UTC")}

    synthetic_spec = None
    if source == "synthetic":
        opts = {**_synthetic_options(settings), **source_options}
        synthetic_spec = {"n_tickers": settings.universe_size, "history_start": str(settings.history_start),
                          "seed": settings.seed, **opts}
        bars = synthetic.arrow_bars(settings.universe_size, settings.history_start, start, end, settings.seed, **opts)
        received, by_date = bars.rows, bars.rows_by_date

        def stream() -> Iterator[pa.RecordBatch]:
            for rb in bars.batches():
                yield _bronze_batch(pa.Table.from_batches([rb]), lineage)
    else:
        # ask for every day the interval owns: a bar dated the Sunday before a Monday (a time zone
        # slip) lands with Monday's interval and is quarantined, instead of never being read
        frame = fetch_bars(settings, source, lo, hi, path=path, **source_options)
        check_schema(frame)  # critical: a price as text stops here, before anything lands
        table = _bronze_table(frame, lineage)
        received = table.num_rows
        by_date = _count_by_date(table["date"])

        def stream() -> Iterator[pa.RecordBatch]:
            yield from table.to_batches(max_chunksize=1_000_000)

    fetch_s = time.perf_counter() - clock
    if received == 0:
        raise CriticalValidationError(f"source {source!r} returned no bars for sessions in [{start}, {end}]")
    outside = [d for d in by_date if not lo <= d <= hi]
    if outside:
        raise CriticalValidationError(
            f"source {source!r} returned {sum(by_date[d] for d in outside)} bars dated outside "
            f"[{lo}, {hi}] (first {min(outside)}): refusing to land them into another interval"
        )
    meta = {
        f"{META_PREFIX}batch_id": batch,
        f"{META_PREFIX}source": source,
        f"{META_PREFIX}run_id": run_id,
        f"{META_PREFIX}interval": f"{lo.isoformat()}..{hi.isoformat()}",
        f"{META_PREFIX}rows_received": str(received),
        f"{META_PREFIX}run_logical_ts": lineage["run_logical_ts"].isoformat(),
        **({f"{META_PREFIX}synthetic": json.dumps(synthetic_spec)} if synthetic_spec else {}),
        f"{META_PREFIX}rows_by_date": json.dumps({d.isoformat(): n for d, n in sorted(by_date.items())}),
    }
    clock = time.perf_counter()
    version = _replace(settings, BRONZE, lambda: pa.RecordBatchReader.from_batches(bronze_schema(), stream()),
                       lo, hi, meta)
    write_s = time.perf_counter() - clock
    in_bronze = count_rows(settings, BRONZE, lo, hi, version=version)
    if in_bronze != received:
        raise ReconciliationError(
            f"landed {received} rows for [{lo}, {hi}] but bronze.bars_daily v{version} holds {in_bronze}"
        )
    log.info("landed %d bars for [%s, %s] into %s v%d (batch %s)", received, lo, hi, BRONZE, version, batch)
    return {"rows": received, "rows_received": received, "bronze_version": version, "batch_id": batch,
            "start": start.isoformat(), "end": end.isoformat(), "interval_start": lo.isoformat(),
            "timings": {"fetch_s": round(fetch_s, 3), "write_s": round(write_s, 3)}}


def _bronze_table(frame: pd.DataFrame, lineage: dict) -> pa.Table:
    """The received frame as an Arrow table of the bronze schema (numbers stay numbers: no text cast)."""
    cols = {}
    n = len(frame)
    for field in bronze_schema():
        name = field.name
        if name in lineage or name == "year":
            continue
        if name in frame.columns:
            series = frame[name]
            if name == "date":
                values = pd.to_datetime(series, errors="raise").dt.date if not _is_date_objects(series) else series
                cols[name] = pa.array(values, type=pa.date32(), from_pandas=True)
            elif pa.types.is_floating(field.type):
                cols[name] = pa.array(series.to_numpy(dtype=np.float64, na_value=np.nan), type=pa.float64())
            else:
                cols[name] = pa.array(series, type=field.type, from_pandas=True)
        else:
            cols[name] = pa.nulls(n, type=field.type)
    table = pa.table(cols)
    return _bronze_batch(table, lineage, as_table=True)


def _is_date_objects(series: pd.Series) -> bool:
    return pd.api.types.infer_dtype(series, skipna=True) in ("date", "empty")


def _bronze_batch(table: pa.Table, lineage: dict, as_table: bool = False):
    """Add missing vendor columns, lineage constants and the year partition column."""
    n = table.num_rows
    out = []
    for field in bronze_schema():
        name = field.name
        if name == "year":
            out.append(pc.cast(pc.year(table["date"]), pa.int32()))
        elif name in lineage:
            out.append(pa.repeat(pa.scalar(lineage[name], field.type), n))
        elif name in table.column_names:
            out.append(table[name])
        else:
            out.append(pa.nulls(n, type=field.type))
    result = pa.Table.from_arrays(out, schema=bronze_schema())
    if as_table:
        return result
    return pa.RecordBatch.from_arrays([c.combine_chunks() for c in result.columns], schema=bronze_schema())


def _count_by_date(dates: pa.ChunkedArray) -> dict[dt.date, int]:
    vc = pc.value_counts(dates)
    return {v["values"].as_py(): v["counts"].as_py() for v in vc}


def _replace(settings: Settings, name: str, reader: Callable[[], pa.RecordBatchReader], lo: dt.date,
             hi: dt.date, meta: dict | None = None, predicate: str | None = None, column: str = "date") -> int:
    """Replace the rows of `predicate` (default: `column` in [lo, hi]) in one commit; retries a
    commit conflict with a concurrent writer (the write is a replace: running it again is safe)."""
    from deltalake import CommitProperties
    from deltalake.exceptions import CommitFailedError

    props = CommitProperties(custom_metadata=meta) if meta else None
    for attempt in range(COMMIT_RETRIES):
        try:
            return lake.replace_rows(settings, name, reader, predicate or lake.date_predicate(column, lo, hi),
                                     schema_mode="merge", commit_properties=props)
        except CommitFailedError as exc:
            wait = min(0.2 * 2**attempt, 5.0)
            log.warning("commit conflict on %s [%s, %s] (attempt %d): %s; retrying in %.1fs",
                        name, lo, hi, attempt + 1, exc, wait)
            time.sleep(wait)  # wall-clock ok: retry back-off only
    raise RuntimeError(f"could not commit to {name} for [{lo}, {hi}] after {COMMIT_RETRIES} conflicts")


def count_rows(settings: Settings, name: str, lo: dt.date, hi: dt.date, version: int | None = None) -> int:
    import pyarrow.dataset as ds

    dataset = _dataset(settings, name, version)
    return dataset.count_rows(filter=_date_filter(ds, lo, hi))


def _dataset(settings: Settings, name: str, version: int | None = None):
    from deltalake import DeltaTable

    return DeltaTable(settings.table_path(name), version=version).to_pyarrow_dataset()


def _date_filter(ds, lo: dt.date, hi: dt.date, column: str = "date"):
    return (ds.field("year") >= lo.year) & (ds.field("year") <= hi.year) & (
        ds.field(column) >= pa.scalar(lo, pa.date32())) & (ds.field(column) <= pa.scalar(hi, pa.date32()))


def _bronze_dataset(settings: Settings, version: int):
    """The pyarrow dataset of bronze at `version` (text columns read as dictionaries).

    On a local lake it is a plain pyarrow dataset over the version's data files, readable in a
    forked worker (delta-rs' own dataset goes through its tokio runtime, which a fork breaks);
    on object storage it is delta-rs' dataset and validation runs in one process.
    """
    import pyarrow.dataset as ds
    from deltalake import DeltaTable

    text = ["ticker", "source_file", "source", "batch_id"]
    root = settings.table_path(BRONZE)
    table = DeltaTable(root, version=version)
    options = ds.ParquetReadOptions(dictionary_columns=text)
    if "://" in root:
        return table.to_pyarrow_dataset(parquet_read_options=options)
    schema = pa.schema(table.schema().to_arrow())
    schema = pa.schema([pa.field(f.name, pa.dictionary(pa.int32(), pa.string())) if f.name in text else f
                        for f in schema])
    return ds.dataset(
        table.file_uris(), schema=schema, format=ds.ParquetFileFormat(read_options=options),
        partitioning=ds.partitioning(pa.schema([("year", pa.int32())]), flavor="hive"), partition_base_dir=root,
    )


def _read_bronze_arrow(dataset, lo: dt.date, hi: dt.date) -> pa.Table:
    """Bronze rows of [lo, hi] for validation, in Arrow (a reader thread runs no pandas code): text
    columns as unified dictionaries (categoricals in pandas, no string per row); the caller converts
    with `to_pandas(date_as_object=False)` (dates as datetime64)."""
    import pyarrow.dataset as ds

    cols = [*BAR_COLUMNS, "source_file", "source_row", "source", "batch_id"]
    text = {"ticker", "source_file", "source", "batch_id"}
    present = [c for c in cols if c in dataset.schema.names]
    table = dataset.to_table(columns=present, filter=_date_filter(ds, lo, hi))
    for col in sorted(text & set(table.column_names)):
        i = table.column_names.index(col)
        column = table[col]
        if pa.types.is_dictionary(column.type):
            try:
                column = pa.table({col: column}).unify_dictionaries()[col]
            except pa.ArrowInvalid:  # a dictionary holding a null (an all-null column): decode, encode
                column = pc.dictionary_encode(column.cast(pa.string()))
        else:
            column = pc.dictionary_encode(column)
        table = table.set_column(i, col, column)
    return table


# --- validation ------------------------------------------------------------------------------------


def validate_interval(
    settings: Settings, start: dt.date, end: dt.date, run_id: str,
    expected_tickers: int | None = None,
    *,
    rules: list | None = None,
    data_docs: bool | None = None,
) -> dict:
    """Validate bronze [start, end]; write quarantine rows and the run's record; stop on critical rules.

    expected_tickers: the universe each session must cover (MIN_COVERAGE of it); None: the
    synthetic market's listed tickers, or, for other sources, the tickers seen in the last
    sessions. `rules` (default: all) lets a caller switch expectations off.
    """
    from deltalake import DeltaTable
    from deltalake.exceptions import CommitFailedError

    from tickerlake.validation import _session_days

    params = params_from_settings(settings)
    rules = daily_bar_rules(params) if rules is None else rules
    next_rules = sorted(r.name for r in rules if r.needs_next)
    lo, hi = interval_bounds(start, end)
    days = _session_days()
    first_ix = int(np.searchsorted(days, _day(lo)))  # first session >= lo
    last_ix = int(np.searchsorted(days, _day(hi), side="right")) - 1  # last session <= hi
    if last_ix < first_ix:
        raise ValueError(f"no NYSE session in [{start}, {end}]")
    ctx = params.context_sessions
    rejudge_lo = _from_day(days[max(first_ix - ctx, 0)])
    min_coverage = float(settings.min_coverage)
    docs_mode = settings.data_docs if data_docs is None else ("each_run" if data_docs else "off")

    clock = time.perf_counter()  # timings are reported, never used in the logic
    for attempt in range(COMMIT_RETRIES):
        bronze_version = DeltaTable(settings.table_path(BRONZE)).version()
        quarantine_before = _quarantine_version(settings)
        try:
            outcome = _judge(settings, bronze_version, lo, hi, first_ix, last_ix, rejudge_lo, params, rules,
                             run_id, expected_tickers, min_coverage, keep_ge=docs_mode == "each_run")
        except CriticalValidationError as exc:
            _record(settings, start, end, {"run_id": run_id, "bronze_version": bronze_version, "status": "critical",
                                           "error": str(exc), "reconciled": False})
            raise
        interval_q, rejudged_q = outcome["interval_q"], outcome["rejudged_q"]
        restated = _restatement(settings, rejudge_lo, lo, next_rules, rejudged_q)
        new_q = pd.concat([interval_q, rejudged_q], ignore_index=True)
        table = _quarantine_table(new_q)
        predicate = f"({lake.date_predicate('date', lo, hi)})"
        if lo > rejudge_lo and next_rules:
            names = ", ".join(f"'{n}'" for n in next_rules)
            predicate += f" OR (date >= '{rejudge_lo.isoformat()}' AND date < '{lo.isoformat()}' AND rule IN ({names}))"
        judge_s = time.perf_counter() - clock
        try:
            if quarantine_before is not None and _quarantine_version(settings) != quarantine_before:
                raise CommitFailedError("quarantine changed while judging")
            q_version = lake.replace_rows(settings, QUARANTINE, table, predicate, schema_mode="merge")
            break
        except CommitFailedError as exc:
            log.warning("quarantine commit conflict for [%s, %s] (attempt %d): %s; judging again", lo, hi,
                        attempt + 1, exc)
            time.sleep(min(0.2 * 2**attempt, 5.0))  # wall-clock ok: retry back-off only
    else:
        raise RuntimeError(f"could not commit the quarantine of [{lo}, {hi}] after {COMMIT_RETRIES} conflicts")

    recon = outcome["reconciliation"]
    severity = {r.name: r.severity for r in rules}
    docs_path = None
    clock = time.perf_counter()
    if docs_mode == "each_run" and outcome["ge_results"]:
        from tickerlake.validation import build_data_docs

        docs_path = str(build_data_docs(settings, outcome["ge_results"], run_id, outcome["run_time"],
                                        f"{lo.isoformat()}..{hi.isoformat()}", rules))
    record = {
        "interval_start": start, "interval_end": end, "run_id": run_id,
        **{k: recon[k] for k in ("rows_received", "rows_in_bronze", "rows_rejected", "rows_to_silver")},
        "rows_warned": int(outcome["rows_warned"]),
        "reconciled": bool(recon["reconciled"]),
        "counts_by_rule": json.dumps(dict(sorted(outcome["counts"].items()))),
        "severity_by_rule": json.dumps(dict(sorted(severity.items()))),
        "rejudged_by_rule": json.dumps(dict(sorted(outcome["rejudged_counts"].items()))),
        "restated_sessions": json.dumps(restated["sessions"]),
        "late_rejects": restated["late_rejects"], "late_releases": restated["late_releases"],
        "rows_restated": restated["rows_restated"], "restated_keys": json.dumps(restated["keys"][:200]),
        "coverage_worst": outcome["coverage"].get("worst_coverage"),
        "coverage_worst_session": outcome["coverage"].get("worst_session"),
        "bronze_version": bronze_version, "quarantine_version": q_version,
        "batch_ids": json.dumps(outcome["batch_ids"]), "data_docs": docs_path,
        "status": "ok" if recon["reconciled"] else "unreconciled", "error": None if recon["reconciled"] else
        f"rows received {recon['rows_received']}, in bronze {recon['rows_in_bronze']}, to silver "
        f"{recon['rows_to_silver']} + rejected {recon['rows_rejected']}",
    }
    docs_s = time.perf_counter() - clock
    _record(settings, start, end, record)
    if not recon["reconciled"]:
        raise ReconciliationError(f"[{lo}, {hi}] does not reconcile: {recon}")
    result = {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in record.items()}
    result["counts_by_rule"] = dict(sorted(outcome["counts"].items()))
    result["restated_sessions"] = restated["sessions"]
    result["timings"] = {"judge_s": round(judge_s, 3), "docs_s": round(docs_s, 3), **outcome["timings"]}
    return result


def _record(settings: Settings, start: dt.date, end: dt.date, record: dict) -> None:
    """This run's row of ops.validation_runs (replacing the previous run's row for the interval)."""
    row = {"interval_start": start, "interval_end": end, **record, "year": start.year}
    runs = pa.Table.from_pylist([row], schema=runs_schema())
    _replace(settings, RUNS, lambda: pa.RecordBatchReader.from_batches(runs.schema, runs.to_batches()),
             start, end, column="interval_start")


_FORKED: dict = {}  # the job of a validation run, inherited by forked worker processes


def _judge(settings, bronze_version, lo, hi, first_ix, last_ix, rejudge_lo, params: RuleParams, rules, run_id,
           expected_tickers, min_coverage, keep_ge) -> dict:
    """Critical rules, then both suites, piece by piece over [lo, hi] (each piece with its context);
    pieces run in parallel worker processes when there are several (a backfill)."""
    from tickerlake.validation import aggregate_results

    received, run_time, landing = _received_by_date(settings, lo, hi)
    # object storage: delta-rs' own dataset, which a forked worker cannot use, so one process
    workers = _workers(settings) if "://" not in settings.table_path(BRONZE) else 1
    chunks = _row_chunks(lo, hi, received, settings.validation_chunk_rows, workers)
    job = {
        "settings": settings, "dataset": _bronze_dataset(settings, bronze_version), "chunks": chunks,
        "chunk_rows": settings.validation_chunk_rows,
        "lo": lo, "first_ix": first_ix, "rejudge_lo": rejudge_lo, "params": params, "rules": rules,
        "run_id": run_id, "expected_tickers": expected_tickers, "min_coverage": min_coverage, "keep_ge": keep_ge,
        "synthetic_spec": landing.get(f"{META_PREFIX}synthetic"),
    }
    workers = min(workers, len(chunks))
    if workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # fork: the workers inherit the job and a warm Great Expectations; they read Parquet through
        # the pyarrow dataset only (no delta-rs runtime in a forked child)
        _FORKED.clear()
        _FORKED.update(job)
        try:
            with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
                parts = list(pool.map(_judge_forked, range(len(chunks))))
        finally:
            _FORKED.clear()
    elif len(chunks) == 1:
        parts = [_judge_chunk(job, 0)]
    else:
        # one process: a thread reads the next piece into Arrow (Parquet decoding, outside the
        # GIL, no pandas) while this one is judged
        from concurrent.futures import ThreadPoolExecutor

        parts = []
        with ThreadPoolExecutor(max_workers=1) as reader:
            ahead = reader.submit(_read_piece, job, 0)
            for ci in range(len(chunks)):
                read = ahead.result()
                if ci + 1 < len(chunks):
                    ahead = reader.submit(_read_piece, job, ci + 1)
                parts.append(_judge_chunk(job, ci, read))

    counts: dict[str, int] = {}
    rejudged_counts: dict[str, int] = {}
    ge_parts: dict[str, list] = {}
    coverage: dict = {}
    for part in parts:
        for k, v in part["counts"].items():
            counts[k] = counts.get(k, 0) + v
        for k, v in part["rejudged_counts"].items():
            rejudged_counts[k] = rejudged_counts.get(k, 0) + v
        for suite, res in part["ge_results"].items():
            ge_parts.setdefault(suite, []).append(res)
        coverage = _worse(coverage, part["coverage"])
    interval_q = pd.concat([p["interval_q"] for p in parts], ignore_index=True)
    rejudged_q = parts[0]["rejudged_q"]
    in_bronze, rejected, silver, warned = (sum(p["reconcile"][k] for p in parts)
                                           for k in ("in_bronze", "rejected", "silver", "warned"))
    rows_received = int(sum(received.values())) if received is not None else None
    if received is None:
        log.error("no landing commit of bronze.bars_daily covers [%s, %s]: rows received unknown", lo, hi)
    reconciled = (
        rows_received is not None and rows_received == in_bronze and silver + rejected == in_bronze
    )
    return {
        "interval_q": interval_q, "rejudged_q": rejudged_q, "counts": counts, "rejudged_counts": rejudged_counts,
        "coverage": coverage, "rows_warned": warned,
        "batch_ids": sorted({b for p in parts for b in p["batch_ids"]}),
        "ge_results": {k: aggregate_results(v) for k, v in ge_parts.items()} if keep_ge else {},
        "run_time": run_time,
        "timings": {"read_s": round(sum(p["read_s"] for p in parts), 3),
                    "rules_s": round(sum(p["rules_s"] for p in parts), 3), "workers": workers,
                    "pieces": len(chunks)},
        "reconciliation": {"rows_received": rows_received, "rows_in_bronze": in_bronze, "rows_rejected": rejected,
                           "rows_to_silver": silver, "reconciled": reconciled},
    }


def _workers(settings) -> int:
    """Worker processes for a multi-piece validation (setting `validation_workers`, default: the
    CPUs this process may use, at most 4; each holds one piece in memory)."""
    return max(1, int(settings.validation_workers))


def _judge_forked(ci: int) -> dict:
    return _judge_chunk(_FORKED, ci)


def _read_piece(job: dict, ci: int) -> tuple[pa.Table, float]:
    """Bronze rows of piece `ci` with its context sessions (Arrow), and the seconds the read took."""
    from tickerlake.validation import _session_days

    days = _session_days()
    ctx = job["params"].context_sessions
    a, b = job["chunks"][ci]
    a_ix = int(np.searchsorted(days, _day(a)))
    b_ix = int(np.searchsorted(days, _day(b), side="right")) - 1
    read_lo = _from_day(days[max(a_ix - 3 * ctx - 1, 0)])
    read_hi = _from_day(days[min(max(b_ix, a_ix) + ctx, len(days) - 1)])
    clock = time.perf_counter()
    table = _read_bronze_arrow(job["dataset"], read_lo, read_hi)
    return table, time.perf_counter() - clock


def _judge_chunk(job: dict, ci: int, read: tuple[pa.Table, float] | None = None) -> dict:
    """One piece [a, b] of the interval: read it with its context (unless `read` holds it),
    critical rules, both suites."""
    params, lo, rejudge_lo = job["params"], job["lo"], job["rejudge_lo"]
    a, b = job["chunks"][ci]
    table, read_s = read if read is not None else _read_piece(job, ci)
    clock = time.perf_counter()
    frame = table.to_pandas(date_as_object=False)
    del table
    read_s += time.perf_counter() - clock
    day = frame["date"].to_numpy(dtype="datetime64[D]")
    in_chunk = (day >= np.datetime64(a)) & (day <= np.datetime64(b))
    again = (day >= np.datetime64(rejudge_lo)) & (day < np.datetime64(lo)) if ci == 0 else np.zeros(len(frame), bool)
    chunk = frame.loc[in_chunk, [c for c in ("ticker", "date", "source", "batch_id") if c in frame]]
    batch_ids = sorted(str(x) for x in chunk["batch_id"].dropna().unique()) if "batch_id" in chunk else []
    coverage = _coverage(job["settings"], frame, chunk, a, b, job["expected_tickers"], job["min_coverage"],
                         job["synthetic_spec"])
    clock = time.perf_counter()
    # the piece and its context sessions in one Great Expectations batch (the piece bounds the memory)
    result = validate_bars(frame, job["run_id"], job["rules"], params=params, report=in_chunk, rejudge=again,
                           keep_ge_results=job["keep_ge"], chunk_rows=max(job["chunk_rows"], len(frame)))
    rules_s = time.perf_counter() - clock
    q = result.quarantine
    qd = pd.to_datetime(q["date"]).dt.date if len(q) else pd.Series([], dtype=object)
    interval_q = q[(qd >= a) & (qd <= b)] if len(q) else q
    next_rules = {r.name for r in job["rules"] if r.needs_next}
    rejudged_q = q[(qd >= rejudge_lo) & (qd < lo) & q["rule"].isin(next_rules)] if len(q) else q
    return {
        "interval_q": interval_q, "rejudged_q": rejudged_q, "counts": result.counts,
        "rejudged_counts": result.rejudged_counts, "ge_results": result.ge_results, "coverage": coverage,
        "batch_ids": batch_ids, "read_s": read_s, "rules_s": rules_s,
        # reconciliation of this piece: silver = bronze rows whose key no rejecting rule holds
        "reconcile": _reconcile_chunk(chunk, interval_q),
    }


def _reconcile_chunk(chunk: pd.DataFrame, q: pd.DataFrame) -> dict:
    """Bronze rows of the chunk: rejected (their key is held by a rejecting rule, or the key is
    null) and to silver (the anti-join, as silver is built); every rejected key must be in bronze."""
    rej = q[q["severity"] == "reject"]
    tickers = chunk["ticker"]
    if isinstance(tickers.dtype, pd.CategoricalDtype):
        cats, b_code = tickers.cat.categories, tickers.cat.codes.to_numpy().astype(np.int64)
    else:
        cats = pd.Index(tickers.dropna().unique())
        b_code = pd.Categorical(tickers, categories=cats).codes.astype(np.int64)
    b_day = chunk["date"].to_numpy(dtype="datetime64[D]")
    null_key = (b_code < 0) | np.isnat(b_day)
    b_key = b_code * 1_000_000 + b_day.astype(np.int64)
    q_code = pd.Categorical(rej["ticker"].astype(object), categories=cats).codes.astype(np.int64)
    q_day = pd.to_datetime(rej["date"]).to_numpy(dtype="datetime64[D]")
    q_keys = q_code * 1_000_000 + q_day.astype(np.int64)
    q_key = np.unique(q_keys)
    member = np.isin(b_key, q_key, kind="sort")
    hit = member & ~null_key
    rejected = int(hit.sum() + null_key.sum())
    silver = int((~member & ~null_key).sum())  # the anti-join, null keys apart
    unknown = (q_code < 0) | ~np.isin(q_keys, np.unique(b_key[member]))
    unknown &= ~(rej["ticker"].isna().to_numpy() | np.isnat(q_day))
    if unknown.any():
        raise ReconciliationError(
            f"quarantine names keys that are not in bronze: {rej[unknown].head(3)[['ticker', 'date', 'rule']].to_dict('records')}"
        )
    return {"in_bronze": len(chunk), "rejected": rejected, "silver": silver,
            "warned": int((q["severity"] == "warn").sum())}


def _coverage(settings, frame, chunk, a, b, expected_tickers, min_coverage, synthetic_spec=None) -> dict:
    """Critical: coverage of the expected universe, session by session (`chunk`: the rows of [a, b])."""
    if not len(chunk):
        raise CriticalValidationError(f"bronze.bars_daily holds no bars for [{a}, {b}]")
    sessions = sessions_between(a, b)
    if expected_tickers is not None:
        expected: int | dict = int(expected_tickers)
    elif "source" in chunk and {str(x) for x in chunk["source"].dropna().unique()} == {"synthetic"}:
        spec = json.loads(synthetic_spec) if synthetic_spec else {
            "n_tickers": settings.universe_size, "history_start": str(settings.history_start), "seed": settings.seed,
            **_synthetic_options(settings)}
        listed = synthetic.listed_counts(spec["n_tickers"], spec["history_start"], a, b, spec["seed"],
                                         events=bool(spec.get("events")))
        expected = {d: int(v) for d, v in listed.items()}
    else:
        expected = _recent_universe(frame, sessions, settings)
    return check_coverage(chunk, expected, min_coverage)


def _recent_universe(frame: pd.DataFrame, sessions: list[dt.date], settings) -> dict[dt.date, int]:
    """Per session: tickers with a bar that session or in the CONTEXT sessions before it."""
    from tickerlake.validation import _session_days

    if not sessions:
        return {}
    ctx = params_from_settings(settings).context_sessions
    days = _session_days()
    codes, _ = pd.factorize(frame["ticker"])
    six = np.searchsorted(days, frame["date"].to_numpy(dtype="datetime64[D]").astype(np.int64))
    first = int(np.searchsorted(days, _day(sessions[0]))) - ctx
    last = int(np.searchsorted(days, _day(sessions[-1])))
    keep = (codes >= 0) & (six >= first) & (six <= last)
    present = np.zeros((int(codes.max()) + 1 if len(codes) else 1, last - first + 2), dtype=np.int32)
    present[codes[keep], six[keep] - first + 1] = 1
    seen = np.cumsum(present, axis=1)  # seen[:, j] = bars up to window column j
    out = {}
    for s in sessions:
        j = int(np.searchsorted(days, _day(s))) - first + 1
        recent = seen[:, j] - seen[:, max(j - ctx - 1, 0)]
        out[s] = int((recent > 0).sum())
    return out


def _restatement(settings, rejudge_lo, lo, next_rules, rejudged_q) -> dict:
    """Sessions before the interval whose rejected keys change with the re-judged next-session rules."""
    empty = {"sessions": [], "late_rejects": 0, "late_releases": 0, "rows_restated": 0, "keys": []}
    if rejudge_lo >= lo or not _quarantine_exists(settings):
        return empty
    import pyarrow.dataset as ds

    before = _dataset(settings, QUARANTINE).to_table(
        columns=["ticker", "date", "rule", "severity"], filter=_date_filter(ds, rejudge_lo, lo - dt.timedelta(days=1))
    ).to_pandas()
    before["date"] = pd.to_datetime(before["date"]).dt.date
    kept = before[~before["rule"].isin(next_rules)]
    after = pd.concat([kept, rejudged_q[["ticker", "date", "rule", "severity"]].astype({"ticker": object})])

    def rejected(q: pd.DataFrame) -> set:
        r = q[q["severity"] == "reject"]
        return set(zip(r["ticker"].astype(str), pd.to_datetime(r["date"]).dt.date, strict=True))

    old, new = rejected(before), rejected(after)
    added, removed = sorted(new - old), sorted(old - new)
    keys = [{"ticker": t, "date": d.isoformat(), "now": "rejected"} for t, d in added]
    keys += [{"ticker": t, "date": d.isoformat(), "now": "released"} for t, d in removed]
    sessions = sorted({d.isoformat() for _, d in added + removed})
    if sessions:
        log.warning("late verdicts restate sessions %s: %d rejected, %d released", sessions, len(added), len(removed))
    return {"sessions": sessions, "late_rejects": len(added), "late_releases": len(removed),
            "rows_restated": len(added) + len(removed), "keys": keys}


def _quarantine_table(q: pd.DataFrame) -> pa.Table:
    q = q.copy()
    q["date"] = pd.to_datetime(q["date"]).dt.date
    q["year"] = pd.to_datetime(q["date"]).dt.year.astype("int32")
    q["ticker"] = q["ticker"].astype(object)
    q["source_row"] = pd.array(q["source_row"], dtype="Int64")
    return pa.Table.from_pandas(q, schema=quarantine_schema(), preserve_index=False)


def _quarantine_exists(settings) -> bool:
    from deltalake import DeltaTable

    return DeltaTable.is_deltatable(settings.table_path(QUARANTINE))


def _quarantine_version(settings) -> int | None:
    from deltalake import DeltaTable

    path = settings.table_path(QUARANTINE)
    return DeltaTable(path).version() if DeltaTable.is_deltatable(path) else None


def _received_by_date(settings, lo: dt.date, hi: dt.date) -> tuple[dict[dt.date, int] | None, dt.datetime | None, dict]:
    """Rows received per date of [lo, hi], from the landing commits (the latest covering each date),
    the logical time and the metadata of the newest of those landings (None, None, {}: no landing
    commit covers the interval)."""
    from deltalake import DeltaTable

    table = DeltaTable(settings.table_path(BRONZE))
    wanted = {lo + dt.timedelta(days=i) for i in range((hi - lo).days + 1)}
    found: dict[dt.date, int] = {}
    run_time = None
    newest: dict = {}
    limit = 200
    while True:
        history = table.history(limit=limit)
        for commit in history:  # newest first
            interval = commit.get(f"{META_PREFIX}interval")
            if not interval:
                continue
            c_lo, c_hi = (dt.date.fromisoformat(x) for x in interval.split(".."))
            covered = [d for d in wanted if c_lo <= d <= c_hi]
            if not covered:
                continue
            newest = newest or commit
            if run_time is None and commit.get(f"{META_PREFIX}run_logical_ts"):
                run_time = dt.datetime.fromisoformat(commit[f"{META_PREFIX}run_logical_ts"])
            by_date = json.loads(commit.get(f"{META_PREFIX}rows_by_date", "{}"))
            for day in covered:
                found[day] = int(by_date.get(day.isoformat(), 0))
                wanted.discard(day)
            if not wanted:
                break
        if not wanted or len(history) < limit:
            break
        limit *= 4
    if wanted and not found:
        return None, None, {}
    return found, run_time, newest


PARALLEL_MIN_ROWS = 200_000  # below this an interval is one piece: a worker's start costs more than it saves


def _row_chunks(lo: dt.date, hi: dt.date, received: dict[dt.date, int] | None,
                max_rows: int | None = None, workers: int = 1) -> list[tuple[dt.date, dt.date]]:
    """[lo, hi] cut at sessions into pieces of at most about `max_rows` rows received (the landing
    commits say how many per date), so a 20-year backfill is validated a piece at a time in bounded
    memory and a small one at once. With several workers the piece count is a multiple of them
    (no worker idles through the last round) and an interval of PARALLEL_MIN_ROWS or more is cut
    for all of them. Non-session days go with the session after them."""
    from tickerlake.validation import CHUNK_ROWS

    limit = max_rows or CHUNK_ROWS  # the setting validation_chunk_rows
    sessions = sessions_between(lo, hi)
    counts = received or {}
    per_session = [max(counts.get(d, 0), 1) for d in sessions]
    total = sum(per_session)
    pieces = -(-total // limit)
    if workers > 1 and total >= PARALLEL_MIN_ROWS:
        pieces = -(-pieces // workers) * workers
    share = total / max(pieces, 1)
    out, a, done = [], lo, 0
    for i, day in enumerate(sessions):
        done += per_session[i]
        last = i == len(sessions) - 1
        # piece k ends at the session that brings the rows nearest to k shares of the total
        if last or done + per_session[i + 1] / 2 > (len(out) + 1) * share:
            b = hi if last else day
            out.append((a, b))
            a = b + dt.timedelta(days=1)
    return out


def _worse(a: dict, b: dict) -> dict:
    if not a:
        return b
    if not b:
        return a
    return a if a["worst_coverage"] <= b["worst_coverage"] else b


def _day(d: dt.date) -> int:
    return int(np.datetime64(d, "D").astype(np.int64))


def _from_day(n) -> dt.date:
    return dt.date(1970, 1, 1) + dt.timedelta(days=int(n))


def restated_since(settings: Settings, start: dt.date, end: dt.date) -> dt.date | None:
    """The earliest session before `start` that the validation runs of [start, end] restated (a
    late verdict: rejected or released), or None. Downstream steps of [start, end] recompute from
    there, so silver, features, labels and the online store follow the late verdict."""
    from deltalake import DeltaTable

    path = settings.table_path(RUNS)
    if not DeltaTable.is_deltatable(path):
        return None
    import pyarrow.dataset as ds

    runs = DeltaTable(path).to_pyarrow_dataset().to_table(
        columns=["restated_sessions"], filter=_date_filter(ds, start, end, column="interval_start"))
    sessions = [dt.date.fromisoformat(d) for text in runs["restated_sessions"].to_pylist() if text
                for d in json.loads(text)]
    before = [d for d in sessions if d < start]
    return min(before) if before else None
