"""Training benchmark (`tickerlake bench train --out FILE.json [--tiers ...]`).

Per tier, synthetic bars (tickerlake.synthetic) get every catalogue feature and the labels from the
DuckDB reference engine (`reference_features`, which has parity with the Spark job to 1e-9; the
Spark job at these sizes would dominate the run, and it is measured by `bench features`). Then,
in this process:
- one_fit_s: one LightGBM fit of the configuration in settings on every row, for its full
  `train_num_rounds` (the refit's work, without early stopping), against reference_fit_s: stock
  LightGBM (its default parameters, 100 rounds) on the same matrix in the same run;
- walk_forward_s: the full purged walk-forward of that configuration (early stopping per fold,
  the ridge baseline), as `train` runs it;
- mlflow_s: logging the case and registering the model (`model_case.log_case`: the MLflow calls,
  the charts and tables it writes), against the training time (walk-forward + refit). Reported
  beside it and not counted: mlflow_import_s (importing MLflow, once per process) and
  mlflow_store_setup_s (creating the tier's fresh tracking database, once per store). The
  per-session series the charts draw are evaluation figures, computed before it as `train` does.
Goals (issue 6, 2 cores, 500 tickers x 5 years): one fit <= 120 s; the walk-forward <= 15 min;
MLflow logging <= 2% of the training time.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from pathlib import Path

from tickerlake.bench import report_header, write_report
from tickerlake.settings import Settings

TIERS = {
    "synthetic_100x2y": {"tickers": 100, "start": "2024-01-02", "end": "2025-12-31"},
    "synthetic_500x5y": {"tickers": 500, "start": "2021-01-04", "end": "2025-12-31"},
}
DEFAULT_TIERS = ["synthetic_500x5y"]
GOALS = {"one_fit_s": 120.0, "walk_forward_s": 900.0, "mlflow_share": 0.02}


def training_data(spec: dict, seed: int):
    """A TrainingData of the tier: reference features joined to the labels by (ticker, date)."""
    from tickerlake import reference_features
    from tickerlake.catalog import FEATURE_NAMES
    from tickerlake.synthetic import generate_bars
    from tickerlake.training import TrainingData

    bars = generate_bars(spec["tickers"], spec["start"], spec["end"], seed=seed)
    bars = bars[["ticker", "date", "open", "high", "low", "close", "volume"]]
    feats = reference_features.features(bars)
    labels = reference_features.labels(bars)[["ticker", "date", "ret_1d", "ret_5d"]]
    frame = feats.merge(labels, on=["ticker", "date"], how="inner")
    frame = frame[["ticker", "date", *FEATURE_NAMES, "ret_1d", "ret_5d"]].sort_values(["date", "ticker"])
    frame = frame.reset_index(drop=True)
    return TrainingData(frame, -1, -1, frame["date"].min(), frame["date"].max())


def _run_tier(settings: Settings, name: str, spec: dict, progress) -> dict:
    import lightgbm as lgb

    from tickerlake import walkforward as wf
    from tickerlake.catalog import FEATURE_NAMES

    started = time.perf_counter()
    data = training_data(spec, settings.seed)
    prepare_s = time.perf_counter() - started
    frame, cfg, features = data.frame, wf.config_from_settings(settings), list(FEATURE_NAMES)
    rows = int(frame[cfg.label].notna().sum())
    progress(f"{name}: {rows:,} labelled rows x {len(features)} features (prepared in {prepare_s:.1f}s)")

    labelled = frame.dropna(subset=[cfg.label])
    matrix = lgb.Dataset(labelled[features], label=labelled[cfg.label], free_raw_data=False)
    t = time.perf_counter()
    lgb.train({"verbose": -1, "num_threads": cfg.params.get("num_threads", 0)}, matrix, num_boost_round=100)
    reference_fit_s = time.perf_counter() - t

    t = time.perf_counter()
    wf.fit_final(frame, cfg, cfg.num_rounds, features)
    one_fit_s = time.perf_counter() - t
    progress(f"{name}: one fit ({cfg.num_rounds} rounds) {one_fit_s:.1f}s; stock LightGBM 100 rounds "
             f"{reference_fit_s:.1f}s")

    t = time.perf_counter()
    oos = wf.walk_forward(frame, cfg, features)
    walk_forward_s = time.perf_counter() - t
    progress(f"{name}: walk-forward {walk_forward_s:.1f}s over {oos['fold'].nunique()} folds")

    figures = wf.score_oos(oos, cfg)
    series = wf.session_series(oos, cfg)  # evaluation figures, as in `train`: computed before the logging
    window = wf.score_oos(wf.last_sessions(oos, settings.promotion_window_sessions), cfg)
    calib = wf.calibration(oos, cfg)
    t = time.perf_counter()
    booster = wf.fit_final(frame, cfg, wf.final_rounds(oos), features)
    refit_s = time.perf_counter() - t

    t = time.perf_counter()
    import mlflow  # noqa: F401  (timed on its own: a worker process pays it once)
    import mlflow.lightgbm  # noqa: F401
    mlflow_import_s = time.perf_counter() - t
    from tickerlake.feast_store import feature_list_hash
    from tickerlake.model_case import log_case
    from tickerlake.training import configure_mlflow

    t = time.perf_counter()
    configure_mlflow(settings)  # the tier's fresh SQLite store: its tables are created once per store
    mlflow_store_s = time.perf_counter() - t

    tags = {"asof_date": str(data.end), "train_start": str(data.start), "train_end": str(data.end),
            "oos_start": str(min(oos["date"])), "oos_end": str(max(oos["date"])), "features_delta_version": "-1",
            "labels_delta_version": "-1", "feature_list_hash": feature_list_hash(features),
            "feature_service": settings.model_name, "config_hash": cfg.config_hash(features), "label": cfg.label,
            "git_commit": "bench"}
    logged = log_case(settings, run_name=f"bench-{name}", cfg=cfg, oos=oos, figures=figures, window_figures=window,
                      calib=calib, booster=booster, frame=frame, features=features, tags=tags,
                      version_tags={**tags, **{k: repr(v) for k, v in calib.items()}},
                      timings={"walk_forward_s": walk_forward_s, "refit_s": refit_s}, series=series)
    training_s = walk_forward_s + refit_s
    return {
        "tickers": spec["tickers"], "start": spec["start"], "end": spec["end"], "rows": rows,
        "features": len(features), "folds": int(oos["fold"].nunique()), "prepare_s": round(prepare_s, 2),
        "one_fit_s": round(one_fit_s, 2), "one_fit_rounds": cfg.num_rounds, "reference_fit_s": round(reference_fit_s, 2),
        "one_fit_vs_reference": round(one_fit_s / reference_fit_s, 3),
        "walk_forward_s": round(walk_forward_s, 2), "refit_s": round(refit_s, 2),
        "mlflow_s": round(logged["mlflow_s"], 3), "mlflow_import_s": round(mlflow_import_s, 2),
        "mlflow_store_setup_s": round(mlflow_store_s, 2),
        "mlflow_share": round(logged["mlflow_s"] / training_s, 5),
        "oos_rank_ic_mean": figures["rank_ic_mean"],
        "goal_one_fit_met": one_fit_s <= GOALS["one_fit_s"],
        "goal_walk_forward_met": walk_forward_s <= GOALS["walk_forward_s"],
        "goal_mlflow_share_met": logged["mlflow_s"] / training_s <= GOALS["mlflow_share"],
    }


def bench_train(settings: Settings, out_path: str | os.PathLike[str], tiers: list[str] | None = None,
                progress=print, specs: dict[str, dict] | None = None) -> dict:
    """Run the tiers (default DEFAULT_TIERS), print the figures, write JSON to `out_path`. Each tier
    logs to its own MLflow store under <home>/bench/train-<tier>/ (removed afterwards)."""
    report = report_header("train", goals=GOALS)
    out = Path(out_path)
    for name in tiers or DEFAULT_TIERS:
        home = settings.home / "bench" / f"train-{name}"
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        tier_settings = dataclasses.replace(settings, home=home, mlflow_tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
        try:
            f = _run_tier(tier_settings, name, {**TIERS, **(specs or {})}[name], progress)
        finally:
            shutil.rmtree(home, ignore_errors=True)
        report["tiers"][name] = f
        progress(f"{name}: one fit {f['one_fit_s']}s (stock LightGBM x{f['one_fit_vs_reference']}), walk-forward "
                 f"{f['walk_forward_s']}s, MLflow {f['mlflow_s']}s = {100 * f['mlflow_share']:.2f}% of training")
        write_report(out, report)  # after each tier: partial figures survive
    report["machine"]["load_average_end"] = os.getloadavg()
    write_report(out, report)
    progress(f"wrote {out}")
    return report
