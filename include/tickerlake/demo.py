"""`tickerlake demo`: set up, seed a synthetic market, and run the daily DAG through the scheduler.

The last `sessions` sessions up to `end` run as an Airflow backfill (real scheduler runs the
UI shows afterwards); the sessions before them are seeded by the CLI backfill.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from tickerlake import lake
from tickerlake.calendar import EXCHANGE_TZ, sessions_between
from tickerlake.settings import Settings

DAG_ID = "tickerlake_daily"
RUN_TIMEOUT_S = 45 * 60


def _api(settings: Settings, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    from tickerlake.services import airflow_token, airflow_url

    request = urllib.request.Request(
        f"{airflow_url(settings)}/api/v2{path}",
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Authorization": f"Bearer {airflow_token(settings)}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, {"detail": exc.read().decode(errors="replace")}


def _wait(predicate: Callable[[], object], timeout: float, what: str, every: float = 5.0):
    deadline = time.monotonic() + timeout  # wall-clock ok: polling a service
    while time.monotonic() < deadline:  # wall-clock ok
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def _create_backfill(settings: Settings, first: dt.datetime, last: dt.datetime, attempts: int = 3) -> None:
    """`airflow backfill create`; retried because SQLite can be briefly locked by the scheduler."""
    from tickerlake.services import airflow_env

    cmd = ["airflow", "backfill", "create", "--dag-id", DAG_ID, "--from-date", first.isoformat(),
           "--to-date", last.isoformat(), "--max-active-runs", "1", "--reprocess-behavior", "completed"]
    for attempt in range(1, attempts + 1):
        out = subprocess.run(cmd, env=airflow_env(settings), capture_output=True, text=True)
        if out.returncode == 0:
            return
        tail = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["no output"]
        if attempt == attempts:
            raise RuntimeError(f"airflow backfill create failed: {tail[0]}")
        time.sleep(10)


def run_demo(settings: Settings, end: dt.date, sessions: int, progress: Callable[[str], None]) -> str:
    from tickerlake.bootstrap import setup
    from tickerlake.cli import cmd_backfill
    from tickerlake.services import (
        airflow_admin_password,
        mlflow_admin_password,
        start_all,
        status_all,
    )

    started = time.monotonic()  # wall-clock ok: timing display
    setup(settings, progress)
    all_sessions = sessions_between(settings.history_start, end)
    if len(all_sessions) < 300 + sessions:
        raise ValueError(f"history {settings.history_start} .. {end} is too short for the demo")
    dag_sessions = all_sessions[-sessions:]
    seed_end = all_sessions[-sessions - 1]

    seeded = lake.table_exists(settings, "gold.labels_daily") and not lake.read_table(
        settings, "gold.features_daily", filters=[("date", "=", seed_end)], columns=["ticker"]
    ).empty
    if seeded:
        progress(f"history already seeded through {seed_end}")
    else:
        progress(f"seeding {settings.universe_size} tickers, {settings.history_start} .. {seed_end}")
        import argparse

        cmd_backfill(settings, argparse.Namespace(start=all_sessions[0], end=seed_end, source="synthetic", path=None))

    # The services see the demo's window: the scheduler creates no run after its last session
    # (with catchup off it would otherwise add a run for the latest interval before today).
    os.environ["TICKERLAKE_DAILY_END_DATE"] = end.isoformat()
    status = status_all(settings)
    if not all(status[s].get("running") for s in ("airflow", "mlflow")):
        progress("starting Airflow, MLflow and Kafka on 127.0.0.1")
        start_all(settings)
    progress("waiting for the scheduler to parse tickerlake_daily")
    _wait(lambda: _api(settings, "GET", f"/dags/{DAG_ID}")[0] == 200, 300, "the DAG to be parsed")
    _api(settings, "PATCH", f"/dags/{DAG_ID}", {"is_paused": False})

    first = dt.datetime.combine(dag_sessions[0], dt.time(0, 0), tzinfo=EXCHANGE_TZ)
    last = dt.datetime.combine(dag_sessions[-1], dt.time(23, 59), tzinfo=EXCHANGE_TZ)
    progress(f"Airflow backfill of {DAG_ID}: {dag_sessions[0]} .. {dag_sessions[-1]} ({sessions} runs)")
    _create_backfill(settings, first, last)

    def finished():
        code, body = _api(settings, "GET", f"/dags/{DAG_ID}/dagRuns?run_type=backfill&limit=100&order_by=-logical_date")
        if code != 200:
            return None
        runs = [r for r in body.get("dag_runs", [])
                if dt.date.fromisoformat(r["logical_date"][:10]) >= dag_sessions[0] - dt.timedelta(days=1)]
        if len(runs) >= sessions and all(r["state"] in ("success", "failed") for r in runs):
            return runs
        return None

    runs = _wait(finished, RUN_TIMEOUT_S, "the backfill runs to finish", every=10)
    failed = [r["dag_run_id"] for r in runs if r["state"] != "success"]
    if failed:
        raise RuntimeError(f"daily runs failed: {failed}; see the Airflow UI and {settings.logs_dir}")
    return tour(settings, dag_sessions, runs, time.monotonic() - started,  # wall-clock ok
                airflow_admin_password(settings), mlflow_admin_password(settings))


def tour(settings: Settings, dag_sessions: list[dt.date], runs: list[dict], seconds: float,
         airflow_password: str, mlflow_password: str) -> str:
    from tickerlake.training import champion_version

    champion = champion_version(settings)
    last = dag_sessions[-1].isoformat()
    lines = [
        f"Demo finished in {seconds / 60:.1f} min: {len(runs)} runs of tickerlake_daily succeeded "
        f"({dag_sessions[0]} .. {dag_sessions[-1]}).",
        "",
        f"  report      {settings.reports_dir / last / 'report.html'}",
        f"  email       {settings.outbox_dir / last / 'report.eml'} (dry run: no SendGrid key)",
        f"  tables      {settings.lake_root}/<layer>/<table>  (bronze, quarantine, silver, gold, ops)",
        f"  model       {settings.model_name} v{champion.version if champion else '-'} (alias champion)",
        "",
        f"  Airflow UI  http://127.0.0.1:{settings.airflow_port}   user admin, password {airflow_password}",
        f"  MLflow UI   http://127.0.0.1:{settings.mlflow_port}   user admin, password {mlflow_password}",
        f"              (passwords kept in {settings.run_dir}, readable by you only)",
        "",
        "  query       .venv/bin/tickerlake sql --curated todays_signals",
        "  stop        .venv/bin/tickerlake down",
    ]
    return "\n".join(lines)
