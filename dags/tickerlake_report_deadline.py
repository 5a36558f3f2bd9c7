"""
### tickerlake_report_deadline

The report's deadline: on each NYSE session, `TICKERLAKE_REPORT_DEADLINE_MINUTES` after the daily
run's 18:30 (New York), check that the session's signal report went out (a SendGrid send recorded,
or its dry run written); if not, send one alert (connection `sendgrid_default`, recipients
`alert_recipients`). Logic in `include/tickerlake/alerts.py`.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import dag, task
from airflow.timetables.trigger import CronTriggerTimetable

from tickerlake.alerts import deadline_cron
from tickerlake.settings import load_settings

SETTINGS = load_settings()


@dag(
    dag_id="tickerlake_report_deadline",
    schedule=CronTriggerTimetable(deadline_cron(SETTINGS), timezone="America/New_York"),
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "tickerlake", "retries": 2, "retry_delay": dt.timedelta(minutes=1)},
    tags=["tickerlake", "alerts"],
    doc_md=__doc__,
)
def tickerlake_report_deadline():
    @task.short_circuit
    def calendar_gate(**context) -> str | None:
        """Skips non-sessions: no report is due."""
        from tickerlake.pipeline import session_for_run

        return session_for_run(context["logical_date"])

    @task
    def check_report(session: str, **context) -> dict:
        from tickerlake.alerts import check_report_deadline

        return check_report_deadline(SETTINGS, session, f"run {context['run_id']}",
                                     context["logical_date"].isoformat())

    check_report(calendar_gate())


dag = tickerlake_report_deadline()
