"""Analyst SQL helpers: view SQL from views.sql, the lake root, the read-only guard, output formats.

No lake and no extension here: the guard parses in a plain in-memory DuckDB.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from tickerlake import sql
from tickerlake.settings import load_settings

pytestmark = pytest.mark.unit

DESIGN_TABLES = {
    "bronze": ["bars_daily", "bars_intraday", "news", "social", "macro"],
    "quarantine": ["bars_daily", "bars_intraday", "news", "social", "macro"],
    "silver": ["bars_daily", "split_factors", "bars_intraday", "sentiment_daily", "macro_asof"],
    "gold": ["features_daily", "labels_daily", "predictions_oos", "predictions_daily", "predictions_intraday",
             "signal_outcomes"],
    "ops": ["validation_runs", "model_decisions", "pipeline_runs"],
}
# Tables the project writes beyond DESIGN.md's list: the quarantines of the feature and prediction
# suites, the reason rows of tickers a prediction run skipped, and the market-wide macro features
# (one row per session, Feast's macro view).
PROJECT_TABLES = {"quarantine": ["features_daily", "predictions_daily"], "gold": ["predictions_skipped", "macro_daily"]}
ALL_TABLES = {layer: DESIGN_TABLES[layer] + PROJECT_TABLES.get(layer, []) for layer in DESIGN_TABLES}


# --- views.sql ------------------------------------------------------------------------------------
def test_views_file_declares_every_design_table_over_its_own_folder():
    views = sql.parse_views(sql.VIEWS_FILE.read_text(encoding="utf-8"))
    expected = {f"{layer}.{t}" for layer, tables in ALL_TABLES.items() for t in tables}
    assert set(views) == expected
    for name, statement in views.items():
        layer, table = name.split(".")
        assert statement == (f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM "
                             f"delta_scan('${{lake_root}}/{layer}/{table}')")
    # no path is written in the file: every delta_scan starts at the placeholder
    text = "\n".join(line for line in sql.VIEWS_FILE.read_text(encoding="utf-8").splitlines()
                     if not line.startswith("--"))
    assert text.count("delta_scan('${lake_root}/") == text.count("delta_scan(") == len(expected)


def test_plan_creates_views_only_for_present_tables_and_lists_the_skipped():
    text = sql.VIEWS_FILE.read_text(encoding="utf-8")
    plan = sql.plan_views(text, "/data/lake", ["gold.predictions_daily", "ops.validation_runs", "scratch.tmp_x"])
    assert plan.created == ["gold.predictions_daily", "ops.validation_runs", "scratch.tmp_x"]
    assert plan.statements["gold.predictions_daily"] == (
        "CREATE OR REPLACE VIEW gold.predictions_daily AS SELECT * FROM delta_scan('/data/lake/gold/predictions_daily')"
    )
    # found in the lake but not declared: the plain view
    assert plan.undeclared == ["scratch.tmp_x"]
    assert plan.statements["scratch.tmp_x"].endswith("delta_scan('/data/lake/scratch/tmp_x')")
    assert "gold.features_daily" in plan.skipped and "gold.predictions_daily" not in plan.skipped
    assert len(plan.skipped) == sum(len(t) for t in ALL_TABLES.values()) - 2
    assert plan.schemas == ["gold", "ops", "scratch"]


def test_parse_views_rejects_what_is_not_one_view_per_name():
    ok = "-- c\nCREATE OR REPLACE VIEW gold.a AS SELECT 1;\ncreate or replace view gold.b as select 2;\n"
    assert list(sql.parse_views(ok)) == ["gold.a", "gold.b"]
    with pytest.raises(ValueError, match="declared twice"):
        sql.parse_views(ok + "CREATE OR REPLACE VIEW gold.a AS SELECT 3;\n")
    with pytest.raises(ValueError, match="expected CREATE OR REPLACE VIEW"):
        sql.parse_views("DROP VIEW gold.a;\n")
    with pytest.raises(ValueError, match="expected CREATE OR REPLACE VIEW"):
        sql.parse_views("CREATE OR REPLACE VIEW a AS SELECT 1;\n")
    with pytest.raises(ValueError, match="lower case"):
        sql.parse_views("CREATE OR REPLACE VIEW Gold.A AS SELECT 1;\n")


def test_discover_tables_finds_delta_folders_only(tmp_path: Path):
    for rel in ("gold/features_daily/_delta_log", "ops/validation_runs/_delta_log", "gold/not_delta",
                "silver/Bad-Name/_delta_log"):
        (tmp_path / rel).mkdir(parents=True)
    (tmp_path / "gold" / "stray.txt").write_text("x")
    assert sql.discover_tables(tmp_path) == ["gold.features_daily", "ops.validation_runs"]
    assert sql.discover_tables(tmp_path / "missing") == []


# --- lake root ---------------------------------------------------------------------------------------
def test_lake_root_comes_from_settings_with_file_scheme_stripped(tmp_path: Path):
    settings = load_settings(home=tmp_path)
    assert settings.lake_root.startswith("file://")
    root = sql.lake_root_path(settings.lake_root)
    assert root == str(tmp_path.resolve() / "lake")
    plan = sql.plan_views(sql.VIEWS_FILE.read_text(), root, ["gold.labels_daily"])
    assert plan.statements["gold.labels_daily"].endswith(f"delta_scan('{root}/gold/labels_daily')")


@pytest.mark.parametrize(("uri", "path"), [
    ("file:///srv/lake", "/srv/lake"),
    ("file:///srv/lake/", "/srv/lake"),
    ("/srv/lake//", "/srv/lake"),
    ("file:///", "/"),
])
def test_lake_root_path(uri: str, path: str):
    assert sql.lake_root_path(uri) == path


@pytest.mark.parametrize("uri", ["s3://bucket/lake", "abfss://c@a.dfs.core.windows.net/lake", "relative/lake"])
def test_lake_root_that_is_not_local_is_refused(uri: str):
    with pytest.raises(ValueError):
        sql.lake_root_path(uri)


def test_lake_root_with_a_quote_stays_inside_the_literal():
    root = "/tmp/o'brien/lake"
    statement = sql.plan_views(sql.VIEWS_FILE.read_text(), root, ["gold.labels_daily"]).statements["gold.labels_daily"]
    assert statement.endswith("delta_scan('/tmp/o''brien/lake/gold/labels_daily')")
    con = duckdb.connect()
    parsed = con.extract_statements(statement)
    assert len(parsed) == 1 and parsed[0].type.name == "CREATE"
    assert sql.sql_string_literal("a'b") == "'a''b'"


# --- the guard -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def con():
    c = duckdb.connect()
    yield c
    c.close()


@pytest.mark.parametrize("statement", [
    "SELECT 1",
    "select * from gold.predictions_daily where ticker = 'A'",
    "FROM gold.features_daily LIMIT 3",
    "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
    "SELECT 'a;b' AS s",
    "SHOW TABLES",
    "DESCRIBE gold.predictions_daily",
    "SUMMARIZE gold.features_daily",
    "EXPLAIN SELECT 1",
    "EXPLAIN ANALYZE SELECT 1",
    "SELECT * FROM range(3)",
    "SELECT * FROM read_csv('/lake/x.csv')",  # file readers are confined by the engine, not the guard
])
def test_guard_accepts_reads(con, statement: str):
    assert sql.check_read_only(con, statement) == [statement]


@pytest.mark.parametrize(("statement", "kind"), [
    ("COPY (SELECT 1) TO '/lake/gold/x.csv'", "COPY"),
    ("ATTACH '/lake/x.db'", "ATTACH"),
    ("EXPORT DATABASE '/lake/dump'", "EXPORT"),
    ("INSTALL httpfs", "LOAD"),
    ("LOAD httpfs", "LOAD"),
    ("SET enable_external_access = true", "SET"),
    ("RESET lock_configuration", "SET"),
    ("SET VARIABLE x = 1", "SET"),
    ("CREATE TABLE t AS SELECT 1", "CREATE"),
    ("CREATE OR REPLACE VIEW gold.predictions_daily AS SELECT 1", "CREATE"),
    ("DROP VIEW gold.predictions_daily", "DROP"),
    ("INSERT INTO t VALUES (1)", "INSERT"),
    ("CALL pragma_version()", "CALL"),
    ("PRAGMA enable_profiling", "PRAGMA"),
    ("CHECKPOINT", "CALL"),
])
def test_guard_refuses_everything_else(con, statement: str, kind: str):
    with pytest.raises(sql.SqlGuardError, match=kind):
        sql.check_read_only(con, statement)


@pytest.mark.parametrize("statement", [
    "EXPLAIN ANALYZE COPY (SELECT 1) TO '/lake/x.csv'",
    "EXPLAIN CREATE TABLE t AS SELECT 1",
    "SELECT * FROM delta_scan('/elsewhere/table')",
    "SELECT * FROM main.DELTA_SCAN('/elsewhere/table')",
    "SELECT count(*) FROM (SELECT * FROM gold.x JOIN delta_scan('/y') USING (a))",
    "SELECT * FROM gold.x WHERE a IN (SELECT a FROM delta_scan('/y'))",
    "DESCRIBE SELECT * FROM delta_scan('/y')",
    "SELECT * FROM query('SELECT * FROM delta_scan(''/y'')')",
    "SELECT * FROM query_table('gold.x')",
])
def test_guard_refuses_hidden_writes_and_direct_readers(con, statement: str):
    with pytest.raises(sql.SqlGuardError):
        sql.check_read_only(con, statement)


def test_guard_checks_what_a_pragma_stands_for(con):
    # DuckDB turns read-only pragmas into the SELECT they stand for; that SELECT is checked and run
    [show] = sql.check_read_only(con, "PRAGMA show_tables")
    assert "duckdb_tables" in show
    assert sql.check_read_only(con, "PRAGMA table_info('gold.x')") == ["SELECT * FROM pragma_table_info('gold.x')"]


def test_guard_checks_every_statement_of_a_batch(con):
    assert sql.check_read_only(con, "SELECT 1; SELECT 2;") == ["SELECT 1", "SELECT 2"]
    with pytest.raises(sql.SqlGuardError, match="COPY"):
        sql.check_read_only(con, "SELECT 1; COPY (SELECT 1) TO '/lake/x.csv'")
    with pytest.raises(sql.SqlGuardError, match="no SQL"):
        sql.check_read_only(con, "  -- nothing\n")
    with pytest.raises(duckdb.ParserException):
        sql.check_read_only(con, "SELEC 1")


def test_table_functions_walks_the_whole_tree():
    tree = {"statements": [{"node": {"from_table": {"type": "TABLE_FUNCTION", "function": {
        "function_name": "Range"}}, "where": [{"subquery": {"type": "TABLE_FUNCTION", "function": {
            "function_name": "delta_scan"}}}]}}]}
    assert sql.table_functions(tree) == {"range", "delta_scan"}


# --- curated query files --------------------------------------------------------------------------
def test_curated_queries_parse_and_render():
    names = sql.curated_names()
    assert names == ["feature_drift_psi_weekly", "hit_rate_by_week", "live_ic_by_model_version",
                     "quarantine_by_rule_weekly", "todays_signals"]
    drift = sql.load_curated("feature_drift_psi_weekly")
    assert drift.requires == ("gold.features_daily",)
    assert drift.params == {"monitor_weeks": 13, "ref_weeks": 26}
    rendered = sql.render_curated(drift, {"ref_weeks": "4"})
    assert "7 * 4" in rendered and "${" not in rendered
    assert sql.load_curated("hit_rate_by_week").requires == ("gold.predictions_daily", "gold.labels_daily")
    with pytest.raises(ValueError, match="integer"):
        sql.render_curated(drift, {"ref_weeks": "4; COPY x TO 'y'"})
    with pytest.raises(ValueError, match="no parameter"):
        sql.render_curated(drift, {"weeks": 1})
    with pytest.raises(ValueError, match="no curated query"):
        sql.load_curated("../views")
    quarantine = sql.load_curated("quarantine_by_rule_weekly")
    with pytest.raises(ValueError, match="quarantine_rows"):
        sql.render_curated(quarantine)


def test_quarantine_union_covers_the_quarantine_views_it_can():
    union = sql.quarantine_union_sql({
        "quarantine.bars_daily": ["ticker", "date", "rule", "severity", "values"],
        "quarantine.bars_intraday": ["ticker", "ts", "rule", "severity"],
        "quarantine.odd": ["key", "rule"],
    })
    assert union == (
        "(SELECT 'bars_daily' AS source_table, CAST(date AS DATE) AS date, CAST(rule AS VARCHAR) AS rule, "
        "CAST(severity AS VARCHAR) AS severity FROM quarantine.bars_daily UNION ALL "
        "SELECT 'bars_intraday' AS source_table, CAST(ts AS DATE) AS date, CAST(rule AS VARCHAR) AS rule, "
        "CAST(severity AS VARCHAR) AS severity FROM quarantine.bars_intraday) AS quarantine_rows"
    )
    empty = duckdb.connect().execute(f"SELECT count(*) FROM {sql.quarantine_union_sql({})}").fetchone()
    assert empty == (0,)


# --- format_result -------------------------------------------------------------------------------------
@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({
        "asof_date": [dt.date(2025, 1, 6), dt.date(2025, 1, 7)],
        "event_ts": pd.to_datetime(["2025-01-06 21:00", "2025-01-07 21:00"]).tz_localize("UTC"),
        "ticker": ["BRK.B", "<b>x</b>,\"q\""],
        "pred_return": [0.0125, float("nan")],
        "rank": np.array([1, 2], dtype="int32"),
        "published": [True, False],
    })


def test_format_table(frame: pd.DataFrame):
    out = sql.format_result(frame, "table")
    lines = out.splitlines()
    assert lines[0].split() == ["asof_date", "event_ts", "ticker", "pred_return", "rank", "published"]
    assert "2025-01-06" in lines[1] and "BRK.B" in lines[1] and "0.0125" in lines[1]
    assert lines[-1] == "(2 rows)"
    assert sql.format_result(frame.head(1), "table").endswith("(1 row)")
    assert sql.format_result(frame.iloc[0:0], "table") == (
        "asof_date  event_ts  ticker  pred_return  rank  published\n(0 rows)")


def test_format_csv(frame: pd.DataFrame):
    out = sql.format_result(frame, "csv")
    assert out.splitlines() == [
        "asof_date,event_ts,ticker,pred_return,rank,published",
        "2025-01-06,2025-01-06 21:00:00+00:00,BRK.B,0.0125,1,True",
        '2025-01-07,2025-01-07 21:00:00+00:00,"<b>x</b>,""q""",,2,False',
    ]
    assert sql.format_result(frame.iloc[0:0], "csv") == "asof_date,event_ts,ticker,pred_return,rank,published"


def test_format_json(frame: pd.DataFrame):
    records = json.loads(sql.format_result(frame, "json"))
    assert records == [
        {"asof_date": "2025-01-06", "event_ts": "2025-01-06T21:00:00+00:00", "ticker": "BRK.B",
         "pred_return": 0.0125, "rank": 1, "published": True},
        {"asof_date": "2025-01-07", "event_ts": "2025-01-07T21:00:00+00:00", "ticker": '<b>x</b>,"q"',
         "pred_return": None, "rank": 2, "published": False},
    ]
    assert sql.format_result(frame.iloc[0:0], "json") == "[]"
    odd = pd.DataFrame({"inf": [math.inf], "lst": [np.array([1, 2])], "nat": [pd.NaT], "na": [pd.NA],
                        "dec": [decimal.Decimal("1.50")], "i64": [np.int64(7)]})
    assert json.loads(sql.format_result(odd, "json")) == [
        {"inf": "inf", "lst": [1, 2], "nat": None, "na": None, "dec": "1.50", "i64": 7}]


def test_format_result_refuses_unknown_formats(frame: pd.DataFrame):
    with pytest.raises(ValueError, match="table, csv, json"):
        sql.format_result(frame, "xml")
