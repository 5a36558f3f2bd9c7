"""Delivery of the signal report: SendGrid's v3 API, or a dry run that writes the message to disk.

SendGrid (`deliver` with an API key): the real `sendgrid` client, pointed at
settings.sendgrid_api_host (https://api.sendgrid.com unless changed). 429 and 5xx answers (and
a connection that fails) are retried with exponential backoff, waiting at least what Retry-After
asks; any other non-2xx answer raises DeliveryError with the response body. The first 2xx answer
is recorded in a marker under outbox/<session>/ keyed by the session and the hash of the message,
so a retry of the task after a success sends nothing. (A crash between SendGrid's 202 and the
marker write would send twice on retry: the v3 mail send API has no idempotency key.)

The API key is a credential: it goes into the Authorization header and nowhere else. The HTTP
client logs its request headers at DEBUG, so while sending, a filter on its logger redacts the key;
a message body that contains the key is refused before anything is sent.

With no key (or TICKERLAKE_EMAIL_MODE=dry-run) the message is written as an .eml file instead.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from tickerlake.http_retry import retry_after_seconds, utc_now
from tickerlake.settings import Settings

log = logging.getLogger(__name__)

HTTP_CLIENT_LOGGER = "python_http_client.client"  # logs request headers (the bearer token) at DEBUG
REDACTED = "***"


class DeliveryError(RuntimeError):
    """SendGrid refused the message (a non-retryable answer, or retries exhausted)."""

    def __init__(self, message: str, status: int | None = None, body: str = ""):
        super().__init__(message)
        self.status = status
        self.body = body


@dataclass(frozen=True)
class InlineImage:
    cid: str  # referenced from the HTML as src="cid:<cid>"
    filename: str
    data: bytes
    mime_type: str = "image/png"


@dataclass(frozen=True)
class Message:
    subject: str
    html: str
    text: str
    sender: str
    recipients: tuple[str, ...]
    images: tuple[InlineImage, ...] = ()

    def digest(self) -> str:
        """sha256 of everything that is sent (what `a retry sends nothing` compares)."""
        h = hashlib.sha256()
        for part in (self.subject, self.html, self.text, self.sender, *sorted(self.recipients)):
            h.update(part.encode("utf-8"))
            h.update(b"\0")
        for image in sorted(self.images, key=lambda i: i.cid):
            h.update(f"{image.cid}\0{image.filename}\0{image.mime_type}\0".encode())
            h.update(hashlib.sha256(image.data).digest())
        return h.hexdigest()


def message_from_report(report: dict, sender: str, recipients: list[str]) -> Message:
    """The message of a written report (see report.write_report): its subject, parts and charts."""
    images = tuple(
        InlineImage(cid=i["cid"], filename=Path(i["path"]).name, data=Path(i["path"]).read_bytes())
        for i in report.get("images", [])
    )
    return Message(
        subject=report["subject"],
        html=Path(report["html"]).read_text(encoding="utf-8"),
        text=Path(report["text"]).read_text(encoding="utf-8"),
        sender=sender,
        recipients=tuple(recipients),
        images=images,
    )


# --- dry run ------------------------------------------------------------------------------------


def as_eml(message: Message) -> bytes:
    """multipart/alternative (text, then HTML with its inline images as multipart/related)."""
    msg = EmailMessage()
    msg["Subject"] = message.subject
    msg["From"] = message.sender
    msg["To"] = ", ".join(message.recipients)
    msg.set_content(message.text)
    msg.add_alternative(message.html, subtype="html")
    html_part = msg.get_payload()[-1]
    for image in message.images:
        maintype, _, subtype = image.mime_type.partition("/")
        html_part.add_related(image.data, maintype=maintype, subtype=subtype, cid=f"<{image.cid}>",
                              filename=image.filename, disposition="inline")
    return bytes(msg)


def write_eml(path: Path, message: Message) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write_bytes(path, as_eml(message))
    return path


def dry_run(settings: Settings, asof: dt.date, subject: str, html: str, text: str,
            sender: str, recipients: list[str], images: tuple[InlineImage, ...] = ()) -> Path:
    """Write the message as an .eml file (what would have been sent) under outbox/<asof>/."""
    message = Message(subject, html, text, sender, tuple(recipients), tuple(images))
    folder = settings.outbox_dir / asof.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "report.eml"
    _atomic_write_bytes(path, as_eml(message))
    _atomic_write_bytes(folder / "delivery.json", json.dumps(
        {"mode": "dry-run", "subject": subject, "to": list(recipients), "sha256": message.digest()}).encode())
    return path


# --- SendGrid -----------------------------------------------------------------------------------


def sendgrid_payload(message: Message) -> dict:
    """The v3 /mail/send request body, built with the sendgrid package's helpers."""
    from sendgrid.helpers.mail import (
        Attachment,
        Content,
        ContentId,
        Disposition,
        FileContent,
        FileName,
        FileType,
        Mail,
    )

    mail = Mail(from_email=message.sender, to_emails=list(message.recipients), subject=message.subject)
    mail.add_content(Content("text/plain", message.text))  # v3 wants text/plain before text/html
    mail.add_content(Content("text/html", message.html))
    for image in message.images:
        mail.add_attachment(Attachment(
            FileContent(base64.b64encode(image.data).decode("ascii")), FileName(image.filename),
            FileType(image.mime_type), Disposition("inline"), ContentId(image.cid)))
    return mail.get()


class _RedactSecrets(logging.Filter):
    """Replaces the given secrets in a record's message (installed on the HTTP client's logger)."""

    def __init__(self, secrets: list[str]):
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if any(s in text for s in self.secrets):
            for s in self.secrets:
                text = text.replace(s, REDACTED)
            record.msg, record.args = text, None
        return True


def _body_text(body) -> str:
    if isinstance(body, bytes):
        return body.decode("utf-8", errors="replace")
    return "" if body is None else str(body)


def sent_marker(settings: Settings, asof: dt.date, digest: str) -> Path:
    """The record of a successful send of this message for this session."""
    return settings.outbox_dir / asof.isoformat() / f"sent-{digest[:32]}.json"


def send_with_sendgrid(settings: Settings, asof: dt.date, message: Message, api_key: str,
                       sleep: Callable[[float], None] = time.sleep,
                       now: Callable[[], dt.datetime] = utc_now, marker: Path | None = None) -> dict:
    """Send once per (session, message): retries on 429/5xx/connection errors, raises on other non-2xx.
    `marker` (default: sent_marker of the session and message) records the success."""
    from python_http_client.exceptions import HTTPError
    from sendgrid import SendGridAPIClient

    digest = message.digest()
    marker = marker or sent_marker(settings, asof, digest)
    if marker.exists():
        previous = json.loads(marker.read_text(encoding="utf-8"))
        log.info("report for %s already sent (%s): nothing sent", asof, marker.name)
        return {**previous, "mode": "sendgrid", "already_sent": True, "attempts": 0}
    for part in (message.subject, message.html, message.text):
        if api_key in part:
            raise DeliveryError("the message contains the SendGrid API key: refused before sending")
    payload = sendgrid_payload(message)
    client = SendGridAPIClient(api_key=api_key, host=settings.sendgrid_api_host.rstrip("/"))
    redact = _RedactSecrets([api_key])
    http_logger = logging.getLogger(HTTP_CLIENT_LOGGER)
    attempts, waits = 0, []
    http_logger.addFilter(redact)
    try:
        while True:
            attempts += 1
            status, body, headers, retryable = None, "", None, False
            try:
                response = client.client.mail.send.post(
                    request_body=payload, timeout=settings.sendgrid_timeout_seconds)
                status, body, headers = response.status_code, _body_text(response.body), response.headers
            except HTTPError as exc:
                status, body, headers = exc.status_code, _body_text(exc.body), exc.headers
            except OSError as exc:  # refused, reset, timed out: the request may not have arrived
                body, retryable = f"{type(exc).__name__}: {exc}", True
            if status is not None and 200 <= status < 300:
                break
            retryable = retryable or status == 429 or (status is not None and 500 <= status < 600)
            if not retryable:
                raise DeliveryError(f"SendGrid answered {status}: {body}", status=status, body=body) from None
            if attempts >= settings.sendgrid_max_attempts:
                raise DeliveryError(f"SendGrid still answered {status or 'no response'} after {attempts} attempts: "
                                    f"{body}", status=status, body=body) from None
            backoff = settings.sendgrid_backoff_seconds * 2 ** (attempts - 1)
            asked = retry_after_seconds(headers.get("Retry-After") if headers is not None else None, now)
            wait = min(max(backoff, asked or 0.0), settings.sendgrid_max_wait_seconds)
            log.warning("SendGrid answered %s (attempt %d of %d); retrying in %.1fs",
                        status or body, attempts, settings.sendgrid_max_attempts, wait)
            waits.append(wait)
            sleep(wait)
    finally:
        http_logger.removeFilter(redact)
    record = {"mode": "sendgrid", "status": status, "message_id": (headers or {}).get("X-Message-Id"),
              "sha256": digest, "session": asof.isoformat(), "subject": message.subject,
              "to": list(message.recipients), "attempts": attempts, "waits": waits}
    marker.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write_bytes(marker, json.dumps(record).encode())
    log.info("report for %s accepted by SendGrid (%s) after %d attempt(s)", asof, status, attempts)
    return {**record, "already_sent": False}


def deliver(settings: Settings, asof: dt.date, report: dict, api_key: str | None,
            sender: str, recipients: list[str], sleep: Callable[[float], None] = time.sleep) -> dict:
    """Send through SendGrid when a key is configured, else write the dry-run message."""
    message = message_from_report(report, sender, recipients)
    if not api_key or settings.email_mode == "dry-run":
        path = dry_run(settings, asof, message.subject, message.html, message.text, sender, recipients,
                       message.images)
        return {"mode": "dry-run", "path": str(path), "sha256": message.digest()}
    return send_with_sendgrid(settings, asof, message, api_key, sleep=sleep)


def _atomic_write_bytes(path: Path, content: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(content)
    tmp.replace(path)
