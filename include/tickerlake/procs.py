"""Small helpers for the local background services (Kafka, Airflow, MLflow).

A service runs detached in its own process group with its output appended to a log file and
its pid in a pid file. The pid file holds the pid and, where /proc exists, the process start
time, so a pid reused by an unrelated process is never taken for the service.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` now (the OS picks it), for a service started next on loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something listens on host:port (a bind there fails)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Same option servers (Kafka, uvicorn, ...) set: a TIME_WAIT leftover is no conflict.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def wait_until(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.5) -> T:
    """Call `predicate` until it returns something truthy and return that; TimeoutError after
    `timeout` seconds naming `what`. Exceptions from the predicate propagate."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def _start_time(pid: int) -> str | None:
    """Kernel start time of a process (Linux), or None where /proc is unavailable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22 counted from the command's end


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)  # reap our own exited child so it is not a zombie
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def read_pid(pid_file: str | os.PathLike[str]) -> int | None:
    """The pid in `pid_file` if that process is still the one started, else None."""
    try:
        fields = Path(pid_file).read_text().split()
        pid = int(fields[0])
    except (OSError, ValueError, IndexError):
        return None
    if not _alive(pid):
        return None
    if len(fields) > 1 and _start_time(pid) not in (None, fields[1]):
        return None  # the pid now belongs to another process
    return pid


def pid_alive(pid_file: str | os.PathLike[str]) -> bool:
    return read_pid(pid_file) is not None


def start_detached(
    cmd: Sequence[str],
    log_file: str | os.PathLike[str],
    pid_file: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> int:
    """Start `cmd` in a new session (own process group) that outlives this process; stdout and
    stderr are appended to `log_file`, the pid written to `pid_file`. `env` replaces the
    environment when given. Returns the pid."""
    log_path, pid_path = Path(log_file), Path(pid_file)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    pid_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )
    started = _start_time(proc.pid)
    tmp = pid_path.with_suffix(pid_path.suffix + ".tmp")
    tmp.write_text(f"{proc.pid} {started}\n" if started else f"{proc.pid}\n")
    tmp.replace(pid_path)
    return proc.pid


def stop_pidfile(pid_file: str | os.PathLike[str], timeout: float = 30.0) -> bool:
    """SIGTERM the process group of the pid in `pid_file`, SIGKILL it after `timeout` seconds,
    remove the pid file. True when a running process was stopped."""
    pid = read_pid(pid_file)
    if pid is None:
        Path(pid_file).unlink(missing_ok=True)
        return False

    def signal_group(sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            if os.getpgid(pid) == pid:  # start_detached made it a group leader
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)

    signal_group(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        signal_group(signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    Path(pid_file).unlink(missing_ok=True)
    return True
