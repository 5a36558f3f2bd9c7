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

Then bar-to-prediction for LATENCY_SPEC's 500 tickers (tier `latency`; `--tiers 100k latency` runs a
subset): a lake built as `bench predict` builds its tiers (synthetic daily bars, reference
features, a registered champion with its calibration), `feast apply` and the last session's daily features
materialized; the next session's first 5-minute bar of every ticker published; then one intraday run as the
DAG runs it: `tickerlake drain` in a fresh process, then `tickerlake score-intraday` (score_and_record, the
DAG's scoring task) in another. Per scored row: scored_ts minus the run's start (the goal's figure: p95 <= 60 s),
and Kafka's append time to scored_ts (the stage latencies scoring records in ops.pipeline_runs). The bars'
own exchange times lie in the synthetic session, not today, so bar-end-to-scored is not a latency here and is
not reported.

Timings are wall-clock (time.perf_counter): this module measures, it decides nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tickerlake.bench import report_header, write_report
from tickerlake.procs import free_port
from tickerlake.settings import Settings

TIERS = {"100k": 100_000, "1M": 1_000_000}
TICKERS = 500
GOAL_MESSAGES_PER_S = 50_000
GOAL_EMPTY_RUN_S = 20.0
LATENCY = "latency"
LATENCY_SPEC = {"tickers": TICKERS, "start": "2024-01-02", "end": "2025-12-31"}
GOAL_BAR_TO_PREDICTION_P95_S = 60.0


def bench_messages(n: int, tickers: int = TICKERS) -> list[tuple[bytes, bytes]]:
    """n valid schema-v1 messages: `tickers` names, each with the 5-minute bars of consecutive sessions
    from 2026-01-05 on (inside the session's hours, as the drain's intraday suite wants them)."""
    import numpy as np

    from tickerlake.calendar import sessions_between
    from tickerlake.intraday.replay import session_bar_starts
    from tickerlake.intraday.schema import format_ts

    names = [f"B{i:04d}" for i in range(tickers)]
    rng = np.random.default_rng(7)
    price = 50 + 100 * rng.random(n)
    bars_per_ticker = -(-n // tickers)
    starts: list[str] = []
    for day in sessions_between(dt.date(2026, 1, 5), dt.date(2030, 12, 31)):
        starts += [format_ts(ts) for ts in session_bar_starts(day)]
        if len(starts) >= bars_per_ticker:
            break
    out = []
    for i in range(n):
        t, k = divmod(i, tickers)
        p = round(float(price[i]), 4)
        value = (f'{{"schema":"tickerlake.bar_5m","version":1,"ticker":"{names[k]}","ts":"{starts[t]}","open":{p},'
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


def _child_env(settings: Settings) -> dict[str, str]:
    """The environment a fresh process needs to load these settings (as an Airflow task would)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSPARK_", "SPARK_"))}
    env.update({"TICKERLAKE_HOME": str(settings.home), "TICKERLAKE_JARS_DIR": str(settings.jars_dir),
                "TICKERLAKE_CACHE_DIR": str(settings.cache_dir),
                "TICKERLAKE_LAKE_ROOT": settings.lake_root, "TICKERLAKE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
                "TICKERLAKE_KAFKA_PORT": str(settings.kafka_port), "TICKERLAKE_INTRADAY_TOPIC": settings.intraday_topic,
                "TICKERLAKE_INTRADAY_CHECKPOINT": settings.intraday_checkpoint_dir,
                "TICKERLAKE_MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri})
    return env


def _run_child(settings: Settings, args: list[str], what: str) -> tuple[float, dict]:
    """Run `python <args>` with the settings' environment; (seconds from spawn to exit, the JSON object its
    stdout ends with: the whole of it, or else from its last line that opens an object, for a child whose
    libraries print before it; the CLI prints its result indented, so only that line starts with `{`)."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, *args], env=_child_env(settings), capture_output=True, text=True,
                          timeout=1800)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    text = proc.stdout.strip()
    return seconds, json.loads(text[text.rfind("\n{") + 1:])


def _drain_child(settings: Settings, run_id: str) -> tuple[float, dict]:
    return _run_child(settings, ["-m", "tickerlake.cli", "drain", "--run-id", run_id], "drain")


def _score_child(settings: Settings, session: dt.date, run_id: str) -> tuple[float, dict]:
    return _run_child(settings, ["-m", "tickerlake.cli", "score-intraday", "--session", session.isoformat(),
                                 "--run-id", run_id], "scoring")


def bench_drain(settings: Settings, out_path: str | os.PathLike[str], tiers: list[str] | None = None,
                progress: Callable[[str], None] = print) -> dict:
    from tickerlake.intraday.replay import ensure_topic, publish
    from tickerlake.kafka_broker import start_broker, stop_broker

    root = Path(settings.home) / "bench" / "drain"
    shutil.rmtree(root, ignore_errors=True)
    port, controller = free_port(), free_port()
    broker = dataclasses.replace(settings, home=root / "broker", kafka_port=port, kafka_controller_port=controller,
                                 kafka_bootstrap=f"127.0.0.1:{port}")
    report = report_header("drain", spark_master=settings.spark_master)
    wanted = list(tiers) if tiers else [*TIERS, LATENCY]
    start_broker(broker)
    try:
        for name in [t for t in wanted if t in TIERS]:
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
                "batch_phases_s": [b["phases_s"] for b in summary["batches"]],
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
        if LATENCY in wanted:
            report[LATENCY] = bench_latency(broker, root / LATENCY, LATENCY_SPEC, progress)
    finally:
        stop_broker(broker)
        shutil.rmtree(root, ignore_errors=True)
    out = Path(out_path)
    write_report(out, report)
    progress(f"wrote {out}")
    return report


def bench_latency(broker: Settings, home: Path, spec: dict, progress: Callable[[str], None] = print) -> dict:
    """One intraday run (drain, then scoring, each in a fresh process) over the first bar of the session after
    the built lake's last one, for every ticker of `spec`; the seconds from the run's start to each prediction."""
    import pandas as pd

    from tickerlake import lake
    from tickerlake.calendar import next_session, session_close_utc
    from tickerlake.feast_store import DAILY_FEATURE_VIEWS, apply, materialize_interval
    from tickerlake.intraday.replay import ensure_topic, publish, synthetic_bars
    from tickerlake.intraday.scoring import TABLE
    from tickerlake.predict_bench import build_tier, tier_settings

    s = dataclasses.replace(tier_settings(broker, home), universe_size=spec["tickers"],
                            history_start=spec["start"], intraday_topic="bench.bars.latency", intraday_checkpoint="")
    figures: dict = {"tickers": spec["tickers"], "interval": [spec["start"], spec["end"]]}
    t0 = time.perf_counter()
    build = build_tier(s, "latency", spec, progress)
    figures["build_s"] = round(time.perf_counter() - t0, 2)
    last = dt.date.fromisoformat(build["last_session"])
    session = next_session(last)
    t0 = time.perf_counter()
    apply(s)
    close = session_close_utc(last)
    materialize_interval(s, close, close + dt.timedelta(microseconds=1), list(DAILY_FEATURE_VIEWS))
    figures["feast_apply_materialize_s"] = round(time.perf_counter() - t0, 2)

    bars = synthetic_bars(s, session, session)
    first = bars[bars["ts"] == bars["ts"].min()]
    ensure_topic(s, s.intraday_topic, partitions=3)
    published = publish(s, first, source="synthetic")
    progress(f"latency: {published['messages']} bars of {session} published; one intraday run ...")

    started = pd.Timestamp.now(tz="UTC")  # wall clock: the run's start, compared with scored_ts
    drain_s, drained = _drain_child(s, "bench-latency")
    score_s, scored = _score_child(s, session, "bench-latency")
    if scored["status"] != "ok":
        raise RuntimeError(f"scoring did not score: {scored}")
    rows = lake.read_table(s, TABLE)
    after_start = (pd.to_datetime(rows["scored_ts"], utc=True) - started).dt.total_seconds()
    p95 = float(after_start.quantile(0.95))
    figures.update(
        session=session.isoformat(), bars=int(published["messages"]), drained=drained["messages"],
        scored=int(len(rows)), online_rows=scored["online_rows"], drain_process_s=round(drain_s, 2), score_process_s=round(score_s, 2),
        run_start_to_prediction_p50_s=round(float(after_start.quantile(0.5)), 2),
        run_start_to_prediction_p95_s=round(p95, 2),
        kafka_to_scored_p50_s=scored["kafka_to_scored_p50_s"], kafka_to_scored_p95_s=scored["kafka_to_scored_p95_s"],
        goal_p95_60s=p95 <= GOAL_BAR_TO_PREDICTION_P95_S,
    )
    progress(f"latency: {len(rows)} predictions; run start -> prediction p95 {figures['run_start_to_prediction_p95_s']}s "
             f"(drain process {figures['drain_process_s']}s, scoring process {figures['score_process_s']}s); "
             f"Kafka -> scored p95 {figures['kafka_to_scored_p95_s']}s")
    return figures
