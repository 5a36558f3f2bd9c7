"""End to end: a CLI backfill seeds history, then a real `dag.test()` of tickerlake_daily."""

from __future__ import annotations

import datetime as dt
import importlib.util

import numpy as np
import pytest

from tickerlake import lake
from tickerlake.calendar import EXCHANGE_TZ, next_session, sessions_between
from tickerlake.catalog import REQUIRED_FEATURES
from tickerlake.settings import PROJECT_ROOT

pytestmark = pytest.mark.e2e

LAST_SESSION = dt.date(2025, 12, 31)


def _load_dag():
    spec = importlib.util.spec_from_file_location("tickerlake_daily_dag", PROJECT_ROOT / "dags" / "tickerlake_daily.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


@pytest.fixture(scope="module")
def daily_run(stack):
    """The stack is set up (jars, Airflow DB, feast apply); seed history by CLI, then run one session."""
    from tickerlake.cli import main

    settings = stack
    sessions = sessions_between(settings.history_start, LAST_SESSION)
    assert main(["backfill", "--start", sessions[0].isoformat(), "--end", sessions[-2].isoformat()]) == 0
    dag = _load_dag()
    logical = dt.datetime.combine(LAST_SESSION, dt.time(18, 30), tzinfo=EXCHANGE_TZ)
    run = dag.test(logical_date=logical)
    return settings, run


def test_daily_run_succeeds_and_predicts_every_ticker(daily_run):
    settings, run = daily_run
    assert str(run.state) in ("success", "DagRunState.SUCCESS"), f"daily run ended {run.state}"
    preds = lake.read_table(settings, "gold.predictions_daily", filters=[("asof_date", "=", LAST_SESSION)])
    assert preds["ticker"].nunique() == settings.universe_size
    assert len(preds) == settings.universe_size
    assert set(preds["target_session"]) == {next_session(LAST_SESSION)}
    assert preds["pred_lo"].lt(preds["pred_return"]).all() and preds["pred_hi"].gt(preds["pred_return"]).all()
    assert set(preds["signal"]) <= {"long", "short", "neutral"} and (preds["signal"] == "long").any()
    assert preds["published"].all()  # the report went out (a dry run) and marked exactly these rows


def test_champion_registered_and_decision_recorded(daily_run):
    from tickerlake.training import champion_version

    settings, _ = daily_run
    champion = champion_version(settings)
    assert champion is not None
    for tag in ("features_delta_version", "macro_delta_version", "labels_delta_version", "train_start", "train_end",
                "feature_list_hash"):
        assert tag in champion.tags, tag
    decisions = lake.read_table(settings, "ops.model_decisions")
    assert (decisions["candidate_version"] == str(champion.version)).any()
    assert (decisions["decision"] == "promoted").any()


def test_report_and_dry_run_email_written(daily_run):
    settings, _ = daily_run
    html = (settings.reports_dir / LAST_SESSION.isoformat() / "report.html").read_text()
    assert "Signals for " + next_session(LAST_SESSION).isoformat() in html
    assert 'id="signals-long"' in html
    eml = (settings.outbox_dir / LAST_SESSION.isoformat() / "report.eml").read_bytes()
    assert b"Subject: Tickerlake signals" in eml and b"text/html" in eml and b"text/plain" in eml


def test_predictions_reproduce_from_alias_and_feature_version(daily_run):
    """Reload the champion by alias, score the feature rows it read (their Delta version): same numbers."""
    import mlflow

    from tickerlake.predict import champion_calibration, score_features
    from tickerlake.training import champion_version, configure_mlflow

    settings, _ = daily_run
    preds = lake.read_table(settings, "gold.predictions_daily", filters=[("asof_date", "=", LAST_SESSION)])
    fv = int(preds["features_version"].iloc[0])
    features = lake.read_table(settings, "gold.features_daily", version=fv, filters=[("date", "=", LAST_SESSION)])
    assert features[list(REQUIRED_FEATURES)].notna().all().all()  # no alternative data in this market
    configure_mlflow(settings)
    champion = champion_version(settings)
    assert set(preds["model_version"]) == {str(champion.version)}
    model = mlflow.lightgbm.load_model(f"models:/{settings.model_name}@champion")
    again = score_features(model, features, champion_calibration(champion), settings.signal_threshold)
    merged = preds.merge(again, on="ticker", suffixes=("", "_again"))
    assert len(merged) == len(preds)
    np.testing.assert_array_equal(merged["pred_return"].to_numpy(), merged["pred_return_again"].to_numpy())
    assert (merged["signal"] == merged["signal_again"]).all()


def test_online_store_serves_latest_features_and_prediction(daily_run):
    from tickerlake.feast_store import online_features

    settings, _ = daily_run
    preds = lake.read_table(settings, "gold.predictions_daily", filters=[("asof_date", "=", LAST_SESSION)])
    tickers = sorted(preds["ticker"])[:5]
    online = online_features(settings, tickers, ["KMID", "pred_return"])
    expected = preds.set_index("ticker").loc[tickers, "pred_return"].to_numpy()
    np.testing.assert_allclose(online["pred_return"].to_numpy(), expected)
    feats = lake.read_table(settings, "gold.features_daily", filters=[("date", "=", LAST_SESSION)]).set_index("ticker")
    np.testing.assert_allclose(online["KMID"].to_numpy(), feats.loc[tickers, "KMID"].to_numpy())


def test_every_analyst_view_answers_with_rows(daily_run):
    """Analyst SQL (DuckDB, locked read-only session): each view over a table the run wrote has rows."""
    from tickerlake import sql

    settings, _ = daily_run
    created = sql.view_plan(settings).created
    assert {"gold.predictions_daily", "gold.features_daily", "bronze.bars_daily", "ops.model_decisions"} <= set(created)
    for name in created:
        if name.startswith("quarantine."):
            continue  # the clean synthetic market quarantines nothing
        if name == "silver.split_factors":  # one row per split validation flagged: none in a clean market
            flagged = sql.query(settings, "SELECT count(*) AS n FROM quarantine.bars_daily WHERE rule = 'unadjusted_split'")
            assert sql.query(settings, f"SELECT count(*) AS n FROM {name}")["n"][0] == flagged["n"][0]
            continue
        assert sql.query(settings, f"SELECT count(*) AS n FROM {name}")["n"][0] > 0, name
    signals = sql.run_curated(settings, "todays_signals")
    assert len(signals) == settings.universe_size


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_dag", PROJECT_ROOT / "dags" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def test_report_deadline_alerts_only_for_a_session_without_its_report(daily_run):
    """The deadline DAG after the daily run: its session's report went out (a dry run), so no alert;
    the session before had no daily run (it was seeded by the CLI), so one alert, as an .eml."""
    settings, _ = daily_run
    deadline_dag = _load("tickerlake_report_deadline")
    for session in (LAST_SESSION, dt.date(2025, 12, 30)):
        logical = dt.datetime.combine(session, dt.time(21, 0), tzinfo=EXCHANGE_TZ)
        run = deadline_dag.test(logical_date=logical)
        assert str(run.state) in ("success", "DagRunState.SUCCESS")
    assert not list((settings.outbox_dir / "alerts" / LAST_SESSION.isoformat()).glob("report_deadline-*"))
    alerts = list((settings.outbox_dir / "alerts" / "2025-12-30").glob("report_deadline-*.eml"))
    assert len(alerts) == 1
    assert "no signal report for 2025-12-30 yet" in alerts[0].read_text()
