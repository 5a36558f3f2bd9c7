"""Online serving: `tickerlake serve-features` and Feast's HTTP feature server on 127.0.0.1.

Real Feast (file registry, SQLite online store) over a gold Delta table written with delta-rs;
the feature server is the real `feast serve` process.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from tickerlake import catalog, cli
from tickerlake.calendar import session_close_utc
from tickerlake.feast_store import FEATURES_TABLE, apply, feature_server_command, materialize_interval
from tickerlake.procs import free_port
from tickerlake.settings import Settings, load_settings

pytestmark = pytest.mark.integration

SESSION = date(2024, 7, 2)
TICKERS = ("AAPL", "BRK.B", "MSFT")


def value(ticker_idx: int, feature_idx: int) -> float:
    return ticker_idx * 100.0 + feature_idx + 0.5


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    home = tmp_path / "home"
    monkeypatch.setenv("TICKERLAKE_HOME", str(home))
    settings = load_settings(home=home)
    rows = [{"ticker": t, "date": SESSION, "event_ts": session_close_utc(SESSION), "year": 2024,
             **{f: value(j, k) for k, f in enumerate(catalog.FEATURE_NAMES)}} for j, t in enumerate(TICKERS)]
    schema = pa.schema([("ticker", pa.string()), ("date", pa.date32()), ("event_ts", pa.timestamp("us", tz="UTC")),
                        ("year", pa.int32()), *((f, pa.float64()) for f in catalog.FEATURE_NAMES)])
    write_deltalake(settings.table_path(FEATURES_TABLE), pa.Table.from_pylist(rows, schema=schema),
                    partition_by=["year"])
    apply(settings)
    close = session_close_utc(SESSION)
    materialize_interval(settings, close, close + timedelta(microseconds=1), ["daily_features"])
    return settings


def test_serve_features_prints_the_online_values(served: Settings, capsys: pytest.CaptureFixture) -> None:
    code = cli.main(["serve-features", "msft", "brk-b", "NOPE", "--format", "json", "--home", str(served.home),
                     "--feature", "KMID", "--feature", "ROC5"])
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["ticker"] for r in rows] == ["MSFT", "BRK.B", "NOPE"]  # canonical names, the given order
    kmid, roc5 = catalog.FEATURE_NAMES.index("KMID"), catalog.FEATURE_NAMES.index("ROC5")
    assert rows[0]["KMID"] == value(2, kmid) and rows[1]["ROC5"] == value(1, roc5)
    assert rows[2]["KMID"] is None  # an unknown ticker has no values, not zeros


def _listening_addresses(port: int) -> set[str]:
    """Local addresses (kernel hex) with a listening TCP socket on `port`, from /proc/net/tcp{,6}."""
    found = set()
    for name in ("tcp", "tcp6"):
        path = Path("/proc/net") / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if int(hex_port, 16) == port and fields[3] == "0A":  # 0A = LISTEN
                found.add(address)
    return found


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_the_feature_server_answers_on_loopback_only(served: Settings) -> None:
    port = free_port()
    command, env = feature_server_command(served, port)
    assert command[command.index("--host") + 1] == "127.0.0.1"
    log = (served.home / "feature_server.log").open("w")
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            assert proc.poll() is None, (served.home / "feature_server.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "feature server did not come up in 120 s"
            time.sleep(1)
        answer = _post(f"{url}/get-online-features",
                       {"features": ["daily_features:KMID"], "entities": {"ticker": ["AAPL", "MSFT"]}})
        names = answer["metadata"]["feature_names"]
        values = answer["results"][names.index("KMID")]["values"]
        kmid = catalog.FEATURE_NAMES.index("KMID")
        assert values == [value(0, kmid), value(2, kmid)]
        listening = _listening_addresses(port)
        assert listening == {"0100007F"}, listening  # 127.0.0.1, and nothing else
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
