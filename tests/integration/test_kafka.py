"""The local KRaft Kafka broker from the pinned jars: start, produce, consume, stop.

A real broker on free ports in a temporary TICKERLAKE_HOME; a real confluent-kafka client.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tickerlake.kafka_broker import PortInUseError, broker_status, start_broker, stop_broker
from tickerlake.procs import free_port, port_in_use
from tickerlake.settings import Settings

pytestmark = pytest.mark.integration

MESSAGES = 100


@pytest.fixture
def kafka_settings(make_settings, tmp_path: Path) -> Settings:
    port, controller = free_port(), free_port()
    while controller == port:
        controller = free_port()
    return make_settings(
        tmp_path / "home",
        kafka_port=port,
        kafka_controller_port=controller,
        kafka_bootstrap=f"127.0.0.1:{port}",
    )


def test_produce_and_consume_100_messages(kafka_settings: Settings):
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    settings = kafka_settings
    bootstrap = settings.kafka_bootstrap
    status = start_broker(settings)
    try:
        assert status["running"] and status["ready"] and status["bootstrap"] == bootstrap
        assert start_broker(settings)["pid"] == status["pid"]  # already running: a no-op

        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic("bars", num_partitions=3, replication_factor=1)])["bars"].result(30)

        failures: list[str] = []
        delivered: list[int] = []

        def on_delivery(err, msg) -> None:
            if err is not None:
                failures.append(str(err))
            else:
                delivered.append(msg.offset())

        producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
        for i in range(MESSAGES):
            producer.produce("bars", key=f"T{i % 7}", value=f"{i}", on_delivery=on_delivery)
        assert producer.flush(30) == 0
        assert failures == [] and len(delivered) == MESSAGES

        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "test-roundtrip",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        consumer.subscribe(["bars"])
        received: dict[str, list[int]] = {}
        deadline = time.monotonic() + 60
        try:
            while sum(map(len, received.values())) < MESSAGES and time.monotonic() < deadline:
                msg = consumer.poll(1.0)
                if msg is None:
                    continue
                assert msg.error() is None, msg.error()
                received.setdefault(msg.key().decode(), []).append(int(msg.value()))
        finally:
            consumer.close()

        assert sorted(v for values in received.values() for v in values) == list(range(MESSAGES))
        for key, values in received.items():  # one key, one partition: order kept
            assert values == sorted(values), key
    finally:
        assert stop_broker(settings)

    after = broker_status(settings)
    assert not after["running"] and not after["ready"]
    assert not port_in_use(settings.kafka_port) and not port_in_use(settings.kafka_controller_port)
    assert not (settings.run_dir / "kafka.pid").exists()


@pytest.mark.parametrize(
    ("busy", "setting"),
    [("kafka_port", "TICKERLAKE_KAFKA_PORT"), ("kafka_controller_port", "TICKERLAKE_KAFKA_CONTROLLER_PORT")],
)
def test_busy_port_is_a_clear_error(kafka_settings: Settings, busy: str, setting: str):
    port = getattr(kafka_settings, busy)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with pytest.raises(PortInUseError) as err:
            start_broker(kafka_settings)
    assert str(err.value) == f"port {port} is in use (set {setting} to change it)"
    assert not broker_status(kafka_settings)["running"]


def test_spark_reads_the_topic_with_the_pinned_connector(make_settings, tmp_path: Path):
    """spark-sql-kafka 4.1.3 (+ token provider 4.1.1, kafka-clients 3.9.1) against the 4.x broker."""
    from confluent_kafka import Producer

    from tickerlake.spark import get_spark

    port, controller = free_port(), free_port()
    settings = make_settings(
        tmp_path / "home",
        kafka_port=port,
        kafka_controller_port=controller,
        kafka_bootstrap=f"127.0.0.1:{port}",
        spark_driver_memory="1g",
    )
    start_broker(settings)
    try:
        producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "enable.idempotence": True})
        for i in range(20):
            producer.produce("ticks", key="AAPL", value=str(i))
        assert producer.flush(30) == 0
        spark = get_spark(settings, "test-kafka-connector")
        try:
            df = (
                spark.read.format("kafka")
                .option("kafka.bootstrap.servers", settings.kafka_bootstrap)
                .option("subscribe", "ticks")
                .option("startingOffsets", "earliest")
                .option("endingOffsets", "latest")
                .load()
            )
            values = sorted(int(r.value.decode()) for r in df.select("value").collect())
        finally:
            spark.stop()
        assert values == list(range(20))
    finally:
        stop_broker(settings)
