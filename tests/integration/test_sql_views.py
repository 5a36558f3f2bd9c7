"""Analyst SQL over a real lake: views, curated queries with hand-computed answers, the lock-down.

Small Delta tables are written with delta-rs (the columns of the real writers) under a temporary
TICKERLAKE_HOME; the session is the real one: DuckDB with the signed `delta` extension from the
pip package, views, then locked. No mocks.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from tickerlake import sql
from tickerlake.catalog import FEATURE_NAMES
from tickerlake.predict import PREDICTION_COLUMNS
from tickerlake.settings import Settings, load_settings
from tickerlake.validation import quarantine_schema

pytestmark = pytest.mark.integration

D = dt.date
UTC = dt.UTC
CREATED = [
    "bronze.bars_daily", "quarantine.bars_daily", "quarantine.news", "gold.features_daily", "gold.labels_daily",
    "gold.predictions_daily", "ops.validation_runs", "ops.model_decisions",
]


# --- the small lake --------------------------------------------------------------------------------
def _write(settings: Settings, name: str, rows: list[dict], schema: pa.Schema, partition_by=None) -> None:
    write_deltalake(settings.table_path(name), pa.Table.from_pylist(rows, schema=schema),
                    partition_by=partition_by, mode="overwrite")


def _close(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(21), tzinfo=UTC)


def bronze_schema() -> pa.Schema:
    return pa.schema([
        ("ticker", pa.string()), ("date", pa.date32()),
        *[(c, pa.float64()) for c in ("open", "high", "low", "close", "volume")],
        ("source", pa.string()), ("batch_id", pa.string()), ("run_id", pa.string()),
        ("run_logical_ts", pa.timestamp("us", tz="UTC")), ("year", pa.int32()),
    ])


def runs_schema() -> pa.Schema:
    return pa.schema([
        ("interval_start", pa.date32()), ("interval_end", pa.date32()), ("run_id", pa.string()),
        ("rows_received", pa.int64()), ("rows_rejected", pa.int64()), ("rows_to_silver", pa.int64()),
        ("rows_warned", pa.int64()), ("counts_by_rule", pa.string()), ("year", pa.int32()),
    ])


PREDICTION_SCHEMA = pa.schema([
    ("ticker", pa.string()), ("asof_date", pa.date32()), ("target_session", pa.date32()),
    ("event_ts", pa.timestamp("us", tz="UTC")), ("pred_return", pa.float64()), ("pred_lo", pa.float64()),
    ("pred_hi", pa.float64()), ("rank", pa.int32()), ("percentile", pa.float64()), ("signal", pa.string()),
    ("model_name", pa.string()), ("model_version", pa.string()), ("features_version", pa.int64()),
    ("run_id", pa.string()), ("published", pa.bool_()), ("year", pa.int32()),
])
assert PREDICTION_SCHEMA.names == PREDICTION_COLUMNS

NEXT = {D(2025, 1, 6): D(2025, 1, 7), D(2025, 1, 7): D(2025, 1, 8), D(2025, 1, 13): D(2025, 1, 14),
        D(2025, 1, 14): D(2025, 1, 15)}


def _predictions(asof: dt.date, run_id: str, version: str, features_version: int, published: bool,
                 rows: list[tuple]) -> list[dict]:
    """rows: (ticker, pred_return, pred_lo, pred_hi, rank, signal)."""
    n = len(rows)
    return [{
        "ticker": t, "asof_date": asof, "target_session": NEXT[asof], "event_ts": _close(asof),
        "pred_return": p, "pred_lo": lo, "pred_hi": hi, "rank": r, "percentile": (n - r + 1) / n, "signal": s,
        "model_name": "tickerlake_daily_lgbm", "model_version": version, "features_version": features_version,
        "run_id": run_id, "published": published, "year": asof.year,
    } for t, p, lo, hi, r, s in rows]


PREDICTIONS = [
    # 2025-01-06, model 1: one run; E has no label yet
    *_predictions(D(2025, 1, 6), "run_a", "1", 3, False, [
        ("A", 0.03, 0.01, 0.05, 1, "long"), ("B", 0.01, -0.01, 0.03, 2, "neutral"),
        ("E", 0.00, -0.02, 0.02, 3, "neutral"), ("C", -0.01, -0.03, 0.01, 4, "neutral"),
        ("D", -0.03, -0.05, -0.01, 5, "short")]),
    # 2025-01-07, model 1: two runs, none published; run_b2 read the newer features and counts
    *_predictions(D(2025, 1, 7), "run_b1", "1", 4, False, [
        ("A", 0.05, 0.03, 0.07, 1, "long"), ("C", 0.04, 0.02, 0.06, 2, "neutral"),
        ("D", -0.04, -0.06, -0.02, 3, "neutral"), ("B", -0.05, -0.07, -0.03, 4, "short")]),
    *_predictions(D(2025, 1, 7), "run_b2", "1", 5, False, [
        ("B", 0.02, 0.00, 0.04, 1, "long"), ("A", 0.01, -0.01, 0.03, 2, "neutral"),
        ("C", -0.01, -0.03, 0.005, 3, "neutral"), ("D", -0.02, -0.04, 0.00, 4, "short")]),
    # 2025-01-13, model 2: the published run counts although the other read newer features
    *_predictions(D(2025, 1, 13), "run_c1", "2", 7, False, [
        ("D", 0.03, 0.01, 0.05, 1, "long"), ("C", 0.01, -0.01, 0.03, 2, "neutral"),
        ("B", -0.01, -0.03, 0.01, 3, "neutral"), ("A", -0.03, -0.05, -0.01, 4, "short")]),
    *_predictions(D(2025, 1, 13), "run_c2", "2", 6, True, [
        ("A", 0.03, 0.01, 0.05, 1, "long"), ("B", 0.01, -0.01, 0.03, 2, "neutral"),
        ("C", -0.01, -0.03, 0.01, 3, "neutral"), ("D", -0.03, -0.05, -0.01, 4, "short")]),
    # 2025-01-14, model 2: the newest session, no labels yet; same features version: run_d1 > run_d0
    *_predictions(D(2025, 1, 14), "run_d0", "2", 8, False, [
        ("A", 0.04, 0.02, 0.06, 1, "long"), ("B", 0.02, 0.00, 0.04, 2, "neutral"),
        ("C", -0.01, -0.03, 0.01, 3, "neutral"), ("D", -0.05, -0.07, -0.03, 4, "short")]),
    *_predictions(D(2025, 1, 14), "run_d1", "2", 8, False, [
        ("C", 0.04, 0.02, 0.06, 1, "long"), ("A", 0.02, 0.00, 0.04, 2, "neutral"),
        ("B", -0.01, -0.03, 0.01, 3, "neutral"), ("D", -0.05, -0.07, -0.03, 4, "short")]),
]

LABELS = {  # ret_1d by session and ticker
    D(2025, 1, 6): {"A": 0.02, "B": 0.01, "C": 0.00, "D": -0.02},
    D(2025, 1, 7): {"A": 0.02, "B": -0.01, "C": 0.01, "D": -0.02},
    D(2025, 1, 13): {"A": -0.02, "B": 0.00, "C": 0.00, "D": 0.02},
}


def _features() -> list[dict]:
    """Feature rows for the drift query (monitor_weeks=2, ref_weeks=1):
    week of 2024-12-30: before the reference (values 1000, must not count);
    week of 2025-01-06: the reference, values 1..10 (deciles 1.9, 2.8, ..., 9.1: one value per bin);
    week of 2025-01-13: the same values (PSI 0);
    week of 2025-01-20: every value 10 (all in the top bin); VMA20 is null on one row (warm-up)."""
    tickers = ["A", "B", "C", "D", "E"]
    weeks = {
        (D(2024, 12, 30), D(2024, 12, 31)): [1000.0] * 10,
        (D(2025, 1, 6), D(2025, 1, 7)): [float(v) for v in range(1, 11)],
        (D(2025, 1, 13), D(2025, 1, 14)): [float(v) for v in range(1, 11)],
        (D(2025, 1, 20), D(2025, 1, 21)): [10.0] * 10,
    }
    rows = []
    for days, values in weeks.items():
        i = 0
        for day in days:
            for ticker in tickers:
                row = {"date": day, "ticker": ticker, **{f: 0.0 for f in FEATURE_NAMES}}
                for f in ("REV1", "REV5", "ROC20", "STD20", "VMA20"):
                    row[f] = values[i]
                if day == D(2025, 1, 21) and ticker == "E":
                    row["VMA20"] = None
                row["year"] = day.year
                row["event_ts"] = _close(day)
                rows.append(row)
                i += 1
    return rows


FEATURES_SCHEMA = pa.schema([("date", pa.date32()), ("ticker", pa.string()),
                             *[(f, pa.float64()) for f in FEATURE_NAMES],
                             ("year", pa.int32()), ("event_ts", pa.timestamp("us", tz="UTC"))])
LABELS_SCHEMA = pa.schema([("ticker", pa.string()), ("date", pa.date32()), ("ret_1d", pa.float64()),
                           ("ret_5d", pa.float64()), ("ret_1d_rank", pa.float64()), ("ret_5d_rank", pa.float64()),
                           ("year", pa.int32())])
ALT_QUARANTINE_SCHEMA = pa.schema([("key", pa.string()), ("date", pa.date32()), ("rule", pa.string()),
                                   ("severity", pa.string()), ("values", pa.string()), ("source", pa.string()),
                                   ("source_file", pa.string()), ("line_number", pa.int64()),
                                   ("batch_id", pa.string()), ("run_id", pa.string())])
DECISIONS_SCHEMA = pa.schema([("decided_on", pa.date32()), ("model_name", pa.string()),
                              ("candidate_version", pa.string()), ("champion_version", pa.string()),
                              ("decision", pa.string()), ("candidate_rank_ic", pa.float64()),
                              ("champion_rank_ic", pa.float64()), ("best_baseline", pa.string()),
                              ("best_baseline_rank_ic", pa.float64()), ("gates", pa.string()),
                              ("holdout_start", pa.string()), ("holdout_end", pa.string()), ("year", pa.int32())])


def build_lake(settings: Settings) -> None:
    _write(settings, "gold.predictions_daily", PREDICTIONS, PREDICTION_SCHEMA)
    labels = [{"ticker": t, "date": day, "ret_1d": r, "ret_5d": 2 * r, "ret_1d_rank": None, "ret_5d_rank": None,
               "year": day.year} for day, by_ticker in LABELS.items() for t, r in by_ticker.items()]
    _write(settings, "gold.labels_daily", labels, LABELS_SCHEMA, ["year"])
    _write(settings, "gold.features_daily", _features(), FEATURES_SCHEMA, ["year"])
    q = [("A", D(2025, 1, 6), "high_below_low", "reject"), ("B", D(2025, 1, 7), "high_below_low", "reject"),
         ("C", D(2025, 1, 8), "volume_spike", "warn"), ("A", D(2025, 1, 14), "high_below_low", "reject")]
    _write(settings, "quarantine.bars_daily",
           [{"ticker": t, "date": d, "rule": r, "severity": s, "values": "{}", "run_id": "run_q",
             "source_file": None, "source_row": None, "year": d.year} for t, d, r, s in q],
           quarantine_schema(), ["year"])
    _write(settings, "quarantine.news",
           [{"key": "n1", "date": D(2025, 1, 9), "rule": "empty_headline", "severity": "reject", "values": "{}",
             "source": "news", "source_file": "2025-01-09.csv", "line_number": 3, "batch_id": "b",
             "run_id": "run_n"}], ALT_QUARANTINE_SCHEMA)
    bars = [{"ticker": t, "date": D(2025, 1, 6), "open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5,
             "volume": 1e6, "adj_close": None, "div_cash": None, "split_factor": None, "source_file": None,
             "source_row": None, "source": "synthetic", "batch_id": "b", "run_id": "run_a",
             "run_logical_ts": _close(D(2025, 1, 6)), "year": 2025} for t in "ABCD"]
    _write(settings, "bronze.bars_daily", bars, bronze_schema(), ["year"])
    run = {name: None for name in runs_schema().names}
    run.update(interval_start=D(2025, 1, 6), interval_end=D(2025, 1, 6), run_id="run_a", rows_received=4,
               rows_in_bronze=4, rows_rejected=1, rows_to_silver=3, rows_warned=0, reconciled=True,
               counts_by_rule='{"high_below_low": 1}', year=2025)
    _write(settings, "ops.validation_runs", [run], runs_schema(), ["year"])
    _write(settings, "ops.model_decisions", [{
        "decided_on": D(2025, 1, 10), "model_name": "tickerlake_daily_lgbm", "candidate_version": "2",
        "champion_version": "1", "decision": "promoted", "candidate_rank_ic": 0.05, "champion_rank_ic": 0.03,
        "best_baseline": "reversal_1d", "best_baseline_rank_ic": 0.02, "gates": "{}",
        "holdout_start": "2024-07-01", "holdout_end": "2024-12-31", "year": 2025}], DECISIONS_SCHEMA, ["year"])
    # a folder without a Delta log is no table
    Path(settings.table_path("gold.signal_outcomes")).mkdir(parents=True)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    s = load_settings(home=tmp_path_factory.mktemp("sql") / "home")
    build_lake(s)
    return s


@pytest.fixture(scope="module")
def con(settings: Settings):
    c = sql.connect(settings)
    yield c
    c.close()


# --- views -------------------------------------------------------------------------------------------
def test_every_view_answers_with_rows_and_the_missing_tables_are_listed(settings, con):
    plan = sql.view_plan(settings)
    assert sorted(plan.created) == sorted(CREATED)
    declared = list(sql.parse_views(sql.VIEWS_FILE.read_text()))
    assert plan.skipped == [n for n in declared if n not in CREATED]
    assert "gold.signal_outcomes" in plan.skipped
    listed = sql.execute(con, "SELECT name, status FROM tickerlake_views")
    assert set(listed.loc[listed["status"] == "view", "name"]) == set(CREATED)
    assert set(listed.loc[listed["status"] != "view", "name"]) == set(plan.skipped)
    for name in CREATED:
        n = sql.query(settings, f"SELECT count(*) AS n FROM {name}", con=con)["n"].iloc[0]
        assert n > 0, name
    views = sql.execute(con, "SELECT schema_name || '.' || view_name AS v, sql FROM duckdb_views() "
                             "WHERE NOT internal")
    root = sql.lake_root_path(settings.lake_root)
    assert dict(zip(views["v"], views["sql"], strict=True))["gold.predictions_daily"].count(
        f"delta_scan('{root}/gold/predictions_daily')") == 1


def test_views_read_the_delta_tables_as_written(settings, con):
    preds = sql.query(settings, "SELECT * FROM gold.predictions_daily ORDER BY asof_date, run_id, rank", con=con)
    assert list(preds.columns) == PREDICTION_COLUMNS
    assert len(preds) == len(PREDICTIONS)
    assert preds["asof_date"].iloc[0] == D(2025, 1, 6)  # dates come back as dates
    assert str(preds["event_ts"].dt.tz) in ("UTC", "Etc/UTC")
    features = sql.query(settings, "SELECT year, count(*) AS n FROM gold.features_daily GROUP BY year ORDER BY year",
                         con=con)
    assert features.to_dict("list") == {"year": [2024, 2025], "n": [10, 30]}


def test_query_opens_its_own_session(settings):
    df = sql.query(settings, "SELECT count(*) AS n FROM quarantine.bars_daily")
    assert df["n"].tolist() == [4]


# --- curated queries ------------------------------------------------------------------------------------
def test_todays_signals_is_the_newest_session_of_one_run_ranked(settings, con):
    df = sql.run_curated(settings, "todays_signals", con=con)
    assert df["ticker"].tolist() == ["C", "A", "B", "D"]
    assert df["rank"].tolist() == [1, 2, 3, 4]
    assert df["signal"].tolist() == ["long", "neutral", "neutral", "short"]
    assert set(df["asof_date"]) == {D(2025, 1, 14)} and set(df["target_session"]) == {D(2025, 1, 15)}
    assert set(df["run_id"]) == {"run_d1"}  # same features version as run_d0: the greater run id


def test_hit_rate_by_week(settings, con):
    df = sql.run_curated(settings, "hit_rate_by_week", con=con)
    # week of 01-06, model 1: 01-06 (run_a): A long +2% hit, D short -2% hit;
    #   01-07 (run_b2, the newer features): B long -1% miss, D short -2% hit.
    #   Coverage: 01-06 all four inside; 01-07 A and D inside (B -1% < 0%, C 1% > 0.5%): 6 of 8.
    # week of 01-13, model 2 (run_c2, published): A long -2% miss, D short +2% miss; B, C inside: 2 of 4.
    # 01-14 has no label yet.
    assert df["week"].tolist() == [D(2025, 1, 6), D(2025, 1, 13)]
    assert df["model_version"].tolist() == ["1", "2"]
    assert df["sessions"].tolist() == [2, 1]
    assert df["signals"].tolist() == [4, 2]
    assert df["hits"].tolist() == [3, 0]
    assert df["hit_rate"].tolist() == pytest.approx([0.75, 0.0])
    assert df["longs"].tolist() == [2, 1] and df["shorts"].tolist() == [2, 1]
    assert df["long_hit_rate"].tolist() == pytest.approx([0.5, 0.0])
    assert df["short_hit_rate"].tolist() == pytest.approx([1.0, 0.0])
    assert df["long_mean_ret_1d"].tolist() == pytest.approx([0.005, -0.02])
    assert df["short_mean_ret_1d"].tolist() == pytest.approx([-0.02, 0.02])
    assert df["labelled_predictions"].tolist() == [8, 4]
    assert df["interval_coverage"].tolist() == pytest.approx([0.75, 0.5])


def test_live_ic_per_model_version(settings, con):
    df = sql.run_curated(settings, "live_ic_by_model_version", con=con).set_index("model_version")
    # model 1: 01-06 ranks agree exactly (IC 1); 01-07 (run_b2) pred ranks D1 C2 A3 B4 against
    #   realised D1 B2 C3 A4: sum d^2 = 6, IC = 1 - 6*6/(4*15) = 0.4. Mean 0.7, std sqrt(0.18).
    # model 2: 01-13 (run_c2) pred ranks A4 B3 C2 D1 against realised A1 B2.5 C2.5 D4 (a tie):
    #   Pearson on the ranks = -4.5 / sqrt(5 * 4.5) = -3 / sqrt(10).
    assert df.loc["1", "sessions"] == 2 and df.loc["2", "sessions"] == 1
    assert df.loc["1", "rank_ic_mean"] == pytest.approx(0.7)
    assert df.loc["1", "rank_ic_std"] == pytest.approx(math.sqrt(0.18))
    assert df.loc["1", "rank_ic_t"] == pytest.approx(0.7 / math.sqrt(0.18) * math.sqrt(2))
    assert df.loc["1", "positive_share"] == pytest.approx(1.0)
    assert df.loc["1", "mean_tickers"] == pytest.approx(4.0)
    assert df.loc["1", "first_asof_date"] == D(2025, 1, 6) and df.loc["1", "last_asof_date"] == D(2025, 1, 7)
    assert df.loc["2", "rank_ic_mean"] == pytest.approx(-3 / math.sqrt(10))
    assert pd.isna(df.loc["2", "rank_ic_std"]) and pd.isna(df.loc["2", "rank_ic_t"])
    assert df.loc["2", "positive_share"] == pytest.approx(0.0)


def test_live_ic_matches_trainings_rank_ic(settings, con):
    """The SQL statistic is evaluation.rank_ic_by_session's (average ranks, Pearson on ranks)."""
    from tickerlake.evaluation import rank_ic_by_session

    frame = pd.DataFrame({"date": [D(2025, 1, 13)] * 4, "label": [-0.02, 0.00, 0.00, 0.02],
                          "score": [0.03, 0.01, -0.01, -0.03]})
    ic = rank_ic_by_session(frame, min_names=2)
    df = sql.run_curated(settings, "live_ic_by_model_version", con=con).set_index("model_version")
    assert df.loc["2", "rank_ic_mean"] == pytest.approx(float(ic.iloc[0]))


def test_quarantine_by_rule_per_week(settings, con):
    df = sql.run_curated(settings, "quarantine_by_rule_weekly", con=con)
    assert [tuple(r) for r in df.itertuples(index=False)] == [
        (D(2025, 1, 6), "bars_daily", "high_below_low", "reject", 2, 2),
        (D(2025, 1, 6), "bars_daily", "volume_spike", "warn", 1, 1),
        (D(2025, 1, 6), "news", "empty_headline", "reject", 1, 1),
        (D(2025, 1, 13), "bars_daily", "high_below_low", "reject", 1, 1),
    ]


def test_feature_drift_psi_by_week(settings, con):
    df = sql.run_curated(settings, "feature_drift_psi_weekly", {"monitor_weeks": 2, "ref_weeks": 1}, con=con)
    features = ["REV1", "REV5", "ROC20", "STD20", "VMA20"]
    assert df["week"].tolist() == [D(2025, 1, 13)] * 5 + [D(2025, 1, 20)] * 5
    assert df["feature"].tolist() == features * 2
    assert set(df["reference_start"]) == {D(2025, 1, 6)} and set(df["reference_end"]) == {D(2025, 1, 12)}
    assert set(df["reference_rows"]) == {10}  # the week of 2024-12-30 is outside the reference
    # same distribution as the reference: PSI 0
    assert df["psi"].iloc[:5].tolist() == pytest.approx([0.0] * 5, abs=1e-12)
    # all in the top decile: 9 empty bins (floored at 0.0001) against 0.1, one bin 1.0 against 0.1
    shifted = 9 * (0.0001 - 0.1) * math.log(0.0001 / 0.1) + (1.0 - 0.1) * math.log(1.0 / 0.1)
    assert shifted == pytest.approx(8.28309, abs=1e-5)
    assert df["psi"].iloc[5:].tolist() == pytest.approx([shifted] * 5)
    assert df["rows"].tolist() == [10] * 5 + [10, 10, 10, 10, 9]  # a null VMA20 is left out
    assert df["drift"].tolist() == ["stable"] * 5 + ["significant"] * 5
    # by default the reference is the 26 weeks before the last 13: this lake has no rows there
    assert sql.run_curated(settings, "feature_drift_psi_weekly", con=con).empty


def test_curated_query_needing_a_missing_table_says_which(tmp_path: Path):
    s = load_settings(home=tmp_path / "home")
    _write(s, "gold.predictions_daily", PREDICTIONS[:5], PREDICTION_SCHEMA)
    with sql.connect(s) as c:
        with pytest.raises(RuntimeError, match="gold.labels_daily"):
            sql.run_curated(s, "hit_rate_by_week", con=c)
        assert len(sql.run_curated(s, "todays_signals", con=c)) == 5
        assert sql.run_curated(s, "quarantine_by_rule_weekly", con=c).empty  # no quarantine table yet


# --- the lock-down --------------------------------------------------------------------------------------
@pytest.mark.parametrize("statement", [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_csv('/etc/passwd', sep = ':', header = false)",
    "SELECT * FROM read_json('/etc/passwd')",
    "SELECT * FROM read_blob('/etc/passwd')",
    "SELECT * FROM glob('/etc/*')",
    "COPY (SELECT 1) TO '/tmp/tickerlake-sql-test.csv'",
    "ATTACH '/tmp/tickerlake-sql-test.duckdb'",
])
def test_the_engine_refuses_files_outside_the_lake(con, statement: str):
    with pytest.raises(duckdb.PermissionException, match="disabled by configuration"):
        con.execute(statement).fetchall()


@pytest.mark.parametrize("statement", [
    "INSTALL httpfs",
    "FORCE INSTALL delta",
    "LOAD httpfs",
    "LOAD '/etc/passwd'",
])
def test_the_engine_refuses_extension_installs_and_loads(con, statement: str):
    with pytest.raises(duckdb.Error):
        con.execute(statement)


@pytest.mark.parametrize("statement", [
    "SET enable_external_access = true",
    "RESET enable_external_access",
    "SET allowed_directories = ['/']",
    "SET allowed_paths = ['/etc/passwd']",
    "SET lock_configuration = false",
    "SET autoload_known_extensions = true",
    "SET allow_unsigned_extensions = true",
    "SET threads = 1",
    "SET memory_limit = '1GB'",
])
def test_the_engine_refuses_configuration_changes(con, statement: str):
    with pytest.raises(duckdb.Error):
        con.execute(statement)


def test_the_session_settings_are_locked_down(con):
    settings = dict(con.execute(
        "SELECT name, value FROM duckdb_settings() WHERE name IN ('enable_external_access', 'lock_configuration', "
        "'autoinstall_known_extensions', 'autoload_known_extensions', 'allow_unsigned_extensions', "
        "'allow_community_extensions')").fetchall())
    assert settings == {"enable_external_access": "false", "lock_configuration": "true",
                        "autoinstall_known_extensions": "false", "autoload_known_extensions": "false",
                        "allow_unsigned_extensions": "false", "allow_community_extensions": "false"}
    assert con.execute("SELECT count(*) FROM duckdb_functions() WHERE function_name = 'delta_scan'").fetchone()[0] >= 1


def test_files_outside_the_lake_stay_out_of_reach_inside_it_are_readable(settings, con, tmp_path: Path):
    outside = tmp_path / "outside.csv"
    outside.write_text("a,b\n1,2\n")
    with pytest.raises(duckdb.PermissionException):
        con.execute(f"SELECT * FROM '{outside}'").fetchall()
    root = sql.lake_root_path(settings.lake_root)
    # a sibling folder whose name starts like the lake's is not inside it
    sibling = Path(root + "2")
    sibling.mkdir(exist_ok=True)
    (sibling / "x.csv").write_text("a\n1\n")
    with pytest.raises(duckdb.PermissionException):
        con.execute(f"SELECT * FROM read_csv('{sibling}/x.csv')").fetchall()
    with pytest.raises(duckdb.PermissionException):
        con.execute(f"SELECT * FROM read_csv('{root}/../lake2/x.csv')").fetchall()
    # the lake's own files are what the session may read
    logs = con.execute(f"SELECT count(*) FROM glob('{root}/gold/predictions_daily/_delta_log/*.json')").fetchone()
    assert logs == (1,)


def test_the_guard_refuses_writes_into_the_lake_and_direct_readers(settings, con, tmp_path: Path):
    root = Path(sql.lake_root_path(settings.lake_root))
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    outside = tmp_path / "other_table"
    write_deltalake(str(outside), pa.table({"secret": ["x"]}))
    for statement in [
        f"COPY (SELECT 1) TO '{root}/gold/predictions_daily/evil.parquet'",
        f"ATTACH '{root}/evil.duckdb'",
        f"EXPORT DATABASE '{root}/dump'",
        "INSTALL httpfs",
        "SET enable_external_access = true",
        f"SELECT * FROM delta_scan('{outside}')",
        "CREATE OR REPLACE VIEW gold.predictions_daily AS SELECT 1 AS x",
    ]:
        with pytest.raises(sql.SqlGuardError):
            sql.query(settings, statement, con=con)
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before
    # the engine alone would still refuse the other table's data
    with pytest.raises(duckdb.PermissionException):
        con.execute(f"SELECT * FROM delta_scan('{outside}')").fetchall()
    with pytest.raises(sql.SqlGuardError):
        sql.query(settings, "SELECT 1; SELECT 2", con=con)


def test_a_tampered_extension_is_refused(tmp_path: Path):
    bad = tmp_path / "delta.duckdb_extension"
    shutil.copyfile(sql.delta_extension_path(), bad)
    with bad.open("r+b") as f:
        f.seek(1_000_000)
        byte = f.read(1)
        f.seek(1_000_000)
        f.write(bytes([byte[0] ^ 0xFF]))
    with duckdb.connect(":memory:", config=dict(sql._SESSION_CONFIG)) as c:
        with pytest.raises(duckdb.Error, match="signature"):
            sql.load_extension_file(c, bad)


def test_a_new_commit_is_visible_in_an_open_session(tmp_path: Path):
    s = load_settings(home=tmp_path / "home")
    _write(s, "gold.predictions_daily", PREDICTIONS[:5], PREDICTION_SCHEMA)
    with sql.connect(s) as c:
        assert sql.query(s, "SELECT count(*) AS n FROM gold.predictions_daily", con=c)["n"].tolist() == [5]
        write_deltalake(s.table_path("gold.predictions_daily"),
                        pa.Table.from_pylist(PREDICTIONS[5:9], schema=PREDICTION_SCHEMA), mode="append")
        assert sql.query(s, "SELECT count(*) AS n FROM gold.predictions_daily", con=c)["n"].tolist() == [9]


# --- the interactive session ------------------------------------------------------------------------
def test_interactive_session_reads_statements_until_quit(settings):
    stdin = io.StringIO(
        "SELECT count(*) AS n\n  FROM gold.predictions_daily;\n"
        ".format csv\n"
        "SELECT ticker FROM gold.predictions_daily WHERE run_id = 'run_d1' ORDER BY rank;\n"
        "COPY (SELECT 1) TO '/tmp/x.csv';\n"
        "SELECT * FROM read_csv('/etc/passwd');\n"
        ".curated todays_signals\n"
        ".quit\n"
        "SELECT 'never run';\n"
    )
    out, err = io.StringIO(), io.StringIO()
    assert sql.interactive(settings, stdin=stdin, stdout=out, stderr=err) == 3
    text = out.getvalue()
    assert text.startswith(f" n\n{len(PREDICTIONS)}\n(1 row)\n")
    assert "ticker\nC\nA\nB\nD\n" in text
    assert "asof_date,target_session,rank,ticker" in text and "never run" not in text
    errors = err.getvalue().split("error: ")[1:]
    assert len(errors) == 2
    assert "COPY statements are not allowed" in errors[0]
    assert "Permission Error" in errors[1] and "/etc/passwd" in errors[1]


def test_interactive_session_ends_at_end_of_input(settings):
    out, err = io.StringIO(), io.StringIO()
    n = sql.interactive(settings, stdin=io.StringIO("SELECT 41 + 1 AS answer"), stdout=out, stderr=err, fmt="json")
    assert n == 1 and out.getvalue() == '[\n{"answer": 42}\n]\n' and err.getvalue() == ""
