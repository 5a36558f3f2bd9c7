"""The alert notifiers fired by real Airflow task runs.

Each test defines a small DAG wired as the daily DAG wires its alerts (`TickerlakeNotifier("task_failure")`
as `on_failure_callback` in default_args, `TickerlakeNotifier(kind)` as the task's
`on_success_callback`, a `calendar_gate` first whose XCom names the session) and runs it with
`dag.test()` against the test session's Airflow home (conftest points AIRFLOW_HOME at it). The
callbacks run in the task runner as in production; the alert goes out through the real `sendgrid`
client to the loopback SendGrid (tests/sendgrid_loopback.py), with the key from a real Airflow
connection (AIRFLOW_CONN_SENDGRID_DEFAULT), or without it as an .eml under outbox/alerts/<session>/.

`dag.test()` runs only DAGs serialized in the metadata DB (normally a file in the DAG bundle), so
each test DAG is written there first, as the DAG processor would. Retries: `dag.test()` honours
retries, and waits out `retry_delay` in real time, so the failing DAG keeps the daily DAG's
retries=2 with retry_delay=0.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import logging
import secrets
from collections.abc import Callable

import pytest
from sendgrid_loopback import LoopbackSendGrid

from tickerlake.calendar import EXCHANGE_TZ
from tickerlake.settings import load_settings

pytestmark = pytest.mark.integration

# Made at run time: Airflow stores a DAG file's source (here, this module) in its metadata DB.
API_KEY = f"SG.{secrets.token_urlsafe(16)}.{secrets.token_urlsafe(24)}"
SENDER = "alerts@tickerlake.example"
ALERT_RECIPIENTS = ["oncall.one@example.com", "oncall.two@example.com"]
SESSION = "2025-12-05"  # a Friday session; the run's logical date is its 18:30 in New York
LOGICAL = dt.datetime.combine(dt.date.fromisoformat(SESSION), dt.time(18, 30), tzinfo=EXCHANGE_TZ)
BUNDLE = "dags-folder"  # the configured bundle: dag.test() re-syncs the bundle its DAG belongs to


class VendorOutage(RuntimeError):
    """The failing task's error (its type name must reach the alert)."""


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def airflow_home():
    """The test session's Airflow metadata DB, migrated (once per session: init_airflow is idempotent)."""
    from tickerlake.services import init_airflow

    settings = load_settings()
    init_airflow(settings)
    return settings


@pytest.fixture
def sendgrid():
    with LoopbackSendGrid(API_KEY) as server:
        yield server


@pytest.fixture
def alerts_settings(airflow_home, sendgrid, tmp_path, monkeypatch):
    """What the notifier's load_settings() reads inside the task: a fresh home (so a fresh outbox),
    SendGrid at the loopback server, no connection (a test adds it)."""
    monkeypatch.setenv("TICKERLAKE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TICKERLAKE_SENDGRID_API_HOST", sendgrid.url)
    monkeypatch.setenv("TICKERLAKE_SENDGRID_BACKOFF_SECONDS", "0.01")
    for name in ("TICKERLAKE_EMAIL_MODE", "TICKERLAKE_ALERT_REJECT_SHARE", "AIRFLOW_CONN_SENDGRID_DEFAULT"):
        monkeypatch.delenv(name, raising=False)
    return load_settings()


@pytest.fixture
def connection(alerts_settings, monkeypatch):
    """sendgrid_default as an Airflow connection from the environment: the key as password, the
    sender and the alert recipients as extras (report recipients differ, so the alert's are used)."""
    monkeypatch.setenv("AIRFLOW_CONN_SENDGRID_DEFAULT", json.dumps(
        {"conn_type": "sendgrid", "password": API_KEY,
         "extra": {"from_email": SENDER, "recipients": "traders@example.com",
                   "alert_recipients": ",".join(ALERT_RECIPIENTS)}}))


@pytest.fixture
def http_client_log():
    """The HTTP client's own DEBUG records (its request headers), whatever Airflow's logging level:
    Airflow's logging setup for the task replaces the root handlers, so caplog sees none of them."""
    from tickerlake.emailer import HTTP_CLIENT_LOGGER

    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger, handler = logging.getLogger(HTTP_CLIENT_LOGGER), Collect(logging.DEBUG)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)
    logger.setLevel(level)


# --- a DAG wired like the daily DAG, run by dag.test() --------------------------------------------


def _dag(dag_id: str, build: Callable, retries: int = 0):
    """calendar_gate, then what `build(session)` adds; the failure notifier in default_args."""
    from airflow.sdk import dag, task

    from tickerlake.alerts import TickerlakeNotifier

    @dag(dag_id=dag_id, schedule=None, start_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC), catchup=False,
         default_args={"owner": "tickerlake", "retries": retries, "retry_delay": dt.timedelta(0),
                       "on_failure_callback": TickerlakeNotifier("task_failure")})
    def alerts_dag():
        @task.short_circuit
        def calendar_gate(**context) -> str | None:
            from tickerlake.pipeline import session_for_run

            return session_for_run(context["logical_date"])

        build(calendar_gate())

    return alerts_dag()


def _run(dag) -> tuple[object, dict[str, object], list]:
    """Serialize the DAG into the metadata DB (as the DAG processor would), then dag.test() one run:
    (run, task instances by id, XCom values of the run)."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.session import create_session
    from sqlalchemy import select

    DagBundlesManager().sync_bundles_to_db()
    with create_session() as session:
        update_dag_parsing_results_in_db(BUNDLE, None, [LazyDeserializedDAG.from_dag(dag)], {}, None, set(),
                                         session, files_parsed=set())
    run = dag.test(logical_date=LOGICAL)
    with create_session() as session:
        tis = {ti.task_id: (ti.state, ti.try_number) for ti in session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == run.run_id))}
        xcoms = [x.value for x in session.scalars(
            select(XComModel).where(XComModel.dag_id == dag.dag_id, XComModel.run_id == run.run_id))]
    return run, tis, xcoms


def _alert_text(payload: dict) -> str:
    assert [c["type"] for c in payload["content"]] == ["text/plain", "text/html"]
    return payload["content"][0]["value"]


def _assert_key_nowhere(settings, airflow_home, xcoms: list, capfd, caplog) -> None:
    """Not in any file of the alert home (outbox) or the Airflow home (metadata DB with its WAL, logs),
    not in an XCom, not in the task logs (dag.test() runs tasks in this process and logs to its output)."""
    for root in (settings.home, airflow_home.airflow_home):
        for path in root.rglob("*"):
            if path.is_file():
                assert API_KEY.encode() not in path.read_bytes(), path
    assert xcoms and API_KEY not in json.dumps(xcoms, default=str)
    out, err = capfd.readouterr()
    logs = out + err + caplog.text
    assert "[DAG TEST] end task" in logs  # the task logs were captured
    assert API_KEY not in logs


# --- tests ----------------------------------------------------------------------------------------


def test_task_failure_alerts_once_after_retries_through_sendgrid(alerts_settings, connection, sendgrid,
                                                                 airflow_home, http_client_log, capfd, caplog):
    from airflow.sdk import task

    attempts: list[str] = []

    def build(session):
        @task
        def land_bars(session: str) -> dict:
            attempts.append(session)
            raise VendorOutage(f"vendor answered 503 for {session} (attempt {len(attempts)})")

        land_bars(session)

    run, tis, xcoms = _run(_dag("alerts_task_failure", build, retries=2))
    assert str(run.state) == "failed"
    assert attempts == [SESSION] * 3 and tis["land_bars"] == ("failed", 3)
    assert tis["calendar_gate"] == ("success", 1)
    # retries 1 and 2 (on_retry_callback) alert nothing: one email, after the last try
    assert len(sendgrid.requests) == 1 and len(sendgrid.accepted) == 1
    assert sendgrid.requests[0]["path"] == "/v3/mail/send"
    assert sendgrid.requests[0]["headers"]["Authorization"] == f"Bearer {API_KEY}"
    alert = sendgrid.accepted[0]
    assert alert["subject"] == "[tickerlake task_failure] land_bars failed"
    assert alert["from"]["email"] == SENDER
    assert [a["email"] for a in alert["personalizations"][0]["to"]] == ALERT_RECIPIENTS
    text = _alert_text(alert)
    assert text == (f"task land_bars of run {run.run_id} failed (try 3)\n"
                    f"error: VendorOutage: vendor answered 503 for {SESSION} (attempt 3)\n")
    assert "VendorOutage: vendor answered 503 for 2025-12-05 (attempt 3)" in alert["content"][1]["value"]
    folder = alerts_settings.outbox_dir / "alerts" / SESSION  # the session from calendar_gate's XCom
    markers = list(folder.glob("sent-task_failure-*.json"))
    assert len(markers) == 1 and not list(folder.glob("*.eml"))
    assert json.loads(markers[0].read_text())["message_id"] == "loopback-1"
    # the HTTP client logged its request headers inside the task's callback, with the key redacted
    assert any("Bearer ***" in line for line in http_client_log)
    assert not any(API_KEY in line for line in http_client_log)
    _assert_key_nowhere(alerts_settings, airflow_home, xcoms, capfd, caplog)


def test_task_failure_without_a_connection_writes_the_dry_run_alert(alerts_settings, sendgrid):
    from airflow.sdk import task

    from tickerlake.alerts import DEFAULT_RECIPIENTS, DEFAULT_SENDER

    def build(session):
        @task
        def land_bars(session: str) -> dict:
            raise VendorOutage(f"no bars for {session}")

        land_bars(session)

    run, tis, _ = _run(_dag("alerts_task_failure_dry_run", build))
    assert str(run.state) == "failed" and tis["land_bars"] == ("failed", 1)
    assert sendgrid.requests == []
    emls = list((alerts_settings.outbox_dir / "alerts" / SESSION).glob("*.eml"))
    assert [p.name.split("-")[0] for p in emls] == ["task_failure"]
    msg = email.message_from_bytes(emls[0].read_bytes(), policy=email.policy.default)
    assert msg["Subject"] == "[tickerlake task_failure] land_bars failed"
    assert msg["From"] == DEFAULT_SENDER and msg["To"] == DEFAULT_RECIPIENTS
    assert msg.get_body(("plain",)).get_content() == (f"task land_bars of run {run.run_id} failed (try 1)\n"
                                                      f"error: VendorOutage: no bars for {SESSION}\n")


@pytest.mark.parametrize("rejected, limit, alerted", [
    (12, None, True),  # 6.0% of 200 rows, above the default 5%
    (8, None, False),  # 4.0%: within bounds
    (12, "0.1", False),  # 6.0% under TICKERLAKE_ALERT_REJECT_SHARE=0.1
])
def test_data_quality_breach_alerts_only_above_the_reject_share(alerts_settings, connection, sendgrid, monkeypatch,
                                                                rejected, limit, alerted):
    from airflow.sdk import task, task_group

    from tickerlake.alerts import TickerlakeNotifier

    if limit is not None:
        monkeypatch.setenv("TICKERLAKE_ALERT_REJECT_SHARE", limit)

    def build(session):
        @task_group(group_id="ingest")
        def ingest(session: str):
            @task(on_success_callback=TickerlakeNotifier("data_quality_breach"))
            def validate_bars(session: str) -> dict:  # shaped as pipeline.validate's result
                return {"interval_start": session, "interval_end": session, "run_id": "run-1",
                        "rows_received": 200, "rows_in_bronze": 200, "rows_rejected": rejected,
                        "rows_to_silver": 200 - rejected, "reconciled": True, "status": "ok",
                        "counts_by_rule": {"ohlc_consistent": 3, "price_jump": rejected - 3, "volume_nonnegative": 0}}

            validate_bars(session)

        ingest(session)

    run, tis, _ = _run(_dag(f"alerts_quality_{rejected}_{limit or 'default'}".replace(".", "_"), build))
    assert str(run.state) == "success" and tis["ingest.validate_bars"] == ("success", 1)
    if not alerted:
        assert sendgrid.requests == []
        assert not (alerts_settings.outbox_dir / "alerts").exists()
        return
    assert len(sendgrid.requests) == 1 and len(sendgrid.accepted) == 1
    alert = sendgrid.accepted[0]
    assert alert["subject"] == "[tickerlake data_quality_breach] data quality breach"
    assert _alert_text(alert) == (f"task ingest.validate_bars of run {run.run_id}\n"
                                  "12 of 200 rows rejected (6.0%, limit 5.0%)\n"
                                  "  rule price_jump: 9\n"
                                  "  rule ohlc_consistent: 3\n")
    assert len(list((alerts_settings.outbox_dir / "alerts" / SESSION).glob("sent-data_quality_breach-*.json"))) == 1


DECISIONS = {
    "rejected": ({"champion_version": "6", "decision": "rejected", "candidate_rank_ic": 0.0312,
                  "champion_rank_ic": 0.0405, "paired_ic_diff": -0.0093, "paired_t": -1.37,
                  "gates": {"enough_sessions": True, "beats_best_baseline": True, "no_missing_predictions": True,
                            "feature_schema_compatible": True, "interval_coverage": True, "beats_champion": False}},
                 ["candidate v7: rejected", "candidate rank IC 0.0312",
                  "best baseline (momentum_20d) rank IC 0.0121", "champion v6 rank IC 0.0405",
                  "paired rank IC difference -0.0093 (t -1.37)", "  enough_sessions: pass",
                  "  beats_best_baseline: pass", "  no_missing_predictions: pass",
                  "  feature_schema_compatible: pass", "  interval_coverage: pass", "  beats_champion: fail"]),
    "promoted": ({"champion_version": None, "decision": "promoted", "candidate_rank_ic": 0.0312,
                  "champion_rank_ic": None, "paired_ic_diff": None, "paired_t": None,
                  "gates": {"enough_sessions": True, "beats_best_baseline": True}},
                 ["candidate v7: promoted", "candidate rank IC 0.0312",
                  "best baseline (momentum_20d) rank IC 0.0121", "no champion yet",
                  "  enough_sessions: pass", "  beats_best_baseline: pass"]),
}


@pytest.mark.parametrize("outcome", sorted(DECISIONS))
def test_promotion_decision_alerts_the_decision_with_each_gate(alerts_settings, connection, sendgrid, outcome):
    from airflow.sdk import task, task_group

    from tickerlake.alerts import TickerlakeNotifier

    changes, expected = DECISIONS[outcome]

    def build(session):
        @task_group(group_id="model")
        def model(session: str):
            @task(on_success_callback=TickerlakeNotifier("promotion_decision"))
            def train_and_promote(session: str) -> dict:  # shaped as training.promote's decision
                return {"decided_on": session, "model_name": "tickerlake_daily_lgbm", "candidate_version": "7",
                        "best_baseline": "momentum_20d", "best_baseline_rank_ic": 0.0121,
                        "holdout_start": "2025-09-02", "holdout_end": session, "run_id": "mlflow-run-1",
                        "window": {"sessions": 60, "coverage": 0.81}, **changes}

            train_and_promote(session)

        model(session)

    run, tis, _ = _run(_dag(f"alerts_promotion_{outcome}", build))
    assert str(run.state) == "success" and tis["model.train_and_promote"] == ("success", 1)
    assert len(sendgrid.requests) == 1 and len(sendgrid.accepted) == 1  # the decision only: no failure alert
    alert = sendgrid.accepted[0]
    assert alert["subject"] == f"[tickerlake promotion_decision] model decision: {outcome}"
    assert _alert_text(alert) == "\n".join(expected) + "\n"
