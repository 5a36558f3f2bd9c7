"""Training, walk-forward evaluation and gated promotion of the daily LightGBM model (MLflow).

The flow follows Databricks mlops-stacks: train -> register -> validate -> move the alias.

- `train(settings, asof)`: the training set through Feast's point-in-time join
  (`load_training_data`); the configuration in settings (walkforward.config_from_settings) walked
  forward over it (purged test blocks, early stopping on a purged block) with the baselines on the
  same rows; its out-of-sample rows to gold.predictions_oos; one MLflow run with the reviewer's
  whole case (model_case); then the configuration refit through `asof` and registered as a new
  version that carries its calibration (pred_return and the conformal interval, fitted on
  out-of-sample blocks only), configuration, lineage and figures.
- `promote(settings, candidate, decided_on)`: challenger and champion configurations scored on
  the same purged walk-forward out-of-sample sessions (the latest promotion_window_sessions),
  paired daily rank-IC difference with its Newey-West t; the gates in settings; pass moves alias
  `champion` (the replaced version keeps `previous`); every decision goes to ops.model_decisions.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import subprocess
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tickerlake import evaluation as ev
from tickerlake import lake
from tickerlake import walkforward as wf
from tickerlake.catalog import FEATURE_NAMES, LABEL_COLUMNS
from tickerlake.feast_store import feature_list_hash
from tickerlake.settings import PROJECT_ROOT, Settings

log = logging.getLogger(__name__)

EXPERIMENT = "tickerlake_daily"
CHAMPION = "champion"
PREVIOUS = "previous"
@dataclass(frozen=True)
class TrainingData:
    frame: pd.DataFrame
    features_version: int
    labels_version: int
    start: dt.date
    end: dt.date
    macro_version: int | None = None  # gold.macro_daily, read by the market-wide view


def load_training_data(settings: Settings, asof: dt.date) -> TrainingData:
    """The training set as of `asof`: each complete label (ticker, session) with the features
    Feast's point-in-time join gives at that session's close (feature service
    `tickerlake_daily_lgbm`, TTL respected), so the model trains on what serving will hand it.

    The Delta versions read are recorded; the feature tables must not change while they are read
    (a concurrent backfill would mix versions), or the read fails and is retried by the task."""
    from tickerlake.calendar import session_close_utc
    from tickerlake.feast_store import ENTITY_TIMESTAMP, FEATURES_TABLE, MACRO_TABLE, historical_features

    if not lake.table_exists(settings, MACRO_TABLE):
        raise RuntimeError(f"{MACRO_TABLE} does not exist: run `tickerlake setup`, which writes it for the "
                           "sessions of gold.features_daily")
    fv = lake.table_version(settings, FEATURES_TABLE)
    mv = lake.table_version(settings, MACRO_TABLE)
    lv = lake.table_version(settings, "gold.labels_daily")
    label = settings.label
    if label not in LABEL_COLUMNS:
        raise ValueError(f"label {label!r} is not one of gold.labels_daily's {LABEL_COLUMNS}")
    labels = lake.read_table(settings, "gold.labels_daily", version=lv, filters=[("date", "<=", asof)],
                             columns=["ticker", "date", label]).dropna(subset=[label])
    if labels.empty:
        raise RuntimeError(f"no complete labels on or before {asof}: run the backfill first")
    labels["date"] = pd.to_datetime(labels["date"]).dt.date
    # The market-wide view joins by session: a session it lacks would train on null macro values
    # that scoring (which reads them from gold.features_daily) never sees.
    covered = set(pd.to_datetime(lake.read_table(settings, MACRO_TABLE, version=mv, columns=["date"])["date"]).dt.date)
    uncovered = sorted(set(labels["date"]) - covered)
    if uncovered:
        raise RuntimeError(f"{MACRO_TABLE} lacks {len(uncovered)} session(s) of the training set ({uncovered[0]} .. "
                           f"{uncovered[-1]}): run `tickerlake setup`, which fills them from silver.macro_asof")
    closes = {d: session_close_utc(d) for d in labels["date"].unique()}
    entity = labels.assign(**{ENTITY_TIMESTAMP: pd.to_datetime(labels["date"].map(closes), utc=True)})
    joined = historical_features(settings, entity)
    for table, before in ((FEATURES_TABLE, fv), (MACRO_TABLE, mv)):
        after = lake.table_version(settings, table)
        if after != before:
            raise RuntimeError(f"{table} changed while the training set was read (v{before} -> v{after})")
    frame = joined[["ticker", "date", *FEATURE_NAMES, label]]
    frame = frame.sort_values(["date", "ticker"]).reset_index(drop=True)
    return TrainingData(frame, fv, lv, frame["date"].min(), frame["date"].max(), mv)


# --- train: walk forward, log the case, refit, register -------------------------------------------


def train(settings: Settings, asof: dt.date, data: TrainingData | None = None) -> dict:
    """Walk the configuration in settings forward over the training set of `asof`, log the case to
    one MLflow run, refit through `asof` and register the version. Returns the candidate's record
    (JSON-safe: it travels as an XCom)."""
    from tickerlake.model_case import log_case

    data = data or load_training_data(settings, asof)
    cfg = wf.config_from_settings(settings)
    features = list(FEATURE_NAMES)
    started = time.perf_counter()
    oos = wf.walk_forward(data.frame, cfg, features)
    walk_forward_s = time.perf_counter() - started
    oos_key = f"train:{cfg.config_hash()}:{asof.isoformat()}"
    wf.write_oos(settings, oos, oos_key, cfg)
    figures = wf.score_oos(oos, cfg)
    series = wf.session_series(oos, cfg)
    window = wf.last_sessions(oos, settings.promotion_window_sessions)
    window_figures = wf.score_oos(window, cfg)
    calib = wf.calibration(oos, cfg)
    rounds = wf.final_rounds(oos)
    started = time.perf_counter()
    final = wf.fit_final(data.frame, cfg, rounds, features)
    refit_s = time.perf_counter() - started
    tags = {
        "asof_date": asof.isoformat(),
        "train_start": data.start.isoformat(),
        "train_end": data.end.isoformat(),
        "oos_start": str(min(oos["date"])),
        "oos_end": str(max(oos["date"])),
        "features_delta_version": str(data.features_version),
        "labels_delta_version": str(data.labels_version),
        "feature_list_hash": feature_list_hash(features),  # the same hash as the feature service's tag
        "feature_service": settings.model_name,
        "config_hash": cfg.config_hash(features),
        "label": cfg.label,
        "git_commit": _git_commit(),
    }
    if data.macro_version is not None:  # read through Feast (load_training_data): maintenance keeps it
        tags["macro_delta_version"] = str(data.macro_version)
    version_tags = {
        **tags, **{k: repr(v) for k, v in calib.items()},
        "config_json": wf.config_json(cfg),
        "oos_key": oos_key,
        "backtest_rank_ic": repr(window_figures["rank_ic_mean"]),  # the report's "live against backtest"
        "backtest_sessions": str(window_figures["sessions"]),
    }
    logged = log_case(settings, run_name=f"train-{asof.isoformat()}", cfg=cfg, oos=oos, figures=figures,
                      window_figures=window_figures, calib=calib, booster=final, frame=data.frame,
                      features=features, tags=tags, version_tags=version_tags,
                      timings={"walk_forward_s": walk_forward_s, "refit_s": refit_s}, series=series)
    return {"version": logged["version"], "run_id": logged["run_id"], "asof": asof.isoformat(),
            "oos_key": oos_key, "config_hash": cfg.config_hash(features), "config_json": wf.config_json(cfg),
            "features": features, "rounds": rounds, "calibration": calib,
            "walk_forward": _headline(figures), "window": _headline(window_figures),
            "timings": {"walk_forward_s": round(walk_forward_s, 3), "refit_s": round(refit_s, 3),
                        "mlflow_s": round(logged["mlflow_s"], 3)}}


def _headline(figures: dict) -> dict:
    keys = ("rank_ic_mean", "rank_ic_t", "icir_annual", "sharpe_net_5bp", "turnover", "coverage", "sessions",
            "best_baseline")
    out = {k: figures.get(k) for k in keys}
    out["baselines"] = {n: b["rank_ic_mean"] for n, b in figures.get("baselines", {}).items()}
    return wf.finite(out)


# --- promote: the gate -----------------------------------------------------------------------------


def gate(settings: Settings, cfg: wf.WalkForwardConfig, candidate_oos, champion_oos=None,
         champion_live: dict | None = None, schema_missing: list[str] | None = None,
         same_configuration: bool = False) -> dict:
    """The promotion gates on the latest `promotion_window_sessions` out-of-sample sessions of the
    candidate (pure: every input is given). Returns each gate's result and both sides' figures."""
    n = settings.promotion_window_sessions
    window = wf.last_sessions(candidate_oos, n)
    series = wf.session_series(window, cfg)["rank_ic"]
    cand_ic = series["model"]
    baselines = {name: float(series[name].mean()) for name in series.columns if name != "model"}
    best_name, best_ic = max(baselines.items(), key=lambda kv: kv[1]) if baselines else (None, float("nan"))
    covered = window.dropna(subset=["pred_lo", "pred_hi", "label"])
    coverage = wf.coverage(covered)
    missing = int(window["label"].notna().sum() - window.dropna(subset=["label", "score"]).shape[0])
    sessions = int(window["date"].nunique())
    lags = max(cfg.label_horizon - 1, ev.default_lags(len(cand_ic), cfg.label_horizon))
    gates: dict[str, bool] = {
        "enough_sessions": sessions >= n,
        "beats_best_baseline": bool(cand_ic.mean() > best_ic),
        "no_missing_predictions": missing == 0,
        "feature_schema_compatible": not schema_missing,
        "interval_coverage": bool(covered["date"].nunique() == sessions
                                  and abs(coverage - cfg.coverage) <= settings.promotion_coverage_tolerance),
    }
    out = {"window_start": str(min(window["date"])), "window_end": str(max(window["date"])), "sessions": sessions,
           "candidate_rank_ic": float(cand_ic.mean()), "best_baseline": best_name, "best_baseline_rank_ic": best_ic,
           "baselines": baselines, "coverage": float(coverage), "coverage_target": cfg.coverage,
           "missing_predictions": missing, "schema_missing": list(schema_missing or []),
           "champion_rank_ic": None, "paired": None, "same_configuration": same_configuration}
    if champion_oos is not None:
        champ_window = champion_oos[champion_oos["date"].isin(set(window["date"]))]
        champ_ic = wf.session_series(champ_window, cfg)["rank_ic"]["model"]
        paired = ev.paired_difference_t(cand_ic, champ_ic, lags)
        out["champion_rank_ic"] = float(champ_ic.mean())
        out["paired"] = paired
        # The same configuration on the same data scores the same sessions identically: a refit on
        # newer data is a refresh, judged by the other gates (the difference is zero by construction).
        gates["beats_champion"] = bool(same_configuration or paired["mean_diff"] > settings.promotion_min_ic_diff)
    if champion_live is not None:
        out["champion_live"] = champion_live
        if champion_live.get("sessions", 0) >= settings.promotion_live_sessions:
            gates["beats_champion_live"] = bool(champion_live.get("rank_ic") is not None
                                                and cand_ic.mean() > champion_live["rank_ic"])
    out["gates"] = gates
    out["passed"] = all(gates.values())
    return out


def promote(settings: Settings, candidate: dict, decided_on: dt.date, data: TrainingData | None = None) -> dict:
    """Gate the candidate against the best baseline and the champion configuration on the same
    out-of-sample sessions; pass moves `champion` (the old one keeps `previous`). The first model
    is promoted only if it beats the best baseline. Every decision is recorded."""
    import mlflow

    configure_mlflow(settings)
    client = mlflow.MlflowClient()
    cfg = wf.config_from_json(candidate["config_json"])
    cand_oos = wf.read_oos(settings, candidate["oos_key"])
    champion = champion_version(settings)
    champion_oos, live, same = None, None, False
    if champion is not None:
        same = champion.tags.get("config_hash") == candidate["config_hash"]
        if same:
            champion_oos = cand_oos
        else:
            champion_oos = _champion_oos(settings, champion, candidate, data)
        live = _live(settings, champion, decided_on)
    result = gate(settings, cfg, cand_oos, champion_oos, live, _schema_missing(settings, candidate["features"]), same)
    passed = result["passed"]
    if passed:
        if champion is not None:
            client.set_registered_model_alias(settings.model_name, PREVIOUS, champion.version)
        client.set_registered_model_alias(settings.model_name, CHAMPION, candidate["version"])
    decision = {
        "decided_on": decided_on, "model_name": settings.model_name, "candidate_version": str(candidate["version"]),
        "champion_version": str(champion.version) if champion is not None else None,
        "decision": "promoted" if passed else "rejected",
        "candidate_rank_ic": result["candidate_rank_ic"], "champion_rank_ic": result["champion_rank_ic"],
        "best_baseline": result["best_baseline"], "best_baseline_rank_ic": result["best_baseline_rank_ic"],
        "gates": json.dumps(result["gates"]), "holdout_start": result["window_start"],
        "holdout_end": result["window_end"],
        "paired_ic_diff": (result["paired"] or {}).get("mean_diff"), "paired_t": (result["paired"] or {}).get("t_nw"),
        "candidate_config_hash": candidate["config_hash"],
        "champion_config_hash": champion.tags.get("config_hash") if champion is not None else None,
        "details": json.dumps(wf.finite({k: v for k, v in result.items() if k != "gates"}), default=str),
    }
    record_decision(settings, decision)
    client.set_model_version_tag(settings.model_name, str(candidate["version"]), "gate_decision",
                                 f"{decision['decision']} on {decided_on.isoformat()}: {json.dumps(result['gates'])}")
    return {**wf.finite({k: v for k, v in decision.items() if k not in ("gates", "details")}),
            "decided_on": decided_on.isoformat(), "gates": result["gates"], "window": wf.finite(
                {k: result[k] for k in ("sessions", "coverage", "missing_predictions", "window_start", "window_end")})}


def candidate_from_version(settings: Settings, version: str | None = None) -> dict:
    """The candidate record `promote` takes, rebuilt from a registered version's tags (default: the
    newest version), so the gate can run on its own (`tickerlake promote`)."""
    import mlflow

    configure_mlflow(settings)
    client = mlflow.MlflowClient()
    mv = client.get_model_version(settings.model_name, str(version)) if version else latest_version(settings)
    if mv is None:
        raise ValueError(f"{settings.model_name} has no registered version to promote")
    missing = [t for t in ("config_json", "config_hash", "oos_key", "asof_date", "feature_list_hash") if t not in mv.tags]
    if missing:
        raise ValueError(f"version {mv.version} lacks the training tags {missing}: train it with `tickerlake train`")
    if mv.tags["feature_list_hash"] != feature_list_hash(FEATURE_NAMES):
        raise ValueError(f"version {mv.version} was trained on another feature list than this catalogue's")
    return {"version": str(mv.version), "run_id": mv.run_id, "asof": mv.tags["asof_date"],
            "oos_key": mv.tags["oos_key"], "config_hash": mv.tags["config_hash"],
            "config_json": mv.tags["config_json"], "features": list(FEATURE_NAMES)}


def _champion_oos(settings: Settings, champion, candidate: dict, data: TrainingData | None):
    """The champion's configuration walked forward over the candidate's training set (same rows,
    same blocks), kept in gold.predictions_oos under its own key."""
    config = champion.tags.get("config_json")
    if not config:
        raise RuntimeError(f"champion v{champion.version} records no configuration (tag config_json)")
    cfg = wf.config_from_json(config)
    asof = dt.date.fromisoformat(candidate["asof"])
    data = data or load_training_data(settings, asof)
    oos = wf.walk_forward(data.frame, cfg, list(candidate["features"]))
    wf.write_oos(settings, oos, f"champion:{cfg.config_hash()}:{asof.isoformat()}", cfg)
    return oos


def _live(settings: Settings, champion, decided_on: dt.date) -> dict | None:
    from tickerlake.outcomes import live_record

    if not lake.table_exists(settings, "gold.signal_outcomes"):
        return None
    record = live_record(settings, decided_on, window=settings.promotion_live_sessions)
    return record["by_version"].get(str(champion.version))


def _schema_missing(settings: Settings, features: list[str]) -> list[str]:
    """Candidate features the serving side lacks: not a column of gold.features_daily."""
    from deltalake import DeltaTable

    columns = set(DeltaTable(settings.table_path("gold.features_daily")).schema().to_arrow().names)
    return [f for f in features if f not in columns]


DECISION_COLUMNS = {
    "decided_on": "date32", "model_name": "string", "candidate_version": "string", "champion_version": "string",
    "decision": "string", "candidate_rank_ic": "float64", "champion_rank_ic": "float64", "best_baseline": "string",
    "best_baseline_rank_ic": "float64", "gates": "string", "holdout_start": "string", "holdout_end": "string",
    "paired_ic_diff": "float64", "paired_t": "float64", "candidate_config_hash": "string",
    "champion_config_hash": "string", "details": "string", "year": "int32",
}


def record_decision(settings: Settings, decision: dict) -> int:
    """Add a decision to ops.model_decisions. The rows of its day are rewritten with it in one
    commit: a retry of the same decision (same candidate, same kind) replaces itself, any other
    decision of the day (a rollback after a promotion) stays beside it."""
    import pyarrow as pa

    schema = pa.schema([(name, pa.type_for_alias(kind)) for name, kind in DECISION_COLUMNS.items()])
    day = decision["decided_on"]
    row = {name: decision.get(name) for name in schema.names}
    row["year"] = day.year
    rows = [row]
    if lake.table_exists(settings, "ops.model_decisions"):
        existing = lake.read_table(settings, "ops.model_decisions", filters=[("decided_on", "=", day)])
        for old in existing.to_dict("records"):
            if (str(old["candidate_version"]), old["decision"]) != (row["candidate_version"], row["decision"]):
                rows.insert(-1, {name: _plain(old.get(name)) for name in schema.names})
    table = pa.Table.from_pylist(rows, schema=schema)
    return lake.replace_interval(settings, "ops.model_decisions", table, day, day, date_column="decided_on")


def _plain(value):
    if value is None:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.date()
    if isinstance(value, np.generic):
        return value.item()
    return value


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
        "gates": json.dumps({"manual_rollback": True, "reason": reason}),
        "candidate_config_hash": target.tags.get("config_hash"),
        "champion_config_hash": champion.tags.get("config_hash") if champion is not None else None,
    }
    record_decision(settings, decision)
    return {"decision": "rolled_back", "champion": str(target.version),
            "previous": str(champion.version) if champion is not None else None, "decided_on": decided_on.isoformat()}


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
