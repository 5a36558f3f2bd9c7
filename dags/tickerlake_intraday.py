"""
### tickerlake_intraday

Every 5 minutes during NYSE sessions (early closes included; holidays skipped), one run at a time:

session gate -> drain Kafka topic `market.bars.5m` into Delta exactly once (Spark Structured
Streaming, Trigger.AvailableNow, checkpoint + Delta transaction ids: bronze, quarantine, silver) ->
score the session's latest bars with the champion (gold.predictions_intraday, online store) and
record the latency p50/p95 in ops.pipeline_runs.

A run drains up to the end offsets seen at its start, whatever its logical time: a late or rerun
run drains what is there and the checkpoint makes it exactly once. Logic lives in
`include/tickerlake/intraday`; this file only wires tasks.
"""

from __future__ import annotations

import datetime as dt

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import Asset, dag, task
from airflow.timetables.trigger import CronTriggerTimetable

from tickerlake.intraday.schedule import CRON
from tickerlake.settings import PROJECT_ROOT, load_settings
from tickerlake.spark import spark_env

SETTINGS = load_settings()


def table_asset(name: str) -> Asset:
    return Asset(name=name, uri=SETTINGS.table_uri(name))


@dag(
    dag_id="tickerlake_intraday",
    schedule=CronTriggerTimetable(CRON, timezone="America/New_York"),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=dt.timedelta(minutes=10),
    default_args={"owner": "tickerlake", "retries": 1, "retry_delay": dt.timedelta(seconds=20)},
    tags=["tickerlake", "intraday"],
    doc_md=__doc__,
)
def tickerlake_intraday():
    @task.short_circuit
    def session_gate(**context) -> str | None:
        """Skips runs outside a session's window; returns the session (ISO date) otherwise."""
        from tickerlake.intraday.schedule import session_for_intraday_run

        return session_for_intraday_run(context["logical_date"])

    drain = SparkSubmitOperator(
        task_id="drain",
        conn_id="spark_default",
        application=str(PROJECT_ROOT / "include" / "spark" / "intraday_drain_job.py"),
        application_args=["--run-id", "{{ run_id }}"],
        env_vars=spark_env(SETTINGS),
        name="tickerlake-intraday-drain",
        outlets=[table_asset("bronze.bars_intraday"), table_asset("quarantine.bars_intraday"),
                 table_asset("silver.bars_intraday")],
    )

    @task(outlets=[table_asset("gold.predictions_intraday"), table_asset("ops.pipeline_runs")])
    def score(session: str, **context) -> dict:
        from tickerlake.intraday.scoring import score_and_record

        return score_and_record(SETTINGS, dt.date.fromisoformat(session), context["run_id"])

    session = session_gate()
    session >> drain >> score(session)


dag = tickerlake_intraday()
