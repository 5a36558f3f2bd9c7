"""
### tickerlake_daily

The daily chain, one run per NYSE session after the close (18:30 New York):

calendar gate -> land bars (bronze) -> Great Expectations validation (quarantine) ->
Spark features (silver, gold; from a session a late reject restated) -> features validated ->
Feast materialize -> retrain when due -> promote (alias `champion`) -> predict the next session
(validated) -> publish (Delta + Feast online) -> score outcomes (the live record) -> signal
report. Alerts (notifiers): a task failure, a promotion decision, a data quality breach.

Every task is a function of the run's session (its logical date in New York time); rerunning
a run rewrites the same tables, except the append-only predictions, where a rerun adds its
own rows. Logic lives in `include/tickerlake`; this file only wires tasks.
"""

from __future__ import annotations

import datetime as dt

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import Asset, dag, task, task_group
from airflow.timetables.trigger import CronTriggerTimetable

from tickerlake.alerts import TickerlakeNotifier, sendgrid_settings
from tickerlake.settings import PROJECT_ROOT, load_settings
from tickerlake.spark import spark_env

SETTINGS = load_settings()
SESSION = "{{ ti.xcom_pull(task_ids='calendar_gate') }}"


def table_asset(name: str) -> Asset:
    return Asset(name=name, uri=SETTINGS.table_uri(name))


@dag(
    dag_id="tickerlake_daily",
    schedule=CronTriggerTimetable("30 18 * * 1-5", timezone="America/New_York"),
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    end_date=(
        dt.datetime.combine(dt.date.fromisoformat(SETTINGS.daily_end_date), dt.time(23, 59), tzinfo=dt.UTC)
        if SETTINGS.daily_end_date
        else None
    ),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "tickerlake", "retries": 2, "retry_delay": dt.timedelta(minutes=1),
                  "on_failure_callback": TickerlakeNotifier("task_failure")},
    tags=["tickerlake", "daily"],
    doc_md=__doc__,
)
def tickerlake_daily():
    @task.short_circuit
    def calendar_gate(**context) -> str | None:
        """Skips everything on a non-session; returns the session (ISO date) otherwise."""
        from tickerlake.pipeline import session_for_run

        return session_for_run(context["logical_date"])

    @task_group(group_id="ingest")
    def ingest(session: str):
        @task(outlets=[table_asset("bronze.bars_daily")])
        def land_bars(session: str, **context) -> dict:
            from tickerlake.pipeline import land

            return land(SETTINGS, dt.date.fromisoformat(session), context["run_id"], context["logical_date"])

        @task(outlets=[table_asset("quarantine.bars_daily"), table_asset("ops.validation_runs")],
              on_success_callback=TickerlakeNotifier("data_quality_breach"))
        def validate_bars(session: str, **context) -> dict:
            from tickerlake.pipeline import validate

            return validate(SETTINGS, dt.date.fromisoformat(session), context["run_id"])

        @task(outlets=[table_asset("bronze.social"), table_asset("bronze.news"), table_asset("bronze.macro"),
                       table_asset("silver.sentiment_daily"), table_asset("silver.macro_asof")])
        def land_altdata(session: str, **context) -> dict:
            from tickerlake.pipeline import land_altdata as run

            return run(SETTINGS, dt.date.fromisoformat(session), context["run_id"], context["logical_date"])

        land_bars(session) >> validate_bars(session)
        land_altdata(session)

    spark_features = SparkSubmitOperator(
        task_id="spark_features",
        conn_id="spark_default",
        application=str(PROJECT_ROOT / "include" / "spark" / "features_job.py"),
        application_args=["--start", SESSION, "--end", SESSION, "--mode", "incremental"],
        env_vars=spark_env(SETTINGS),
        name="tickerlake-features",
        outlets=[table_asset("silver.bars_daily"), table_asset("gold.features_daily"), table_asset("gold.macro_daily"),
                 table_asset("gold.labels_daily")],
    )

    @task(outlets=[table_asset("quarantine.features_daily")])
    def validate_features(session: str, **context) -> dict:
        from tickerlake.pipeline import validate_features as run

        day = dt.date.fromisoformat(session)
        return run(SETTINGS, day, day, context["run_id"])

    @task
    def materialize_features(session: str) -> dict:
        from tickerlake.pipeline import materialize

        day = dt.date.fromisoformat(session)
        return materialize(SETTINGS, day, day)

    @task_group(group_id="model")
    def model(session: str):
        @task.branch
        def retrain_due(session: str) -> str:
            from tickerlake.pipeline import training_due

            due, reason = training_due(SETTINGS, dt.date.fromisoformat(session))
            print(f"retrain due: {due} ({reason})")
            return "model.train_and_promote" if due else "model.keep_champion"

        @task(on_success_callback=TickerlakeNotifier("promotion_decision"))
        def train_and_promote(session: str) -> dict:
            from tickerlake.pipeline import train_and_promote as run

            return run(SETTINGS, dt.date.fromisoformat(session))

        @task
        def keep_champion() -> str:
            return "retraining not due: the champion stays"

        @task(trigger_rule="none_failed_min_one_success", outlets=[table_asset("gold.predictions_daily"),
                                                                  table_asset("quarantine.predictions_daily")])
        def predict(session: str, **context) -> dict:
            from tickerlake.pipeline import predict as run

            return run(SETTINGS, dt.date.fromisoformat(session), context["run_id"])

        retrain_due(session) >> [train_and_promote(session), keep_champion()] >> predict(session)

    @task
    def publish_online(session: str, **context) -> dict:
        from tickerlake.pipeline import publish_online as run

        return run(SETTINGS, dt.date.fromisoformat(session), context["run_id"])

    @task(outlets=[table_asset("gold.signal_outcomes")])
    def score_outcomes(session: str) -> dict:
        """The live record: predictions whose 1-session label is complete at this close, scored."""
        from tickerlake.outcomes import score_session

        return score_session(SETTINGS, dt.date.fromisoformat(session))

    @task
    def signal_report(session: str, **context) -> dict:
        from tickerlake.pipeline import report_and_deliver

        api_key, sender, recipients = sendgrid_settings()
        return report_and_deliver(SETTINGS, dt.date.fromisoformat(session), context["run_id"], api_key,
                                  sender, recipients, airflow_run_id=context["run_id"])

    session = calendar_gate()
    ingest(session) >> spark_features >> validate_features(session) >> materialize_features(session) >> model(
        session
    ) >> publish_online(session) >> score_outcomes(session) >> signal_report(session)


dag = tickerlake_daily()
