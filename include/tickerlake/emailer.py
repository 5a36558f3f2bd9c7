"""Delivery of the signal report: SendGrid's v3 API, or a dry run that writes the message to disk."""

from __future__ import annotations

import datetime as dt
import json
from email.message import EmailMessage
from pathlib import Path

from tickerlake.settings import Settings


def dry_run(settings: Settings, asof: dt.date, subject: str, html: str, text: str,
            sender: str, recipients: list[str]) -> Path:
    """Write the message as an .eml file (what would have been sent) under outbox/<asof>/."""
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    folder = settings.outbox_dir / asof.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "report.eml"
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(bytes(msg))
    tmp.replace(path)
    (folder / "delivery.json").write_text(json.dumps({"mode": "dry-run", "subject": subject, "to": recipients}))
    return path


def deliver(settings: Settings, asof: dt.date, report: dict, api_key: str | None,
            sender: str, recipients: list[str]) -> dict:
    """Send through SendGrid when a key is configured, else write the dry-run message."""
    html = Path(report["html"]).read_text(encoding="utf-8")
    text = Path(report["text"]).read_text(encoding="utf-8")
    if not api_key or settings.email_mode == "dry-run":
        path = dry_run(settings, asof, report["subject"], html, text, sender, recipients)
        return {"mode": "dry-run", "path": str(path)}
    from sendgrid import SendGridAPIClient
    from sendgrid.helpers.mail import Content, Mail

    mail = Mail(from_email=sender, to_emails=recipients, subject=report["subject"])
    mail.add_content(Content("text/plain", text))
    mail.add_content(Content("text/html", html))
    response = SendGridAPIClient(api_key).send(mail)
    if not 200 <= response.status_code < 300:
        raise RuntimeError(f"SendGrid answered {response.status_code}: {response.body!r}")
    return {"mode": "sendgrid", "status": response.status_code}
