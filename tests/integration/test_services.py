"""Airflow and MLflow as real local services: start once per module, talk HTTP, stop.

No mocks: the processes are the ones `tickerlake up` starts, on free ports, in a temporary
TICKERLAKE_HOME.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import stat
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tickerlake import services
from tickerlake.procs import free_port
from tickerlake.settings import Settings, load_settings

pytestmark = pytest.mark.integration


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _live(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return raw[raw.rindex(")") + 2] not in "ZX"


def _group(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                raw = (entry / "stat").read_text()
            except (FileNotFoundError, ProcessLookupError):
                continue
            fields = raw[raw.rindex(")") + 2 :].split()
            if int(fields[2]) == pgid and fields[0] not in "ZX":
                members.append(int(entry.name))
    return members


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tickerlake_home")


@pytest.fixture(scope="module")
def ports_env(home: Path):
    """Settings on free ports; the ports come in through the environment, like a user's."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TICKERLAKE_AIRFLOW_PORT", str(free_port()))
        mp.setenv("TICKERLAKE_MLFLOW_PORT", str(free_port()))
        mp.delenv("MLFLOW_AUTH_ADMIN_PASSWORD", raising=False)
        yield load_settings(home=home)


@pytest.fixture(scope="module")
def airflow(ports_env: Settings):
    settings = ports_env
    started = time.monotonic()
    services.init_airflow(settings)
    services.init_airflow(settings)  # idempotent
    initialised = time.monotonic()
    try:
        status = services.start_airflow(settings)
        print(
            f"\nAirflow: init {initialised - started:.1f} s, start {time.monotonic() - initialised:.1f} s"
        )
        assert status["running"] and status["healthy"], status
        yield settings
    finally:
        services.stop_airflow(settings)


@pytest.fixture(scope="module")
def mlflow_server(ports_env: Settings):
    settings = ports_env
    started = time.monotonic()
    try:
        status = services.start_mlflow(settings)
        print(f"\nMLflow: start {time.monotonic() - started:.1f} s")
        assert status["running"] and status["healthy"], status
        yield settings
    finally:
        services.stop_mlflow(settings)


# --- Airflow -------------------------------------------------------------------------------------


def test_airflow_env_shape(ports_env: Settings) -> None:
    env = services.airflow_env(ports_env)
    assert env["AIRFLOW_HOME"] == str(ports_env.airflow_home)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("sqlite:////")
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__API__HOST"] == "127.0.0.1"
    assert env["AIRFLOW__API__PORT"] == str(ports_env.airflow_port)
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] == "False"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin"
    assert env["PATH"].split(os.pathsep)[0] == str(services.venv_bin())
    assert (services.venv_bin() / "spark-submit").exists()
    conn = json.loads(env["AIRFLOW_CONN_SPARK_DEFAULT"])
    assert conn == {
        "conn_type": "spark",
        "host": ports_env.spark_master,
        "extra": {"spark-binary": "spark-submit"},
    }
    # Same keys on every call: generated once per install.
    again = services.airflow_env(ports_env)
    for key in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET"):
        assert env[key] and env[key] == again[key]


def test_airflow_ui_answers_on_loopback(airflow: Settings) -> None:
    status, body = _get(f"http://127.0.0.1:{airflow.airflow_port}/")
    assert status == 200
    assert b"<html" in body.lower()


def test_airflow_api_needs_a_token(airflow: Settings) -> None:
    url = f"http://127.0.0.1:{airflow.airflow_port}/api/v2/dags"
    assert _get(url)[0] == 401
    assert _get(url, {"Authorization": "Bearer not-a-token"})[0] in (401, 403)
    token = services.airflow_token(airflow)
    status, body = _get(url, {"Authorization": f"Bearer {token}"})
    assert status == 200, body
    assert "dags" in json.loads(body)


def test_data_docs_are_served_behind_the_airflow_login(airflow: Settings) -> None:
    """A real validation run's Data Docs, through the validation task's "Data Docs" link."""
    import dataclasses
    import datetime as dt
    import importlib.util

    from airflow.models.taskinstancekey import TaskInstanceKey

    from tickerlake import ingest
    from tickerlake.settings import PROJECT_ROOT

    run_id = "manual__2024-01-12T23:30:00+00:00"
    settings = dataclasses.replace(airflow, universe_size=5, history_start="2024-01-02")
    day = dt.date(2024, 1, 12)
    ingest.land_bars(settings, "synthetic", dt.date(2024, 1, 2), day, run_id, dt.datetime(2024, 1, 12, 23, tzinfo=dt.UTC))
    result = ingest.validate_interval(settings, dt.date(2024, 1, 2), day, run_id, data_docs=True)
    assert result["data_docs"] and Path(result["data_docs"]).is_file()

    spec = importlib.util.spec_from_file_location("tickerlake_links", PROJECT_ROOT / "plugins" / "tickerlake_links.py")
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    link = plugin.DataDocsLink().get_link(None, ti_key=TaskInstanceKey("tickerlake_daily", "ingest.validate_bars",
                                                                        run_id, 1))
    assert link.startswith(f"http://127.0.0.1:{airflow.airflow_port}/tickerlake/data-docs/runs/")
    assert plugin.DataDocsLink().get_link(None, ti_key=TaskInstanceKey("tickerlake_daily", "predict", run_id, 1)) == ""

    assert _get(link)[0] == 401  # no login, no page
    assert _get(link, {"Authorization": "Bearer not-a-token"})[0] in (401, 403)
    auth = {"Authorization": f"Bearer {services.airflow_token(airflow)}"}
    status, body = _get(link, auth)
    assert status == 200 and b"bars_daily.rows" in body and run_id.encode() in body, body[:500]
    base = f"http://127.0.0.1:{airflow.airflow_port}/tickerlake/data-docs"
    assert _get(f"{base}/index.html", auth)[0] == 200
    assert _get(f"{base}/..%2F..%2Fairflow.cfg", auth)[0] == 404  # nothing outside the site
    assert _get(f"{base}/runs/no-such-run", auth)[0] == 404


def test_airflow_password_file_and_no_all_admins(airflow: Settings) -> None:
    password_file = services.airflow_password_file(airflow)
    assert password_file.parent == airflow.run_dir
    assert _mode(password_file) == 0o600
    assert _mode(airflow.run_dir) == 0o700
    password = services.airflow_admin_password(airflow)
    assert len(password) >= 16 and password != "admin"
    assert json.loads(password_file.read_text()) == {"admin": password}
    assert _mode(airflow.run_dir / "airflow_secrets.json") == 0o600
    assert _mode(airflow.airflow_home) == 0o700
    # The all-admins route of SimpleAuthManager is off: no token without credentials.
    assert _get(f"http://127.0.0.1:{airflow.airflow_port}/auth/token")[0] == 403
    # The wrong password is refused.
    request = urllib.request.Request(
        f"http://127.0.0.1:{airflow.airflow_port}/auth/token",
        data=json.dumps({"username": "admin", "password": "admin"}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 401


def test_airflow_secrets_stay_out_of_logs(airflow: Settings) -> None:
    secret_values = [services.airflow_admin_password(airflow)]
    secret_values += json.loads((airflow.run_dir / "airflow_secrets.json").read_text()).values()
    logs = [p for p in airflow.logs_dir.rglob("*") if p.is_file()]
    logs += [p for p in (airflow.airflow_home / "logs").rglob("*") if p.is_file()]
    assert logs
    for log in logs:
        text = log.read_text(errors="replace")
        for value in secret_values:
            assert value not in text, f"a secret shows in {log}"


def test_airflow_status_and_stop_leave_no_process(airflow: Settings) -> None:
    status = services.airflow_status(airflow)
    assert status["running"] and status["healthy"]
    pids = [c["pid"] for c in status["components"].values()]
    assert all(pids)
    # Starting what already runs healthy changes nothing.
    again = services.start_airflow(airflow)
    assert [c["pid"] for c in again["components"].values()] == pids
    family = {member for pid in pids for member in _group(pid)}
    assert set(pids) <= family

    stopped = services.stop_airflow(airflow)
    assert all(stopped.values())
    assert not [pid for pid in family if _live(pid)]
    assert not any(_group(pid) for pid in pids)
    assert not list(airflow.run_dir.glob("airflow-*.pid"))
    after = services.airflow_status(airflow)
    assert not after["running"] and not after["healthy"]
    assert not _port_open(airflow.airflow_port)


# --- MLflow --------------------------------------------------------------------------------------


def test_mlflow_needs_credentials(mlflow_server: Settings) -> None:
    url = f"http://127.0.0.1:{mlflow_server.mlflow_port}/api/2.0/mlflow/experiments/search?max_results=5"
    assert _get(url)[0] == 401
    password = services.mlflow_admin_password(mlflow_server)
    assert len(password) >= 16 and password != "password1234"
    status, body = _get(url, _basic("admin", password))
    assert status == 200, body
    assert _get(url, _basic("admin", "password1234"))[0] == 401
    assert _get(url, _basic("admin", password + "x"))[0] == 401


def test_mlflow_auth_files_are_private(mlflow_server: Settings) -> None:
    config = services.mlflow_auth_config_file(mlflow_server)
    assert config.parent == mlflow_server.run_dir
    assert _mode(config) == 0o600
    assert _mode(services.mlflow_secret_key_file(mlflow_server)) == 0o600
    assert _mode(services.mlflow_auth_db(mlflow_server)) == 0o600
    assert services.mlflow_auth_db(mlflow_server).parent == mlflow_server.mlflow_dir
    password = services.mlflow_admin_password(mlflow_server)
    log = mlflow_server.logs_dir / "mlflow.log"
    assert password not in log.read_text(errors="replace")


def test_mlflow_shows_artifacts_logged_straight_to_sqlite(mlflow_server: Settings) -> None:
    """Tasks log to the SQLite store directly, artifacts under settings.mlflow_artifacts; the
    server (and so the UI) lists and downloads them."""
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server.mlflow_tracking_uri)
    experiment_id = client.create_experiment(
        "services_test", artifact_location=(mlflow_server.mlflow_artifacts / "services_test").as_uri()
    )
    run = client.create_run(experiment_id)
    client.log_text(run.info.run_id, "hello from a task", "notes/hello.txt")
    client.set_terminated(run.info.run_id)
    assert mlflow.__version__.startswith("3.")

    base = f"http://127.0.0.1:{mlflow_server.mlflow_port}"
    auth = _basic("admin", services.mlflow_admin_password(mlflow_server))
    status, body = _get(f"{base}/ajax-api/2.0/mlflow/artifacts/list?run_id={run.info.run_id}&path=notes", auth)
    assert status == 200, body
    assert [f["path"] for f in json.loads(body)["files"]] == ["notes/hello.txt"]
    status, body = _get(f"{base}/get-artifact?path=notes/hello.txt&run_uuid={run.info.run_id}", auth)
    assert status == 200 and body == b"hello from a task"


def test_mlflow_status_and_stop(mlflow_server: Settings) -> None:
    status = services.mlflow_status(mlflow_server)
    assert status["running"] and status["healthy"] and status["pid"]
    pid = status["pid"]
    assert services.stop_mlflow(mlflow_server) is True
    assert not _live(pid) and not _group(pid)
    assert not services.mlflow_status(mlflow_server)["running"]
    assert not _port_open(mlflow_server.mlflow_port)


def test_status_all_with_nothing_running(tmp_path: Path) -> None:
    status = services.status_all(load_settings(home=tmp_path))
    assert set(status) == {"airflow", "mlflow", "kafka"}
    assert not any(part["running"] for part in status.values())
    assert not list(tmp_path.iterdir())  # a status report writes nothing


# --- ports ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "start"),
    [("TICKERLAKE_AIRFLOW_PORT", services.start_airflow), ("TICKERLAKE_MLFLOW_PORT", services.start_mlflow)],
)
def test_port_in_use_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str, start
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        monkeypatch.setenv(setting, str(port))
        settings = load_settings(home=tmp_path)
        with pytest.raises(services.ServiceError) as error:
            start(settings)
    message = str(error.value)
    assert str(port) in message and setting in message
    assert not list(settings.run_dir.glob("*.pid"))
