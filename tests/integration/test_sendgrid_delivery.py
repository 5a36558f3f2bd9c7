"""Delivery of the signal report through SendGrid's v3 API, with the real `sendgrid` client.

The only stand-in is a loopback HTTP server on 127.0.0.1 that implements `POST /v3/mail/send` as
SendGrid documents it: bearer authorization (401 otherwise), the request body's validation (400
with `{"errors": [{"message", "field", "help"}]}`), 202 Accepted with an empty body and an
X-Message-Id header; a test can script answers first (429 with Retry-After and the X-RateLimit
headers, 5xx). The report itself is real: Delta tables, the live record, matplotlib charts.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import email
import email.policy
import json
import logging

import numpy as np
import pandas as pd
import pytest
from sendgrid_loopback import LoopbackSendGrid

from tickerlake import lake
from tickerlake.calendar import next_session, sessions_between
from tickerlake.settings import load_settings

pytestmark = pytest.mark.integration

API_KEY = "SG.loopbackKey123.SecretPart456xyz"
SENDER = "signals@tickerlake.example"
RECIPIENTS = ["trader.one@example.com", "trader.two@example.com"]
TICKERS = [f"T{i:02d}" for i in range(24)]
SESSIONS = sessions_between("2025-11-03", "2025-12-05")
ASOF = SESSIONS[-1]


# --- a lake with predictions, labels and the live record ------------------------------------------


def _predictions(day: dt.date, run_id: str, published: bool, rng: np.random.Generator) -> pd.DataFrame:
    pred = rng.normal(0, 0.01, len(TICKERS))
    out = pd.DataFrame({"ticker": TICKERS, "pred_return": pred})
    out["pred_lo"], out["pred_hi"] = pred - 0.015, pred + 0.015
    out["rank"] = out["pred_return"].rank(ascending=False, method="first").astype("int32")
    out["percentile"] = out["pred_return"].rank(pct=True)
    out["signal"] = np.where(out["percentile"] >= 0.8, "long", np.where(out["percentile"] <= 0.2, "short", "neutral"))
    return out.assign(asof_date=day, target_session=next_session(day),
                      event_ts=pd.Timestamp(dt.datetime.combine(day, dt.time(21), tzinfo=dt.UTC)),
                      model_name="tickerlake_daily_lgbm", model_version="1", features_version=np.int64(3),
                      run_id=run_id, published=published, year=np.int32(day.year))


def build_lake(settings) -> None:
    """Published predictions for every session, labels that follow them noisily, the live record,
    and this session's (unpublished) run `run-asof`."""
    from tickerlake.outcomes import score_session

    rng = np.random.default_rng(7)
    preds, labels = [], []
    for day in SESSIONS[:-1]:
        p = _predictions(day, f"run-{day}", True, rng)
        preds.append(p)
        labels.append(pd.DataFrame({"ticker": TICKERS, "date": day,
                                    "ret_1d": p["pred_return"].to_numpy() + rng.normal(0, 0.01, len(TICKERS)),
                                    "year": np.int32(day.year)}))
    preds.append(_predictions(ASOF, "run-asof", False, rng))
    lake.append(settings, "gold.predictions_daily", pd.concat(preds, ignore_index=True))
    lab = pd.concat(labels, ignore_index=True)
    lake.replace_interval(settings, "gold.labels_daily", lab, lab["date"].min(), lab["date"].max())
    score_session(settings, ASOF)


@pytest.fixture(scope="module")
def lake_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("sendgrid_home")
    settings = load_settings(home=home)
    build_lake(settings)
    return settings


@pytest.fixture
def sendgrid():
    with LoopbackSendGrid(API_KEY) as server:
        yield server


@pytest.fixture
def settings(lake_home, sendgrid, tmp_path):
    """The module's lake, a fresh outbox and reports folder, SendGrid at the loopback server."""
    s = dataclasses.replace(lake_home, sendgrid_api_host=sendgrid.url, sendgrid_backoff_seconds=0.01,
                            sendgrid_max_attempts=4)
    # outbox and reports live under home: a fresh home per test that shares the module's lake
    home = tmp_path / "home"
    home.mkdir()
    return dataclasses.replace(s, home=home, lake_root=lake_home.lake_root)


def _report(settings):
    from tickerlake.report import write_report

    return write_report(settings, ASOF, "run-asof", airflow_run_id="scheduled__2025-12-05")


# --- tests ----------------------------------------------------------------------------------------


def test_payload_has_subject_recipients_both_parts_and_inline_charts(settings, sendgrid):
    from tickerlake.emailer import deliver

    report = _report(settings)
    assert {i["cid"] for i in report["images"]} == {"live_ic", "deciles"}
    result = deliver(settings, ASOF, report, API_KEY, SENDER, RECIPIENTS)
    assert result["mode"] == "sendgrid" and result["status"] == 202 and result["message_id"] == "loopback-1"
    assert len(sendgrid.accepted) == 1
    sent = sendgrid.accepted[0]
    assert sent["subject"] == report["subject"] and sent["subject"].startswith("Tickerlake signals for ")
    assert [a["email"] for a in sent["personalizations"][0]["to"]] == RECIPIENTS
    assert sent["from"]["email"] == SENDER
    html = open(report["html"], encoding="utf-8").read()
    text = open(report["text"], encoding="utf-8").read()
    assert [(c["type"], c["value"]) for c in sent["content"]] == [("text/plain", text), ("text/html", html)]
    assert 'id="signals-long"' in html and "LONG (" in text
    by_cid = {a["content_id"]: a for a in sent["attachments"]}
    assert set(by_cid) == {"live_ic", "deciles"}
    for image in report["images"]:
        att = by_cid[image["cid"]]
        assert att["disposition"] == "inline" and att["type"] == "image/png"
        data = base64.b64decode(att["content"])
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and data == open(image["path"], "rb").read()
        assert f'src="cid:{image["cid"]}"' in html
    # the live record is in the report: a live rank IC, not n/a
    assert "Live rank IC, v1" in html and "n/a (no scored session yet)" not in html


@pytest.mark.parametrize("script, waits", [
    ([(429, {"Retry-After": "1", "X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0",
             "X-RateLimit-Reset": "1392815263"}, {"errors": [{"field": None, "message": "too many requests"}]})],
     [1.0]),
    ([(500, {}, {"errors": [{"field": None, "message": "internal error"}]}),
      (503, {}, {"errors": [{"field": None, "message": "service unavailable"}]})], [0.01, 0.02]),
])
def test_rate_limit_and_server_errors_are_retried_and_one_email_goes_out(settings, sendgrid, script, waits):
    from tickerlake.emailer import deliver

    sendgrid.script = list(script)
    slept: list[float] = []
    result = deliver(settings, ASOF, _report(settings), API_KEY, SENDER, RECIPIENTS, sleep=slept.append)
    assert len(sendgrid.requests) == len(script) + 1
    assert len(sendgrid.accepted) == 1
    assert result["attempts"] == len(script) + 1 and result["status"] == 202
    assert slept == pytest.approx(waits)  # Retry-After respected; otherwise exponential backoff


def test_retries_exhausted_fail_with_the_last_answer(settings, sendgrid):
    from tickerlake.emailer import DeliveryError, deliver

    sendgrid.script = [(503, {}, {"errors": [{"field": None, "message": f"unavailable {i}"}]}) for i in range(4)]
    with pytest.raises(DeliveryError, match="after 4 attempts.*unavailable 3"):
        deliver(settings, ASOF, _report(settings), API_KEY, SENDER, RECIPIENTS, sleep=lambda s: None)
    assert sendgrid.accepted == [] and len(sendgrid.requests) == 4
    assert not list((settings.outbox_dir / ASOF.isoformat()).glob("sent-*.json"))


def test_bad_request_fails_at_once_with_the_error_body(settings, sendgrid):
    from tickerlake.emailer import DeliveryError, deliver

    with pytest.raises(DeliveryError) as failure:
        deliver(settings, ASOF, _report(settings), API_KEY, SENDER, ["trader@example..com"], sleep=lambda s: None)
    assert failure.value.status == 400
    assert "Does not contain a valid address." in str(failure.value)
    assert "personalizations.0.to.0.email" in str(failure.value)
    assert len(sendgrid.requests) == 1 and sendgrid.accepted == []  # not retried, nothing recorded as sent
    assert not list((settings.outbox_dir / ASOF.isoformat()).glob("sent-*.json"))


def test_wrong_key_fails_with_401(settings, sendgrid):
    from tickerlake.emailer import DeliveryError, deliver

    with pytest.raises(DeliveryError, match="401.*authorization grant is invalid"):
        deliver(settings, ASOF, _report(settings), "SG.wrong.key", SENDER, RECIPIENTS, sleep=lambda s: None)
    assert len(sendgrid.requests) == 1


def test_a_retry_after_success_sends_nothing_and_marks_the_run_published(settings, sendgrid):
    """The whole task twice (render, send, mark published): one email, the run's rows published."""
    from tickerlake.pipeline import report_and_deliver

    first = report_and_deliver(settings, ASOF, "run-asof", API_KEY, SENDER, RECIPIENTS)
    again = report_and_deliver(settings, ASOF, "run-asof", API_KEY, SENDER, RECIPIENTS)
    assert len(sendgrid.requests) == 1 and len(sendgrid.accepted) == 1
    assert first["delivery"]["already_sent"] is False and again["delivery"]["already_sent"] is True
    assert again["delivery"]["sha256"] == first["delivery"]["sha256"]  # the re-rendered report is the same message
    assert first["published"]["marked"] == len(TICKERS) and again["published"]["marked"] == 0
    preds = lake.read_table(settings, "gold.predictions_daily", filters=[("asof_date", "=", ASOF)])
    assert preds["published"].all() and set(preds["run_id"]) == {"run-asof"}
    # other sessions' rows untouched, values never rewritten
    others = lake.read_table(settings, "gold.predictions_daily", filters=[("asof_date", "<", ASOF)])
    assert len(others) == len(TICKERS) * (len(SESSIONS) - 1) and others["published"].all()


def test_the_api_key_never_reaches_logs_results_or_the_report(settings, sendgrid, caplog):
    from tickerlake.emailer import DeliveryError, deliver
    from tickerlake.pipeline import report_and_deliver

    caplog.set_level(logging.DEBUG)
    sendgrid.script = [(429, {"Retry-After": "0"}, {"errors": [{"field": None, "message": "too many requests"}]})]
    result = report_and_deliver(settings, ASOF, "run-asof", API_KEY, SENDER, RECIPIENTS)
    with pytest.raises(DeliveryError) as failure:
        deliver(settings, ASOF, _report(settings), API_KEY, SENDER, ["x@example..com"], sleep=lambda s: None)
    assert len(sendgrid.accepted) == 1
    # the HTTP client did log its request headers, with the key redacted
    assert "Bearer ***" in caplog.text
    assert API_KEY not in caplog.text
    assert API_KEY not in json.dumps(result, default=str) and API_KEY not in str(failure.value)
    for path in settings.home.rglob("*"):
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes(), path
    sent = json.dumps(sendgrid.accepted[0])
    assert API_KEY not in sent


def test_no_key_writes_the_dry_run_message_with_its_charts(settings, sendgrid):
    from tickerlake.emailer import deliver

    report = _report(settings)
    result = deliver(settings, ASOF, report, None, SENDER, RECIPIENTS)
    assert result["mode"] == "dry-run" and sendgrid.requests == []
    msg = email.message_from_bytes(open(result["path"], "rb").read(), policy=email.policy.default)
    assert msg["Subject"] == report["subject"] and msg["To"] == ", ".join(RECIPIENTS)
    types = [part.get_content_type() for part in msg.walk()]
    assert "text/plain" in types and "text/html" in types and types.count("image/png") == 2
    cids = {part["Content-ID"] for part in msg.walk() if part.get_content_type() == "image/png"}
    assert cids == {"<live_ic>", "<deciles>"}


def test_report_deadline_alert_is_sent_once_and_not_after_the_report(settings, sendgrid, monkeypatch):
    """The deadline check of DAG tickerlake_report_deadline, the key from a real Airflow connection
    (AIRFLOW_CONN_SENDGRID_DEFAULT)."""
    from tickerlake.alerts import check_report_deadline
    from tickerlake.emailer import deliver

    monkeypatch.setenv("TICKERLAKE_HOME", str(settings.home))
    monkeypatch.setenv("TICKERLAKE_SENDGRID_API_HOST", sendgrid.url)
    monkeypatch.setenv("AIRFLOW_CONN_SENDGRID_DEFAULT", json.dumps(
        {"conn_type": "sendgrid", "password": API_KEY,
         "extra": {"from_email": SENDER, "recipients": ",".join(RECIPIENTS)}}))
    def check():
        return check_report_deadline(settings, ASOF.isoformat(), "run scheduled__2025-12-06T02:00:00+00:00",
                                     "2025-12-06T02:00:00+00:00")

    first = check()
    assert first["sent"] and first["mode"] == "sendgrid" and len(sendgrid.accepted) == 1
    alert = sendgrid.accepted[0]
    assert alert["subject"] == f"[tickerlake report_deadline] no signal report for {ASOF} yet"
    assert [a["email"] for a in alert["personalizations"][0]["to"]] == RECIPIENTS
    assert "had not gone out by 2025-12-06T02:00:00+00:00" in alert["content"][0]["value"]
    assert check()["already_sent"] is True and len(sendgrid.requests) == 1
    deliver(settings, ASOF, _report(settings), API_KEY, SENDER, RECIPIENTS)  # the report goes out
    assert check() == {"sent": False, "reason": f"the report of {ASOF} went out"}
    assert len(sendgrid.accepted) == 2  # the report, and the one alert
    for path in settings.home.rglob("*"):
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes(), path
