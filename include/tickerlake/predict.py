"""Nightly predictions for the next session, by the model behind alias `champion`.

Append-only: each run adds its own rows (its run id) and never rewrites what was
published. Each row names the model version and the Delta version of the features read,
so the prediction can be reproduced exactly.
"""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pandas as pd

from tickerlake import lake
from tickerlake.calendar import next_session, session_close_utc
from tickerlake.catalog import FEATURE_NAMES
from tickerlake.settings import Settings
from tickerlake.training import CHAMPION, champion_version, configure_mlflow

log = logging.getLogger(__name__)

PREDICTION_COLUMNS = [
    "ticker", "asof_date", "target_session", "event_ts", "pred_return", "pred_lo", "pred_hi", "rank",
    "percentile", "signal", "model_name", "model_version", "features_version", "run_id", "published", "year",
]


def score_features(model, features: pd.DataFrame, calibration: dict[str, float], threshold: float) -> pd.DataFrame:
    """Score one session's feature rows: predicted return, interval, rank, percentile and signal."""
    score = model.predict(features[list(FEATURE_NAMES)])
    pred = calibration["calib_a"] + calibration["calib_b"] * np.asarray(score)
    out = features[["ticker"]].copy()
    out["pred_return"] = pred
    out["pred_lo"] = pred - calibration["interval_q"]
    out["pred_hi"] = pred + calibration["interval_q"]
    out["rank"] = out["pred_return"].rank(ascending=False, method="first").astype("int32")
    out["percentile"] = out["pred_return"].rank(pct=True)
    # Rounded so that 10 of 50 names are the bottom 20% (1 - 0.8 is 0.19999999999999996 in floats).
    out["signal"] = np.where(out["percentile"] >= threshold, "long",
                             np.where(out["percentile"] <= round(1 - threshold, 9), "short", "neutral"))
    return out


def champion_calibration(version) -> dict[str, float]:
    return {k: float(version.tags[k]) for k in ("calib_a", "calib_b", "interval_q")}


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
    configure_mlflow(settings)
    model = mlflow.lightgbm.load_model(f"models:/{settings.model_name}@{CHAMPION}")
    scored = score_features(model, features, champion_calibration(champion), settings.signal_threshold)
    scored = scored.assign(
        asof_date=asof,
        target_session=next_session(asof),
        event_ts=pd.Timestamp(session_close_utc(asof)),
        model_name=settings.model_name,
        model_version=str(champion.version),
        features_version=np.int64(fv),
        run_id=run_id,
        published=False,
        year=np.int32(asof.year),
    )[PREDICTION_COLUMNS]
    version = lake.append(settings, "gold.predictions_daily", scored)
    return {"status": "ok", "rows": len(scored), "model_version": str(champion.version), "features_version": fv,
            "predictions_version": version, "target_session": next_session(asof).isoformat()}
