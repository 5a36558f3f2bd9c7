"""The bar-to-prediction part of `bench drain` on a small tier, for real: a built lake with a registered
champion, Feast apply and materialize, bars on a real broker, `tickerlake drain` and scoring each in a fresh
process, the predictions in Delta and pushed to the online store."""

from __future__ import annotations

import dataclasses

import pytest

from tickerlake.intraday.bench import GOAL_BAR_TO_PREDICTION_P95_S, bench_latency
from tickerlake.kafka_broker import start_broker, stop_broker
from tickerlake.procs import free_port

pytestmark = pytest.mark.integration

SPEC = {"tickers": 30, "start": "2025-01-02", "end": "2025-12-31"}


def test_one_intraday_run_scores_every_ticker_and_is_timed_from_its_start(make_settings, tmp_path):
    port, controller = free_port(), free_port()
    broker = make_settings(tmp_path / "broker", kafka_port=port, kafka_controller_port=controller,
                           kafka_bootstrap=f"127.0.0.1:{port}")
    broker = dataclasses.replace(broker, spark_driver_memory="1g")
    start_broker(broker)
    try:
        f = bench_latency(broker, tmp_path / "latency", SPEC, progress=print)
    finally:
        stop_broker(broker)

    assert f["session"] == "2026-01-02"  # the session after the lake's last one
    assert f["bars"] == f["drained"] == f["scored"] == f["online_rows"] == SPEC["tickers"]
    p50, p95 = f["run_start_to_prediction_p50_s"], f["run_start_to_prediction_p95_s"]
    # one run scores every ticker at once: its predictions land after the drain process and within both
    assert f["drain_process_s"] < p50 <= p95 <= f["drain_process_s"] + f["score_process_s"] + 1
    # each bar reached Kafka before the run started, so Kafka -> scored is the longer span
    assert f["kafka_to_scored_p95_s"] >= p95
    assert f["goal_p95_60s"] == (p95 <= GOAL_BAR_TO_PREDICTION_P95_S)
