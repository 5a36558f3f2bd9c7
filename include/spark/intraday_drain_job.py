"""Spark entry point: one exactly-once drain of the intraday topic into Delta (tickerlake.intraday.drain).

Submitted by the intraday DAG (SparkSubmitOperator, connection `spark_default`) and run in process
by `tickerlake drain`: the same package function either way.
"""

from __future__ import annotations

import argparse
import json

from tickerlake.intraday.service import drain_and_record
from tickerlake.settings import load_settings
from tickerlake.spark import get_spark


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--topic", default=None)
    args = parser.parse_args(argv)
    settings = load_settings()
    spark = get_spark(settings, "tickerlake-intraday-drain")
    try:
        summary = drain_and_record(settings, args.run_id, topic=args.topic)
    finally:
        spark.stop()
    print(json.dumps({"job": "intraday_drain", **summary}, default=str))


if __name__ == "__main__":
    main()
