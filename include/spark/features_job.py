"""Spark entry point: silver bars, gold features and labels for an interval.

Submitted by SparkSubmitOperator (connection `spark_default`) or `tickerlake features`;
on a cluster the `tickerlake` package ships with --py-files.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json

from tickerlake import features
from tickerlake.settings import load_settings
from tickerlake.spark import get_spark


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--start", required=True, type=dt.date.fromisoformat)
    parser.add_argument("--end", required=True, type=dt.date.fromisoformat)
    parser.add_argument("--mode", choices=["backfill", "incremental"], default="incremental")
    args = parser.parse_args(argv)
    settings = load_settings()
    spark = get_spark(settings, f"tickerlake-features-{args.mode}")
    try:
        summary = features.run(spark, settings, args.start, args.end)
    finally:
        spark.stop()
    print(json.dumps({"job": "features", "mode": args.mode, **summary}))


if __name__ == "__main__":
    main()
