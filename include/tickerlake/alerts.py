"""Alerts through Airflow notifiers: task failure, promotion decision, data-quality breach, and a
deadline alert when the signal report has not gone out by a set time.

Every alert is a short email through the same path as the report (emailer: SendGrid's v3 API with
connection `sendgrid_default`, retries on 429/5xx, one send per alert; with no key, an .eml file
under outbox/alerts/<session>/). Alerts carry ids, counts and reasons only: never a credential
(the key stays in the Authorization header) and never row data beyond ticker and rule names.

Wiring (the DAG only refers to these):
- `TickerlakeNotifier("task_failure")` as `on_failure_callback` (default_args);
- `TickerlakeNotifier("promotion_decision")` as `on_success_callback` of model.train_and_promote;
- `TickerlakeNotifier("data_quality_breach")` as `on_success_callback` of ingest.validate_bars
  (it sends only when the rejected share is above settings.alert_reject_share);
- `check_report_deadline` from the DAG `tickerlake_report_deadline`, which runs at the deadline
  (`deadline_cron`: the daily run's 18:30 plus settings.report_deadline_minutes) and sends unless
  the session's report is already recorded as sent. (Airflow 3.3.2's DAG `deadline=` makes
  `dag.test()` fail with a database error, so the deadline is a scheduled check instead.)
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import math
import time
from collections.abc import Callable

from airflow.sdk.bases.notifier import BaseNotifier

from tickerlake.settings import Settings, load_settings

log = logging.getLogger(__name__)

KINDS = ("task_failure", "promotion_decision", "data_quality_breach", "report_deadline")
DEFAULT_SENDER = "signals@tickerlake.local"
DEFAULT_RECIPIENTS = "traders@tickerlake.local"


def sendgrid_settings(conn_id: str = "sendgrid_default", *, alerts: bool = False) -> tuple[str | None, str, list[str]]:
    """API key (connection password), sender and recipients (extras) of the connection, if defined:
    the report's `recipients`, or for alerts `alert_recipients` (falling back to `recipients`)."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.sdk import Connection

    try:
        conn = Connection.get(conn_id)
    except AirflowNotFoundException:
        return None, DEFAULT_SENDER, [DEFAULT_RECIPIENTS]
    extra = conn.extra_dejson
    wanted = (extra.get("alert_recipients") if alerts else None) or extra.get("recipients") or DEFAULT_RECIPIENTS
    recipients = [r.strip() for r in str(wanted).split(",") if r.strip()]
    return conn.password or None, extra.get("from_email", DEFAULT_SENDER), recipients


def send_alert(settings: Settings, kind: str, session: str, subject: str, lines: list[str],
               api_key: str | None, sender: str, recipients: list[str],
               sleep: Callable[[float], None] = time.sleep) -> dict:
    """One alert email: SendGrid (recorded once sent: the same alert is not sent twice) or an .eml."""
    from tickerlake.emailer import Message, send_with_sendgrid, write_eml

    if kind not in KINDS:
        raise ValueError(f"unknown alert kind {kind!r}; one of {KINDS}")
    text = "\n".join(lines) + "\n"
    body = "<br>\n".join(html.escape(line) for line in lines)
    page = f'<!doctype html><html><body><p><strong>{html.escape(subject)}</strong></p><p>{body}</p></body></html>'
    message = Message(f"[tickerlake {kind}] {subject}", page, text, sender, tuple(recipients))
    folder = settings.outbox_dir / "alerts" / session
    key = f"{kind}-{message.digest()[:16]}"
    if api_key and settings.email_mode != "dry-run":
        day = dt.date.fromisoformat(session) if _is_date(session) else dt.date(1970, 1, 1)
        result = send_with_sendgrid(settings, day, message, api_key, sleep=sleep, marker=folder / f"sent-{key}.json")
        return {**result, "kind": kind}
    path = write_eml(folder / f"{key}.eml", message)
    log.info("alert %s for %s written to %s (dry run)", kind, session, path)
    return {"mode": "dry-run", "kind": kind, "path": str(path)}


def _is_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


# --- what each alert says -------------------------------------------------------------------------


def quality_breach(result: dict | None, max_reject_share: float) -> list[str] | None:
    """Lines of a data-quality alert for a validate_bars result, or None when within bounds."""
    if not result:
        return None
    received = int(result.get("rows_received") or 0)
    rejected = int(result.get("rows_rejected") or 0)
    share = rejected / received if received else 0.0
    if share <= max_reject_share:
        return None
    lines = [f"{rejected} of {received} rows rejected ({share:.1%}, limit {max_reject_share:.1%})"]
    for rule, n in sorted((result.get("counts_by_rule") or {}).items(), key=lambda kv: -int(kv[1] or 0)):
        if n:
            lines.append(f"  rule {rule}: {n}")
    return lines


def _finite(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def decision_lines(decision: dict | None) -> list[str] | None:
    """Lines of a promotion alert for a decision (training.promote's dict, as train_and_promote
    returns it): the candidate's rank IC beside the best baseline's and the champion's, then each gate."""
    if not decision:
        return None
    lines = [f"candidate v{decision.get('candidate_version')}: {decision.get('decision')}"]
    candidate_ic, holdout_ic = _finite(decision.get("candidate_rank_ic")), _finite(decision.get("holdout_rank_ic"))
    if candidate_ic is not None:
        lines.append(f"candidate rank IC {candidate_ic:.4f}")
    elif holdout_ic is not None:  # the older train_and_promote result
        lines.append(f"holdout rank IC {holdout_ic:.4f}")
    baseline_ic = _finite(decision.get("best_baseline_rank_ic"))
    if baseline_ic is not None:
        name = decision.get("best_baseline")
        lines.append(f"best baseline{f' ({name})' if name else ''} rank IC {baseline_ic:.4f}")
    champion_ic = _finite(decision.get("champion_rank_ic"))
    champion = decision.get("champion_version")
    if champion_ic is not None:
        lines.append(f"champion{f' v{champion}' if champion else ''} rank IC {champion_ic:.4f}")
    elif "champion_version" in decision and not champion:
        lines.append("no champion yet")
    diff = _finite(decision.get("paired_ic_diff"))
    if diff is not None:
        t_nw = _finite(decision.get("paired_t"))
        lines.append(f"paired rank IC difference {diff:+.4f}" + (f" (t {t_nw:.2f})" if t_nw is not None else ""))
    gates = decision.get("gates") or {}
    if isinstance(gates, str):  # as recorded in ops.model_decisions
        try:
            gates = json.loads(gates)
        except ValueError:
            gates = {}
    if isinstance(gates, dict):
        lines += [f"  {gate}: {'pass' if ok else 'fail'}" for gate, ok in gates.items()]
    return lines


def _session_of(context) -> str:
    ti = context.get("ti")
    if ti is not None:
        session = ti.xcom_pull(task_ids="calendar_gate")
        if session:
            return str(session)
    logical = context.get("logical_date")
    return logical.date().isoformat() if logical is not None else "unknown"


class TickerlakeNotifier(BaseNotifier):
    """An Airflow notifier for the alert `kind` (see the module docstring)."""

    template_fields = ()

    def __init__(self, kind: str, conn_id: str = "sendgrid_default"):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"unknown alert kind {kind!r}; one of {KINDS}")
        self.kind = kind
        self.conn_id = conn_id

    def lines(self, context, settings: Settings) -> tuple[str, list[str]] | None:
        """(subject, lines) of the alert for this context, or None for nothing to say."""
        ti = context.get("ti")
        task_id = getattr(ti, "task_id", "?")
        run_id = context.get("run_id", "?")
        if self.kind == "task_failure":
            error = context.get("exception")
            return f"{task_id} failed", [f"task {task_id} of run {run_id} failed"
                                         f" (try {getattr(ti, 'try_number', '?')})",
                                         f"error: {type(error).__name__ if error else 'unknown'}: {error}"]
        if self.kind == "promotion_decision":
            decision = ti.xcom_pull(task_ids=task_id) if ti is not None else None
            lines = decision_lines(decision)
            return (f"model decision: {decision.get('decision')}", lines) if lines else None
        if self.kind == "data_quality_breach":
            result = ti.xcom_pull(task_ids=task_id) if ti is not None else None
            lines = quality_breach(result, settings.alert_reject_share)
            return ("data quality breach", [f"task {task_id} of run {run_id}", *lines]) if lines else None
        return None

    def notify(self, context) -> None:
        settings = load_settings()
        said = self.lines(context, settings)
        if said is None:
            return
        subject, lines = said
        api_key, sender, recipients = sendgrid_settings(self.conn_id, alerts=True)
        send_alert(settings, self.kind, _session_of(context), subject, lines, api_key, sender, recipients)


# --- the report deadline --------------------------------------------------------------------------


def report_sent(settings: Settings, session: str) -> bool:
    """The session's report went out: a SendGrid sent-marker, or its dry run, under outbox/<session>/."""
    folder = settings.outbox_dir / session
    return folder.is_dir() and (any(folder.glob("sent-*.json")) or (folder / "report.eml").exists())


def check_report_deadline(settings: Settings, session: str, run_label: str, deadline: str,
                          conn_id: str = "sendgrid_default", detail: str | None = None) -> dict:
    """At the report's deadline: alert (once) unless the session's report is recorded as sent."""
    if session != "unknown" and report_sent(settings, session):
        return {"sent": False, "reason": f"the report of {session} went out"}
    api_key, sender, recipients = sendgrid_settings(conn_id, alerts=True)
    lines = [f"{run_label}: the report of {session} had not gone out by {deadline}"]
    if detail:
        lines.append(detail)
    result = send_alert(settings, "report_deadline", session, f"no signal report for {session} yet", lines,
                        api_key, sender, recipients)
    return {"sent": True, **result}


def deadline_cron(settings: Settings, run_hour: int = 18, run_minute: int = 30) -> str:
    """Cron (New York time, weekdays) of the report deadline: the daily run's time plus
    settings.report_deadline_minutes (the daily DAG runs at 18:30)."""
    minutes = run_hour * 60 + run_minute + int(settings.report_deadline_minutes)
    if minutes >= 24 * 60:
        raise ValueError(f"report deadline {settings.report_deadline_minutes} min after 18:30 passes midnight")
    return f"{minutes % 60} {minutes // 60} * * 1-5"
