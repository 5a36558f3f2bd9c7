"""The FRED / ALFRED connector against a loopback HTTP server replaying FRED's documented format.

The server (http.server on 127.0.0.1) serves `fred/series/observations` from the fixtures,
pages by `limit`/`offset` as FRED does, and plays scripted faults: 5xx, 429, 4xx, slow answers.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import threading
import time
import traceback
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

from tickerlake import lake
from tickerlake.altdata import macro
from tickerlake.settings import load_settings

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "altdata" / "fred"
KEY = "abcdefghijklmnopqrstuvwxyz123456"  # FRED keys are 32 lower-case alphanumerics
D = dt.date
FAST = {"backoff_seconds": 0.01, "min_interval_seconds": 0.0, "timeout": 2.0}


@dataclass
class Fault:
    status: int = 200
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (then the normal answer)


class FredStub:
    """State shared with the handler: fixtures by series, a fault script, the requests seen."""

    def __init__(self) -> None:
        self.payloads = {
            "GNPCA": json.loads((FIXTURES / "api_series_observations_example.json").read_text()),
            "CPIAUCSL": json.loads((FIXTURES / "api_alfred_vintages_cpiaucsl.json").read_text()),
        }
        self.script: list[Fault] = []
        self.requests: list[dict[str, str]] = []
        self.paths: list[str] = []
        self.lock = threading.Lock()

    def answer(self, path: str, query: dict[str, str]) -> tuple[int, bytes, dict[str, str], float]:
        with self.lock:
            self.paths.append(path)
            self.requests.append(query)
            fault = self.script.pop(0) if self.script else None
        if fault is not None and (fault.status != 200 or fault.body is not None):
            return fault.status, fault.body or b"", fault.headers, fault.delay
        delay = fault.delay if fault else 0.0
        if path != "/fred/series/observations":
            return 404, b'{"error_code": 404, "error_message": "Not Found"}', {}, delay
        payload = self.payloads.get(query.get("series_id", ""))
        if payload is None:
            return 400, b'{"error_code": 400, "error_message": "Bad Request.  The series does not exist."}', {}, delay
        page = copy.deepcopy(payload)
        observations = page["observations"]
        offset, limit = int(query.get("offset", 0)), int(query.get("limit", 100000))
        page.update(count=len(observations), offset=offset, limit=limit,
                    observations=observations[offset : offset + limit])
        return 200, json.dumps(page).encode(), {"Content-Type": "application/json"}, delay


def _handler(stub: FredStub):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            status, body, headers, delay = stub.answer(url.path, query)
            if delay:
                time.sleep(delay)
            try:
                self.send_response(status)
                for k, v in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test)

        def log_message(self, *args) -> None:  # the server's access log would print the key
            pass

    return Handler


@pytest.fixture
def fred() -> Iterator[tuple[FredStub, str]]:
    stub = FredStub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(stub))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stub, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def fetch(base_url: str, series: str = "GNPCA", **options) -> pd.DataFrame:
    return macro.fetch_fred_series(series, D(1929, 1, 1), D(1931, 12, 31), KEY, D(2013, 8, 14), D(2013, 8, 14),
                                   base_url=base_url, **{**FAST, **options})


def assert_no_key(exc: BaseException, caplog: pytest.LogCaptureFixture) -> None:
    text = "".join(traceback.format_exception(exc)) + repr(exc) + str(exc.args)
    chained = exc.__cause__ or exc.__context__
    assert KEY not in text and chained is None
    assert KEY not in caplog.text


def test_fetch_documented_example(fred, caplog):
    stub, base = fred
    caplog.set_level(logging.DEBUG)
    frame = fetch(base)
    assert frame[["date", "value"]].values.tolist() == [[D(1929, 1, 1), 1065.9], [D(1930, 1, 1), 975.5],
                                                        [D(1931, 1, 1), 912.1]]
    assert set(frame["series_id"]) == {"GNPCA"} and set(frame["realtime_start"]) == {D(2013, 8, 14)}
    assert stub.paths == ["/fred/series/observations"]
    q = stub.requests[0]
    assert q["api_key"] == KEY and q["file_type"] == "json" and q["series_id"] == "GNPCA"
    assert (q["realtime_start"], q["realtime_end"]) == ("2013-08-14", "2013-08-14")
    assert (q["observation_start"], q["observation_end"]) == ("1929-01-01", "1931-12-31")
    assert KEY not in caplog.text and "/fred/series/observations" in caplog.text


def test_fetch_pages_through_count(fred):
    stub, base = fred
    frame = fetch(base, page_limit=2)
    assert len(frame) == 3
    assert [(r["offset"], r["limit"]) for r in stub.requests] == [("0", "2"), ("2", "2")]


def test_retries_5xx_and_429_then_succeeds(fred, caplog):
    stub, base = fred
    stub.script = [Fault(503, b"Service Unavailable"), Fault(429, b"{}", {"Retry-After": "0"}),
                   Fault(500, b'{"error_code": 500, "error_message": "Internal Server Error"}')]
    frame = fetch(base)
    assert len(frame) == 3 and len(stub.requests) == 4
    assert "retry" in caplog.text and KEY not in caplog.text


def test_gives_up_after_max_attempts(fred, caplog):
    stub, base = fred
    stub.script = [Fault(503, b"down")] * 3
    with pytest.raises(macro.FredApiError) as caught:
        fetch(base, max_attempts=3)
    assert caught.value.status == 503 and "after 3 attempts" in str(caught.value)
    assert len(stub.requests) == 3
    assert_no_key(caught.value, caplog)


def test_fails_fast_on_4xx_without_leaking_the_key(fred, caplog):
    stub, base = fred
    echo = json.dumps({"error_code": 400, "error_message": f"Bad Request.  api_key {KEY} is not registered."})
    stub.script = [Fault(400, echo.encode())]
    with pytest.raises(macro.FredApiError) as caught:
        fetch(base)
    assert caught.value.status == 400 and "is not registered" in str(caught.value)
    assert "***" in str(caught.value)
    assert len(stub.requests) == 1
    assert_no_key(caught.value, caplog)


def test_documented_error_body_and_unknown_series(fred, caplog):
    stub, base = fred
    stub.script = [Fault(400, (FIXTURES / "api_error_example.json").read_bytes())]
    with pytest.raises(macro.FredApiError, match="not registered") as caught:
        fetch(base)
    assert_no_key(caught.value, caplog)
    with pytest.raises(macro.FredApiError, match="does not exist") as caught:
        fetch(base, series="NOSUCH")
    assert caught.value.status == 400 and len(stub.requests) == 2


def test_retries_a_timeout(fred):
    stub, base = fred
    stub.script = [Fault(delay=1.0)]
    frame = fetch(base, timeout=0.3)
    assert len(frame) == 3 and len(stub.requests) == 2


def test_connection_refused_is_retried_then_reported(caplog):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(macro.FredApiError) as caught:
        fetch(f"http://127.0.0.1:{port}", max_attempts=2)
    assert caught.value.status is None and "after 2 attempts" in str(caught.value)
    assert_no_key(caught.value, caplog)


def test_a_200_that_is_not_json_fails(fred, caplog):
    stub, base = fred
    stub.script = [Fault(200, b"<html>maintenance</html>")]
    with pytest.raises(macro.FredApiError, match="not JSON") as caught:
        fetch(base)
    assert_no_key(caught.value, caplog)


def test_no_key_is_refused_before_any_request(fred):
    stub, base = fred
    with pytest.raises(macro.FredApiError, match="no FRED API key"):
        macro.fetch_fred_series("GNPCA", D(1929, 1, 1), D(1931, 1, 1), "", D(2013, 8, 14), D(2013, 8, 14), base)
    assert stub.requests == []


def test_land_vintages_and_build_asof(fred, tmp_path):
    stub, base = fred
    settings = load_settings(home=tmp_path / "home")
    args = (["cpiaucsl"], D(2025, 7, 1), D(2025, 11, 1), KEY, D(2025, 9, 1), D(2025, 12, 31), "run-1", base)
    result = macro.land_fred_api(settings, *args, **FAST)
    assert result["received"] == result["landed"] == 6 and result["quarantined"] == 0
    bronze = lake.read_table(settings, "bronze.macro").sort_values(["date", "realtime_start"]).reset_index(drop=True)
    assert set(bronze["source"]) == {"fred_api"} and set(bronze["series_id"]) == {"CPIAUCSL"}
    assert KEY not in bronze.to_csv()
    assert bronze["realtime_end"].max() == D(9999, 12, 31)

    macro.land_fred_api(settings, *args, **FAST)  # a rerun replaces, never duplicates
    again = lake.read_table(settings, "bronze.macro").sort_values(["date", "realtime_start"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(bronze, again)

    macro.build_macro_asof(settings, D(2025, 9, 2), D(2025, 12, 31))
    panel = lake.read_table(settings, "silver.macro_asof").set_index("date").sort_index()
    assert set(panel["vintage"]) == {"alfred"}
    assert panel.loc[D(2025, 10, 23), "value"] == 323.364  # August, first print
    assert panel.loc[D(2025, 10, 24), ["observation_date", "value"]].tolist() == [D(2025, 9, 1), 324.368]
    assert panel.loc[D(2025, 12, 18), "value"] == 325.031
