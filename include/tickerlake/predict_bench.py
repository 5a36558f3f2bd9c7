"""Prediction benchmark: the nightly scoring path and the analyst's one-ticker history
(`tickerlake bench predict --out FILE.json [--tiers ...]`).

Goals (issue 7, 2 cores):
- predict_5000_s: predictions for 5,000 tickers in <= 30 s, model load included;
- history_p95_s: one ticker's whole history of features and predictions in <= 1 s at the 95th
  percentile, on the 5,000 tickers x 20 years tables.

Per tier, a lake is built under `<home>/bench/predict_<tier>/` (its own lake root and its own
SQLite MLflow registry, never the project's):
- bars: the synthetic market (tickerlake.synthetic, the clean default: every ticker trades every
  session);
- gold.features_daily: every catalogue feature from the DuckDB reference engine
  (reference_features.features, 1e-9 parity with the Spark job; the Spark job itself is too slow
  for 5,000 x 20 years on this machine). Computed one calendar year at a time so a chunk fits in
  memory: each chunk holds every ticker (the cross-sectional CSR_/CSZ_/MKTREL features see the
  whole cross-section of each session) plus the catalog.LOOKBACK_SESSIONS sessions before the
  year as warm-up, so each kept row reads exactly the sessions a whole-history run gives it (the
  running sums behind SUM/MEAN start later, so values may differ in the last bits, far inside the
  parity tolerance). Warm-up rows are computed and dropped, not written;
- a champion: a real LightGBM (walkforward.fit_final with the settings' configuration, NUM_ROUNDS
  rounds instead of early stopping) fitted on the last TRAIN_SESSIONS sessions of up to
  TRAIN_TICKERS tickers with the reference labels, calibrated (walkforward.calibration) on a purged
  block of its last CALIB_SESSIONS sessions, logged and registered with mlflow.lightgbm.log_model,
  the calibration tags predict reads set, alias champion (no walk-forward, no promotion gate: the
  bench times scoring, not training);
- gold.predictions_daily: the champion's predictions (predict.score_features, one session at a
  time, the PREDICTION_COLUMNS schema) for every session but the last.
Both tables are written year by year (lake.replace_interval: partitioned by year as the platform
writes them), each write's rows sorted by (ticker, date): the layout the weekly OPTIMIZE ZORDER BY
ticker gives, so a ticker's rows sit in few files and row groups. The last session's features are
their own commit, as the nightly feature job leaves them when predict reads them (inside the
Z-ordered year files, a one-session read scans every file of the year: 5.4 s at 5,000 x 1 year).
The build is kept (a marker file records it) with --keep, and reused by the next run; otherwise the
tier's folder is removed at the end.

Measured each run:
- predict: `predict.predict_session` for the last session in a fresh Python process (what the
  daily task is): process_s (spawn to exit), imports_s, call_s, and the split of the call: model_s
  (champion lookup + load from the registry), read_s (Delta reads of the features), check_s (the
  completeness check, predict.skipped_tickers), scoring_s, validate_write_s (validation, the
  append, the skipped rows). total_s = imports_s + call_s is the goal's figure (process_s adds the
  interpreter's start-up). The bench lake has no bronze table, so the universe is the feature
  rows. Reference from the same run: bare `booster.predict` on the same rows (ratio = total / bare);
- history: through the analyst session (sql.connect, the views of include/sql/views.sql, the
  read-only guard), one ticker's every feature row joined with its predictions, for
  HISTORY_QUERIES random tickers on one open session: p50, p95, max; connect_s apart.
- build figures (when built) and, from them, an estimate of the 5,000 x 20 years build on this
  machine; a later 5000x20y tier of the same run is skipped when that estimate exceeds
  MAX_BUILD_S or the disk lacks room.
Timings are wall-clock (time.perf_counter): this module measures, it decides nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import pickle
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

from tickerlake.bench import report_header, write_report
from tickerlake.settings import Settings

TIERS = {
    "synthetic_200x2y": {"tickers": 200, "start": "2024-01-02", "end": "2025-12-31"},
    "synthetic_500x5y": {"tickers": 500, "start": "2021-01-04", "end": "2025-12-31"},
    "synthetic_5000x1y": {"tickers": 5000, "start": "2025-01-02", "end": "2025-12-31"},
    "synthetic_5000x20y": {"tickers": 5000, "start": "2006-01-03", "end": "2025-12-31"},
}
DEFAULT_TIERS = ["synthetic_200x2y", "synthetic_500x5y", "synthetic_5000x1y"]
FULL = "synthetic_5000x20y"
GOALS = {"predict_5000_s": 30, "history_p95_s": 1.0}
MAX_BUILD_S = 45 * 60
HISTORY_QUERIES = 50
TRAIN_SESSIONS = 250
TRAIN_TICKERS = 500
CALIB_SESSIONS = 60
NUM_ROUNDS = 30
MARKER = "build.json"
FEATURES, PREDICTIONS = "gold.features_daily", "gold.predictions_daily"


def bench_predict(settings: Settings, out_path: str | os.PathLike[str], tiers: list[str] | None = None,
                  keep: bool = False, progress=print, specs: dict[str, dict] | None = None,
                  history_queries: int = HISTORY_QUERIES, on_measured=None) -> dict:
    """Run the tiers (default DEFAULT_TIERS), print the figures, write JSON to `out_path`.
    `specs`: further tiers by name; `on_measured(settings, build)` is called with each tier's lake
    still in place (before it is removed), for a caller that checks what the bench wrote."""
    specs = {**TIERS, **(specs or {})}
    report = report_header("predict", goals=GOALS)
    out = Path(out_path)
    estimate: dict | None = None
    for name in tiers or DEFAULT_TIERS:
        spec = specs[name]
        home = tier_home(settings, name)
        if name == FULL and estimate is not None and not _complete(home):
            why = _too_big(estimate, settings.home)
            if why:
                report["tiers"][name] = {"skipped": why, "estimate": estimate}
                progress(f"{name}: skipped ({why})")
                continue
        f = run_tier(settings, name, spec, keep=keep, progress=progress, history_queries=history_queries,
                     on_measured=on_measured)
        report["tiers"][name] = f
        if "estimate_5000x20y" in f:
            estimate = f["estimate_5000x20y"]
        progress(_line(name, f))
        write_report(out, report)  # after each tier: partial figures survive
    full = report["tiers"].get(FULL, {})
    if "predict" in full:
        report["goal_history_p95_met"] = full["history"]["p95_s"] <= GOALS["history_p95_s"]
    at_5000 = [f for f in report["tiers"].values() if f.get("tickers") == 5000 and "predict" in f]
    if at_5000:
        report["goal_predict_5000_met"] = all(f["predict"]["total_s"] <= GOALS["predict_5000_s"] for f in at_5000)
    if estimate is not None:
        report["estimate_5000x20y"] = estimate
    write_report(out, report)
    progress(f"wrote {out}")
    return report


def tier_home(settings: Settings, name: str) -> Path:
    return Path(settings.home) / "bench" / f"predict_{name}"


def tier_settings(settings: Settings, home: Path) -> Settings:
    """The tier's own lake and MLflow registry (the project's registry is never touched)."""
    return dataclasses.replace(settings, home=home, lake_root=f"file://{home / 'lake'}",
                               mlflow_tracking_uri=f"sqlite:///{home / 'mlflow' / 'mlflow.db'}")


def run_tier(settings: Settings, name: str, spec: dict, keep: bool = False, progress=print,
             history_queries: int = HISTORY_QUERIES, on_measured=None) -> dict:
    """Build (or reuse) the tier's lake, measure, remove the lake unless `keep`."""
    home = tier_home(settings, name)
    s = tier_settings(settings, home)
    figures: dict = {"tickers": spec["tickers"], "interval": [spec["start"], spec["end"]],
                     "load_avg_start": [round(x, 2) for x in os.getloadavg()]}
    try:
        if _complete(home) and json.loads((home / MARKER).read_text())["spec"] == spec:
            build = json.loads((home / MARKER).read_text())
            _restore_predictions(s, build["predictions_version"])
            figures["reused"] = True
            progress(f"{name}: reusing the build in {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
            build = build_tier(s, name, spec, progress)
            figures["reused"] = False
            figures["build"] = build["timings"]
            figures["estimate_5000x20y"] = _estimate(build)
        figures.update(rows=build["rows"], sessions=build["sessions"], last_session=build["last_session"],
                       model_version=build["model_version"], calib_block_rank_ic=build["calib_block_rank_ic"])
        progress(f"{name}: predict_session for {build['last_session']} in a fresh process ...")
        figures["predict"] = _measure_predict(s, build)
        progress(f"{name}: {history_queries} one-ticker histories through the analyst views ...")
        figures["history"] = _measure_history(s, build, history_queries)
        if on_measured is not None:
            on_measured(s, build)
        figures["lake_bytes"] = _size(home / "lake")
        figures["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        if not keep:
            shutil.rmtree(home, ignore_errors=True)
    figures["kept"] = bool(keep)
    return figures


# --- the build ----------------------------------------------------------------------------------
def _complete(home: Path) -> bool:
    return (home / MARKER).is_file()


def build_tier(s: Settings, name: str, spec: dict, progress) -> dict:
    """The tier's lake (bars, reference features, a registered champion, its predictions) under
    `s`; returns the build record (also written to the marker file)."""
    import duckdb
    import numpy as np
    import pandas as pd

    from tickerlake import lake
    from tickerlake import reference_features as rf
    from tickerlake.altdata.macro import write_macro_daily
    from tickerlake.calendar import session_close_utc
    from tickerlake.catalog import LOOKBACK_SESSIONS
    from tickerlake.synthetic import generate_bars

    timings: dict = {}
    t0 = time.perf_counter()
    bars = generate_bars(spec["tickers"], spec["start"], spec["end"], seed=s.seed)
    bars["date"] = pd.to_datetime(bars["date"])  # datetime64: fast masks; DuckDB casts it to DATE
    timings["bars_s"] = round(time.perf_counter() - t0, 2)
    sessions = np.sort(bars["date"].unique())
    years = sorted({int(pd.Timestamp(d).year) for d in sessions})
    computed, ref_s, write_s = 0, 0.0, 0.0
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")  # one connection for every chunk, no bar in the log
    for year in years:
        in_year = np.flatnonzero(pd.DatetimeIndex(sessions).year == year)
        first, last = sessions[in_year[0]], sessions[in_year[-1]]
        warm = sessions[max(0, in_year[0] - LOOKBACK_SESSIONS)]  # the sessions the year's first row reads
        chunk = bars[(bars["date"] >= warm) & (bars["date"] <= last)]
        t0 = time.perf_counter()
        feats = rf.features(chunk, con=con)
        ref_s += time.perf_counter() - t0
        computed += len(feats)
        first_d, last_d = pd.Timestamp(first).date(), pd.Timestamp(last).date()
        feats = feats[feats["date"] >= first_d].reset_index(drop=True)  # sorted by (ticker, date) already
        # Feast's event time of a daily row, as the feature job writes it: the session's close in UTC
        closes = {d: session_close_utc(d) for d in feats["date"].unique()}
        feats["event_ts"] = pd.to_datetime(feats["date"].map(closes), utc=True)
        feats["year"] = np.int32(year)
        t0 = time.perf_counter()
        if year == years[-1] and first_d < last_d:
            # the last session as its own commit, as the nightly feature job writes it just before
            # predict reads it (the weekly OPTIMIZE folds it into the year's files later)
            night = feats["date"] == last_d
            lake.replace_interval(s, FEATURES, feats[~night], first_d, pd.Timestamp(sessions[-2]).date())
            lake.replace_interval(s, FEATURES, feats[night], last_d, last_d)
        else:
            lake.replace_interval(s, FEATURES, feats, first_d, last_d)
        write_s += time.perf_counter() - t0
        progress(f"{name}: features {year}: {len(feats):,} rows (reference {ref_s:.1f}s, write {write_s:.1f}s so far)")
        del feats, chunk
    con.close()
    timings.update(reference_s=round(ref_s, 2), reference_rows_computed=computed,
                   features_write_s=round(write_s, 2))
    fv = lake.table_version(s, FEATURES)
    last_session = pd.Timestamp(sessions[-1]).date()
    # the market-wide table beside the features, as the feature job writes it (Feast's macro view)
    write_macro_daily(s, pd.Timestamp(sessions[0]).date(), last_session)

    t0 = time.perf_counter()
    booster, calib, ic = _train(s, bars, sessions)
    model_version = _register(s, booster, calib, ic, fv)
    timings["train_register_s"] = round(time.perf_counter() - t0, 2)
    progress(f"{name}: champion v{model_version} (rank IC {ic:.4f} on its calibration block); scoring the history ...")

    score_s, pwrite_s, predicted = 0.0, 0.0, 0
    for year in years:
        t0 = time.perf_counter()
        rows = _history_predictions(s, booster, calib, model_version, fv, year, last_session)
        score_s += time.perf_counter() - t0
        if len(rows):
            t0 = time.perf_counter()
            lake.replace_interval(s, PREDICTIONS, rows, rows["asof_date"].min(), rows["asof_date"].max(),
                                  date_column="asof_date")
            pwrite_s += time.perf_counter() - t0
            predicted += len(rows)
    timings.update(history_scoring_s=round(score_s, 2), predictions_write_s=round(pwrite_s, 2),
                   history_predictions=predicted)
    timings["build_s"] = round(sum(v for k, v in timings.items() if k.endswith("_s")), 2)
    timings["lake_bytes"] = _size(Path(s.home) / "lake")
    sessions_per_ticker = bars.groupby("ticker").size()
    build = {
        "spec": spec, "rows": len(bars), "sessions": len(sessions), "last_session": last_session.isoformat(),
        "features_version": fv, "model_version": model_version, "calib_block_rank_ic": round(ic, 4),
        "predictions_version": lake.table_version(s, PREDICTIONS),
        "sessions_per_ticker": {str(k): int(v) for k, v in sessions_per_ticker.items()},
        "timings": timings,
    }
    (Path(s.home) / MARKER).write_text(json.dumps(build, indent=2) + "\n")  # last: a marker means complete
    return build


def _train(s: Settings, bars, sessions):
    """A real LightGBM (the settings' walk-forward configuration, NUM_ROUNDS rounds) on the tier's
    features and the reference labels, fitted before a purged block of the last CALIB_SESSIONS
    sessions; calibrated on that block the way training calibrates a version (walkforward.calibration)."""
    import numpy as np
    import pandas as pd

    from tickerlake import lake
    from tickerlake import reference_features as rf
    from tickerlake import walkforward as wf
    from tickerlake.catalog import FEATURE_NAMES

    cfg = wf.config_from_settings(s)
    start = pd.Timestamp(sessions[max(0, len(sessions) - TRAIN_SESSIONS)])
    tickers = sorted(bars["ticker"].unique())
    if len(tickers) > TRAIN_TICKERS:
        tickers = sorted(np.random.default_rng(s.seed).choice(tickers, TRAIN_TICKERS, replace=False))
    tickers = [str(t) for t in tickers]
    window = bars[(bars["date"] >= start) & bars["ticker"].isin(tickers)]
    labels = rf.labels(window)[["ticker", "date", cfg.label]].dropna(subset=[cfg.label])
    feats = lake.read_table(s, FEATURES, filters=[("date", ">=", start.date()), ("ticker", "in", tickers)],
                            columns=["ticker", "date", *FEATURE_NAMES])
    frame = feats.merge(labels, on=["ticker", "date"]).sort_values(["date", "ticker"]).reset_index(drop=True)
    days = np.sort(frame["date"].unique())
    if len(days) < CALIB_SESSIONS + 40:
        raise RuntimeError(f"{len(days)} labelled sessions are too few to train and calibrate a champion")
    calib_start, train_end = days[-CALIB_SESSIONS], days[-CALIB_SESSIONS - cfg.label_horizon - 2]  # purged
    booster = wf.fit_final(frame[frame["date"] <= train_end], cfg, NUM_ROUNDS)
    test = frame[frame["date"] >= calib_start]
    oos = pd.DataFrame({"date": test["date"], "score": booster.predict(test[list(FEATURE_NAMES)]),
                        "label": test[cfg.label], "fold": 0})
    ic = oos.groupby("date").apply(lambda g: g["score"].rank().corr(g["label"].rank()), include_groups=False)
    return booster, wf.calibration(oos, cfg), float(ic.mean())


def _register(s: Settings, booster, calib: dict, ic: float, fv: int) -> str:
    """Log and register the booster; the version carries the calibration tags predict reads."""
    import mlflow

    from tickerlake.training import CHAMPION, configure_mlflow

    configure_mlflow(s)
    with mlflow.start_run(run_name="bench-predict"):
        info = mlflow.lightgbm.log_model(booster, name="model", registered_model_name=s.model_name)
    version = str(info.registered_model_version)
    client = mlflow.MlflowClient()
    tags = {**{k: repr(v) for k, v in calib.items()}, "backtest_rank_ic": repr(ic),
            "features_delta_version": str(fv)}
    for key, value in tags.items():
        client.set_model_version_tag(s.model_name, version, key, value)
    client.set_registered_model_alias(s.model_name, CHAMPION, version)
    return version


def _history_predictions(s: Settings, booster, calib: dict, model_version: str, fv: int, year: int,
                         last_session: dt.date):
    """The year's prediction rows (sessions before `last_session`), scored one session at a time as
    predict_session scores one, sorted by (ticker, asof_date)."""
    import numpy as np
    import pandas as pd

    from tickerlake import lake
    from tickerlake.catalog import FEATURE_NAMES, REQUIRED_FEATURES
    from tickerlake.predict import PREDICTION_COLUMNS, prediction_rows, score_features

    feats = lake.read_table(s, FEATURES, version=fv, filters=[("year", "=", year)],
                            columns=["ticker", "date", *FEATURE_NAMES])
    feats = feats[feats["date"] < last_session]
    complete = np.isfinite(feats[list(REQUIRED_FEATURES)].to_numpy(dtype=np.float64, na_value=np.nan)).all(axis=1)
    feats = feats[complete]
    parts = []
    for day, rows in feats.groupby("date", sort=True):
        scored = score_features(booster, rows, calib, s.signal_threshold)
        parts.append(prediction_rows(scored, day, s.model_name, model_version, fv, "bench__history", published=True))
    if not parts:
        return pd.DataFrame(columns=PREDICTION_COLUMNS)
    return pd.concat(parts, ignore_index=True).sort_values(["ticker", "asof_date"], ignore_index=True)


def _restore_predictions(s: Settings, version: int) -> None:
    """A reused lake: back to the build's predictions, so the timed run appends the only run of its session."""
    from deltalake import DeltaTable

    table = DeltaTable(s.table_path(PREDICTIONS))
    if table.version() != version:
        table.restore(version)


# --- measurements ---------------------------------------------------------------------------------
def _measure_predict(s: Settings, build: dict) -> dict:
    import numpy as np

    from tickerlake import lake
    from tickerlake.catalog import FEATURE_NAMES, REQUIRED_FEATURES

    asof = dt.date.fromisoformat(build["last_session"])
    run_id = f"bench__predict__{uuid.uuid4().hex[:8]}"
    payload = Path(s.home) / "predict_child.pkl"
    payload.write_bytes(pickle.dumps({"settings": s, "asof": asof, "run_id": run_id}))
    code = "import sys; from tickerlake.predict_bench import _predict_child; _predict_child(sys.argv[1])"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, str(payload)], capture_output=True, text=True, check=False)
    process_s = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"predict_session failed in the child process: {proc.stderr.strip()[-2000:]}")
    child = json.loads(proc.stdout.strip().splitlines()[-1])

    # the reference, same run, same rows: the booster's own predict on the complete feature rows
    feats = lake.read_table(s, FEATURES, filters=[("date", "=", asof)])
    complete = feats[np.isfinite(feats[list(REQUIRED_FEATURES)].to_numpy(dtype=np.float64, na_value=np.nan))
                     .all(axis=1)]
    booster = _champion_booster(s)
    x = complete[list(FEATURE_NAMES)].astype("float64")
    bare = []
    for _ in range(5):
        t0 = time.perf_counter()
        booster.predict(x)
        bare.append(time.perf_counter() - t0)
    bare_s = float(np.median(bare))
    written = lake.read_table(s, PREDICTIONS, filters=[("asof_date", "=", asof), ("run_id", "=", run_id)],
                              columns=["ticker"])
    total_s = child["imports_s"] + child["call_s"]
    return {
        "asof": asof.isoformat(), "run_id": run_id,
        "tickers_with_features": len(feats), "tickers_complete": len(complete),
        "rows": child["result"]["rows"], "rows_written": len(written), "skipped": child["result"]["skipped"],
        "rows_match_complete": len(written) == len(complete) == child["result"]["rows"]
                               and set(written["ticker"]) == set(complete["ticker"]),
        "total_s": round(total_s, 2), "process_s": round(process_s, 2), "imports_s": child["imports_s"],
        "call_s": child["call_s"], **child["split"],
        "bare_booster_predict_s": round(bare_s, 4),
        "total_vs_bare_predict": round(total_s / max(bare_s, 1e-9), 1),
    }


def _champion_booster(s: Settings):
    import mlflow

    from tickerlake.training import CHAMPION, configure_mlflow

    configure_mlflow(s)
    return mlflow.lightgbm.load_model(f"models:/{s.model_name}@{CHAMPION}")


def _predict_child(payload_path: str) -> None:
    """In a fresh process: import what the daily task imports, then predict_session with each step
    it calls timed (wrapped in place: the split without changing predict.py). Prints one JSON line."""
    t0 = time.perf_counter()
    payload = pickle.loads(Path(payload_path).read_bytes())
    import lightgbm  # noqa: F401
    import mlflow
    import mlflow.lightgbm

    from tickerlake import lake, predict

    imports_s = time.perf_counter() - t0
    spent: dict[str, float] = {}
    depth = [0]

    def timed(category: str, func):
        def wrapper(*args, **kwargs):
            if depth[0]:  # a step inside a timed step counts once, in the outer one
                return func(*args, **kwargs)
            depth[0] += 1
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                spent[category] = spent.get(category, 0.0) + time.perf_counter() - start
                depth[0] -= 1
        return wrapper

    predict.champion_version = timed("model_s", predict.champion_version)
    predict.configure_mlflow = timed("model_s", predict.configure_mlflow)
    mlflow.lightgbm.load_model = timed("model_s", mlflow.lightgbm.load_model)
    lake.table_version = timed("read_s", lake.table_version)
    lake.read_table = timed("read_s", lake.read_table)
    predict.skipped_tickers = timed("check_s", predict.skipped_tickers)
    predict.score_features = timed("scoring_s", predict.score_features)
    predict.publish_predictions = timed("validate_write_s", predict.publish_predictions)
    predict.write_skipped = timed("validate_write_s", predict.write_skipped)
    t1 = time.perf_counter()
    result = predict.predict_session(payload["settings"], payload["asof"], payload["run_id"])
    call_s = time.perf_counter() - t1
    split = {k: round(spent.get(k, 0.0), 3) for k in ("model_s", "read_s", "check_s", "scoring_s",
                                                       "validate_write_s")}
    split["other_s"] = round(call_s - sum(spent.values()), 3)
    summary = {k: result.get(k) for k in ("status", "rows", "skipped", "model_version", "features_version",
                                          "predictions_version")}
    print(json.dumps({"imports_s": round(imports_s, 3), "call_s": round(call_s, 3), "split": split,
                      "result": summary}, default=str))


def history_sql(ticker: str) -> str:
    """One ticker's every feature row (all columns) with its prediction of that session, if any."""
    from tickerlake.sql import sql_string_literal

    t = sql_string_literal(ticker)
    return ("SELECT f.*, p.pred_return, p.pred_lo, p.pred_hi, p.rank, p.percentile, p.signal, p.model_version, "
            f"p.run_id FROM gold.features_daily f LEFT JOIN (SELECT * FROM gold.predictions_daily WHERE ticker = {t}) p "
            f"ON p.asof_date = f.date WHERE f.ticker = {t} ORDER BY f.date")


def _measure_history(s: Settings, build: dict, queries: int = HISTORY_QUERIES) -> dict:
    import numpy as np

    from tickerlake import sql

    expected = build["sessions_per_ticker"]
    rng = np.random.default_rng(s.seed + 1)
    tickers = list(rng.choice(sorted(expected), queries, replace=len(expected) < queries))
    t0 = time.perf_counter()
    con = sql.connect(s)
    connect_s = time.perf_counter() - t0
    seconds, wrong, rows, predicted = [], [], [], []
    try:
        for ticker in tickers:
            t0 = time.perf_counter()
            frame = sql.query(s, history_sql(str(ticker)), con=con)
            seconds.append(time.perf_counter() - t0)
            rows.append(len(frame))
            predicted.append(int(frame["pred_return"].notna().sum()))
            if len(frame) != expected[ticker] or not frame["date"].is_monotonic_increasing or frame["date"].duplicated().any():
                wrong.append(str(ticker))
        columns = len(frame.columns)
    finally:
        con.close()
    q = np.array(seconds)
    return {
        "queries": len(q), "connect_s": round(connect_s, 3), "first_s": round(float(q[0]), 4),
        "p50_s": round(float(np.percentile(q, 50)), 4), "p95_s": round(float(np.percentile(q, 95)), 4),
        "max_s": round(float(q.max()), 4), "rows_per_query": int(np.median(rows)), "columns": columns,
        "predictions_per_query": int(np.median(predicted)),
        "every_session_returned": not wrong, "tickers_with_wrong_history": wrong,
    }


# --- estimate, report ------------------------------------------------------------------------------
def _estimate(build: dict) -> dict:
    """The 5,000 x 20 years build on this machine, scaled linearly from this build: the reference
    engine per row it computed (warm-up included), bars, writes and history scoring per row kept,
    training as is; the lake's bytes per row kept."""
    from tickerlake.calendar import sessions_between
    from tickerlake.catalog import LOOKBACK_SESSIONS

    full = TIERS[FULL]
    days = sessions_between(full["start"], full["end"])
    computed = 0
    for year in sorted({d.year for d in days}):
        first = next(i for i, d in enumerate(days) if d.year == year)
        count = sum(1 for d in days if d.year == year)
        computed += count + min(first, LOOKBACK_SESSIONS)
    computed *= full["tickers"]
    rows = full["tickers"] * len(days)
    t = build["timings"]
    rest = t["build_s"] - t["reference_s"] - t["train_register_s"]
    # training and registering: taken as is (MLflow's start-up dominates it, and its rows are capped)
    build_s = t["reference_s"] / t["reference_rows_computed"] * computed + rest / build["rows"] * rows \
        + t["train_register_s"]
    return {"from_rows": build["rows"], "rows": rows, "reference_rows_computed": computed,
            "build_s": round(build_s), "build_min": round(build_s / 60, 1),
            "lake_gib": round(t["lake_bytes"] / build["rows"] * rows / 2**30, 1)}


def _too_big(estimate: dict, home: Path) -> str | None:
    if estimate["build_s"] > MAX_BUILD_S:
        return (f"the estimated build takes {estimate['build_min']} min here (over {MAX_BUILD_S // 60} min), "
                f"from the smaller tier's figures")
    probe = Path(home)
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free / 2**30
    if free < 1.2 * estimate["lake_gib"]:
        return f"the estimated lake needs {estimate['lake_gib']} GiB, {free:.0f} GiB free"
    return None


def _line(name: str, f: dict) -> str:
    p, h = f["predict"], f["history"]
    built = "reused build" if f["reused"] else f"built in {f['build']['build_s']}s"
    return (f"{name}: {f['rows']:,} rows ({built}); predict {p['rows']:,} tickers in {p['total_s']}s "
            f"(imports {p['imports_s']}s, model {p['model_s']}s, read {p['read_s']}s, check {p['check_s']}s, "
            f"scoring {p['scoring_s']}s, validate+write {p['validate_write_s']}s; {p['total_vs_bare_predict']}x "
            f"bare booster.predict {p['bare_booster_predict_s']}s); history of one ticker ({h['rows_per_query']} rows "
            f"x {h['columns']} columns): p50 {h['p50_s']}s, p95 {h['p95_s']}s, max {h['max_s']}s "
            f"(connect {h['connect_s']}s)")


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0
