"""`tickerlake setup`: everything a fresh machine needs beyond the Python packages. Idempotent."""

from __future__ import annotations

import time
from collections.abc import Callable

from tickerlake.settings import Settings


def setup(settings: Settings, progress: Callable[[str], None] = print) -> dict:
    from tickerlake.altdata.macro import ensure_macro_daily
    from tickerlake.feast_store import apply as feast_apply
    from tickerlake.jars import check_java, ensure_jars
    from tickerlake.services import init_airflow
    from tickerlake.spark import write_spark_conf

    started = time.monotonic()  # wall-clock ok: timing display
    progress(f"Java: {check_java()}")
    for folder in (settings.home, settings.logs_dir, settings.reports_dir, settings.outbox_dir,
                   settings.feast_dir, settings.mlflow_artifacts, settings.kafka_dir):
        folder.mkdir(parents=True, exist_ok=True)
    progress("pinned JVM jars (Delta, Spark Kafka connector, Kafka broker)")
    jars = ensure_jars(settings, progress=progress)
    write_spark_conf(settings)
    progress("Airflow metadata database")
    init_airflow(settings)
    upgraded = ensure_macro_daily(settings)
    if upgraded:
        progress(f"gold.macro_daily written for the {upgraded} sessions of gold.features_daily")
    progress("feast apply")
    applied = feast_apply(settings)
    return {
        "home": str(settings.home),
        "jars": {group: len(files) for group, files in jars.items()},
        "feast_objects": len(applied),
        "seconds": round(time.monotonic() - started, 1),  # wall-clock ok: timing display
    }
