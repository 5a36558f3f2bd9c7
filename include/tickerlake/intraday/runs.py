"""ops.pipeline_runs rows for the intraday runs (drain, scoring): counts and latency p50/p95.

Latency stages per message: bar time (exchange time of the bar's end) -> reached Kafka (the
broker's append time) -> drained (Delta commit) -> scored (prediction commit). The figures are
measurements: they read the wall clock and decide nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pyarrow as pa

from tickerlake import lake
from tickerlake.settings import Settings

TABLE = "ops.pipeline_runs"
SCHEMA = pa.schema([
    ("run_id", pa.string()), ("pipeline", pa.string()), ("status", pa.string()),
    ("started_ts", pa.timestamp("us", tz="UTC")), ("finished_ts", pa.timestamp("us", tz="UTC")),
    ("seconds", pa.float64()), ("rows", pa.int64()), ("quarantined", pa.int64()),
    ("latency_p50_s", pa.float64()), ("latency_p95_s", pa.float64()), ("metrics", pa.string()),
])


def record_run(settings: Settings, run_id: str, pipeline: str, summary: dict[str, Any], rows: int,
               quarantined: int = 0, latency_p50_s: float | None = None, latency_p95_s: float | None = None,
               status: str = "ok") -> int:
    """Append one run's row (append-only: a rerun adds its own row); returns the table version."""
    def ts(text: str | None):
        return None if text is None else dt.datetime.fromisoformat(text).astimezone(dt.UTC)

    row = {
        "run_id": [run_id], "pipeline": [pipeline], "status": [status],
        "started_ts": [ts(summary.get("started_ts"))], "finished_ts": [ts(summary.get("finished_ts"))],
        "seconds": [summary.get("seconds")], "rows": [int(rows)], "quarantined": [int(quarantined)],
        "latency_p50_s": [latency_p50_s], "latency_p95_s": [latency_p95_s],
        "metrics": [json.dumps(summary, default=str, sort_keys=True)],
    }
    return lake.append(settings, TABLE, pa.Table.from_pydict(row, schema=SCHEMA))


def run_latency(batches: list[dict[str, Any]]) -> tuple[float | None, float | None]:
    """A drain's (p50, p95) of Kafka append -> Delta commit from its batches' figures: the row-weighted
    median of the batches' p50s and the largest batch p95 (an upper bound of the run's p95)."""
    done = [b for b in batches if b.get("rows") and b.get("drain_latency_p50_s") is not None]
    if not done:
        return None, None
    ordered = sorted(done, key=lambda b: b["drain_latency_p50_s"])
    half, seen, p50 = sum(b["rows"] for b in done) / 2, 0, ordered[-1]["drain_latency_p50_s"]
    for b in ordered:
        seen += b["rows"]
        if seen >= half:
            p50 = b["drain_latency_p50_s"]
            break
    return p50, max(b["drain_latency_p95_s"] for b in done)
