"""A loopback SendGrid for tests: an HTTP server on 127.0.0.1 that implements `POST /v3/mail/send`
as SendGrid documents it: bearer authorization (401 otherwise), the request body's validation (400
with `{"errors": [{"message", "field", "help"}]}`), 202 Accepted with an empty body and an
X-Message-Id header; a test can script answers first (429 with Retry-After and the X-RateLimit
headers, 5xx). Used with the real `sendgrid` client, pointed here by settings.sendgrid_api_host
(TICKERLAKE_SENDGRID_API_HOST).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_ADDRESS = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")


class LoopbackSendGrid:
    def __init__(self, api_key: str):
        self.api_key = api_key
        self.script: list[tuple[int, dict, dict | None]] = []  # answered first, in order
        self.requests: list[dict] = []  # every request: path, headers, body
        self.accepted: list[dict] = []  # payloads answered 202
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def _handler(self):
        state = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output quiet
                pass

            def _answer(self, status: int, body: dict | None, headers: dict | None = None):
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                if data:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                state.requests.append({"path": self.path, "headers": dict(self.headers), "body": raw})
                if self.path != "/v3/mail/send":
                    return self._answer(404, {"errors": [{"field": None, "message": "not found"}]})
                if self.headers.get("Authorization") != f"Bearer {state.api_key}":
                    return self._answer(401, {"errors": [{"field": None, "message": "The provided authorization "
                                                          "grant is invalid, expired, or revoked", "help": None}]})
                if state.script:
                    status, headers, body = state.script.pop(0)
                    return self._answer(status, body, headers)
                try:
                    payload = json.loads(raw)
                except ValueError:
                    return self._answer(400, {"errors": [{"field": None, "message": "Bad Request", "help": None}]})
                errors = validate_mail_send(payload)
                if errors:
                    return self._answer(400, {"errors": errors})
                state.accepted.append(payload)
                return self._answer(202, None, {"X-Message-Id": f"loopback-{len(state.accepted)}"})

        return Handler

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _error(message: str, field: str | None) -> dict:
    return {"message": message, "field": field, "help": None}


def validate_mail_send(body: dict) -> list[dict]:
    """The request-body rules of v3 mail send that this client can break."""
    errors = []
    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        errors.append(_error("The personalizations field is required and must have at least one personalization.",
                             "personalizations"))
        personalizations = []
    for i, p in enumerate(personalizations):
        to = p.get("to") or []
        if not to:
            errors.append(_error("The to array is required for all personalization objects, and must have at "
                                 "least one email object with a valid email address.", f"personalizations.{i}.to"))
        for j, addr in enumerate(to):
            if not _ADDRESS.match(str(addr.get("email", ""))):
                errors.append(_error("Does not contain a valid address.", f"personalizations.{i}.to.{j}.email"))
    if not _ADDRESS.match(str((body.get("from") or {}).get("email", ""))):
        errors.append(_error("The from email does not contain a valid address.", "from.email"))
    if not body.get("subject") and not all(p.get("subject") for p in personalizations):
        errors.append(_error("The subject is required. You can get around this requirement if you use a template "
                             "with a subject defined or if every personalization has a subject defined.", "subject"))
    content = body.get("content") or []
    if not content:
        errors.append(_error("Unless a valid template_id is provided, the content parameter is required.", "content"))
    types = [c.get("type") for c in content]
    for k, c in enumerate(content):
        if not isinstance(c.get("value"), str) or not c["value"]:
            errors.append(_error("The content value must be a string at least one character in length.",
                                 f"content.{k}.value"))
    order = [t for t in types if t in ("text/plain", "text/html")]
    if types[: len(order)] != order or order not in (["text/plain"], ["text/html"], ["text/plain", "text/html"]):
        errors.append(_error("If present, text/plain must be first, followed by text/html, followed by any other "
                             "content.", "content"))
    for k, a in enumerate(body.get("attachments") or []):
        try:
            base64.b64decode(a.get("content", ""), validate=True)
        except (binascii.Error, ValueError):
            errors.append(_error("The attachment content must be base64 encoded.", f"attachments.{k}.content"))
        if not a.get("filename"):
            errors.append(_error("The attachment filename parameter is required.", f"attachments.{k}.filename"))
        disposition = a.get("disposition", "attachment")
        if disposition not in ("inline", "attachment"):
            errors.append(_error("The disposition must be inline or attachment.", f"attachments.{k}.disposition"))
        if disposition == "inline" and not a.get("content_id"):
            errors.append(_error("The content_id parameter is required if disposition is set to inline.",
                                 f"attachments.{k}.content_id"))
    return errors

