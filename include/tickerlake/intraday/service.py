"""The intraday steps as plain functions of (settings, run id): the CLI, the Spark job and the DAG call these."""

from __future__ import annotations

import logging
from typing import Any

from tickerlake.settings import Settings

log = logging.getLogger(__name__)


def drain_and_record(settings: Settings, run_id: str, topic: str | None = None) -> dict[str, Any]:
    """One drain (tickerlake.intraday.drain) in this process's Spark, then its ops.pipeline_runs row."""
    from tickerlake.intraday.drain import drain
    from tickerlake.intraday.runs import record_run, run_latency
    from tickerlake.spark import get_spark

    spark = get_spark(settings, "tickerlake-intraday-drain")
    summary = drain(spark, settings, run_id, topic=topic)
    p50, p95 = run_latency(summary["batches"])
    record_run(settings, run_id, "intraday_drain", summary, rows=summary["messages"],
               quarantined=summary["quarantined"], latency_p50_s=p50, latency_p95_s=p95)
    return summary
