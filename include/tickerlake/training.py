"""Training, evaluation and promotion of the daily LightGBM model, tracked in MLflow.

The training set comes from Feast's point-in-time join (`load_training_data`). Thin first
version of the chain: one purged holdout block at the end of the history (the
last `HOLDOUT_SESSIONS` sessions, with `PURGE_SESSIONS` left out between train and holdout
so no training label overlaps a holdout session), baselines scored on the same sessions,
then a refit through the as-of date. Each model version names the Delta versions and the
date range it was trained on.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import subprocess
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tickerlake import lake
from tickerlake.catalog import FEATURE_NAMES
from tickerlake.feast_store import feature_list_hash
from tickerlake.settings import PROJECT_ROOT, Settings

log = logging.getLogger(__name__)

LABEL = "ret_1d"
HOLDOUT_SESSIONS = 120
PURGE_SESSIONS = 2  # label horizon (1) + 1
INTERVAL_COVERAGE = 0.8
EXPERIMENT = "tickerlake_daily"
CHAMPION = "champion"
PREVIOUS = "previous"
PARAMS = {
    "objective": "regression",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 200,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 10.0,
    "seed": 7,
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 2,
    "verbose": -1,
}
NUM_ROUNDS = 150
# Baselines scored on the same sessions: name -> (feature, sign) where the score is sign * feature.
BASELINES = {"reversal_1d": ("REV1", 1.0), "reversal_5d": ("REV5", 1.0), "momentum_20d": ("ROC20", -1.0),
             "low_volatility": ("STD20", -1.0)}


@dataclass(frozen=True)
class TrainingData:
    frame: pd.DataFrame
    features_version: int
    labels_version: int
    start: dt.date
    end: dt.date


def load_training_data(settings: Settings, asof: dt.date) -> TrainingData:
    """The training set as of `asof`: each complete label (ticker, session) with the features
    Feast's point-in-time join gives at that session's close (feature service
    `tickerlake_daily_lgbm`, TTL respected), so the model trains on what serving will hand it.

    The Delta versions read are recorded; the features table must not change while it is read
    (a concurrent backfill would mix versions), or the read fails and is retried by the task."""
    from tickerlake.calendar import session_close_utc
    from tickerlake.feast_store import ENTITY_TIMESTAMP, historical_features

    fv = lake.table_version(settings, "gold.features_daily")
    lv = lake.table_version(settings, "gold.labels_daily")
    labels = lake.read_table(settings, "gold.labels_daily", version=lv, filters=[("date", "<=", asof)],
                             columns=["ticker", "date", LABEL]).dropna(subset=[LABEL])
    if labels.empty:
        raise RuntimeError(f"no complete labels on or before {asof}: run the backfill first")
    labels["date"] = pd.to_datetime(labels["date"]).dt.date
    closes = {d: session_close_utc(d) for d in labels["date"].unique()}
    entity = labels.assign(**{ENTITY_TIMESTAMP: pd.to_datetime(labels["date"].map(closes), utc=True)})
    joined = historical_features(settings, entity)
    after = lake.table_version(settings, "gold.features_daily")
    if after != fv:
        raise RuntimeError(f"gold.features_daily changed while the training set was read (v{fv} -> v{after})")
    frame = joined[["ticker", "date", *FEATURE_NAMES, LABEL]]
    frame = frame.sort_values(["date", "ticker"]).reset_index(drop=True)
    return TrainingData(frame, fv, lv, frame["date"].min(), frame["date"].max())


def normalized_label(frame: pd.DataFrame) -> pd.Series:
    """Per-session rank of the label, centred on 0: what the model is trained on."""
    return frame.groupby("date")[LABEL].rank(pct=True) - 0.5


def split_purged(dates: pd.Series, holdout: int, purge: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (train, test): the last `holdout` sessions are the test block, and `purge`
    sessions before it are left out so no training label overlaps a test session."""
    sessions = np.sort(dates.unique())
    if len(sessions) <= holdout + purge + 20:
        raise RuntimeError(f"{len(sessions)} sessions are too few for a {holdout}-session holdout")
    test_start = sessions[-holdout]
    train_end = sessions[-holdout - purge - 1]
    return (dates <= train_end).to_numpy(), (dates >= test_start).to_numpy()


def rank_ic_by_session(frame: pd.DataFrame, score: np.ndarray | pd.Series) -> pd.Series:
    data = pd.DataFrame({"date": frame["date"].to_numpy(), "score": np.asarray(score), "y": frame[LABEL].to_numpy()})
    return data.groupby("date").apply(
        lambda g: g["score"].rank().corr(g["y"].rank()) if len(g) > 2 else np.nan, include_groups=False
    ).dropna()


def summarize_ic(ic: pd.Series) -> dict[str, float]:
    n = len(ic)
    mean = float(ic.mean()) if n else float("nan")
    sd = float(ic.std(ddof=1)) if n > 1 else float("nan")
    return {"rank_ic_mean": mean, "rank_ic_std": sd, "rank_ic_t": mean / sd * np.sqrt(n) if n > 1 and sd > 0 else 0.0,
            "sessions": float(n)}


def fit_booster(frame: pd.DataFrame, num_rounds: int = NUM_ROUNDS):
    import lightgbm as lgb

    data = lgb.Dataset(frame[list(FEATURE_NAMES)], label=normalized_label(frame), free_raw_data=False)
    return lgb.train(PARAMS, data, num_boost_round=num_rounds)


def calibrate(score: np.ndarray, realised: np.ndarray, coverage: float = INTERVAL_COVERAGE) -> dict[str, float]:
    """Map the score to the expected return (least squares on out-of-sample rows) and the
    split-conformal half-width of the interval around it, in return units."""
    b, a = np.polyfit(score, realised, 1)
    resid = np.abs(realised - (a + b * score))
    n = len(resid)
    q = float(np.quantile(resid, min(1.0, np.ceil((n + 1) * coverage) / n)))
    return {"calib_a": float(a), "calib_b": float(b), "interval_q": q}


def train(settings: Settings, asof: dt.date) -> dict:
    """Evaluate on the purged holdout, refit through `asof`, log and register. Returns the candidate's record."""
    import mlflow
    from mlflow.models import infer_signature

    data = load_training_data(settings, asof)
    frame = data.frame
    train_mask, test_mask = split_purged(frame["date"], HOLDOUT_SESSIONS, PURGE_SESSIONS)
    train_part, test_part = frame[train_mask], frame[test_mask]
    booster = fit_booster(train_part)
    test_score = booster.predict(test_part[list(FEATURE_NAMES)])
    model_ic = summarize_ic(rank_ic_by_session(test_part, test_score))
    baselines = {
        name: summarize_ic(rank_ic_by_session(test_part, sign * test_part[feat].to_numpy()))
        for name, (feat, sign) in BASELINES.items()
    }
    calib = calibrate(test_score, test_part[LABEL].to_numpy())
    final = fit_booster(frame)

    configure_mlflow(settings)
    holdout_range = (test_part["date"].min(), test_part["date"].max())
    with mlflow.start_run(run_name=f"train-{asof.isoformat()}") as run:
        mlflow.log_params({**{k: v for k, v in PARAMS.items()}, "num_rounds": NUM_ROUNDS, "label": LABEL,
                           "holdout_sessions": HOLDOUT_SESSIONS, "purge_sessions": PURGE_SESSIONS})
        metrics = {f"holdout_{k}": v for k, v in model_ic.items()}
        metrics.update({f"baseline_{n}_{k}": v for n, m in baselines.items() for k, v in m.items()})
        metrics.update(calib)
        mlflow.log_metrics(metrics)
        importance = pd.DataFrame({"feature": final.feature_name(), "gain": final.feature_importance("gain")})
        mlflow.log_text(importance.sort_values("gain", ascending=False).to_csv(index=False), "feature_importance.csv")
        tags = {
            "asof_date": asof.isoformat(),
            "train_start": data.start.isoformat(),
            "train_end": data.end.isoformat(),
            "holdout_start": holdout_range[0].isoformat(),
            "holdout_end": holdout_range[1].isoformat(),
            "features_delta_version": str(data.features_version),
            "labels_delta_version": str(data.labels_version),
            "feature_list_hash": feature_list_hash(FEATURE_NAMES),  # the same hash as the Feast view's tag
            "feature_service": settings.model_name,
            "git_commit": _git_commit(),
        }
        mlflow.set_tags(tags)
        example = frame[list(FEATURE_NAMES)].head(5)
        info = mlflow.lightgbm.log_model(
            final,
            name="model",
            signature=infer_signature(example, final.predict(example)),
            input_example=example,
            registered_model_name=settings.model_name,
        )
    client = mlflow.MlflowClient()
    version = str(info.registered_model_version)
    scores = {**{k: repr(v) for k, v in calib.items()}, "holdout_rank_ic": repr(model_ic["rank_ic_mean"])}
    for key, value in {**tags, **scores}.items():
        client.set_model_version_tag(settings.model_name, version, key, value)
    client.update_registered_model(
        settings.model_name,
        description="LightGBM on the daily feature catalogue; target: per-session rank of the next-open to "
        "following-open return. Promoted through alias `champion` by the holdout gate.",
    )
    return {"version": version, "run_id": run.info.run_id, "asof": asof.isoformat(), "holdout": model_ic,
            "baselines": baselines, "calibration": calib,
            "holdout_start": holdout_range[0].isoformat(), "holdout_end": holdout_range[1].isoformat()}


def training_due(settings: Settings, asof: dt.date) -> tuple[bool, str]:
    """Retrain when there is no model yet or the newest is `retrain_every_sessions` sessions old."""
    from tickerlake.calendar import sessions_between

    latest = latest_version(settings)
    if latest is None:
        return True, "no registered model yet"
    trained_asof = dt.date.fromisoformat(latest.tags.get("asof_date", "1900-01-01"))
    age = len(sessions_between(trained_asof, asof)) - 1
    if age >= settings.retrain_every_sessions:
        return True, f"newest model is {age} sessions old (cadence {settings.retrain_every_sessions})"
    return False, f"newest model (v{latest.version}) is {age} sessions old; cadence {settings.retrain_every_sessions}"


def latest_version(settings: Settings):
    import mlflow

    configure_mlflow(settings)
    client = mlflow.MlflowClient()
    try:
        versions = client.search_model_versions(f"name='{settings.model_name}'")
    except mlflow.exceptions.MlflowException:
        return None
    return max(versions, key=lambda v: int(v.version)) if versions else None


def champion_version(settings: Settings):
    import mlflow

    configure_mlflow(settings)
    try:
        return mlflow.MlflowClient().get_model_version_by_alias(settings.model_name, CHAMPION)
    except mlflow.exceptions.MlflowException:
        return None


def promote(settings: Settings, candidate: dict, decided_on: dt.date) -> dict:
    """Gate: the candidate beats the best baseline on its holdout, and the champion on the same
    sessions where the champion has not trained on them. Pass moves `champion`; every decision is recorded."""
    import mlflow

    configure_mlflow(settings)
    client = mlflow.MlflowClient()
    cand_ic = candidate["holdout"]["rank_ic_mean"]
    best_baseline_name, best_baseline = max(
        ((n, m["rank_ic_mean"]) for n, m in candidate["baselines"].items()), key=lambda x: x[1]
    )
    gates = {"beats_best_baseline": bool(cand_ic > best_baseline), "beats_champion": True}
    champion = champion_version(settings)
    champion_ic = None
    if champion is not None:
        champion_ic = _champion_ic_on(settings, champion, candidate)
        gates["beats_champion"] = bool(champion_ic is None or cand_ic > champion_ic)
    passed = all(gates.values())
    if passed:
        if champion is not None:
            client.set_registered_model_alias(settings.model_name, PREVIOUS, champion.version)
        client.set_registered_model_alias(settings.model_name, CHAMPION, candidate["version"])
    decision = {
        "decided_on": decided_on,
        "model_name": settings.model_name,
        "candidate_version": candidate["version"],
        "champion_version": champion.version if champion is not None else None,
        "decision": "promoted" if passed else "rejected",
        "candidate_rank_ic": cand_ic,
        "champion_rank_ic": champion_ic,
        "best_baseline": best_baseline_name,
        "best_baseline_rank_ic": best_baseline,
        "gates": json.dumps(gates),
        "holdout_start": candidate["holdout_start"],
        "holdout_end": candidate["holdout_end"],
    }
    frame = pd.DataFrame([decision])
    frame["year"] = pd.to_datetime(frame["decided_on"]).dt.year.astype("int32")
    frame["champion_version"] = frame["champion_version"].astype("string")
    frame["champion_rank_ic"] = frame["champion_rank_ic"].astype("float64")
    lake.replace_interval(settings, "ops.model_decisions", frame, decided_on, decided_on, date_column="decided_on")
    return {**decision, "decided_on": decided_on.isoformat(), "gates": gates}


def rollback(settings: Settings, to_version: str, decided_on: dt.date, reason: str = "manual rollback") -> dict:
    """Move `champion` back to a registered version (the one it replaces keeps `previous`) and
    record the decision in ops.model_decisions beside the gate decisions (appended: a rollback
    on the day of a promotion keeps both rows)."""
    import mlflow

    configure_mlflow(settings)
    client = mlflow.MlflowClient()
    try:
        target = client.get_model_version(settings.model_name, str(to_version))
    except mlflow.exceptions.MlflowException as exc:
        raise ValueError(f"{settings.model_name} has no version {to_version!r} to roll back to") from exc
    champion = champion_version(settings)
    if champion is not None and str(champion.version) == str(target.version):
        raise ValueError(f"version {target.version} already holds alias {CHAMPION}")
    if champion is not None:
        client.set_registered_model_alias(settings.model_name, PREVIOUS, champion.version)
    client.set_registered_model_alias(settings.model_name, CHAMPION, target.version)
    decision = {
        "decided_on": decided_on, "model_name": settings.model_name, "candidate_version": str(target.version),
        "champion_version": str(champion.version) if champion is not None else None, "decision": "rolled_back",
        "candidate_rank_ic": float("nan"), "champion_rank_ic": float("nan"), "best_baseline": None,
        "best_baseline_rank_ic": float("nan"), "gates": json.dumps({"manual_rollback": True, "reason": reason}),
        "holdout_start": None, "holdout_end": None,
    }
    frame = pd.DataFrame([decision])
    frame["year"] = pd.to_datetime(frame["decided_on"]).dt.year.astype("int32")
    for col in ("champion_version", "best_baseline", "holdout_start", "holdout_end"):
        frame[col] = frame[col].astype("string")
    if lake.table_exists(settings, "ops.model_decisions"):
        existing = lake.read_table(settings, "ops.model_decisions", filters=[("decided_on", "=", decided_on)])
        if len(existing):
            frame = pd.concat([existing, frame[list(existing.columns)].astype(existing.dtypes.to_dict())],
                              ignore_index=True)
    lake.replace_interval(settings, "ops.model_decisions", frame, decided_on, decided_on, date_column="decided_on")
    return {"decision": "rolled_back", "champion": str(target.version),
            "previous": str(champion.version) if champion is not None else None, "decided_on": decided_on.isoformat()}


def _champion_ic_on(settings: Settings, champion, candidate: dict) -> float | None:
    """The champion's rank IC on the candidate's holdout sessions it has not trained on (None if none)."""
    import mlflow

    trained_to = dt.date.fromisoformat(champion.tags.get("train_end", "1900-01-01"))
    start = max(dt.date.fromisoformat(candidate["holdout_start"]), trained_to + dt.timedelta(days=1))
    end = dt.date.fromisoformat(candidate["holdout_end"])
    data = load_training_data(settings, end).frame
    block = data[(data["date"] >= start) & (data["date"] <= end)]
    if block["date"].nunique() < 20:
        return None
    model = mlflow.lightgbm.load_model(f"models:/{settings.model_name}@{CHAMPION}")
    return summarize_ic(rank_ic_by_session(block, model.predict(block[list(FEATURE_NAMES)])))["rank_ic_mean"]


def configure_mlflow(settings: Settings) -> None:
    import mlflow

    settings.mlflow_artifacts.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        mlflow.create_experiment(EXPERIMENT, artifact_location=settings.mlflow_artifacts.as_uri())
    mlflow.set_experiment(EXPERIMENT)


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
