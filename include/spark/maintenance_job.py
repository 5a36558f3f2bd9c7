"""Spark entry point: compact (OPTIMIZE, Z-ordered by ticker) and VACUUM the silver and gold tables,
keeping every Delta version a registered model version was trained on.

Submitted by SparkSubmitOperator (connection `spark_default`, DAG `tickerlake_maintenance`) or
`tickerlake maintenance`; on a cluster the `tickerlake` package ships with --py-files.
"""

from __future__ import annotations

import argparse
import json

from tickerlake import maintenance
from tickerlake.settings import load_settings
from tickerlake.spark import get_spark


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--table", action="append", default=[], metavar="LAYER.TABLE",
                        help="a table to maintain (repeatable; default: the silver and gold tables that exist)")
    parser.add_argument("--dry-run", action="store_true", help="report what would be done; change nothing")
    args = parser.parse_args(argv)
    settings = load_settings()
    spark = get_spark(settings, "tickerlake-maintenance")
    try:
        summary = maintenance.run_maintenance(spark, settings, args.table or None, dry_run=args.dry_run)
    finally:
        spark.stop()
    print(json.dumps({"job": "maintenance", **summary}, default=str))


if __name__ == "__main__":
    main()
