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


def materialize(settings: Settings, start: dt.date, end: dt.date, views: list[str]) -> dict:
    """Load the rows of sessions [start, end] of `views` into the online store (event time = close).

    From the session a late verdict restated, when the validation of [start, end] made one (the
    feature job recomputed from there too, see features.run)."""
    from tickerlake.feast_store import materialize_interval
    from tickerlake.ingest import restated_since

    start = min(start, restated_since(settings, start, end) or start)
    begin = calendar.session_close_utc(start)
    finish = calendar.session_close_utc(end) + dt.timedelta(microseconds=1)
    materialize_interval(settings, begin, finish, views)
    return {"views": views, "start": begin.isoformat(), "end": finish.isoformat()}


def train_and_promote(settings: Settings, session: dt.date) -> dict:
    from tickerlake.training import promote, train

    candidate = train(settings, session)
    decision = promote(settings, candidate, session)
    return {"candidate_version": candidate["version"], "decision": decision["decision"],
            "gates": decision["gates"], "holdout_rank_ic": candidate["holdout"]["rank_ic_mean"]}


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
    from tickerlake.emailer import deliver
    from tickerlake.report import write_report

    report = write_report(settings, session, run_id, airflow_run_id)
    delivery = deliver(settings, session, report, api_key, sender, recipients)
    return {**report, "delivery": delivery}
