"""Single-node KRaft Kafka broker (broker and controller in one JVM) run from the pinned jars.

State lives in `settings.kafka_dir` (server.properties, log4j2.properties, cluster.id, data/),
output in `settings.logs_dir/kafka.log`, the pid in `settings.run_dir/kafka.pid`. The broker
listens on 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import logging
import subprocess
import uuid
from pathlib import Path
from typing import Any

from tickerlake.jars import check_java, kafka_classpath
from tickerlake.procs import pid_alive, port_in_use, read_pid, start_detached, stop_pidfile, wait_until
from tickerlake.settings import Settings

READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
JVM_OPTS = (
    "-Xms256m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-Djava.awt.headless=true",
)

_LOG4J2 = """\
status = warn
shutdownHook = disable
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
# the full config dump at every start, and per-request logging
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""


# librdkafka's "connection refused" while the broker starts is expected: keep it off stderr.
_LIBRDKAFKA_LOG = logging.getLogger("tickerlake.kafka_broker.librdkafka")
_LIBRDKAFKA_LOG.addHandler(logging.NullHandler())
_LIBRDKAFKA_LOG.propagate = False


class KafkaBrokerError(RuntimeError):
    """The local broker could not be started or is unusable."""


class PortInUseError(KafkaBrokerError):
    pass


def _pid_file(settings: Settings) -> Path:
    return settings.run_dir / "kafka.pid"


def _log_file(settings: Settings) -> Path:
    return settings.logs_dir / "kafka.log"


def _data_dir(settings: Settings) -> Path:
    return settings.kafka_dir / "data"


def local_bootstrap(settings: Settings) -> str:
    return f"127.0.0.1:{settings.kafka_port}"


def server_properties(settings: Settings) -> str:
    port, cport = settings.kafka_port, settings.kafka_controller_port
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{cport}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(_data_dir(settings)),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "auto.create.topics.enable": "true",
        "group.initial.rebalance.delay.ms": "0",
        "log.retention.hours": "168",
        "log.retention.check.interval.ms": str(settings.kafka_retention_check_ms),
    }
    return "".join(f"{k}={v}\n" for k, v in props.items())


def _cluster_id(settings: Settings) -> str:
    """Generated once (Kafka's base64url UUID form) and kept in kafka_dir/cluster.id."""
    path = settings.kafka_dir / "cluster.id"
    if path.exists():
        return path.read_text().strip()
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):  # Kafka refuses ids that look like a CLI flag
            break
    path.write_text(cid + "\n")
    return cid


def _tail(path: Path, offset: int = 0, lines: int = 30) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.strip().splitlines()[-lines:]) or "(log is empty)"


def _admin_ready(bootstrap: str, timeout: float = 2.0) -> bool:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "logger": _LIBRDKAFKA_LOG})
    try:
        admin.list_topics(timeout=timeout)
    except KafkaException:
        return False
    return True


def _jvm(settings: Settings, java: str) -> list[str]:
    return [
        java,
        *JVM_OPTS,
        f"-Dlog4j2.configurationFile={settings.kafka_dir / 'log4j2.properties'}",
        "-cp",
        kafka_classpath(settings),
    ]


def _format_storage(settings: Settings, java: str, config: Path) -> None:
    if (_data_dir(settings) / "meta.properties").exists():
        return
    cmd = [*_jvm(settings, java), "kafka.tools.StorageTool", "format", "-t", _cluster_id(settings)]
    cmd += ["-c", str(config), "--ignore-formatted"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        out = (proc.stdout + proc.stderr).strip().splitlines()[-10:]
        raise KafkaBrokerError("formatting Kafka storage failed: " + " / ".join(out))


def start_broker(settings: Settings, wait: bool = True) -> dict[str, Any]:
    """Start the broker in the background (no-op when it already runs); with `wait`, return
    only once it answers an admin request. Returns `broker_status`."""
    pid_file, log_file = _pid_file(settings), _log_file(settings)
    bootstrap = local_bootstrap(settings)
    if not pid_alive(pid_file):
        java = check_java()
        kafka_classpath(settings)  # JarsMissingError before anything else
        for port, name in (
            (settings.kafka_port, "TICKERLAKE_KAFKA_PORT"),
            (settings.kafka_controller_port, "TICKERLAKE_KAFKA_CONTROLLER_PORT"),
        ):
            if port_in_use(port):
                raise PortInUseError(f"port {port} is in use (set {name} to change it)")
        settings.kafka_dir.mkdir(parents=True, exist_ok=True)
        config = settings.kafka_dir / "server.properties"
        config.write_text(server_properties(settings))
        (settings.kafka_dir / "log4j2.properties").write_text(_LOG4J2)
        _format_storage(settings, java, config)
        log_offset = log_file.stat().st_size if log_file.exists() else 0
        start_detached([*_jvm(settings, java), "kafka.Kafka", str(config)], log_file, pid_file)
    else:
        log_offset = 0

    if wait:

        def ready() -> bool:
            if not pid_alive(pid_file):
                raise KafkaBrokerError(
                    f"Kafka broker exited during start; {log_file} ends with:\n{_tail(log_file, log_offset)}"
                )
            return _admin_ready(bootstrap)

        try:
            wait_until(ready, READY_TIMEOUT_S, f"the Kafka broker on {bootstrap}", interval=1.0)
        except TimeoutError as exc:
            stop_pidfile(pid_file, timeout=STOP_TIMEOUT_S)
            raise KafkaBrokerError(f"{exc}; {log_file} ends with:\n{_tail(log_file, log_offset)}") from None
    return broker_status(settings)


def stop_broker(settings: Settings) -> bool:
    """SIGTERM the broker's process group, SIGKILL after 30 s. True when one was running."""
    return stop_pidfile(_pid_file(settings), timeout=STOP_TIMEOUT_S)


def broker_status(settings: Settings) -> dict[str, Any]:
    pid = read_pid(_pid_file(settings))
    bootstrap = local_bootstrap(settings)
    return {
        "running": pid is not None,
        "pid": pid,
        "ready": pid is not None and _admin_ready(bootstrap),
        "bootstrap": bootstrap,
        "port": settings.kafka_port,
        "controller_port": settings.kafka_controller_port,
        "log": str(_log_file(settings)),
        "data_dir": str(_data_dir(settings)),
    }
