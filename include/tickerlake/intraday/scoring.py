"""Near-real-time scoring of the session's latest bars: gold.predictions_intraday.

Per run, the latest bar of each ticker in the session (silver.bars_intraday) gets

- intraday features: `ret_open` (close / the session's first open - 1), `ret_last_bar` (close / the
  previous bar's close - 1), `vol_tod_ratio` (the session's volume so far against the median volume
  up to the same time of day over the previous INTRADAY_HISTORY_SESSIONS sessions; NaN without
  history), `gap_open` (the session's first open / the previous session's close - 1);
- the latest daily features from the Feast online store (the previous session's close made them);
- a score by the champion (MLflow alias `champion`) with its calibration, rank, percentile and signal,
  appended to the Delta table and pushed through the Feast push source `intraday_predictions_push`
  into the online store (view `intraday_predictions`).

Which model, and why: the champion, unchanged, on the daily features of the last close. Every one
of its 15 inputs is a function of completed daily bars (a whole session's close, range and
volume); feeding it a partial session as if it were the day's bar (a half-day volume in VMA5, a
half-day candle in KMID) gives it inputs from a distribution it was never trained or validated on,
so its calibration and interval would not hold. Its score is point-in-time as of the last close;
the intraday features stand beside it in each row so that an intraday variant can be trained and
gated like the champion once silver.bars_intraday holds enough sessions with labels. Until then
the intraday signal is the champion's, refreshed with each bar's context.

Rows are append-only per run (the run id), like gold.predictions_daily; each names the model
version and the silver version it read. Latency per row: bar end (exchange time) -> reached Kafka
(the broker's append time) -> drained (the Delta commit's batch) -> scored; p50/p95 go to
ops.pipeline_runs.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import numpy as np
import pandas as pd

from tickerlake import lake
from tickerlake.calendar import previous_session
from tickerlake.catalog import FEATURE_NAMES, REQUIRED_FEATURES
from tickerlake.intraday.drain import SILVER
from tickerlake.intraday.schema import BAR_MINUTES
from tickerlake.settings import Settings

log = logging.getLogger(__name__)

TABLE = "gold.predictions_intraday"
INTRADAY_HISTORY_SESSIONS = 20
INTRADAY_FEATURES = ("ret_open", "ret_last_bar", "vol_tod_ratio", "gap_open")


def intraday_features(session_bars: pd.DataFrame, history: pd.DataFrame, prev_close: pd.Series) -> pd.DataFrame:
    """The latest bar of each ticker in `session_bars` (one session) with its intraday features.

    history: earlier sessions' bars (ticker, session, ts, volume) for the time-of-day volume profile;
    prev_close: ticker -> the previous session's close (NaN where unknown)."""
    bars = session_bars.sort_values(["ticker", "ts"]).copy()
    bars["slot"] = _slot(bars["ts"])
    g = bars.groupby("ticker", sort=False)
    bars["cum_volume"] = g["volume"].cumsum()
    bars["first_open"] = g["open"].transform("first")
    bars["prev_bar_close"] = g["close"].shift(1)
    latest = g.tail(1).set_index("ticker")
    out = pd.DataFrame(index=latest.index)
    out["bar_ts"] = latest["ts"]
    out["close"] = latest["close"]
    out["ret_open"] = latest["close"] / latest["first_open"] - 1
    out["ret_last_bar"] = latest["close"] / latest["prev_bar_close"] - 1
    if history.empty:
        out["vol_tod_ratio"] = np.nan
    else:
        hist = history.sort_values(["ticker", "session", "ts"]).copy()
        hist["slot"] = _slot(hist["ts"])
        hist["cum_volume"] = hist.groupby(["ticker", "session"])["volume"].cumsum()
        usual = hist.groupby(["ticker", "slot"])["cum_volume"].median()
        keys = pd.MultiIndex.from_arrays([latest.index, latest["slot"]])
        usual_now = usual.reindex(keys).to_numpy()
        out["vol_tod_ratio"] = latest["cum_volume"].to_numpy() / np.where(usual_now > 0, usual_now, np.nan)
    out["gap_open"] = latest["first_open"] / prev_close.reindex(latest.index) - 1
    return out.reset_index()


def _slot(ts: pd.Series) -> pd.Series:
    """Minutes since midnight New York: the bar's time of day (09:30 -> 570)."""
    local = pd.to_datetime(ts, utc=True).dt.tz_convert("America/New_York")
    return local.dt.hour * 60 + local.dt.minute


def _previous_closes(settings: Settings, session: dt.date, tickers: list[str]) -> pd.Series:
    """ticker -> close of the previous session: silver.bars_daily where present, else its last intraday bar."""
    prev = previous_session(session)
    closes = pd.Series(np.nan, index=pd.Index(tickers, name="ticker"))
    if lake.table_exists(settings, "silver.bars_daily"):
        daily = lake.read_table(settings, "silver.bars_daily", filters=[("date", "=", prev)],
                                columns=["ticker", "close"])
        closes.update(daily.drop_duplicates("ticker").set_index("ticker")["close"])
    missing = closes[closes.isna()].index.tolist()
    if missing:
        last = lake.read_table(settings, SILVER, filters=[("session", "=", prev)], columns=["ticker", "ts", "close"])
        last = last[last["ticker"].isin(missing)].sort_values("ts").groupby("ticker")["close"].last()
        closes.update(last)
    return closes


def score_session(settings: Settings, session: dt.date, run_id: str) -> dict[str, Any]:
    """Score the session's latest bars; append to gold.predictions_intraday. Returns counts and latencies."""
    import mlflow

    from tickerlake.feast_store import online_features, push_intraday_predictions
    from tickerlake.predict import champion_calibration, score_features
    from tickerlake.training import CHAMPION, champion_version, configure_mlflow

    started = _now()
    if not lake.table_exists(settings, SILVER):
        return {"status": "skipped", "reason": f"{SILVER} does not exist yet", "rows": 0}
    silver_version = lake.table_version(settings, SILVER)
    first = session - dt.timedelta(days=45)
    bars = lake.read_table(settings, SILVER, version=silver_version,
                           filters=[("session", ">=", first), ("session", "<=", session)])
    today = bars[bars["session"] == session]
    if today.empty:
        return {"status": "skipped", "reason": f"no bars of {session} in {SILVER} v{silver_version}", "rows": 0}
    earlier = sorted(d for d in bars["session"].unique() if d < session)[-INTRADAY_HISTORY_SESSIONS:]
    history = bars[bars["session"].isin(earlier)]
    tickers = sorted(today["ticker"].unique())
    feats = intraday_features(today, history, _previous_closes(settings, session, tickers))
    champion = champion_version(settings)
    if champion is None:
        return {"status": "skipped", "reason": "no model holds alias champion yet", "rows": 0}
    daily = online_features(settings, tickers, list(FEATURE_NAMES))
    usable = daily.dropna(subset=list(REQUIRED_FEATURES))
    if usable.empty:
        return {"status": "skipped", "reason": "the online store has no daily features for these tickers", "rows": 0}
    configure_mlflow(settings)
    model = mlflow.lightgbm.load_model(f"models:/{settings.model_name}@{CHAMPION}")
    scored = score_features(model, usable.reset_index(drop=True), champion_calibration(champion),
                            settings.signal_threshold)
    latest = today.sort_values("ts").groupby("ticker").tail(1).set_index("ticker")
    rows = scored.merge(feats, on="ticker", how="inner")
    scored_ts = _now()
    rows = rows.assign(
        session=session, asof_date=previous_session(session),
        kafka_ts=latest.loc[rows["ticker"], "kafka_ts"].to_numpy(),
        drained_ts=latest.loc[rows["ticker"], "drained_ts"].to_numpy(),
        scored_ts=pd.Timestamp(scored_ts), model_name=settings.model_name, model_version=str(champion.version),
        silver_version=np.int64(silver_version), run_id=run_id, year=np.int32(session.year),
    )
    columns = ["ticker", "session", "bar_ts", "asof_date", *INTRADAY_FEATURES, "close", "pred_return", "pred_lo",
               "pred_hi", "rank", "percentile", "signal", "model_name", "model_version", "silver_version",
               "kafka_ts", "drained_ts", "scored_ts", "run_id", "year"]
    rows = rows[columns]
    version = lake.append(settings, TABLE, rows)
    # after the append: the Delta table is the record, the online store a copy a retry can redo
    pushed = push_intraday_predictions(settings, rows)
    latency = _latencies(rows)
    return {"status": "ok", "rows": len(rows), "online_rows": pushed, "tickers_without_daily_features": len(tickers) - len(usable),
            "model_version": str(champion.version), "silver_version": silver_version, "predictions_version": version,
            "started_ts": started.isoformat(), "finished_ts": _now().isoformat(),
            "seconds": round((_now() - started).total_seconds(), 3), **latency}


def _latencies(rows: pd.DataFrame) -> dict[str, float]:
    """p50/p95 in seconds of each stage: bar end -> Kafka -> drained -> scored, and Kafka -> scored."""
    def q(delta: pd.Series) -> tuple[float, float]:
        secs = delta.dt.total_seconds()
        return round(float(secs.quantile(0.5)), 3), round(float(secs.quantile(0.95)), 3)

    bar_end = pd.to_datetime(rows["bar_ts"], utc=True) + pd.Timedelta(minutes=BAR_MINUTES)
    kafka = pd.to_datetime(rows["kafka_ts"], utc=True)
    drained = pd.to_datetime(rows["drained_ts"], utc=True)
    scored = pd.to_datetime(rows["scored_ts"], utc=True)
    out: dict[str, float] = {}
    for name, delta in (("bar_to_kafka", kafka - bar_end), ("kafka_to_drained", drained - kafka),
                        ("drained_to_scored", scored - drained), ("kafka_to_scored", scored - kafka),
                        ("bar_to_scored", scored - bar_end)):
        out[f"{name}_p50_s"], out[f"{name}_p95_s"] = q(delta)
    return out


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)  # wall-clock ok: scored_ts, a latency measurement


def score_and_record(settings: Settings, session: dt.date, run_id: str) -> dict[str, Any]:
    """The DAG's scoring task: score_session, then its ops.pipeline_runs row (latency: Kafka -> scored)."""
    from tickerlake.intraday.runs import record_run

    summary = score_session(settings, session, run_id)
    record_run(settings, run_id, "intraday_score", summary, rows=summary.get("rows", 0),
               latency_p50_s=summary.get("kafka_to_scored_p50_s"), latency_p95_s=summary.get("kafka_to_scored_p95_s"),
               status=summary["status"])
    return summary
