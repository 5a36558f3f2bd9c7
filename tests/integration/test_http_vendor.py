"""The `http` source against a loopback Tiingo: a real HTTP server on 127.0.0.1 that answers in
Tiingo's format (the recorded bodies in tests/fixtures/vendor) and injects faults on demand.
No mocks: requests, retries, timeouts and the rate limit all run for real."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from tickerlake.http_retry import retry_after_seconds as _retry_after_seconds
from tickerlake.sources import OUTPUT_COLUMNS, SourceFormatError, VendorError, fetch_bars
from tickerlake.sources.http_vendor import api_key_from_connection, fetch_tiingo_bars

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "vendor"
KEY = "f1x7ur3-t0k3n-0123456789abcdef"  # a made-up key: it must reach the header and nothing else
PG_START, PG_END = dt.date(2015, 1, 2), dt.date(2015, 1, 5)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@dataclass
class Fault:
    status: int = 200
    body: bytes | None = None  # None: the normal answer
    headers: dict[str, str] = field(default_factory=dict)
    sleep: float = 0.0  # seconds before answering (longer than the client timeout = a timeout)


@dataclass
class Seen:
    at: float
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


class LoopbackTiingo:
    """Answers GET /tiingo/daily/<ticker>/prices like Tiingo; `faults` are served first, in order."""

    def __init__(self) -> None:
        self.faults: list[Fault] = []
        self.seen: list[Seen] = []
        self.prices = {"PG": json.loads(fixture("tiingo_daily_prices_PG_2015-01-02_2015-01-05.json"))}
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                parts = urlsplit(self.path)
                with stub._lock:
                    stub.seen.append(Seen(time.monotonic(), parts.path, parse_qs(parts.query), dict(self.headers)))
                    fault = stub.faults.pop(0) if stub.faults else Fault()
                if fault.sleep:
                    time.sleep(fault.sleep)
                status, body = (fault.status, fault.body) if fault.body is not None else stub.answer(parts)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    for name, value in fault.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def answer(self, parts) -> tuple[int, bytes]:
        segments = parts.path.strip("/").split("/")
        if len(segments) != 4 or segments[:2] != ["tiingo", "daily"] or segments[3] != "prices":
            return 404, b'{"detail":"Not found."}'
        if not dict(self.seen[-1].headers).get("Authorization", "").startswith("Token "):
            return 401, fixture("tiingo_error_401_invalid_token.json")
        ticker = unquote(segments[2]).upper()
        if ticker not in self.prices:
            return 404, fixture("tiingo_error_404_unknown_ticker.json").replace(b"ZZZZ", ticker.encode())
        query = parse_qs(parts.query)
        start, end = query.get("startDate", ["0000-00-00"])[0], query.get("endDate", ["9999-99-99"])[0]
        rows = [r for r in self.prices[ticker] if start <= r["date"][:10] <= end]
        return 200, json.dumps(rows).encode()

    def paths(self) -> list[str]:
        return [s.path for s in self.seen]


@pytest.fixture
def tiingo():
    stub = LoopbackTiingo()
    stub.thread.start()
    yield stub
    stub.server.shutdown()
    stub.server.server_close()


def fetch(stub: LoopbackTiingo, tickers=("PG",), **kwargs):
    options = {"requests_per_second": 100.0, "timeout": 2.0, "backoff_base": 0.01, "backoff_max": 0.05} | kwargs
    return fetch_tiingo_bars(list(tickers), PG_START, PG_END, KEY, base_url=stub.base_url, **options)


def test_replays_the_documented_format(tiingo):
    frame = fetch(tiingo)
    assert len(tiingo.seen) == 1
    request = tiingo.seen[0]
    assert request.path == "/tiingo/daily/PG/prices"
    assert request.query == {"startDate": ["2015-01-02"], "endDate": ["2015-01-05"], "format": ["json"]}
    assert frame["ticker"].tolist() == ["PG", "PG"]
    assert frame["date"].tolist() == [dt.date(2015, 1, 2), dt.date(2015, 1, 5)]
    first = frame.iloc[0]
    assert (first["open"], first["high"], first["low"], first["close"], first["volume"]) == (
        90.84, 91.0, 89.92, 90.44, 7255394.0)  # raw prices, not the adjusted ones
    assert first["adj_close"] == pytest.approx(74.3979026216)
    assert (first["div_cash"], first["split_factor"]) == (0.0, 1.0)
    assert frame["source_file"].tolist() == ["tiingo:PG", "tiingo:PG"]
    assert frame["source_row"].tolist() == [0, 1]


def test_other_recorded_date_spelling_parses(tiingo):
    tiingo.prices["PG"] = json.loads(fixture("tiingo_daily_prices_PG_latest.json"))
    frame = fetch_tiingo_bars(["PG"], dt.date(2021, 4, 27), dt.date(2021, 4, 27), KEY, base_url=tiingo.base_url)
    assert frame["date"].tolist() == [dt.date(2021, 4, 27)] and frame["close"].tolist() == [131.18]


def test_fetch_bars_http_dispatch(tiingo):
    frame = fetch_bars("http", "2015-01-02", "2015-01-05", tickers=["pg"], api_key=KEY, base_url=tiingo.base_url,
                       requests_per_second=100.0)
    assert list(frame.columns) == list(OUTPUT_COLUMNS) and len(frame) == 2
    with pytest.raises(ValueError, match="API key"):
        fetch_bars("http", "2015-01-02", "2015-01-05", tickers=["PG"], base_url=tiingo.base_url)


def test_share_class_requested_in_tiingo_spelling(tiingo):
    tiingo.prices["BRK-B"] = tiingo.prices["PG"]
    frame = fetch(tiingo, tickers=["BRK.B"])
    assert tiingo.paths() == ["/tiingo/daily/BRK-B/prices"]
    assert frame["ticker"].unique().tolist() == ["BRK.B"]
    assert frame["source_file"].unique().tolist() == ["tiingo:BRK.B"]


def test_500_then_200_succeeds_after_a_retry(tiingo):
    tiingo.faults = [Fault(500, b'{"detail":"Internal Server Error"}')]
    frame = fetch(tiingo)
    assert len(tiingo.seen) == 2 and len(frame) == 2


def test_persistent_5xx_gives_up_after_the_retries(tiingo):
    tiingo.faults = [Fault(503, b"upstream down")] * 10
    with pytest.raises(VendorError, match=r"after 4 attempts; last: HTTP 503: upstream down"):
        fetch(tiingo, max_retries=3)
    assert len(tiingo.seen) == 4


def test_429_respects_retry_after(tiingo):
    tiingo.faults = [Fault(429, fixture("tiingo_error_429_hourly_allocation.json"), {"Retry-After": "1"})]
    frame = fetch(tiingo)
    assert len(frame) == 2 and len(tiingo.seen) == 2
    waited = tiingo.seen[1].at - tiingo.seen[0].at
    assert waited >= 0.95, f"retried after {waited:.2f}s, Retry-After said 1s (the backoff alone is 0.01s)"


def test_429_with_a_long_retry_after_fails_at_once(tiingo):
    tiingo.faults = [Fault(429, fixture("tiingo_error_429_hourly_allocation.json"), {"Retry-After": "3600"})]
    with pytest.raises(VendorError, match=r"Retry-After 3600s exceeds 60s.*hourly request allocation"):
        fetch(tiingo, max_retry_after=60)
    assert len(tiingo.seen) == 1


def test_429_without_retry_after_backs_off(tiingo):
    tiingo.faults = [Fault(429, b"{}"), Fault(429, b"{}")]
    assert len(fetch(tiingo)) == 2 and len(tiingo.seen) == 3


def test_timeout_then_200_succeeds(tiingo):
    tiingo.faults = [Fault(sleep=1.5)]
    began = time.monotonic()
    frame = fetch(tiingo, timeout=0.3)
    assert len(frame) == 2 and len(tiingo.seen) == 2
    assert time.monotonic() - began < 1.5  # gave up on the slow answer, did not wait for it


@pytest.mark.parametrize(
    ("status", "body_fixture", "ticker", "expected"),
    [
        (401, "tiingo_error_401_invalid_token.json", "PG", r"HTTP 401: \{\"detail\":\"Invalid token.\"\}"),
        (404, None, "ZZZZ", r"Tiingo refused ZZZZ .*HTTP 404: \{\"detail\":\"Error: Ticker 'ZZZZ' not found\"\}"),
        (400, None, "PG", r"HTTP 400: bad startDate"),
    ],
)
def test_other_4xx_fail_at_once_with_the_body(tiingo, status, body_fixture, ticker, expected):
    if status == 401:
        tiingo.faults = [Fault(401, fixture(body_fixture))]
    elif status == 400:
        tiingo.faults = [Fault(400, b"bad startDate")]
    with pytest.raises(VendorError, match=expected) as info:
        fetch(tiingo, tickers=[ticker])
    assert len(tiingo.seen) == 1  # no retry
    assert KEY not in str(info.value)


def test_unknown_ticker_stops_the_batch(tiingo):
    with pytest.raises(VendorError, match="ZZZZ"):
        fetch(tiingo, tickers=["PG", "ZZZZ", "PG.B"])
    assert tiingo.paths() == ["/tiingo/daily/PG/prices", "/tiingo/daily/ZZZZ/prices"]


def test_rate_limit_spaces_the_requests(tiingo):
    for name in ("AAA", "BBB", "CCC", "DDD"):
        tiingo.prices[name] = tiingo.prices["PG"]
    frame = fetch(tiingo, tickers=["AAA", "BBB", "CCC", "DDD"], requests_per_second=4.0)
    assert frame["ticker"].unique().tolist() == ["AAA", "BBB", "CCC", "DDD"]
    gaps = [b.at - a.at for a, b in zip(tiingo.seen, tiingo.seen[1:], strict=False)]
    assert len(gaps) == 3 and min(gaps) >= 0.24, gaps  # 1 / 4 per second, less scheduling jitter


def test_rate_limit_also_spaces_retries(tiingo):
    tiingo.faults = [Fault(500, b"{}")]
    fetch(tiingo, requests_per_second=2.0)
    assert tiingo.seen[1].at - tiingo.seen[0].at >= 0.49


def test_key_only_in_the_authorization_header(tiingo, caplog):
    caplog.set_level(logging.DEBUG)
    tiingo.faults = [Fault(500, b"{}"), Fault(429, b"{}", {"Retry-After": "0"}), Fault(sleep=0.5)]
    fetch(tiingo, timeout=0.2)
    with pytest.raises(VendorError):
        fetch(tiingo, tickers=["ZZZZ"])
    assert len(tiingo.seen) == 5
    for request in tiingo.seen:
        assert request.headers["Authorization"] == f"Token {KEY}"
        assert KEY not in request.path and KEY not in json.dumps(request.query)
        assert "token" not in {k.lower() for k in request.query}
    assert caplog.records, "expected the retries to be logged"
    assert all(KEY not in record.getMessage() for record in caplog.records)
    assert KEY not in caplog.text


def test_key_echoed_by_the_vendor_is_redacted(tiingo):
    tiingo.faults = [Fault(403, f'{{"detail":"token {KEY} has no access"}}'.encode())]
    with pytest.raises(VendorError) as info:
        fetch(tiingo)
    assert KEY not in str(info.value) and "token *** has no access" in str(info.value)


def test_null_price_is_kept_as_nan_and_text_price_is_an_error(tiingo):
    rows = json.loads(fixture("tiingo_daily_prices_PG_2015-01-02_2015-01-05.json"))
    rows[0]["open"] = None
    tiingo.prices["PG"] = rows
    frame = fetch(tiingo)
    assert len(frame) == 2 and frame["open"].isna().tolist() == [True, False]

    rows = json.loads(fixture("tiingo_daily_prices_PG_2015-01-02_2015-01-05.json"))
    rows[1]["close"] = "90.01"
    tiingo.prices["PG"] = rows
    with pytest.raises(SourceFormatError, match=r"Tiingo PG item 1 field 'close': '90.01' is not a number"):
        fetch(tiingo)


def test_not_a_list_is_an_error(tiingo):
    tiingo.faults = [Fault(200, b'{"detail":"Error: something odd"}')]
    with pytest.raises(SourceFormatError, match="not a list of prices.*something odd"):
        fetch(tiingo)


def test_no_session_in_the_interval_gives_no_rows(tiingo):
    frame = fetch_tiingo_bars(["PG"], dt.date(2015, 1, 3), dt.date(2015, 1, 4), KEY, base_url=tiingo.base_url)
    assert frame.empty and len(tiingo.seen) == 1


def test_retry_after_forms():
    assert _retry_after_seconds("7") == 7.0
    assert _retry_after_seconds(None) is None and _retry_after_seconds("soon") is None
    assert _retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past


def test_api_key_from_airflow_connection(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_TIINGO_DEFAULT", json.dumps({"conn_type": "http", "password": KEY}))
    assert api_key_from_connection() == KEY
    monkeypatch.setenv("AIRFLOW_CONN_TIINGO_EMPTY", json.dumps({"conn_type": "http"}))
    assert api_key_from_connection("tiingo_empty") is None
    assert api_key_from_connection("tiingo_not_defined_anywhere") is None
