"""Nightly predictions for the next session, by the model behind alias `champion`.

Append-only: each run adds its own rows (its run id) and never rewrites what was
published. Each row names the model version and the Delta version of the features read,
so the prediction can be reproduced exactly. Each run's rows are validated before the append
(suites.validate_predictions): critical failures stop the run with nothing written, warnings
are published and flagged in quarantine.predictions_daily.

No silent zero: a ticker of the session's universe (a bar landed in bronze, or a feature row)
without a complete feature row is not scored; it gets a reason row in gold.predictions_skipped
(append-only like the predictions: ticker, asof_date, run_id, reason, missing features) and the
report counts it.

Published: once the report of a run has gone out (or its dry run is written), mark_published
flips `published` to true for exactly that run's rows (asof_date and run_id) in one Delta UPDATE.
That is the only in-place change the table gets, and it is consistent with append-only: no
predicted value, interval, rank, signal or lineage column of any row is ever rewritten, no row
is added or removed, the flag only goes false -> true (a second call changes nothing), and
Delta's history keeps every earlier version. Readers (include/sql/curated/todays_signals.sql)
already pick the published run of a session.
"""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pandas as pd

from tickerlake import lake
from tickerlake.calendar import next_session, session_close_utc
from tickerlake.catalog import FEATURE_NAMES, REQUIRED_FEATURES
from tickerlake.settings import Settings
from tickerlake.sql import sql_string_literal
from tickerlake.training import CHAMPION, champion_version, configure_mlflow

log = logging.getLogger(__name__)

PREDICTION_COLUMNS = [
    "ticker", "asof_date", "target_session", "event_ts", "pred_return", "pred_lo", "pred_hi", "rank",
    "percentile", "signal", "model_name", "model_version", "features_version", "run_id", "published", "year",
]


def score_features(model, features: pd.DataFrame, calibration: dict[str, float], threshold: float) -> pd.DataFrame:
    """Score one session's feature rows: predicted return, interval, rank, percentile and signal."""
    # as floats: a feature the online store has no value for comes back as None (an object column),
    # which LightGBM refuses; missing is NaN to the model, as in training
    score = model.predict(features[list(FEATURE_NAMES)].astype("float64"))
    pred = calibration["calib_a"] + calibration["calib_b"] * np.asarray(score)
    out = features[["ticker"]].copy()
    out["pred_return"] = pred
    out["pred_lo"] = pred + calibration["interval_lo"]
    out["pred_hi"] = pred + calibration["interval_hi"]
    rank = out["pred_return"].rank(ascending=False, method="first")
    # a non-finite prediction has no rank; validation (suites.validate_predictions) stops the run on it
    out["rank"] = rank.astype("int32") if rank.notna().all() else rank.astype("Int32")
    out["percentile"] = out["pred_return"].rank(pct=True)
    # Rounded so that 10 of 50 names are the bottom 20% (1 - 0.8 is 0.19999999999999996 in floats).
    out["signal"] = np.where(out["percentile"] >= threshold, "long",
                             np.where(out["percentile"] <= round(1 - threshold, 9), "short", "neutral"))
    return out


def prediction_rows(scored: pd.DataFrame, asof: dt.date, model_name: str, model_version: str, features_version: int,
                    run_id: str, published: bool = False) -> pd.DataFrame:
    """One session's scored rows with the lineage columns of gold.predictions_daily, in its order."""
    return scored.assign(
        asof_date=asof, target_session=next_session(asof), event_ts=pd.Timestamp(session_close_utc(asof)),
        model_name=model_name, model_version=model_version, features_version=np.int64(features_version),
        run_id=run_id, published=published, year=np.int32(asof.year),
    )[PREDICTION_COLUMNS]


def champion_calibration(version) -> dict[str, float]:
    """The version's score -> return map and conformal offsets (set by training from out-of-sample blocks)."""
    return {k: float(version.tags[k]) for k in ("calib_a", "calib_b", "interval_lo", "interval_hi")}


def predict_session(settings: Settings, asof: dt.date, run_id: str) -> dict:
    """Predict `asof`'s next session for every ticker with features at `asof`."""
    import mlflow

    champion = champion_version(settings)
    if champion is None:
        reason = "no model holds alias champion yet: predictions skipped"
        log.warning(reason)
        return {"status": "skipped", "reason": reason, "rows": 0}
    fv = lake.table_version(settings, "gold.features_daily")
    features = lake.read_table(settings, "gold.features_daily", version=fv, filters=[("date", "=", asof)])
    if features.empty:
        raise RuntimeError(f"no feature rows for {asof} in gold.features_daily v{fv}")
    skipped = skipped_tickers(settings, asof, features)
    complete = features[~features["ticker"].isin(set(skipped["ticker"]))]
    if complete.empty:
        raise RuntimeError(f"no ticker has a complete feature row for {asof} in gold.features_daily v{fv} "
                           f"({len(skipped)} skipped)")
    configure_mlflow(settings)
    model = mlflow.lightgbm.load_model(f"models:/{settings.model_name}@{CHAMPION}")
    scored = score_features(model, complete, champion_calibration(champion), settings.signal_threshold)
    scored = prediction_rows(scored, asof, settings.model_name, str(champion.version), fv, run_id)
    published = publish_predictions(settings, scored, asof, run_id, expected_tickers=complete["ticker"])
    skipped_version = write_skipped(settings, skipped.assign(
        target_session=next_session(asof), run_id=run_id, model_version=str(champion.version),
        features_version=np.int64(fv)))
    return {"status": "ok", "rows": len(scored), "model_version": str(champion.version), "features_version": fv,
            "target_session": next_session(asof).isoformat(), "skipped": len(skipped),
            "skipped_version": skipped_version, **published}


SKIPPED = "gold.predictions_skipped"


def skipped_schema():
    import pyarrow as pa

    return pa.schema([("ticker", pa.string()), ("asof_date", pa.date32()), ("target_session", pa.date32()),
                      ("reason", pa.string()), ("missing_features", pa.string()), ("run_id", pa.string()),
                      ("model_version", pa.string()), ("features_version", pa.int64()), ("year", pa.int32())])


def skipped_tickers(settings: Settings, asof: dt.date, features: pd.DataFrame) -> pd.DataFrame:
    """Tickers of `asof`'s universe that cannot be scored, each with its reason.

    The universe is every ticker with a bar landed in bronze at `asof` plus every ticker with a
    feature row. No feature row (its bar was quarantined, or never reached silver): reason names
    the quarantine rules found for it. A feature row with a null or non-finite required feature
    (catalog.REQUIRED_FEATURES: too short a history, a gap): reason lists those features. Columns: ticker, asof_date, reason, missing_features."""
    rows = []
    values = features[list(REQUIRED_FEATURES)].to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(values)
    for i in np.flatnonzero(bad.any(axis=1)):
        missing = [name for name, b in zip(REQUIRED_FEATURES, bad[i], strict=True) if b]
        rows.append({"ticker": features["ticker"].iloc[i], "reason": "incomplete features",
                     "missing_features": ",".join(missing)})
    landed: set[str] = set()
    if lake.table_exists(settings, "bronze.bars_daily"):
        landed = set(lake.read_table(settings, "bronze.bars_daily", filters=[("date", "=", asof)],
                                     columns=["ticker"])["ticker"].dropna().astype(str))
    without_row = sorted(landed - set(features["ticker"]))
    rules: dict[str, list[str]] = {}
    if without_row and lake.table_exists(settings, "quarantine.bars_daily"):
        q = lake.read_table(settings, "quarantine.bars_daily", filters=[("date", "=", asof)], columns=["ticker", "rule"])
        for ticker, g in q[q["ticker"].isin(without_row)].groupby("ticker"):
            rules[ticker] = sorted(set(g["rule"].astype(str)))
    for ticker in without_row:
        why = f"bar quarantined ({', '.join(rules[ticker])})" if ticker in rules else "bar did not reach silver"
        rows.append({"ticker": ticker, "reason": f"no feature row: {why}", "missing_features": "all"})
    out = pd.DataFrame(rows, columns=["ticker", "reason", "missing_features"])
    out["asof_date"] = asof
    for row in out.itertuples():
        log.warning("%s skipped for %s: %s (%s)", row.ticker, asof, row.reason, row.missing_features)
    return out[["ticker", "asof_date", "reason", "missing_features"]]


def write_skipped(settings: Settings, skipped: pd.DataFrame) -> int | None:
    """Append one run's reason rows to gold.predictions_skipped (nothing to write: no commit)."""
    import pyarrow as pa

    if skipped.empty:
        return None
    frame = skipped.assign(year=pd.to_datetime(skipped["asof_date"]).dt.year.astype("int32"))
    for c in ("asof_date", "target_session"):
        frame[c] = [pd.Timestamp(v).date() for v in frame[c]]
    schema = skipped_schema()
    return lake.append(settings, SKIPPED, pa.Table.from_pandas(frame[schema.names], schema=schema,
                                                               preserve_index=False))


def mark_published(settings: Settings, asof: dt.date, run_id: str) -> dict:
    """Mark exactly the rows of run `run_id` for `asof` as published (see the module docstring)."""
    from deltalake import DeltaTable

    if not lake.table_exists(settings, "gold.predictions_daily"):
        return {"marked": 0}
    table = DeltaTable(settings.table_path("gold.predictions_daily"))
    result = table.update(new_values={"published": True},
                          predicate=f"asof_date = '{asof.isoformat()}' AND run_id = {sql_string_literal(run_id)} "
                                    "AND (published IS NULL OR published = false)")
    return {"marked": int(result.get("num_updated_rows", 0)), "predictions_version": table.version()}


def publish_predictions(settings: Settings, scored: pd.DataFrame, asof: dt.date, run_id: str,
                        expected_tickers=None) -> dict:
    """Validate one run's scored rows (suite `predictions_daily.rows`), then write them.

    A critical failure (a ticker with features but no prediction, a null or infinite prediction,
    no model version, a duplicate ticker) raises CriticalValidationError before anything is
    written. Warned rows (a prediction out of range, an upside-down interval) are published and
    listed in quarantine.predictions_daily, written first so that a failed append leaves no
    published row without its flags; a rerun of the run replaces its quarantine rows."""
    from tickerlake.suites import validate_predictions, write_predictions_quarantine

    judged = validate_predictions(scored, run_id, expected_tickers=expected_tickers)
    q_version = write_predictions_quarantine(settings, judged.quarantine, asof, run_id)
    version = lake.append(settings, "gold.predictions_daily", scored)
    return {"predictions_version": version, "quarantine_version": q_version, "warned": int(judged.result.warned.sum()),
            "validation": judged.summary()}
