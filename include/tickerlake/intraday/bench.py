"""Drain benchmark (`tickerlake bench drain --out FILE.json`): Kafka -> Delta throughput of `tickerlake drain`
beside a plain confluent-kafka consumer reading the same messages.

Per tier (100k and 1M messages of 500 tickers, schema v1, on a 3-partition topic of a broker of its own
on free 127.0.0.1 ports, in a fresh state folder under `<home>/bench/drain`):

- `drain_s`: `tickerlake drain` as a child process, timed from its start (interpreter, JVM and Spark
  session start included) to its exit: decode, validation, bronze + silver (+ quarantine) commits, the
  checkpoint and the ops row; `drain_messages_per_s` = messages / drain_s;
- `empty_drain_s`: the same command again with nothing new: the fixed cost of a run;
- `consumer_s`: a plain confluent-kafka consumer reading the same messages from the start and decoding
  each with `schema.classify` (nothing written), the Python reference; `ratio` = drain rate / consumer rate.

Timings are wall-clock (time.perf_counter): this module measures, it decides nothing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tickerlake.bench import report_header
from tickerlake.settings import Settings

TIERS = {"100k": 100_000, "1M": 1_000_000}
TICKERS = 500
GOAL_MESSAGES_PER_S = 50_000
GOAL_EMPTY_RUN_S = 20.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_messages(n: int, tickers: int = TICKERS) -> list[tuple[bytes, bytes]]:
    """n valid schema-v1 messages: `tickers` names, 5-minute bars from 2026-01-05 14:30 UTC on."""
    import numpy as np

    names = [f"B{i:04d}" for i in range(tickers)]
    rng = np.random.default_rng(7)
    price = 50 + 100 * rng.random(n)
    base = 1767623400  # 2026-01-05T14:30:00Z
    out = []
    for i in range(n):
        t, k = divmod(i, tickers)
        ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(base + 300 * t))  # formatting, not the clock
        p = round(float(price[i]), 4)
        value = (f'{{"schema":"tickerlake.bar_5m","version":1,"ticker":"{names[k]}","ts":"{ts}","open":{p},'
                 f'"high":{p + 0.5},"low":{p - 0.5},"close":{p + 0.1},"volume":{1000 + i % 977},'
                 f'"source":"bench"}}')
        out.append((names[k].encode(), value.encode()))
    return out


def plain_consumer(settings: Settings, topic: str, n: int, timeout_s: float = 600) -> dict:
    """Read n messages from the start of `topic` with confluent-kafka and decode each (schema.classify)."""
    from confluent_kafka import Consumer

    from tickerlake.intraday.schema import classify

    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": f"bench-{topic}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "fetch.max.bytes": 52428800, "max.partition.fetch.bytes": 10485760})
    t0 = time.perf_counter()
    consumer.subscribe([topic])
    seen = good = 0
    try:
        while seen < n and time.perf_counter() - t0 < timeout_s:
            for msg in consumer.consume(num_messages=10000, timeout=1.0):
                if msg.error():
                    raise RuntimeError(str(msg.error()))
                seen += 1
                good += classify(msg.value())[0] is None
    finally:
        consumer.close()
    seconds = time.perf_counter() - t0
    return {"messages": seen, "valid": good, "consumer_s": round(seconds, 2),
            "consumer_messages_per_s": round(seen / seconds)}


def _drain_child(settings: Settings, run_id: str) -> tuple[float, dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSPARK_", "SPARK_"))}
    env.update({"TICKERLAKE_HOME": str(settings.home), "TICKERLAKE_JARS_DIR": str(settings.jars_dir),
                "TICKERLAKE_LAKE_ROOT": settings.lake_root, "TICKERLAKE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
                "TICKERLAKE_KAFKA_PORT": str(settings.kafka_port), "TICKERLAKE_INTRADAY_TOPIC": settings.intraday_topic,
                "TICKERLAKE_INTRADAY_CHECKPOINT": settings.intraday_checkpoint_dir})
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "tickerlake.cli", "drain", "--run-id", run_id], env=env,
                          capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"drain failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return seconds, json.loads(proc.stdout)


def bench_drain(settings: Settings, out_path: str | os.PathLike[str], tiers: list[str] | None = None,
                progress: Callable[[str], None] = print) -> dict:
    from tickerlake.intraday.replay import ensure_topic, publish
    from tickerlake.kafka_broker import start_broker, stop_broker

    root = Path(settings.home) / "bench" / "drain"
    shutil.rmtree(root, ignore_errors=True)
    port, controller = _free_port(), _free_port()
    broker = dataclasses.replace(settings, home=root / "broker", kafka_port=port, kafka_controller_port=controller,
                                 kafka_bootstrap=f"127.0.0.1:{port}")
    report = report_header("drain", spark_master=settings.spark_master)
    start_broker(broker)
    try:
        for name in tiers or list(TIERS):
            n = TIERS[name]
            topic = f"bench.bars.{name}"
            s = dataclasses.replace(broker, home=root / name, lake_root=f"file://{root / name / 'lake'}",
                                    intraday_topic=topic, intraday_checkpoint="")
            ensure_topic(s, topic, partitions=3)
            progress(f"{name}: producing {n:,} messages ...")
            produced = publish(s, bench_messages(n), topic=topic)
            progress(f"{name}: drain (a fresh JVM) ...")
            drain_s, summary = _drain_child(s, f"bench-{name}")
            assert summary["messages"] == n, summary["messages"]
            empty_s, empty = _drain_child(s, f"bench-{name}-empty")
            assert empty["messages"] == 0
            progress(f"{name}: plain confluent-kafka consumer ...")
            reference = plain_consumer(s, topic, n)
            rate = n / drain_s
            figures = {
                "messages": n, "produce_messages_per_s": produced["messages_per_s"],
                "drain_s": round(drain_s, 2), "drain_messages_per_s": round(rate),
                "drain_batches": len(summary["batches"]),
                "drain_in_spark_s": summary["seconds"],
                "batch_seconds": [b["seconds"] for b in summary["batches"]],
                "empty_drain_s": round(empty_s, 2), **reference,
                "ratio_drain_to_consumer": round(rate / reference["consumer_messages_per_s"], 3),
                "goal_50k_per_s": rate >= GOAL_MESSAGES_PER_S, "goal_empty_run_20s": empty_s <= GOAL_EMPTY_RUN_S,
            }
            report["tiers"][name] = figures
            progress(f"{name}: drain {figures['drain_s']}s = {figures['drain_messages_per_s']:,} msg/s "
                     f"(JVM start included; in Spark {figures['drain_in_spark_s']}s); empty run "
                     f"{figures['empty_drain_s']}s; consumer {reference['consumer_messages_per_s']:,} msg/s; "
                     f"ratio {figures['ratio_drain_to_consumer']}")
            shutil.rmtree(root / name, ignore_errors=True)
    finally:
        stop_broker(broker)
        shutil.rmtree(root, ignore_errors=True)
    report["bar_to_prediction_p95_s"] = None
    report["bar_to_prediction_note"] = ("not measured here: needs a champion and materialized daily features "
                                        "(tickerlake.intraday.scoring records it per run in ops.pipeline_runs)")
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    progress(f"wrote {out}")
    return report
