"""Local services of the embedded default: Airflow 3 and MLflow (and, through
`tickerlake.kafka_broker`, the Kafka broker).

Everything runs on 127.0.0.1 only, as detached processes of the owner, with logs in
`settings.logs_dir` and PID files in `settings.run_dir`.

Credentials of the embedded default are generated once per install into files under
`settings.run_dir` that only the owner can read (0600, folder 0700):

- `airflow_secrets.json`: Airflow's fernet key, API secret key and JWT secret;
- `airflow_passwords.json`: the SimpleAuthManager password of the one user `admin`
  (Airflow's own `[core] simple_auth_manager_passwords_file` points at it);
- `mlflow_basic_auth.ini`: the MLflow basic-auth app's config with the generated admin password;
- `mlflow_flask_secret_key`: the Flask secret key the basic-auth app needs for CSRF protection.

No function here prints or logs a secret. This module imports neither Airflow nor MLflow, so
the CLI stays fast; both run as subprocesses from the venv's `bin`.
"""

from __future__ import annotations

import base64
import configparser
import contextlib
import io
import json
import os
import secrets
import signal
import subprocess
import sysconfig
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from tickerlake.procs import pid_alive, port_in_use, read_pid, start_detached, stop_pidfile, wait_until
from tickerlake.settings import PROJECT_ROOT, Settings

# --- where things live ---------------------------------------------------------------------------

AIRFLOW_COMPONENTS: tuple[str, ...] = ("api-server", "scheduler", "dag-processor", "triggerer")
AIRFLOW_ADMIN_USER = "admin"
MLFLOW_ADMIN_USER = "admin"

AIRFLOW_START_TIMEOUT_S = 180.0
MLFLOW_START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0

_SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"


class ServiceError(RuntimeError):
    """A local service could not be started, reached or stopped; the message says why."""


def venv_bin() -> Path:
    """The `bin` folder of the running interpreter's environment (the project venv)."""
    return Path(sysconfig.get_path("scripts"))


def _airflow_secrets_file(settings: Settings) -> Path:
    return settings.run_dir / "airflow_secrets.json"


def airflow_password_file(settings: Settings) -> Path:
    return settings.run_dir / "airflow_passwords.json"


def mlflow_auth_config_file(settings: Settings) -> Path:
    return settings.run_dir / "mlflow_basic_auth.ini"


def mlflow_secret_key_file(settings: Settings) -> Path:
    return settings.run_dir / "mlflow_flask_secret_key"


def mlflow_auth_db(settings: Settings) -> Path:
    return settings.mlflow_dir / "basic_auth.db"


def _airflow_pid_file(settings: Settings, component: str) -> Path:
    return settings.run_dir / f"airflow-{component}.pid"


def _airflow_log_file(settings: Settings, component: str) -> Path:
    return settings.logs_dir / f"airflow-{component}.log"


def _mlflow_pid_file(settings: Settings) -> Path:
    return settings.run_dir / "mlflow.pid"


def _mlflow_log_file(settings: Settings) -> Path:
    return settings.logs_dir / "mlflow.log"


def airflow_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.airflow_port}"


def mlflow_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.mlflow_port}"


# --- processes: tickerlake.procs, plus a sweep of the whole process group ----------------------


def _raw_pid(pid_file: Path) -> int | None:
    """The PID recorded in `pid_file`, whether or not that process still lives."""
    try:
        return int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group `pgid`, from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def _stop_service(pid_file: Path, timeout: float = STOP_TIMEOUT_S) -> bool:
    """`procs.stop_pidfile`, then make sure no member of the service's process group is left
    (a server's workers, LocalExecutor's worker processes, task subprocesses) — also when the
    group's leader had already died. True when something was running."""
    pgid = _raw_pid(pid_file)
    leader_was_ours = pid_alive(pid_file)
    if pgid is not None and not leader_was_ours and _leader_alive(pgid):
        # Stale file: that number now belongs to an unrelated process. Leave it alone.
        pid_file.unlink(missing_ok=True)
        return False
    stopped = stop_pidfile(pid_file, timeout)
    if pgid is None:
        return stopped
    # No PID that is still some process group's id is handed out again, so live members of
    # this group are the service's own processes.
    if not _group_members(pgid):
        return stopped or leader_was_ours
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    try:
        wait_until(lambda: not _group_members(pgid), 10, f"process group {pgid} to stop", interval=0.2)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        wait_until(lambda: not _group_members(pgid), 10, f"process group {pgid} to die", interval=0.2)
    return True


def _leader_alive(pid: int) -> bool:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return raw[raw.rindex(")") + 2] not in "ZX"


# --- private file and HTTP helpers -------------------------------------------------------------


def _ensure_private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def _write_private(path: Path, text: str, *, replace: bool) -> bool:
    """Write `text` to `path` with mode 0600, never readable by others, even for a moment.

    With replace=False the file is only created when absent (atomically: a concurrent writer
    loses cleanly) and False is returned when it already existed."""
    _ensure_private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        tmp.unlink(missing_ok=True)


def _http(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 5.0,
) -> tuple[int, bytes]:
    """(status, body) of one HTTP request; (0, b"") when nothing answers."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return 0, b""


def _tail(path: Path, lines: int = 40) -> str:
    try:
        content = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(content[-lines:])


def _check_port_free(port: int, setting: str, service: str) -> None:
    if port_in_use(port):
        raise ServiceError(
            f"cannot start {service}: port {port} on 127.0.0.1 is already in use. "
            f"Stop whatever holds it, or choose another port with the setting {setting} "
            f"(e.g. {setting}={port + 1})."
        )


# --- Airflow -------------------------------------------------------------------------------------


def _airflow_secrets(settings: Settings) -> dict[str, str]:
    """The per-install Airflow keys, generated on first use into a 0600 file."""
    path = _airflow_secrets_file(settings)
    if not path.exists():
        generated = {
            "fernet_key": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            "api_secret_key": secrets.token_urlsafe(32),
            "jwt_secret": secrets.token_urlsafe(48),
        }
        _write_private(path, json.dumps(generated, indent=2) + "\n", replace=False)
    data = json.loads(path.read_text())
    missing = {"fernet_key", "api_secret_key", "jwt_secret"} - data.keys()
    if missing:
        raise ServiceError(f"{path} lacks {sorted(missing)}; remove the file to regenerate the keys")
    return data


def _ensure_airflow_password(settings: Settings) -> None:
    """Generate the admin's password before any Airflow process starts, so Airflow never
    generates (and prints) one itself."""
    path = airflow_password_file(settings)
    if path.exists():
        passwords = json.loads(path.read_text() or "{}")
        if AIRFLOW_ADMIN_USER in passwords:
            os.chmod(path, 0o600)
            return
    else:
        passwords = {}
    passwords[AIRFLOW_ADMIN_USER] = secrets.token_urlsafe(18)
    _write_private(path, json.dumps(passwords) + "\n", replace=True)


def _spark_connection(settings: Settings) -> str:
    """`spark_default` in Airflow's JSON form. SparkSubmitHook (provider 6.3.x) takes a
    conn_type `spark` host that holds a whole master URL (`local[*]`, `spark://h:7077`,
    `k8s://https://h`, `yarn`) as the master, as long as no port is set; `spark-binary`
    must be one of spark-submit, spark2-submit, spark3-submit and is looked up on PATH."""
    return json.dumps(
        {
            "conn_type": "spark",
            "host": settings.spark_master,
            "extra": {"spark-binary": "spark-submit"},
        }
    )


def _prometheus_dir(settings: Settings) -> Path:
    path = settings.run_dir / "prometheus"
    path.mkdir(parents=True, exist_ok=True)
    return path


def airflow_env(settings: Settings) -> dict[str, str]:
    """The complete environment for any Airflow subprocess (and for in-process use).

    Generates the per-install keys on first call (see module docstring)."""
    keys = _airflow_secrets(settings)
    home = settings.airflow_home
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            # Never a config file from the caller's environment: this install's own only.
            "AIRFLOW_CONFIG": str(home / "airflow.cfg"),
            "TICKERLAKE_HOME": str(settings.home),
            "PATH": os.pathsep.join([str(venv_bin()), env.get("PATH", "/usr/bin:/bin")]),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            # LocalExecutor forks `parallelism` workers up front (default 32): too many here.
            "AIRFLOW__CORE__PARALLELISM": str(settings.airflow_parallelism),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__FERNET_KEY": keys["fernet_key"],
            "AIRFLOW__API__SECRET_KEY": keys["api_secret_key"],
            "AIRFLOW__API_AUTH__JWT_SECRET": keys["jwt_secret"],
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(settings.airflow_port),
            # Also the base of the Execution API URL that task processes call back on.
            "AIRFLOW__API__BASE_URL": airflow_url(settings),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__CORE__AUTH_MANAGER": _SIMPLE_AUTH_MANAGER,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{AIRFLOW_ADMIN_USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(airflow_password_file(settings)),
            "AIRFLOW_CONN_SPARK_DEFAULT": _spark_connection(settings),
            # Feast's metrics point this at a temp folder it deletes at exit; Airflow's long-lived
            # worker processes would then hand the dead path to every later task.
            "PROMETHEUS_MULTIPROC_DIR": str(_prometheus_dir(settings)),
        }
    )
    return env


def _airflow_cmd(*args: str) -> list[str]:
    return [str(venv_bin() / "airflow"), *args]


def init_airflow(settings: Settings) -> None:
    """Idempotent: folders, keys, admin password file, `airflow db migrate`."""
    # The metadata DB holds (fernet-encrypted) connections and variables: owner only.
    _ensure_private_dir(settings.airflow_home)
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    _ensure_private_dir(settings.run_dir)
    env = airflow_env(settings)
    _ensure_airflow_password(settings)

    stamp = settings.airflow_home / ".tickerlake-db-migrated"
    version = metadata.version("apache-airflow-core")
    if stamp.exists() and stamp.read_text().strip() == version and (settings.airflow_home / "airflow.db").exists():
        return
    log_file = settings.logs_dir / "airflow-db-migrate.log"
    with open(log_file, "ab") as log:
        result = subprocess.run(
            _airflow_cmd("db", "migrate"),
            env=env,
            cwd=str(settings.home),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if result.returncode != 0:
        raise ServiceError(
            f"`airflow db migrate` failed (exit {result.returncode}); last lines of {log_file}:\n"
            + _tail(log_file)
        )
    stamp.write_text(version + "\n")


def _airflow_health(settings: Settings) -> dict[str, Any] | None:
    status, body = _http("GET", f"{airflow_url(settings)}/api/v2/monitor/health")
    if status != 200:
        return None
    try:
        return json.loads(body)
    except json.JSONDecodeError:
        return None


def _airflow_healthy(health: dict[str, Any] | None) -> bool:
    if not health:
        return False
    parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
    return all((health.get(part) or {}).get("status") == "healthy" for part in parts)


def start_airflow(settings: Settings, timeout: float = AIRFLOW_START_TIMEOUT_S) -> dict[str, Any]:
    """Start api-server, scheduler, dag-processor and triggerer as detached processes and wait
    until the API reports every component healthy. Returns `airflow_status`."""
    running = [c for c in AIRFLOW_COMPONENTS if pid_alive(_airflow_pid_file(settings, c))]
    if running == list(AIRFLOW_COMPONENTS) and _airflow_healthy(_airflow_health(settings)):
        return airflow_status(settings)
    if running:
        # Half up (a crash, or a previous start that timed out): start over cleanly.
        stop_airflow(settings)
    _check_port_free(settings.airflow_port, "TICKERLAKE_AIRFLOW_PORT", "Airflow's API server")

    init_airflow(settings)
    env = airflow_env(settings)
    args = {
        "api-server": ("api-server",),
        # Logs are read from the local disk by the API server; no log-serving ports needed.
        "scheduler": ("scheduler", "--skip-serve-logs"),
        "dag-processor": ("dag-processor",),
        "triggerer": ("triggerer", "--skip-serve-logs"),
    }
    for component in AIRFLOW_COMPONENTS:
        start_detached(
            _airflow_cmd(*args[component]),
            _airflow_log_file(settings, component),
            _airflow_pid_file(settings, component),
            env,
            cwd=settings.home,
        )

    def ready() -> bool:
        dead = [c for c in AIRFLOW_COMPONENTS if not pid_alive(_airflow_pid_file(settings, c))]
        if dead:
            raise ServiceError(f"Airflow {dead[0]} exited during start" + _airflow_log_tails(settings, dead))
        return _airflow_healthy(_airflow_health(settings))

    try:
        wait_until(ready, timeout, f"Airflow at {airflow_url(settings)} to report healthy", interval=2)
    except TimeoutError as exc:
        health = _airflow_health(settings)
        stop_airflow(settings)
        raise ServiceError(
            f"{exc}; last health answer: {health}" + _airflow_log_tails(settings, AIRFLOW_COMPONENTS)
        ) from None
    except ServiceError:
        stop_airflow(settings)
        raise
    return airflow_status(settings)


def _airflow_log_tails(settings: Settings, components: Iterable[str]) -> str:
    return "".join(
        f"\n--- last lines of {_airflow_log_file(settings, c)} ---\n{_tail(_airflow_log_file(settings, c))}"
        for c in components
    )


def stop_airflow(settings: Settings) -> dict[str, bool]:
    """Stop every Airflow component (process groups included). Returns {component: was_running}."""
    # API server first so nothing new is accepted, then the scheduler and the rest.
    return {c: _stop_service(_airflow_pid_file(settings, c)) for c in AIRFLOW_COMPONENTS}


def airflow_status(settings: Settings) -> dict[str, Any]:
    components = {}
    for component in AIRFLOW_COMPONENTS:
        pid_file = _airflow_pid_file(settings, component)
        components[component] = {"pid": read_pid(pid_file), "alive": pid_alive(pid_file)}
    health = _airflow_health(settings) if components["api-server"]["alive"] else None
    return {
        "service": "airflow",
        "url": airflow_url(settings),
        "running": all(c["alive"] for c in components.values()),
        "healthy": _airflow_healthy(health),
        "components": components,
        "health": health,
        "logs": str(settings.logs_dir),
    }


def airflow_admin_password(settings: Settings) -> str:
    """The generated password of Airflow's `admin` user."""
    path = airflow_password_file(settings)
    try:
        return json.loads(path.read_text())[AIRFLOW_ADMIN_USER]
    except (FileNotFoundError, KeyError) as exc:
        raise ServiceError(f"no Airflow admin password at {path}; run `tickerlake setup` first") from exc


def airflow_token(settings: Settings) -> str:
    """A JWT for the Airflow REST API (`Authorization: Bearer ...`), from SimpleAuthManager's
    `POST /auth/token` with the generated admin password."""
    body = json.dumps({"username": AIRFLOW_ADMIN_USER, "password": airflow_admin_password(settings)})
    status, answer = _http(
        "POST",
        f"{airflow_url(settings)}/auth/token",
        headers={"Content-Type": "application/json"},
        body=body.encode(),
        timeout=30,
    )
    if status not in (200, 201):
        raise ServiceError(f"Airflow at {airflow_url(settings)} refused a token (HTTP {status or 'no answer'})")
    return json.loads(answer)["access_token"]


# --- MLflow --------------------------------------------------------------------------------------


def _ensure_mlflow_auth_config(settings: Settings) -> None:
    """The basic-auth app's config, with a generated admin password, 0600 in run_dir."""
    path = mlflow_auth_config_file(settings)
    if path.exists():
        os.chmod(path, 0o600)
        return
    if mlflow_auth_db(settings).exists():
        raise ServiceError(
            f"MLflow's auth database {mlflow_auth_db(settings)} exists but its admin password file {path} "
            "is gone, so the admin password is unknown. Remove the auth database to start over "
            "(MLflow users and permissions are reset), then start MLflow again."
        )
    config = configparser.ConfigParser(interpolation=None)
    config["mlflow"] = {
        "default_permission": "READ",
        "database_uri": f"sqlite:///{mlflow_auth_db(settings)}",
        "admin_username": MLFLOW_ADMIN_USER,
        "admin_password": secrets.token_urlsafe(24),
        "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
        "grant_default_workspace_access": "false",
    }
    text = io.StringIO()
    config.write(text)
    _write_private(path, text.getvalue(), replace=False)


def mlflow_admin_password(settings: Settings) -> str:
    """The generated password of MLflow's `admin` user."""
    config = configparser.ConfigParser(interpolation=None)
    path = mlflow_auth_config_file(settings)
    if not config.read(path):
        raise ServiceError(f"no MLflow auth config at {path}; start MLflow first")
    return config["mlflow"]["admin_password"]


def mlflow_auth_header(settings: Settings) -> dict[str, str]:
    """`Authorization` header of the MLflow admin for the REST API."""
    raw = f"{MLFLOW_ADMIN_USER}:{mlflow_admin_password(settings)}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def _mlflow_cmd(settings: Settings) -> list[str]:
    uri = settings.mlflow_tracking_uri
    if uri.startswith(("http://", "https://", "databricks")):
        raise ServiceError(
            f"TICKERLAKE_MLFLOW_TRACKING_URI={uri} names a remote tracking server; there is nothing to start "
            "locally (the local server serves a database store such as sqlite:///...)"
        )
    port = settings.mlflow_port
    return [
        str(venv_bin() / "mlflow"),
        "server",
        "--app-name",
        "basic-auth",
        "--backend-store-uri",
        uri,
        # Experiments created through the server get a plain local artifact location, the
        # same kind tasks get when they log straight to the SQLite store; the server lists and
        # downloads such artifacts from disk itself, so no artifact proxy is needed.
        "--default-artifact-root",
        settings.mlflow_artifacts.as_uri(),
        "--no-serve-artifacts",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--allowed-hosts",
        f"127.0.0.1:{port},localhost:{port}",
        "--cors-allowed-origins",
        f"http://127.0.0.1:{port},http://localhost:{port}",
    ]


def _mlflow_secret_key(settings: Settings) -> str:
    """The Flask secret key (CSRF protection of the basic-auth app), generated once, 0600."""
    path = mlflow_secret_key_file(settings)
    if not path.exists():
        _write_private(path, secrets.token_urlsafe(48) + "\n", replace=False)
    return path.read_text().strip()


def _mlflow_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "MLFLOW_FLASK_SERVER_SECRET_KEY": _mlflow_secret_key(settings),
            "MLFLOW_AUTH_CONFIG_PATH": str(mlflow_auth_config_file(settings)),
            "TICKERLAKE_HOME": str(settings.home),
            "PATH": os.pathsep.join([str(venv_bin()), env.get("PATH", "/usr/bin:/bin")]),
            # GenAI job runners (huey consumers) are not used here; keep the 2-core box free.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
    )
    # Credentials come from the 0600 config file only, never from a stray environment variable.
    for name in ("MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD"):
        env.pop(name, None)
    return env


def _mlflow_ready(settings: Settings) -> bool:
    status, _ = _http("GET", f"{mlflow_url(settings)}/health")
    if status != 200:
        return False
    # /health is unprotected; also check that the auth app answers with the admin login.
    status, _ = _http(
        "GET",
        f"{mlflow_url(settings)}/api/2.0/mlflow/experiments/search?max_results=1",
        headers=mlflow_auth_header(settings),
    )
    return status == 200


def start_mlflow(settings: Settings, timeout: float = MLFLOW_START_TIMEOUT_S) -> dict[str, Any]:
    """Start the MLflow tracking server (basic-auth app) and wait until it answers."""
    pid_file = _mlflow_pid_file(settings)
    if pid_alive(pid_file) and _mlflow_ready(settings):
        return mlflow_status(settings)
    _stop_service(pid_file)
    _check_port_free(settings.mlflow_port, "TICKERLAKE_MLFLOW_PORT", "MLflow")
    cmd = _mlflow_cmd(settings)
    settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
    settings.mlflow_artifacts.mkdir(parents=True, exist_ok=True)
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    _ensure_private_dir(settings.run_dir)
    _ensure_mlflow_auth_config(settings)
    log_file = _mlflow_log_file(settings)
    start_detached(cmd, log_file, pid_file, _mlflow_env(settings), cwd=settings.home)

    def ready() -> bool:
        if not pid_alive(pid_file):
            raise ServiceError(f"MLflow exited during start; last lines of {log_file}:\n{_tail(log_file)}")
        return _mlflow_ready(settings)

    try:
        wait_until(ready, timeout, f"MLflow at {mlflow_url(settings)} to answer", interval=1)
    except TimeoutError as exc:
        _stop_service(pid_file)
        raise ServiceError(f"{exc}; last lines of {log_file}:\n{_tail(log_file)}") from None
    except ServiceError:
        _stop_service(pid_file)
        raise
    # Password hashes of the MLflow users: owner only.
    os.chmod(mlflow_auth_db(settings), 0o600)
    return mlflow_status(settings)


def stop_mlflow(settings: Settings) -> bool:
    """Stop the MLflow server. True when it was running."""
    return _stop_service(_mlflow_pid_file(settings))


def mlflow_status(settings: Settings) -> dict[str, Any]:
    pid_file = _mlflow_pid_file(settings)
    alive = pid_alive(pid_file)
    healthy = alive and _http("GET", f"{mlflow_url(settings)}/health")[0] == 200
    return {
        "service": "mlflow",
        "url": mlflow_url(settings),
        "running": alive,
        "healthy": healthy,
        "pid": read_pid(pid_file),
        "backend_store": settings.mlflow_tracking_uri,
        "artifacts": str(settings.mlflow_artifacts),
        "logs": str(_mlflow_log_file(settings)),
    }


# --- all of them ---------------------------------------------------------------------------------


def start_all(settings: Settings) -> dict[str, Any]:
    """Kafka, then MLflow, then Airflow (whose tasks use the other two)."""
    from tickerlake import kafka_broker

    kafka_broker.start_broker(settings)
    start_mlflow(settings)
    start_airflow(settings)
    return status_all(settings)


def stop_all(settings: Settings) -> dict[str, Any]:
    """Airflow, then MLflow, then Kafka; every one is tried even when an earlier one fails."""
    results: dict[str, Any] = {}
    errors: list[str] = []

    def kafka_stop() -> Any:
        from tickerlake import kafka_broker

        return kafka_broker.stop_broker(settings)

    steps: list[tuple[str, Callable[[], Any]]] = [
        ("airflow", lambda: stop_airflow(settings)),
        ("mlflow", lambda: stop_mlflow(settings)),
        ("kafka", kafka_stop),
    ]
    for name, stop in steps:
        try:
            results[name] = stop()
        except Exception as exc:  # noqa: BLE001 - reported below, after the others were stopped
            errors.append(f"{name}: {exc}")
    if errors:
        raise ServiceError("could not stop every service: " + "; ".join(errors))
    return results


def status_all(settings: Settings) -> dict[str, Any]:
    def kafka_status() -> Any:
        from tickerlake import kafka_broker

        return kafka_broker.broker_status(settings)

    result: dict[str, Any] = {}
    for name, status in (
        ("airflow", lambda: airflow_status(settings)),
        ("mlflow", lambda: mlflow_status(settings)),
        ("kafka", kafka_status),
    ):
        try:
            result[name] = status()
        except Exception as exc:  # noqa: BLE001 - a status report shows the error instead
            result[name] = {"service": name, "running": False, "error": str(exc)}
    return result

