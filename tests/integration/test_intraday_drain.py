"""The intraday drain against a real KRaft broker, real Spark Structured Streaming and real Delta.

One broker for the module (free ports, retention checked every second); each test has its own
topic, lake and checkpoint. The crash tests run `tickerlake drain` as a child process in its own
process group with TICKERLAKE_DRAIN_FAULT set: the drain SIGKILLs its whole group (Python driver
and JVM) at the named point, and the test reads the checkpoint and the Delta logs to prove which
window it died in before the rerun.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tickerlake import lake
from tickerlake.intraday import drain as drain_mod
from tickerlake.intraday.replay import ensure_topic, publish, synthetic_bars
from tickerlake.intraday.schema import classify, encode_bar
from tickerlake.kafka_broker import start_broker, stop_broker
from tickerlake.procs import free_port
from tickerlake.settings import Settings

pytestmark = pytest.mark.integration

UTC = dt.UTC


@pytest.fixture(scope="module")
def broker(make_settings, tmp_path_factory) -> Settings:
    port, controller = free_port(), free_port()
    settings = make_settings(tmp_path_factory.mktemp("broker") / "home", kafka_port=port,
                             kafka_controller_port=controller, kafka_bootstrap=f"127.0.0.1:{port}",
                             kafka_retention_check_ms=1000, spark_driver_memory="1g")
    start_broker(settings)
    yield settings
    stop_broker(settings)


@pytest.fixture(scope="module")
def spark(broker):
    from tickerlake.spark import get_spark

    session = get_spark(broker, "test-intraday")
    yield session
    session.stop()


def _settings(broker: Settings, tmp_path: Path, topic: str, **changes) -> Settings:
    home = tmp_path / "home"
    return dataclasses.replace(broker, home=home, lake_root=f"file://{home / 'lake'}", intraday_topic=topic,
                               **changes)


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TICKERLAKE_", "PYSPARK_", "SPARK_"))}
    env.update({
        "TICKERLAKE_HOME": str(settings.home), "TICKERLAKE_JARS_DIR": str(settings.jars_dir),
        "TICKERLAKE_LAKE_ROOT": settings.lake_root, "TICKERLAKE_KAFKA_PORT": str(settings.kafka_port),
        "TICKERLAKE_KAFKA_CONTROLLER_PORT": str(settings.kafka_controller_port),
        "TICKERLAKE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap, "TICKERLAKE_INTRADAY_TOPIC": settings.intraday_topic,
        "TICKERLAKE_INTRADAY_MAX_OFFSETS_PER_TRIGGER": str(settings.intraday_max_offsets_per_trigger),
        "TICKERLAKE_SPARK_DRIVER_MEMORY": "1g", **extra,
    })
    return env


def _drain_child(settings: Settings, run_id: str, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tickerlake.cli", "drain", "--run-id", run_id],
                          env=_env(settings, **extra), capture_output=True, text=True, timeout=600,
                          start_new_session=True)


def _bronze(settings: Settings):
    return lake.read_table(settings, drain_mod.BRONZE)


def _bars(n_tickers: int, day: dt.date, settings: Settings):
    return synthetic_bars(dataclasses.replace(settings, universe_size=n_tickers), day, day)


def test_poison_messages_go_to_quarantine_and_the_rest_land(broker, spark, tmp_path):
    settings = _settings(broker, tmp_path, "poison")
    t0 = dt.datetime(2026, 3, 10, 13, 30, tzinfo=UTC)
    good = [(f"T{i}".encode(), encode_bar(f"T{i}", t0, 10.0, 11.0, 9.5, 10.5, 1000.0, "test")) for i in range(20)]
    body = json.loads(encode_bar("ZZ", t0, 10.0, 11.0, 9.5, 10.5, 1000.0, "test"))
    poison = {
        b"not json {": "bad_json",
        b"\xff\xfe\x00garbage": "bad_json",
        b'{"schema": "tickerlake.bar_5m", "version": 1, "open": NaN}': "bad_json",
        b"[1, 2, 3]": "wrong_schema",
        json.dumps({**body, "version": 2}).encode(): "wrong_schema",
        json.dumps({**body, "schema": "other"}).encode(): "wrong_schema",
        json.dumps({k: v for k, v in body.items() if k != "close"}).encode(): "wrong_schema",
        json.dumps({**body, "open": "10.0"}).encode(): "wrong_schema",
        json.dumps({**body, "ticker": 123}).encode(): "wrong_schema",
        json.dumps({**body, "ts": "2026-03-10 13:30"}).encode(): "wrong_schema",
        json.dumps({**body, "ts": "2026-02-30T13:30:00Z"}).encode(): "wrong_schema",
        json.dumps({**body, "ts": "2300-03-10T14:30:00Z"}).encode(): "wrong_schema",  # past pandas' years
        json.dumps({**body, "low": -1.0}).encode(): "negative_price",
        json.dumps({**body, "volume": -5}).encode(): "negative_volume",
        json.dumps({**body, "high": 9.0}).encode(): "high_below_low",
        b'"a string"': "wrong_schema",
        b"42": "wrong_schema",
        b"null": "wrong_schema",
        json.dumps({**body, "close": None}).encode(): "wrong_schema",
        json.dumps({**body, "version": 4294967296}).encode(): "wrong_schema",  # past INT: no failed cast
        # a field only inside a nested object is not the field
        json.dumps({**{k: v for k, v in body.items() if k != "source"}, "extra": {"source": "x"}}).encode():
            "wrong_schema",
    }
    for payload, rule in poison.items():  # the Python reading agrees with the table below
        assert classify(payload)[0] == rule, payload
    messages = good[:10] + [(b"ZZ", p) for p in poison] + good[10:]
    ensure_topic(settings, "poison", partitions=1)
    publish(settings, messages, topic="poison")

    summary = drain_mod.drain(spark, settings, "run-poison")

    assert summary["messages"] == len(messages) and summary["quarantined"] == len(poison)
    bronze = _bronze(settings)
    assert len(bronze) == len(messages)
    assert sorted(bronze["offset"]) == list(range(len(messages)))  # one partition: offsets 0..n-1
    quarantine = lake.read_table(settings, drain_mod.QUARANTINE)
    got = {bytes(p): r for p, r in zip(quarantine["payload"], quarantine["rule"], strict=True)}
    assert got == poison  # each dead letter with its raw payload and its reason
    assert set(quarantine["severity"]) == {"reject"} and set(quarantine["run_id"]) == {"run-poison"}
    silver = lake.read_table(settings, drain_mod.SILVER)
    assert sorted(silver["ticker"]) == sorted(f"T{i}" for i in range(20))
    assert (silver["ts"] == t0).all() and (silver["close"] == 10.5).all()

    # A second drain with nothing new writes nothing.
    again = drain_mod.drain(spark, settings, "run-poison-2")
    assert again["messages"] == 0 and len(_bronze(settings)) == len(messages)


def test_bars_the_intraday_suite_rejects_are_dead_letters_and_warned_bars_land(broker, spark, tmp_path):
    """Bars that parse but break Great Expectations' intraday suite: a reject is a dead letter (bronze
    valid false with its rule, a quarantine row, no silver row), a warning a quarantine row whose bar lands."""
    settings = _settings(broker, tmp_path, "suite")
    t0 = dt.datetime(2026, 3, 10, 13, 30, tzinfo=UTC)  # 09:30 New York: the open
    friday = dt.datetime(2026, 11, 27, 17, 55, tzinfo=UTC)  # after Thanksgiving: the close is 13:00 New York

    def bar(ticker: str, ts: dt.datetime, o=10.0, h=11.0, lo=9.5, c=10.5) -> tuple[bytes, bytes]:
        return ticker.encode(), encode_bar(ticker, ts, o, h, lo, c, 1000.0, "test")

    good = [bar(f"G{i}", t0) for i in range(5)] + [bar("EARLY", friday)]  # 12:55 New York: the early close's last bar
    rejected = {
        bar("ZERO", t0, o=0.0, lo=0.0): {"positive_open", "positive_low"},
        bar("HIOPEN", t0, o=11.5): {"high_ge_open"},
        bar("LATE", t0 + dt.timedelta(hours=7)): {"ts_in_session"},  # 16:30 New York
        bar("SUNDAY", dt.datetime(2026, 3, 8, 15, 0, tzinfo=UTC)): {"ts_in_session"},
        bar("PASTCLOSE", friday + dt.timedelta(minutes=5)): {"ts_in_session"},  # 13:00 New York on an early close
    }
    warned = bar("OFFGRID", t0 + dt.timedelta(minutes=2))  # 09:32: off the 5-minute grid, flagged and landed
    # a correction the suite rejects, in the same batch as its bar: the bar lands, as it would in an earlier batch
    fixed, bad_fix = bar("FIXED", t0, c=10.25), bar("FIXED", t0, o=11.5)
    ensure_topic(settings, "suite", partitions=1)
    publish(settings, [*good, *rejected, warned, fixed, bad_fix], topic="suite")

    summary = drain_mod.drain(spark, settings, "run-suite")

    assert summary["messages"] == len(good) + len(rejected) + 3
    assert summary["quarantined"] == len(rejected) + 1
    assert sum(b["suite_rejected"] for b in summary["batches"]) == len(rejected) + 1
    assert sum(b["suite_warned"] for b in summary["batches"]) == 1
    quarantine = lake.read_table(settings, drain_mod.QUARANTINE)
    by_ticker = quarantine.groupby("ticker")["rule"].agg(set).to_dict()
    assert by_ticker == {**{k.decode(): rules for (k, _), rules in rejected.items()}, "OFFGRID": {"ts_on_bar_grid"},
                         "FIXED": {"high_ge_open"}}
    assert set(quarantine.loc[quarantine["ticker"] == "OFFGRID", "severity"]) == {"warn"}
    assert set(quarantine.loc[quarantine["ticker"] != "OFFGRID", "severity"]) == {"reject"}
    assert {bytes(p) for p in quarantine["payload"]} == {v for _, v in [*rejected, warned, bad_fix]}  # the raw message
    values = json.loads(quarantine.loc[quarantine["ticker"] == "HIOPEN", "values"].iloc[0])
    assert values["open"] == 11.5 and values["high"] == 11.0
    bronze = _bronze(settings).set_index("ticker")
    assert not bronze.loc[[k.decode() for k, _ in rejected], "valid"].any()
    assert bronze.loc["HIOPEN", "rule"] == "high_ge_open" and bronze.loc["LATE", "rule"] == "ts_in_session"
    assert bronze.loc[["G0", "EARLY", "OFFGRID"], "valid"].all() and bronze.loc[["G0", "OFFGRID"], "rule"].isna().all()
    silver = lake.read_table(settings, drain_mod.SILVER)
    assert sorted(silver["ticker"]) == sorted([*(f"G{i}" for i in range(5)), "EARLY", "OFFGRID", "FIXED"])
    assert silver.loc[silver["ticker"] == "FIXED", "close"].tolist() == [10.25]  # the bar, not the rejected correction


def test_silver_keeps_one_row_per_ticker_and_ts_the_latest_message_wins(broker, spark, tmp_path):
    settings = _settings(broker, tmp_path, "dupes")
    t0 = dt.datetime(2026, 3, 10, 13, 30, tzinfo=UTC)
    first = [(b"AAA", encode_bar("AAA", t0, 10.0, 11.0, 9.0, 10.0, 100.0, "test"))]
    publish(settings, first, topic="dupes")
    drain_mod.drain(spark, settings, "r1")
    corrected = [(b"AAA", encode_bar("AAA", t0, 10.0, 11.0, 9.0, 10.2, 120.0, "test")),
                 (b"AAA", encode_bar("AAA", t0 + dt.timedelta(minutes=5), 10.2, 10.4, 10.1, 10.3, 90.0, "test"))]
    publish(settings, corrected, topic="dupes")
    drain_mod.drain(spark, settings, "r2")
    assert len(_bronze(settings)) == 3  # every message
    silver = lake.read_table(settings, drain_mod.SILVER).sort_values("ts")
    assert list(silver["close"]) == [10.2, 10.3] and list(silver["volume"]) == [120.0, 90.0]


@pytest.mark.parametrize("point", ["after_delta_commit", "before_delta_commit", "between_tables"])
def test_exactly_once_across_a_kill(broker, spark, tmp_path, point):
    """N messages in two micro-batches (maxOffsetsPerTrigger); the drain is SIGKILLed at `point` of batch 1;
    the checkpoint shows batch 1 planned (offsets/1) and not committed (commits/1); the Delta logs show
    whether batch 1 was written; the rerun lands exactly N bronze rows, each offset once."""
    topic = f"eo_{point}"
    settings = _settings(broker, tmp_path, topic, intraday_max_offsets_per_trigger=600)
    ensure_topic(settings, topic, partitions=2)
    bars = _bars(10, dt.date(2026, 3, 10), settings)  # 10 tickers x 78 bars = 780
    poison = [(b"BAD", b"{oops")] * 20
    publish(settings, bars, topic=topic)
    publish(settings, poison, topic=topic)
    n = len(bars) + len(poison)

    killed = _drain_child(settings, f"run-kill-{point}", TICKERLAKE_DRAIN_FAULT=f"{point}@1")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    state = drain_mod.checkpoint_state(settings)
    assert state == {"offsets": [0, 1], "commits": [0]}, state  # died inside batch 1
    bronze_txn = drain_mod.committed_txn(settings, drain_mod.BRONZE)
    silver_txn = drain_mod.committed_txn(settings, drain_mod.SILVER)
    assert len(bronze_txn) == 1
    (app_id,) = bronze_txn
    written_before = len(_bronze(settings))
    if point == "after_delta_commit":
        assert bronze_txn[app_id] == 1 and silver_txn[app_id] == 1  # batch 1 is in Delta already
        assert written_before == n
    elif point == "between_tables":
        assert bronze_txn[app_id] == 1 and silver_txn[app_id] == 0  # bronze has batch 1, silver not yet
        assert written_before == n
    else:
        assert bronze_txn[app_id] == 0 and silver_txn[app_id] == 0  # only batch 0 written
        assert written_before < n

    rerun = _drain_child(settings, f"run-rerun-{point}")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    summary = json.loads(rerun.stdout)
    assert summary["app_id"] == app_id  # the same query (checkpoint): the same transaction ids
    assert [b["batch_id"] for b in summary["batches"]] == [1]  # batch 1 replayed, with its own id
    replayed = summary["batches"][0]
    if point == "after_delta_commit":
        assert replayed["commits"]["bronze.bars_intraday"] == 0  # Delta skipped the known transaction
        assert replayed["commits"]["silver.bars_intraday"] == 0
    elif point == "between_tables":
        assert replayed["commits"]["bronze.bars_intraday"] == 0
        assert replayed["commits"]["silver.bars_intraday"] == 1
    else:
        assert replayed["commits"]["bronze.bars_intraday"] == 1
    assert drain_mod.checkpoint_state(settings) == {"offsets": [0, 1], "commits": [0, 1]}

    bronze = _bronze(settings)
    assert len(bronze) == n  # none lost, none twice
    assert not bronze.duplicated(["partition", "offset"]).any()
    assert int((bronze["rule"] == "bad_json").sum()) == len(poison)
    assert len(lake.read_table(settings, drain_mod.QUARANTINE)) == len(poison)
    silver = lake.read_table(settings, drain_mod.SILVER)
    assert len(silver) == len(bars) and not silver.duplicated(["ticker", "ts"]).any()


def _set_topic_config(settings: Settings, topic: str, key: str, value: str) -> None:
    from confluent_kafka.admin import (
        AdminClient,
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        ResourceType,
    )

    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    entry = ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[entry])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(30)


def test_offsets_past_retention_fail_the_drain_loudly(broker, spark, tmp_path):
    from confluent_kafka import Consumer, TopicPartition

    topic = "retention"
    settings = _settings(broker, tmp_path, topic)
    ensure_topic(settings, topic, partitions=1, config={"segment.ms": "200", "file.delete.delay.ms": "0"})
    t0 = dt.datetime(2026, 3, 10, 13, 30, tzinfo=UTC)

    def batch(k: int):
        return [(b"AAA", encode_bar("AAA", t0 + dt.timedelta(minutes=5 * (k * 10 + i)), 10, 11, 9, 10, 1, "t"))
                for i in range(10)]

    publish(settings, batch(0), topic=topic)
    assert drain_mod.drain(spark, settings, "r1")["messages"] == 10  # checkpoint at offset 10
    _set_topic_config(settings, topic, "retention.ms", "1000")  # now a tiny retention
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "probe"})
    try:
        deadline = time.monotonic() + 90
        k = 1
        while time.monotonic() < deadline:  # new segments roll, old ones expire
            publish(settings, batch(k), topic=topic)
            k += 1
            low, _high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
            if low > 10:
                break
            time.sleep(1.0)
        assert low > 10, f"retention did not delete offsets 10..{low} in time"
    finally:
        consumer.close()
    before = len(_bronze(settings))
    with pytest.raises(drain_mod.DrainError) as err:
        drain_mod.drain(spark, settings, "r2")
    assert str(err.value).startswith("data loss on retention:"), str(err.value)
    assert "Some data may have been lost" in str(err.value.__cause__)  # Spark's own failOnDataLoss error
    assert len(_bronze(settings)) == before  # nothing written past the hole
    assert drain_mod.checkpoint_state(settings)["commits"] == [0]


def test_broker_restart_in_the_middle_of_a_drain(make_settings, tmp_path):
    """A broker of its own (the module's stays up): stopped and started again while a drain runs in small
    batches; every acknowledged message lands in bronze exactly once."""
    port, controller = free_port(), free_port()
    own = make_settings(tmp_path / "broker", kafka_port=port, kafka_controller_port=controller,
                        kafka_bootstrap=f"127.0.0.1:{port}")
    topic = "restart"
    settings = _settings(own, tmp_path, topic, intraday_max_offsets_per_trigger=150)
    start_broker(own)
    try:
        ensure_topic(settings, topic, partitions=2)
        bars = _bars(10, dt.date(2026, 3, 10), settings)  # 780 messages, about 6 batches
        acked = publish(settings, bars, topic=topic)["messages"]
        child = subprocess.Popen([sys.executable, "-m", "tickerlake.cli", "drain", "--run-id", "restart"],
                                 env=_env(settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 start_new_session=True)
        try:
            deadline = time.monotonic() + 300
            while not drain_mod.checkpoint_state(settings)["commits"] and time.monotonic() < deadline:
                assert child.poll() is None, child.communicate()[1][-3000:]
                time.sleep(0.2)
            assert drain_mod.checkpoint_state(settings)["commits"], "the drain committed no batch in time"
            assert stop_broker(own)
            at_stop = drain_mod.checkpoint_state(settings)
            assert child.poll() is None  # the drain is still running, without a broker
            time.sleep(3)
            start_broker(own)
            more = _bars(10, dt.date(2026, 3, 11), settings)  # and new messages after the restart
            acked += publish(settings, more, topic=topic)["messages"]
            out, err = child.communicate(timeout=600)
        finally:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
        assert child.returncode == 0, err[-3000:]
        done = [b["batch_id"] for b in json.loads(out)["batches"]]
        assert max(done) > max(at_stop["commits"])  # batches committed after the restart: it fell inside
        again = _drain_child(settings, "restart-2")  # whatever arrived after the first drain's end offsets
        assert again.returncode == 0, again.stderr[-3000:]
    finally:
        stop_broker(own)
    bronze = _bronze(settings)
    assert len(bronze) == acked == 2 * 780
    assert not bronze.duplicated(["partition", "offset"]).any()
    silver = lake.read_table(settings, drain_mod.SILVER)
    assert len(silver) == acked and not silver.duplicated(["ticker", "ts"]).any()
