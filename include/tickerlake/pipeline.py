"""The daily chain's steps as plain functions of (settings, session, run id).

The DAG's tasks and the CLI call these; each is a function of its session (the run's data
interval), never of the wall clock.
"""

from __future__ import annotations

import datetime as dt
import logging

from tickerlake import calendar
from tickerlake.settings import Settings

log = logging.getLogger(__name__)


def session_for_run(logical_date: dt.datetime) -> str | None:
    """The session a daily run stands for, or None on a non-session (holiday, weekend)."""
    day = calendar.session_of_logical_date(logical_date)
    return day.isoformat() if calendar.is_session(day) else None


def land(settings: Settings, session: dt.date, run_id: str, logical_ts: dt.datetime, source: str = "synthetic") -> dict:
    from tickerlake.ingest import land_bars

    return land_bars(settings, source, session, session, run_id, logical_ts)


def validate(settings: Settings, session: dt.date, run_id: str) -> dict:
    from tickerlake.ingest import validate_interval

    return validate_interval(settings, session, session, run_id)


def land_altdata(settings: Settings, session: dt.date, run_id: str, logical_ts: dt.datetime) -> dict:
    """Social, news and macro for `session`, from the drop folders in settings (a source without a
    folder is skipped with that reason), then the session's point-in-time sentiment and macro rows.

    The landing window starts at the previous session: what was published after its close
    counts for this session (altdata.sentiment decides exactly, by exchange time)."""
    from tickerlake.altdata import macro, news, sentiment, social

    window_start = calendar.previous_session(session)
    done: dict[str, object] = {}
    if settings.social_path:
        done["social"] = social.land_social(settings, settings.social_path, window_start, session, run_id,
                                            logical_ts=logical_ts)
    if settings.news_path:
        done["news"] = news.land_news(settings, settings.news_path, window_start, session, run_id,
                                      logical_ts=logical_ts)
    if settings.social_path or settings.news_path:
        done["sentiment"] = sentiment.build_sentiment_daily(settings, session, session)
    if settings.macro_path:
        # Two years back covers every release lag (the longest, USREC, is a year) and revisions.
        start = session - dt.timedelta(days=730)
        done["macro"] = macro.land_macro(settings, settings.macro_path, start, session, run_id,
                                         logical_ts=logical_ts)
        done["macro_asof"] = macro.build_macro_asof(settings, session, session)
    missing = [name for name, path in (("social", settings.social_path), ("news", settings.news_path),
                                       ("macro", settings.macro_path)) if not path]
    if missing:
        done["skipped"] = f"no drop folder configured for {', '.join(missing)} (TICKERLAKE_<SOURCE>_PATH)"
    return done


def features_in_process(settings: Settings, start: dt.date, end: dt.date) -> dict:
    """The Spark feature job in this process (CLI backfills); the DAG submits the same job."""
    from tickerlake import features
    from tickerlake.spark import get_spark

    spark = get_spark(settings, "tickerlake-features")
    return features.run(spark, settings, start, end)


def materialize(settings: Settings, start: dt.date, end: dt.date, views: list[str] | None = None) -> dict:
    """Load the rows of sessions [start, end] of `views` (default: the model's feature views, which
    the feature job has just written) into the online store (event time = close).

    From the session a late verdict restated, when the validation of [start, end] made one (the
    feature job recomputed from there too, see features.run)."""
    from tickerlake.feast_store import DAILY_FEATURE_VIEWS, materialize_interval
    from tickerlake.ingest import restated_since

    views = list(DAILY_FEATURE_VIEWS) if views is None else views
    start = min(start, restated_since(settings, start, end) or start)
    begin = calendar.session_close_utc(start)
    finish = calendar.session_close_utc(end) + dt.timedelta(microseconds=1)
    materialize_interval(settings, begin, finish, views)
    return {"views": views, "start": begin.isoformat(), "end": finish.isoformat()}


def train_and_promote(settings: Settings, session: dt.date) -> dict:
    """Train (walk-forward, MLflow case, registered version), then the promotion gate. The result is
    the task's XCom and the promotion alert's text: ids, figures and gate results only."""
    from tickerlake.training import load_training_data, promote, train

    data = load_training_data(settings, session)
    candidate = train(settings, session, data)
    decision = promote(settings, candidate, session, data)
    return {**decision, "run_id": candidate["run_id"], "walk_forward": candidate["walk_forward"],
            "timings": candidate["timings"]}


def training_due(settings: Settings, session: dt.date) -> tuple[bool, str]:
    from tickerlake.training import training_due as due

    return due(settings, session)


def predict(settings: Settings, session: dt.date, run_id: str) -> dict:
    from tickerlake.predict import predict_session

    return predict_session(settings, session, run_id)


def publish_online(settings: Settings, session: dt.date, run_id: str) -> dict:
    """Push this run's predictions for `session` to the online store (see feast_store.push_predictions)."""
    from tickerlake import lake
    from tickerlake.feast_store import push_predictions

    if not lake.table_exists(settings, "gold.predictions_daily"):
        return {"rows": 0, "reason": "no predictions table yet"}
    preds = lake.read_table(settings, "gold.predictions_daily", filters=[("asof_date", "=", session)])
    preds = preds[preds["run_id"] == run_id]
    return {"rows": push_predictions(settings, preds)}


def report_and_deliver(settings: Settings, session: dt.date, run_id: str, api_key: str | None,
                       sender: str, recipients: list[str], airflow_run_id: str | None = None) -> dict:
    """Render the report of run `run_id`, send it (SendGrid, once per session and message) or write
    its dry run, then mark the run's predictions published. The API key goes to the sender only:
    the result (an XCom) holds paths, counts and the delivery record, never the key."""
    from tickerlake.emailer import deliver
    from tickerlake.predict import mark_published
    from tickerlake.report import write_report

    report = write_report(settings, session, run_id, airflow_run_id)
    delivery = deliver(settings, session, report, api_key, sender, recipients)
    published = mark_published(settings, session, run_id) if report["predicted"] else {"marked": 0}
    return {**report, "delivery": delivery, "published": published}



FEATURE_VALIDATION_SESSIONS = 60  # sessions judged per Great Expectations pass (bounded memory in backfills)


def validate_features(settings: Settings, start: dt.date, end: dt.date, run_id: str) -> dict:
    """Validate gold.features_daily for the sessions in [start, end] (suite `features_daily.rows`,
    see suites.feature_rules) against the silver tickers of the same sessions.

    Critical failures raise CriticalValidationError (a catalogue column missing or not a float, a
    null or duplicate key, a date that is no session, a silver ticker without a feature row) and
    write nothing; warnings (an infinite or extreme value, a feature row without its silver bar)
    replace the interval's rows of quarantine.features_daily in one commit. The interval is read
    FEATURE_VALIDATION_SESSIONS sessions at a time from one version of each table. Returns the
    counts by rule (ops.validation_runs is the daily bars' record; these counts go in the result)."""
    import pandas as pd

    from tickerlake import lake, suites
    from tickerlake.ingest import restated_since

    start = min(start, restated_since(settings, start, end) or start)  # the feature job restated from there
    sessions = calendar.sessions_between(start, end)
    if not sessions:
        raise ValueError(f"no session in [{start}, {end}]")
    first, last = sessions[0], sessions[-1]
    if not lake.table_exists(settings, "gold.features_daily"):
        raise suites.CriticalValidationError("gold.features_daily does not exist: run the feature job first")
    fv = lake.table_version(settings, "gold.features_daily")
    sv = lake.table_version(settings, "silver.bars_daily") if lake.table_exists(settings, "silver.bars_daily") else None
    rules = suites.feature_rules()
    counts = dict.fromkeys((r.name for r in rules), 0)
    quarantine: list[pd.DataFrame] = []
    rows = warned = 0
    for i in range(0, len(sessions), FEATURE_VALIDATION_SESSIONS):
        lo, hi = sessions[i], sessions[min(i + FEATURE_VALIDATION_SESSIONS, len(sessions)) - 1]
        features = lake.read_interval(settings, "gold.features_daily", lo, hi, version=fv)
        silver = None if sv is None else lake.read_table(
            settings, "silver.bars_daily", version=sv, filters=[("date", ">=", lo), ("date", "<=", hi)],
            columns=["ticker", "date"])
        judged = suites.validate_features_frame(features, run_id, silver=silver, rules=rules)
        rows += judged.result.n_rows
        warned += int(judged.result.warned.sum())
        for name, n in judged.counts.items():
            counts[name] += n
        quarantine.append(judged.quarantine)
    if rows == 0:
        raise suites.CriticalValidationError(f"gold.features_daily v{fv} has no rows for [{first}, {last}]")
    q = pd.concat(quarantine, ignore_index=True)
    q_version = suites.write_features_quarantine(settings, q, first, last)
    result = {"start": first.isoformat(), "end": last.isoformat(), "sessions": len(sessions),
              "suite": suites.FEATURES_SUITE, "rows": rows, "warned": warned, "counts_by_rule": counts,
              "severity_by_rule": {r.name: r.severity for r in rules}, "quarantine_rows": len(q),
              "quarantine_version": q_version,
              "input_versions": {"gold.features_daily": fv, "silver.bars_daily": sv}}
    log.info("features validated [%s, %s]: %s", first, last,
             {k: v for k, v in result.items() if k not in ("counts_by_rule", "severity_by_rule")})
    return result
