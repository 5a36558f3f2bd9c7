"""
### tickerlake_maintenance

Weekly, Sunday 06:00 New York (no daily run writes then): compact the silver and gold Delta
tables (OPTIMIZE; Z-ordered by ticker inside each year where a table has a ticker) and VACUUM
them, keeping every Delta version a registered model version in MLflow was trained on
(tags `features_delta_version`, `labels_delta_version`): VACUUM's retention and the tables'
log and deleted-file retention are stretched to cover the oldest such version, so time travel
to it keeps working in Spark, delta-rs and DuckDB. A version that can no longer be protected
fails the task with the reason. Logic in `include/tickerlake/maintenance.py`; this file only
wires the Spark job.
"""

from __future__ import annotations

import datetime as dt

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import dag
from airflow.timetables.trigger import CronTriggerTimetable

from tickerlake.alerts import TickerlakeNotifier
from tickerlake.settings import PROJECT_ROOT, load_settings
from tickerlake.spark import spark_env

SETTINGS = load_settings()


@dag(
    dag_id="tickerlake_maintenance",
    schedule=CronTriggerTimetable("0 6 * * 0", timezone="America/New_York"),
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=dt.timedelta(hours=6),
    default_args={"owner": "tickerlake", "retries": 1, "retry_delay": dt.timedelta(minutes=10),
                  "on_failure_callback": TickerlakeNotifier("task_failure")},
    tags=["tickerlake", "maintenance"],
    doc_md=__doc__,
)
def tickerlake_maintenance():
    SparkSubmitOperator(
        task_id="compact_and_vacuum",
        conn_id="spark_default",
        application=str(PROJECT_ROOT / "include" / "spark" / "maintenance_job.py"),
        env_vars=spark_env(SETTINGS),
        name="tickerlake-maintenance",
    )


dag = tickerlake_maintenance()
