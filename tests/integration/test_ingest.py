"""Landing into bronze and validating it: Delta, Great Expectations, quarantine, ops records.

No JVM: bronze, quarantine and ops tables are written with delta-rs. Each test has its own
state folder (tmp_path).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tickerlake import ingest, lake
from tickerlake.calendar import next_session, previous_session, sessions_between
from tickerlake.settings import PROJECT_ROOT, load_settings
from tickerlake.synthetic import generate_market
from tickerlake.validation import CriticalValidationError, daily_bar_rules

pytestmark = pytest.mark.integration

TS = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def make(tmp_path: Path, **changes):
    return dataclasses.replace(load_settings(home=tmp_path / "home"), **changes)


def table(settings, name: str) -> pd.DataFrame:
    frame = lake.read_table(settings, name)
    if name == "ops.validation_runs":  # the Delta versions a run judged move with every commit
        frame = frame.drop(columns=["bronze_version", "quarantine_version"])
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def write_kaggle(folder: Path, frame: pd.DataFrame) -> None:
    """Vendor files in the Kaggle S&P 500 layout, one per ticker."""
    folder.mkdir(parents=True, exist_ok=True)
    for ticker, rows in frame.groupby("ticker"):
        out = rows.assign(Name=ticker)[["date", "open", "high", "low", "close", "volume", "Name"]]
        out.to_csv(folder / f"{ticker}_data.csv", index=False, float_format="%.4f")


# --- landing -----------------------------------------------------------------------------------


def test_land_and_validate_a_clean_synthetic_interval(tmp_path):
    s = make(tmp_path, universe_size=20, history_start="2024-01-02")
    start, end = dt.date(2024, 1, 2), dt.date(2024, 3, 28)
    landed = ingest.land_bars(s, "synthetic", start, end, "run-1", TS)
    n = 20 * len(sessions_between(start, end))
    assert landed["rows"] == landed["rows_received"] == n
    bronze = lake.read_table(s, "bronze.bars_daily")
    assert len(bronze) == n
    assert set(bronze["source"]) == {"synthetic"} and set(bronze["run_id"]) == {"run-1"}
    assert set(bronze["batch_id"]) == {landed["batch_id"]}
    assert bronze["run_logical_ts"].dt.tz is not None and bronze["run_logical_ts"].iloc[0] == pd.Timestamp(TS)
    assert bronze["source_file"].isna().all()

    result = ingest.validate_interval(s, start, end, "run-1")
    assert result["reconciled"] and result["rows_received"] == result["rows_in_bronze"] == result["rows_to_silver"] == n
    assert result["rows_rejected"] == 0 and sum(result["counts_by_rule"].values()) == 0
    assert lake.read_table(s, "quarantine.bars_daily").empty
    runs = lake.read_table(s, "ops.validation_runs")
    assert len(runs) == 1 and bool(runs["reconciled"].iloc[0])
    assert json.loads(runs["counts_by_rule"].iloc[0])["stale_bar"] == 0
    docs = Path(result["data_docs"])
    assert docs.exists() and (s.home / "data_docs" / "index.html").exists()
    assert "bars_daily" in docs.read_text()
    # Great Expectations' page templates compiled once, into the state folder's bytecode cache
    assert list((s.cache_dir / "data_docs_templates").glob("__jinja2_*"))


def test_ingesting_a_date_twice_leaves_identical_tables(tmp_path):
    s = make(tmp_path, universe_size=15, history_start="2024-01-02")
    days = sessions_between("2024-01-02", "2024-01-22")
    for day in days:
        ingest.land_bars(s, "synthetic", day, day, f"d-{day}", TS, defect_rate=0.02)
        ingest.validate_interval(s, day, day, f"d-{day}")
    before = {name: table(s, name) for name in ("bronze.bars_daily", "quarantine.bars_daily", "ops.validation_runs")}
    version = lake.table_version(s, "bronze.bars_daily")
    again = days[8]
    ingest.land_bars(s, "synthetic", again, again, f"d-{again}", TS, defect_rate=0.02)
    ingest.validate_interval(s, again, again, f"d-{again}")
    assert lake.table_version(s, "bronze.bars_daily") == version + 1  # a new commit...
    for name, frame in before.items():  # ...and the same content
        pd.testing.assert_frame_equal(frame, table(s, name), obj=name)


def test_a_backfill_is_one_commit_and_a_rerun_replaces_exactly_its_interval(tmp_path):
    s = make(tmp_path, universe_size=10, history_start="2023-01-03")
    ingest.land_bars(s, "synthetic", dt.date(2023, 1, 3), dt.date(2023, 12, 29), "backfill", TS)
    assert lake.table_version(s, "bronze.bars_daily") == 0
    ingest.land_bars(s, "synthetic", dt.date(2023, 6, 1), dt.date(2023, 6, 1), "rerun", TS)
    bronze = lake.read_table(s, "bronze.bars_daily")
    assert set(bronze.loc[bronze["run_id"] == "rerun", "date"]) == {dt.date(2023, 6, 1)}
    assert len(bronze) == 10 * len(sessions_between("2023-01-03", "2023-12-29"))
    history = ingest._received_by_date(s, dt.date(2023, 5, 31), dt.date(2023, 6, 2))[0]
    assert history == {dt.date(2023, 5, 31): 10, dt.date(2023, 6, 1): 10, dt.date(2023, 6, 2): 10}


def test_csv_source_lands_every_row_as_received_with_its_file_and_line(tmp_path):
    s = make(tmp_path, universe_size=3)
    market = generate_market(3, "2024-01-02", "2024-01-31", seed=1)
    folder = tmp_path / "drop"
    write_kaggle(folder, market.bars)
    dup = market.bars[market.bars["ticker"] == "SAAB"].head(3)
    dup.assign(Name="SAAB")[["date", "open", "high", "low", "close", "volume", "Name"]].to_csv(
        folder / "late_delivery.csv", index=False, float_format="%.4f")
    start, end = dt.date(2024, 1, 2), dt.date(2024, 1, 31)
    landed = ingest.land_bars(s, "csv", start, end, "csv-1", TS, path=folder)
    assert landed["rows"] == len(market.bars) + 3
    bronze = lake.read_table(s, "bronze.bars_daily")
    assert set(bronze["source_file"]) == {"SAAA_data.csv", "SAAB_data.csv", "SAAC_data.csv", "late_delivery.csv"}
    assert bronze["source_row"].min() == 2  # line 1 is the header
    result = ingest.validate_interval(s, start, end, "csv-1")
    q = lake.read_table(s, "quarantine.bars_daily")
    assert set(q["rule"]) == {"unique_ticker_date"} and len(q) == 6
    assert set(q["source_file"]) == {"SAAB_data.csv", "late_delivery.csv"}
    assert result["rows_rejected"] == 6 and result["rows_to_silver"] == len(bronze) - 6 and result["reconciled"]


def test_a_bar_dated_a_weekend_lands_with_the_next_session_and_is_quarantined(tmp_path):
    s = make(tmp_path, universe_size=20)
    market = generate_market(20, "2024-01-02", "2024-01-31", seed=1)
    bars = market.bars.copy()
    monday = dt.date(2024, 1, 22)
    slipped = (bars["ticker"] == "SAAB") & (bars["date"] == monday)
    bars.loc[slipped, "date"] = dt.date(2024, 1, 21)  # a UTC timestamp read as the New York date before
    write_kaggle(tmp_path / "drop", bars)
    ingest.land_bars(s, "csv", dt.date(2024, 1, 2), dt.date(2024, 1, 19), "week-1", TS, path=tmp_path / "drop")
    landed = ingest.land_bars(s, "csv", monday, monday, "monday", TS, path=tmp_path / "drop")
    assert landed["rows"] == 20 and landed["interval_start"] == "2024-01-20"
    result = ingest.validate_interval(s, monday, monday, "monday")
    q = lake.read_table(s, "quarantine.bars_daily")
    assert set(zip(q["ticker"], q["date"], q["rule"], strict=True)) == {("SAAB", dt.date(2024, 1, 21), "date_is_session")}
    assert result["rows_received"] == 20 and result["rows_rejected"] == 1 and result["rows_to_silver"] == 19


def test_a_price_as_text_lands_nothing(tmp_path):
    s = make(tmp_path, universe_size=3)
    market = generate_market(3, "2024-01-02", "2024-01-31", seed=1)
    folder = tmp_path / "drop"
    write_kaggle(folder, market.bars)
    ingest.land_bars(s, "csv", dt.date(2024, 1, 2), dt.date(2024, 1, 31), "ok", TS, path=folder)
    path = folder / "SAAB_data.csv"
    lines = path.read_text().splitlines()
    cells = lines[5].split(",")
    cells[4] = "12.5abc"
    lines[5] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(Exception, match="SAAB_data.csv"):
        ingest.land_bars(s, "csv", dt.date(2024, 1, 2), dt.date(2024, 1, 31), "bad", TS, path=folder)
    assert lake.table_version(s, "bronze.bars_daily") == 0
    frame = market.bars.astype({"close": str})
    from tickerlake.validation import check_schema

    with pytest.raises(CriticalValidationError, match="close"):
        check_schema(frame)


def test_coverage_below_the_threshold_stops_the_run(tmp_path):
    s = make(tmp_path, universe_size=10, history_start="2024-01-02")
    ingest.land_bars(s, "synthetic", dt.date(2024, 1, 2), dt.date(2024, 1, 31), "ok", TS)
    ingest.validate_interval(s, dt.date(2024, 1, 2), dt.date(2024, 1, 31), "ok")
    q_version = lake.table_version(s, "quarantine.bars_daily")
    with pytest.raises(CriticalValidationError, match="coverage 10/20"):
        ingest.validate_interval(s, dt.date(2024, 1, 2), dt.date(2024, 1, 31), "r", expected_tickers=20)
    # a vendor that sends only part of its universe one day (csv: the expected universe is the recent one)
    market = generate_market(10, "2024-02-01", "2024-02-29", seed=3)
    keep = market.bars[(market.bars["date"] != dt.date(2024, 2, 20)) | market.bars["ticker"].isin(["SAAA", "SAAB"])]
    write_kaggle(tmp_path / "drop", keep)
    ingest.land_bars(s, "csv", dt.date(2024, 2, 1), dt.date(2024, 2, 29), "csv", TS, path=tmp_path / "drop")
    with pytest.raises(CriticalValidationError, match="coverage 2/10 tickers on 2024-02-20"):
        ingest.validate_interval(s, dt.date(2024, 2, 1), dt.date(2024, 2, 29), "csv")
    assert lake.table_version(s, "quarantine.bars_daily") == q_version
    runs = lake.read_table(s, "ops.validation_runs").set_index("run_id")
    assert runs.loc["csv", "status"] == "critical" and "coverage 2/10" in runs.loc["csv", "error"]


def test_a_lost_row_does_not_reconcile(tmp_path):
    from deltalake import DeltaTable

    s = make(tmp_path, universe_size=20, history_start="2024-01-02")
    ingest.land_bars(s, "synthetic", dt.date(2024, 1, 2), dt.date(2024, 1, 31), "r", TS)
    DeltaTable(s.table_path("bronze.bars_daily")).delete("ticker = 'SAAC' AND date = '2024-01-10'")
    with pytest.raises(ingest.ReconciliationError, match="does not reconcile"):
        ingest.validate_interval(s, dt.date(2024, 1, 2), dt.date(2024, 1, 31), "r")
    runs = lake.read_table(s, "ops.validation_runs")
    assert not bool(runs["reconciled"].iloc[0]) and runs["status"].iloc[0] == "unreconciled"
    assert int(runs["rows_received"].iloc[0]) == int(runs["rows_in_bronze"].iloc[0]) + 1


# --- validation of a dirty market ----------------------------------------------------------------------


def test_every_injected_defect_is_caught_by_its_rule(tmp_path):
    s = make(tmp_path, universe_size=150, history_start="2019-01-02")
    start, end = dt.date(2019, 1, 2), dt.date(2020, 12, 31)
    options = {"events": True, "defect_rate": 0.004}
    ingest.land_bars(s, "synthetic", start, end, "dirty", TS, **options)
    result = ingest.validate_interval(s, start, end, "dirty")
    market = generate_market(150, "2019-01-02", end, s.seed, **options)
    manifest = market.manifest
    assert set(manifest["defect"]) >= {"blank_price", "high_below_low", "close_outside_range", "zero_price",
                                       "decimal_shift", "stale_bar", "duplicate_bar", "shifted_date",
                                       "unadjusted_split", "spin_off"}
    q = lake.read_table(s, "quarantine.bars_daily")
    caught = set(zip(q["ticker"], q["date"], q["rule"], strict=True))
    missed = []
    for row in manifest.itertuples():
        day = row.date - dt.timedelta(days=1) if row.defect == "shifted_date" else row.date
        if (row.ticker, day, row.rule) not in caught:
            missed.append((row.ticker, day, row.defect, row.rule))
    assert not missed, f"{len(missed)} injected defects not caught: {missed[:10]}"
    # nothing else is flagged: every quarantined key is an injected defect or event
    planted = {(r.ticker, r.date - dt.timedelta(days=1) if r.defect == "shifted_date" else r.date)
               for r in manifest.itertuples()}
    extra = {(t, d) for t, d, _ in caught} - planted
    assert not extra, f"flagged without a planted cause: {sorted(extra)[:10]}"
    # warnings pass through, rejects do not; the counts reconcile
    rejected_keys = q.loc[q["severity"] == "reject", ["ticker", "date"]].drop_duplicates()
    bronze = lake.read_table(s, "bronze.bars_daily")
    rejected_rows = bronze.merge(rejected_keys, on=["ticker", "date"]).shape[0]
    assert result["rows_rejected"] == rejected_rows
    assert result["rows_to_silver"] == len(bronze) - rejected_rows and result["reconciled"]
    warn_only = q[q["severity"] == "warn"].merge(rejected_keys, how="left", on=["ticker", "date"], indicator=True)
    assert (warn_only["_merge"] == "left_only").all()


def test_a_late_reject_restates_its_session(tmp_path):
    """A 100x excursion on D looks like a corporate action while D is the last session; when D+1
    lands, D is judged again, rejected, and the restatement is recorded."""
    s = make(tmp_path, universe_size=6, history_start="2024-01-02")
    market = generate_market(6, "2024-01-02", "2024-03-28", seed=2)
    bars = market.bars.copy()
    day = dt.date(2024, 3, 13)
    hit = (bars["ticker"] == "SAAC") & (bars["date"] == day)
    bars.loc[hit, ["open", "high", "low", "close"]] *= 100
    folder = tmp_path / "drop"
    write_kaggle(folder, bars)
    prev = previous_session(day)
    ingest.land_bars(s, "csv", dt.date(2024, 1, 2), prev, "backfill", TS, path=folder)
    ingest.validate_interval(s, dt.date(2024, 1, 2), prev, "backfill")
    ingest.land_bars(s, "csv", day, day, "day-D", TS, path=folder)
    first = ingest.validate_interval(s, day, day, "day-D")
    q = lake.read_table(s, "quarantine.bars_daily")
    assert set(zip(q["ticker"], q["date"], q["rule"], q["severity"], strict=True)) == {
        ("SAAC", day, "corporate_action", "warn")}
    assert first["rows_rejected"] == 0 and first["restated_sessions"] == []

    nxt = next_session(day)
    ingest.land_bars(s, "csv", nxt, nxt, "day-D+1", TS, path=folder)
    second = ingest.validate_interval(s, nxt, nxt, "day-D+1")
    q = lake.read_table(s, "quarantine.bars_daily")
    assert set(zip(q["ticker"], q["date"], q["rule"], q["severity"], strict=True)) == {
        ("SAAC", day, "jump_reverts", "reject")}
    assert second["restated_sessions"] == [day.isoformat()] and second["late_rejects"] == 1
    assert second["rows_rejected"] == 0  # D+1 itself is clean
    runs = lake.read_table(s, "ops.validation_runs").set_index("run_id")
    assert json.loads(runs.loc["day-D+1", "restated_sessions"]) == [day.isoformat()]
    assert json.loads(runs.loc["day-D+1", "restated_keys"]) == [
        {"ticker": "SAAC", "date": day.isoformat(), "now": "rejected"}]
    # running D+1 again changes nothing (the verdict is already restated)
    third = ingest.validate_interval(s, nxt, nxt, "day-D+1")
    assert third["restated_sessions"] == []


def test_switching_an_expectation_off_lets_its_rows_reach_silver(tmp_path):
    s = make(tmp_path, universe_size=40, history_start="2022-01-03")
    start, end = dt.date(2022, 1, 3), dt.date(2022, 12, 30)
    ingest.land_bars(s, "synthetic", start, end, "r", TS, defect_rate=0.01)
    full = ingest.validate_interval(s, start, end, "r")
    stale = full["counts_by_rule"]["stale_bar"]
    assert stale > 0
    rules = [r for r in daily_bar_rules() if r.name != "stale_bar"]
    off = ingest.validate_interval(s, start, end, "r", rules=rules)
    assert "stale_bar" not in off["counts_by_rule"]
    assert off["rows_to_silver"] == full["rows_to_silver"] + stale
    assert "stale_bar" not in set(lake.read_table(s, "quarantine.bars_daily")["rule"])


# --- concurrency and crashes -----------------------------------------------------------------------------

_CHILD = textwrap.dedent("""
    import dataclasses, datetime as dt, sys, time
    from tickerlake.settings import load_settings
    from tickerlake import ingest, synthetic
    home, n, start, end, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    s = dataclasses.replace(load_settings(home=home), universe_size=n, history_start="2015-01-02")
    start, end = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    if mode == "slow":
        plain = synthetic.ArrowBars.batches
        def slow(self):
            for i, batch in enumerate(plain(self)):
                if i == 2:
                    print("WRITING", flush=True)
                if i >= 2:
                    time.sleep(3.0)  # a slow feed: the kill lands mid-write
                yield batch
        synthetic.ArrowBars.batches = slow
    ts = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    ingest.land_bars(s, "synthetic", start, end, f"p-{start}", ts)
    if mode == "validate":
        ingest.validate_interval(s, start, end, f"p-{start}")
    print("DONE", flush=True)
""")


def _child(home, n, start, end, mode):
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "include")}
    return subprocess.Popen([sys.executable, "-c", _CHILD, str(home), str(n), str(start), str(end), mode],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_disjoint_intervals_land_and_validate_at_once(tmp_path):
    s = make(tmp_path, universe_size=30, history_start="2015-01-02")
    ingest.land_bars(s, "synthetic", dt.date(2015, 1, 2), dt.date(2015, 3, 31), "seed", TS)
    ingest.validate_interval(s, dt.date(2015, 1, 2), dt.date(2015, 3, 31), "seed")
    months = [(dt.date(2015, m, 1), (pd.Timestamp(2015, m, 1) + pd.offsets.MonthEnd(0)).date()) for m in (4, 5, 6)]
    procs = [_child(s.home, 30, a, b, "validate") for a, b in months]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0 and "DONE" in out, err[-3000:]
    bronze = lake.read_table(s, "bronze.bars_daily")
    assert len(bronze) == 30 * len(sessions_between("2015-01-02", "2015-06-30"))
    assert not bronze.duplicated(["ticker", "date"]).any()
    runs = lake.read_table(s, "ops.validation_runs")
    assert len(runs) == 4 and runs["reconciled"].all()
    assert lake.read_table(s, "quarantine.bars_daily").empty


def test_sigkill_in_the_middle_of_a_write_leaves_the_previous_version(tmp_path):
    s = make(tmp_path, universe_size=2000, history_start="2015-01-02")
    ingest.land_bars(s, "synthetic", dt.date(2015, 1, 2), dt.date(2015, 1, 30), "first", TS)
    before = table(s, "bronze.bars_daily")
    version = lake.table_version(s, "bronze.bars_daily")

    proc = _child(s.home, 2000, "2015-01-02", "2016-12-30", "slow")
    line = proc.stdout.readline()
    assert line.startswith("WRITING"), proc.stderr.read()[-3000:]
    import time

    time.sleep(1.0)  # wall-clock ok: let the write get going
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL

    assert lake.table_version(s, "bronze.bars_daily") == version
    pd.testing.assert_frame_equal(before, table(s, "bronze.bars_daily"))

    rerun = ingest.land_bars(s, "synthetic", dt.date(2015, 1, 2), dt.date(2016, 12, 30), "p-2015-01-02", TS)
    assert rerun["rows"] == 2000 * len(sessions_between("2015-01-02", "2016-12-30"))
    assert lake.table_version(s, "bronze.bars_daily") == version + 1
    result = ingest.validate_interval(s, dt.date(2015, 1, 2), dt.date(2016, 12, 30), "p-2015-01-02")
    assert result["reconciled"] and result["rows_in_bronze"] == rerun["rows"]


def test_validation_results_do_not_depend_on_how_the_interval_is_cut(tmp_path):
    """A backfill validated at once equals the same sessions validated year by year, then day by day."""
    s = make(tmp_path, universe_size=25, history_start="2020-12-01")
    options = {"defect_rate": 0.02}
    ingest.land_bars(s, "synthetic", dt.date(2020, 12, 1), dt.date(2021, 1, 15), "r", TS, **options)
    ingest.validate_interval(s, dt.date(2020, 12, 1), dt.date(2021, 1, 15), "r")
    whole = lake.read_table(s, "quarantine.bars_daily")[["ticker", "date", "rule"]]
    days = sessions_between("2020-12-01", "2021-01-15")
    for day in days:
        ingest.validate_interval(s, day, day, "r", data_docs=False)
    daily = lake.read_table(s, "quarantine.bars_daily")[["ticker", "date", "rule"]]
    key = ["ticker", "date", "rule"]
    pd.testing.assert_frame_equal(whole.sort_values(key).reset_index(drop=True),
                                  daily.sort_values(key).reset_index(drop=True))
    assert np.all(whole["date"] >= dt.date(2020, 12, 1))


def test_a_backfill_validated_in_pieces_and_in_parallel_gives_the_same_verdicts(tmp_path):
    s = make(tmp_path, universe_size=60, history_start="2021-01-04")
    start, end = dt.date(2021, 1, 4), dt.date(2021, 12, 31)
    ingest.land_bars(s, "synthetic", start, end, "r", TS, events=True, defect_rate=0.01)
    one = ingest.validate_interval(s, start, end, "r", data_docs=False)
    whole = table(s, "quarantine.bars_daily").drop(columns=["run_id"])
    s = dataclasses.replace(s, validation_chunk_rows=2_000, validation_workers=1)  # about 33 sessions a piece
    pieces = ingest.validate_interval(s, start, end, "r", data_docs=False)
    assert pieces["timings"]["pieces"] > 5
    parallel = ingest.validate_interval(dataclasses.replace(s, validation_workers=2), start, end, "r",
                                        data_docs=True)
    assert parallel["timings"]["workers"] == 2 and Path(parallel["data_docs"]).exists()
    for other in (pieces, parallel):
        assert other["counts_by_rule"] == one["counts_by_rule"]
        assert {k: other[k] for k in ("rows_rejected", "rows_to_silver", "rows_warned")} == {
            k: one[k] for k in ("rows_rejected", "rows_to_silver", "rows_warned")}
    pd.testing.assert_frame_equal(whole, table(s, "quarantine.bars_daily").drop(columns=["run_id"]))
