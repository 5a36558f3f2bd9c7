"""`tickerlake`: the command line. It calls the same package functions as the DAG's tasks."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
import time
import traceback
from collections.abc import Callable

from tickerlake.settings import Settings, load_settings

DEMO_END = "2025-12-31"
DEMO_DAG_SESSIONS = 3


def _progress(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)  # wall-clock ok: progress display only


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from exc


# --- commands ------------------------------------------------------------------------------
def cmd_setup(settings: Settings, args: argparse.Namespace) -> dict:
    from tickerlake.bootstrap import setup

    return setup(settings, _progress)


def cmd_up(settings: Settings, args: argparse.Namespace) -> dict:
    from tickerlake.services import start_all

    return start_all(settings)


def cmd_down(settings: Settings, args: argparse.Namespace) -> dict:
    from tickerlake.services import stop_all

    return stop_all(settings)


def cmd_status(settings: Settings, args: argparse.Namespace) -> dict:
    from tickerlake.services import status_all

    return status_all(settings)


def cmd_ingest(settings: Settings, args: argparse.Namespace) -> dict:
    from tickerlake.ingest import land_bars, validate_interval

    run_id = f"cli__ingest__{args.start}__{args.end}"
    logical = dt.datetime.combine(args.end, dt.time(), tzinfo=dt.UTC)
    landed = land_bars(settings, args.source, args.start, args.end, run_id, logical, path=args.path)
    validated = validate_interval(settings, args.start, args.end, run_id)
    return {"landed": landed, "validated": validated}


def cmd_features(settings: Settings, args: argparse.Namespace) -> dict:
    from tickerlake.pipeline import features_in_process

    return features_in_process(settings, args.start, args.end)


def cmd_evaluate(settings: Settings, args: argparse.Namespace) -> dict:
    from tickerlake.walkforward import evaluate, finite

    figures = evaluate(settings, args.start, args.end, args.out)
    keys = ("rank_ic_mean", "rank_ic_t", "icir_annual", "sharpe_net_5bp", "turnover", "coverage", "best_baseline",
            "beats_every_baseline", "folds", "config_hash")
    return finite({**{k: figures[k] for k in keys}, "baselines": {n: {k: b[k] for k in keys[:5]}
                                                                 for n, b in figures["baselines"].items()},
                   "out": str(args.out)})


def cmd_rollback(settings: Settings, args: argparse.Namespace) -> dict:
    from tickerlake.training import rollback

    today = dt.datetime.now(dt.UTC).date()  # wall-clock ok: the date a person rolls back, when not given
    return rollback(settings, args.to, args.date or today, reason=args.reason)


def cmd_catalog(settings: Settings, args: argparse.Namespace) -> str:
    from tickerlake.catalog import catalogue_document

    return catalogue_document().rstrip("\n")  # print() adds the last newline


def cmd_backfill(settings: Settings, args: argparse.Namespace) -> dict:
    """Seed history: ingest + validate + features for a range, one write per table."""
    _progress(f"ingest {args.start} .. {args.end} from {args.source}")
    ingested = cmd_ingest(settings, args)
    _progress(f"landed {ingested['landed']['rows']} rows; {ingested['validated']['rows_rejected']} rejected")
    _progress("Spark features and labels")
    feats = cmd_features(settings, args)
    return {"ingest": ingested, "features": feats}


def cmd_train(settings: Settings, args: argparse.Namespace) -> dict:
    from tickerlake import lake
    from tickerlake.pipeline import train_and_promote
    from tickerlake.training import train

    asof = args.as_of
    if asof is None:  # the newest session with features
        days = lake.read_table(settings, "gold.features_daily", columns=["date"])["date"]
        if days.empty:
            raise ValueError("gold.features_daily is empty: run the backfill first")
        asof = max(days)
        asof = asof if isinstance(asof, dt.date) else asof.date()
    if args.no_promote:
        return train(settings, asof)
    return train_and_promote(settings, asof)


def cmd_promote(settings: Settings, args: argparse.Namespace) -> dict:
    from tickerlake.training import candidate_from_version, promote

    candidate = candidate_from_version(settings, args.version)
    return promote(settings, candidate, args.date or dt.date.fromisoformat(candidate["asof"]))


def cmd_predict(settings: Settings, args: argparse.Namespace) -> dict:
    from tickerlake.pipeline import predict

    return predict(settings, args.date, f"cli__predict__{args.date}")


def cmd_report(settings: Settings, args: argparse.Namespace) -> dict:
    from tickerlake.emailer import deliver
    from tickerlake.report import write_report

    runs = _latest_prediction_run(settings, args.date)
    report = write_report(settings, args.date, runs or "none")
    if args.dry_run:  # the same message the DAG sends, charts inline, written to disk
        report["eml"] = deliver(settings, args.date, report, None, "signals@tickerlake.local",
                                ["traders@tickerlake.local"])["path"]
    return report


def _latest_prediction_run(settings: Settings, day: dt.date) -> str | None:
    from tickerlake import lake

    if not lake.table_exists(settings, "gold.predictions_daily"):
        return None
    preds = lake.read_table(settings, "gold.predictions_daily", filters=[("asof_date", "=", day)],
                            columns=["run_id"])
    return str(preds["run_id"].iloc[-1]) if len(preds) else None


def cmd_serve_features(settings: Settings, args: argparse.Namespace) -> str:
    """The latest features and prediction of the tickers, from the Feast online store."""
    from tickerlake.feast_store import online_features
    from tickerlake.tickers import canonical_ticker

    frame = online_features(settings, [canonical_ticker(t) for t in args.tickers], args.feature or None)
    if args.format == "json":
        return frame.to_json(orient="records", indent=2)
    if args.format == "csv":
        return frame.to_csv(index=False)
    return frame.set_index("ticker").T.to_string()


def cmd_feature_server(settings: Settings, args: argparse.Namespace) -> dict:
    from tickerlake.feast_store import run_feature_server

    return {"exit_code": run_feature_server(settings, args.port)}


def cmd_sql(settings: Settings, args: argparse.Namespace) -> str | None:
    """Read-only DuckDB over the lake's Delta tables: one query, a curated query, or a session."""
    from tickerlake import sql

    params = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--param takes NAME=VALUE, got {item!r}")
        params[key.strip()] = value.strip()
    if args.curated:
        if args.query is not None:
            raise ValueError("give either a QUERY or --curated NAME, not both")
        return sql.format_result(sql.run_curated(settings, args.curated, params), args.format)
    if params:
        raise ValueError("--param goes with --curated")
    if args.query is not None:
        return sql.format_result(sql.query(settings, args.query), args.format)
    sql.interactive(settings, fmt=args.format)
    return None


def cmd_bench(settings: Settings, args: argparse.Namespace) -> dict:
    from tickerlake.bench import bench_ingest

    if args.what == "drain":
        from tickerlake.intraday.bench import bench_drain

        return bench_drain(settings, args.out, tiers=args.tiers, progress=_progress)
    if args.what == "feast":
        from tickerlake.feast_bench import bench_feast

        return bench_feast(settings, args.out, tiers=args.tiers, calls=args.calls, progress=_progress)
    if args.what == "features":
        from tickerlake.features_bench import bench_features

        return bench_features(settings, args.out, tiers=args.tiers, progress=_progress)
    if args.what == "predict":
        from tickerlake.predict_bench import bench_predict

        return bench_predict(settings, args.out, tiers=args.tiers, keep=args.keep, progress=_progress)
    if args.what == "train":
        from tickerlake.train_bench import bench_train

        return bench_train(settings, args.out, tiers=args.tiers, progress=_progress)
    if args.what != "ingest":
        raise ValueError(f"no benchmark {args.what!r} yet (available: ingest, drain, feast, features, predict, train)")
    return bench_ingest(settings, args.out, tiers=args.tiers, progress=_progress)


def cmd_replay(settings: Settings, args: argparse.Namespace) -> dict:
    from tickerlake.intraday.replay import replay

    return replay(settings, args.source, path=args.path, start=args.start, end=args.end, speed=args.speed,
                  topic=args.topic, progress=_progress)


def cmd_drain(settings: Settings, args: argparse.Namespace) -> dict:
    from tickerlake.intraday.service import drain_and_record

    run_id = args.run_id or f"cli__drain__{time.strftime('%Y%m%dT%H%M%S')}"  # wall-clock ok: a run label
    return drain_and_record(settings, run_id, topic=args.topic)


def cmd_score_intraday(settings: Settings, args: argparse.Namespace) -> dict:
    from tickerlake.intraday.scoring import score_and_record

    run_id = args.run_id or f"cli__score__{time.strftime('%Y%m%dT%H%M%S')}"  # wall-clock ok: a run label
    return score_and_record(settings, args.session, run_id)


def cmd_maintenance(settings: Settings, args: argparse.Namespace) -> dict:
    from tickerlake.maintenance import maintenance_in_process

    return maintenance_in_process(settings, args.table or None, dry_run=args.dry_run)


def cmd_demo(settings: Settings, args: argparse.Namespace) -> dict:
    from tickerlake.demo import run_demo

    return run_demo(settings, dt.date.fromisoformat(args.end), args.sessions, progress=_progress)


# --- parser ----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tickerlake", description=__doc__)
    parser.add_argument("--home", help="state folder (default: $TICKERLAKE_HOME or .state in the checkout)")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: Callable, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--home", help=argparse.SUPPRESS, default=argparse.SUPPRESS)
        p.set_defaults(func=func)
        return p

    add("setup", cmd_setup, "install what is missing: jars, state folder, Airflow DB, feast apply")
    add("up", cmd_up, "start Airflow, MLflow and the Kafka broker on 127.0.0.1")
    add("down", cmd_down, "stop the local services")
    add("status", cmd_status, "show the local services")
    add("catalog", cmd_catalog, "the feature catalogue as Markdown (docs/features.md)")
    p = add("rollback", cmd_rollback, "move alias champion back to a registered model version (recorded)")
    p.add_argument("--to", required=True, help="the model version that becomes champion")
    p.add_argument("--date", type=_date, help="decision date (default today)")
    p.add_argument("--reason", default="manual rollback")
    p = add("evaluate", cmd_evaluate, "walk-forward evaluation of the model and its baselines over a range (JSON)")
    p.add_argument("--start", type=_date, required=True)
    p.add_argument("--end", type=_date, required=True)
    p.add_argument("--out", required=True, help="JSON file for the figures")
    for name, func, text in (("ingest", cmd_ingest, "land and validate bars for a range"),
                             ("features", cmd_features, "Spark features and labels for a range"),
                             ("backfill", cmd_backfill, "ingest + validate + features for a range")):
        p = add(name, func, text)
        p.add_argument("--start", type=_date, required=True)
        p.add_argument("--end", type=_date, required=True)
        if name != "features":
            p.add_argument("--source", choices=["synthetic", "csv", "http"], default="synthetic")
            p.add_argument("--path", help="drop folder (csv source)")
        else:
            p.add_argument("--mode", choices=["backfill", "incremental"], default="backfill")
    p = add("train", cmd_train, "walk-forward, log the case to MLflow, register, then the promotion gate")
    p.add_argument("--as-of", type=_date, default=None, help="default: the newest session with features")
    p.add_argument("--no-promote", action="store_true", help="register the version only; gate it with `promote`")
    p = add("promote", cmd_promote, "the promotion gate for a registered version (default: the newest)")
    p.add_argument("--version", default=None)
    p.add_argument("--date", type=_date, default=None, help="decision date (default: the version's as-of date)")
    p = add("predict", cmd_predict, "predict the session after --date with the champion")
    p.add_argument("--date", type=_date, required=True)
    p = add("report", cmd_report, "render the signal report for --date")
    p.add_argument("--date", type=_date, required=True)
    p.add_argument("--dry-run", action="store_true", help="also write the email that would be sent")
    p = add("serve-features", cmd_serve_features, "latest online features and prediction for tickers (Feast)")
    p.add_argument("tickers", nargs="+", metavar="TICKER")
    p.add_argument("--feature", action="append", default=[], help="a feature or view:feature (repeatable; default all)")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p = add("feature-server", cmd_feature_server, "Feast's HTTP feature server on 127.0.0.1 (foreground)")
    p.add_argument("--port", type=int, help="default TICKERLAKE_FEATURE_SERVER_PORT (6566)")
    p = add("sql", cmd_sql, "read-only SQL over the Delta tables (DuckDB): a query, --curated NAME, "
                            "or an interactive session")
    p.add_argument("query", nargs="?", help="one SQL statement; omit it for an interactive session "
                                            "(statements from stdin when it is not a terminal)")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.add_argument("--curated", metavar="NAME",
                   help="run include/sql/curated/NAME.sql (todays_signals, hit_rate_by_week, "
                        "live_ic_by_model_version, quarantine_by_rule_weekly, feature_drift_psi_weekly)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="integer parameter of a curated query, e.g. ref_weeks=52 (repeatable)")
    p = add("bench", cmd_bench, "benchmarks that print their figures and write them as JSON")
    p.add_argument("what", choices=["ingest", "drain", "feast", "features", "predict", "train"])
    p.add_argument("--out", required=True, help="JSON file for the figures")
    p.add_argument("--tiers", nargs="+", help="the tiers to run (default: all; see each benchmark module's TIERS)")
    p.add_argument("--keep", action="store_true", help="predict: keep the built lake under <home>/bench for the next run")
    p.add_argument("--calls", type=int, default=1000, help="feast: get_online_features calls per measurement")
    p = add("replay", cmd_replay, "publish 5-minute bars (Stooq files or synthetic) to the intraday topic")
    p.add_argument("--source", choices=["stooq", "synthetic"], required=True)
    p.add_argument("--path", help="Stooq folder (default ../shared/data/stooq_5min_2026)")
    p.add_argument("--start", type=_date, help="first session (New York date)")
    p.add_argument("--end", type=_date, help="last session (New York date)")
    p.add_argument("--speed", type=float, default=0.0, help="N times real speed; 0 = as fast as the broker takes them")
    p.add_argument("--topic", help="default: settings.intraday_topic (market.bars.5m)")
    p = add("drain", cmd_drain, "drain the intraday topic into Delta exactly once (Spark, Trigger.AvailableNow)")
    p.add_argument("--run-id", help="run label in the tables and ops.pipeline_runs")
    p.add_argument("--topic", help="default: settings.intraday_topic (market.bars.5m)")
    p = add("score-intraday", cmd_score_intraday, "score a session's drained 5-minute bars with the champion "
                                                  "(the intraday DAG's scoring task, recorded in ops.pipeline_runs)")
    p.add_argument("--session", type=_date, required=True, help="the session to score (New York date)")
    p.add_argument("--run-id", help="run label in the tables and ops.pipeline_runs")
    p = add("maintenance", cmd_maintenance, "compact (OPTIMIZE, Z-ordered by ticker) and VACUUM the silver and "
                                            "gold tables, keeping every Delta version a registered model names")
    p.add_argument("--table", action="append", default=[], metavar="LAYER.TABLE",
                   help="a table to maintain (repeatable; default: the silver and gold tables that exist)")
    p.add_argument("--dry-run", action="store_true",
                   help="report protected versions, retention and what VACUUM would delete; change nothing")
    p = add("demo", cmd_demo, "seed a synthetic market and run the daily DAG over its last sessions")
    p.add_argument("--end", default=DEMO_END, help=f"last demo session (default {DEMO_END})")
    p.add_argument("--sessions", type=int, default=DEMO_DAG_SESSIONS, help="daily DAG runs to backfill")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = load_settings(getattr(args, "home", None))
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    log_file = settings.logs_dir / "cli.log"
    logging.basicConfig(filename=log_file, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        result = args.func(settings, args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one clear line; the detail goes to the log file
        logging.getLogger("tickerlake.cli").error("%s failed:\n%s", args.command, traceback.format_exc())
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"error: {first}\n(details: {log_file})", file=sys.stderr)
        return 1
    if result is None:
        pass
    elif isinstance(result, str):
        print(result)
    else:
        print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

