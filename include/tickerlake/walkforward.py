"""Walk-forward evaluation of the daily model and its baselines on the same sessions.

`walk_forward(frame, config)` fits LightGBM fold by fold (evaluation.walk_forward_blocks: purged
train and early-stopping blocks before each test block) and keeps every out-of-sample score;
`score_oos(oos, config)` turns them into the reviewer's figures: daily rank IC with its
Newey-West t and ICIR, deciles, the turnover-controlled long-short net of costs, and the
split-conformal interval coverage, each also for the baselines. `evaluate` is the CLI's entry:
the training set through Feast's point-in-time join over a range, the figures as JSON, the
out-of-sample predictions in `gold.predictions_oos`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tickerlake import evaluation as ev
from tickerlake.catalog import FEATURE_NAMES

# Baselines scored on the same out-of-sample rows: name -> (feature, sign); score = sign * feature.
# ROC20 is close 20 sessions ago over today's close, so momentum is its negative.
BASELINES: dict[str, tuple[str, float]] = {
    "reversal_1d": ("REV1", 1.0),
    "reversal_5d": ("REV5", 1.0),
    "momentum_20d": ("ROC20", -1.0),
    "momentum_12_1": ("MOM12_1", 1.0),
    "low_volatility": ("STD20", -1.0),
}
LINEAR = "linear"  # ridge regression on the same features, refit per fold like the model
# Seeded and deterministic: the same data and seed give the same model, bit for bit.
DEFAULT_PARAMS: dict = {
    "objective": "regression", "learning_rate": 0.05, "num_leaves": 15, "min_data_in_leaf": 200,
    "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 10.0, "seed": 7,
    "deterministic": True, "force_row_wise": True, "num_threads": 2, "verbose": -1}


@dataclass(frozen=True)
class WalkForwardConfig:
    label: str = "ret_1d"
    label_horizon: int = 1
    test_sessions: int = 60
    train_sessions: int | None = None  # None: expanding window
    min_train: int = 250
    validation_sessions: int = 40
    embargo: int = 0
    num_rounds: int = 400
    early_stopping_rounds: int = 40
    coverage: float = 0.8
    long_short_fraction: float = 0.1
    max_swap_fraction: float = 0.2
    params: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_PARAMS))

    def config_hash(self, features: tuple[str, ...] = FEATURE_NAMES) -> str:
        """The frozen configuration's identity (recorded in MLflow before a held-back year is scored)."""
        import hashlib

        blob = json.dumps({**dataclasses.asdict(self), "features": list(features)}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()


def config_from_settings(settings) -> WalkForwardConfig:
    """The training configuration in settings (label, LightGBM parameters, the walk-forward's blocks)."""
    import re

    match = re.fullmatch(r"ret_(\d+)d", settings.label)
    if match is None:
        raise ValueError(f"setting TICKERLAKE_LABEL must be a label column such as ret_1d or ret_5d, "
                         f"got {settings.label!r}")
    try:
        overrides = json.loads(settings.train_params) if settings.train_params.strip() else {}
    except json.JSONDecodeError as exc:
        raise ValueError(f"setting TICKERLAKE_TRAIN_PARAMS is not JSON: {exc}") from exc
    if not isinstance(overrides, dict):
        raise ValueError("setting TICKERLAKE_TRAIN_PARAMS must be a JSON object of LightGBM parameters")
    return WalkForwardConfig(
        label=settings.label, label_horizon=int(match.group(1)), test_sessions=settings.train_test_sessions,
        train_sessions=settings.train_window_sessions or None, min_train=settings.train_min_sessions,
        validation_sessions=settings.train_validation_sessions, embargo=settings.train_embargo_sessions,
        num_rounds=settings.train_num_rounds, early_stopping_rounds=settings.train_early_stopping_rounds,
        coverage=settings.interval_coverage, params={**DEFAULT_PARAMS, **overrides})


def config_from_json(text: str) -> WalkForwardConfig:
    """A configuration recorded on a model version (tag `config_json`)."""
    return WalkForwardConfig(**json.loads(text))


def config_json(cfg: WalkForwardConfig) -> str:
    return json.dumps(dataclasses.asdict(cfg), sort_keys=True)


def normalized(frame: pd.DataFrame, label: str) -> pd.Series:
    """Per-session rank of the label centred on 0: the training target."""
    return frame.groupby("date")[label].rank(pct=True) - 0.5


def _fit(train: pd.DataFrame, valid: pd.DataFrame, cfg: WalkForwardConfig, features: list[str]):
    import lightgbm as lgb

    dtrain = lgb.Dataset(train[features], label=normalized(train, cfg.label), free_raw_data=False)
    if len(valid):
        dvalid = lgb.Dataset(valid[features], label=normalized(valid, cfg.label), reference=dtrain)
        return lgb.train(cfg.params, dtrain, num_boost_round=cfg.num_rounds, valid_sets=[dvalid],
                         callbacks=[lgb.early_stopping(cfg.early_stopping_rounds, verbose=False)])
    return lgb.train(cfg.params, dtrain, num_boost_round=cfg.num_rounds)


def _ridge(train: pd.DataFrame, test: pd.DataFrame, cfg: WalkForwardConfig, features: list[str],
           alpha: float = 10.0) -> np.ndarray:
    """Ridge on per-session ranks of the features (missing -> the median rank), same target."""
    def ranks(f: pd.DataFrame) -> np.ndarray:
        return (f.groupby("date")[features].rank(pct=True) - 0.5).fillna(0.0).to_numpy()

    x, y = ranks(train), normalized(train, cfg.label).to_numpy()
    coef = np.linalg.solve(x.T @ x + alpha * np.eye(x.shape[1]), x.T @ y)
    return ranks(test) @ coef


def walk_forward(frame: pd.DataFrame, cfg: WalkForwardConfig = WalkForwardConfig(),
                 features: list[str] | None = None) -> pd.DataFrame:
    """Out-of-sample rows of every test block: ticker, date, fold, label, score (the model),
    pred_return (the score mapped to the label's expected return, fitted on earlier folds' out of
    sample rows only; NaN in the first fold), one `base_<name>` column per baseline and `base_linear`."""
    features = list(features or FEATURE_NAMES)
    frame = frame.dropna(subset=[cfg.label]).sort_values(["date", "ticker"]).reset_index(drop=True)
    blocks = ev.walk_forward_blocks(frame["date"].unique(), test_sessions=cfg.test_sessions,
                                    label_horizon=cfg.label_horizon, train_sessions=cfg.train_sessions,
                                    embargo=cfg.embargo, min_train=cfg.min_train,
                                    validation_sessions=cfg.validation_sessions)
    parts = []
    for block in blocks:
        tr, va, te = block.masks(frame["date"])
        train, valid, test = frame[tr], frame[va], frame[te]
        model = _fit(train, valid, cfg, features)
        out = test[["ticker", "date", cfg.label]].rename(columns={cfg.label: "label"}).copy()
        out["fold"] = block.fold
        out["score"] = model.predict(test[features], num_iteration=model.best_iteration or None)
        out["rounds"] = model.best_iteration or cfg.num_rounds
        for name, (feature, sign) in BASELINES.items():
            out[f"base_{name}"] = sign * test[feature].to_numpy() if feature in test else np.nan
        out[f"base_{LINEAR}"] = _ridge(train, test, cfg, features)
        parts.append(out)
    oos = pd.concat(parts, ignore_index=True)
    return _with_predicted_return(oos, cfg)


def _with_predicted_return(oos: pd.DataFrame, cfg: WalkForwardConfig) -> pd.DataFrame:
    """pred_return and its interval for fold k from folds < k only: a least-squares map of the
    score to the realised label, and split-conformal offsets calibrated on the latest earlier
    fold (a purged out-of-sample block, never the early-stopping block)."""
    oos = oos.copy()
    oos[["pred_return", "pred_lo", "pred_hi"]] = np.nan
    folds = sorted(oos["fold"].unique())
    for k in folds[1:]:
        c = calibration(oos[oos["fold"] < k], cfg)
        rows = oos["fold"] == k
        pred = c["calib_a"] + c["calib_b"] * oos.loc[rows, "score"]
        oos.loc[rows, "pred_return"] = pred
        oos.loc[rows, "pred_lo"], oos.loc[rows, "pred_hi"] = pred + c["interval_lo"], pred + c["interval_hi"]
    return oos


def calibration(oos: pd.DataFrame, cfg: WalkForwardConfig) -> dict[str, float]:
    """Score -> expected label (least squares over the out-of-sample rows given) and the
    split-conformal offsets of the interval around it, calibrated on the latest fold among them:
    a purged out-of-sample block, never an early-stopping block. In return units."""
    past = oos.dropna(subset=["score", "label"])
    b, a = np.polyfit(past["score"], past["label"], 1)
    last = past[past["fold"] == past["fold"].max()]
    lo, hi = ev.conformal_interval(last["label"] - (a + b * last["score"]), cfg.coverage, symmetric=False)
    return {"calib_a": float(a), "calib_b": float(b), "interval_lo": float(lo), "interval_hi": float(hi)}


def fit_final(frame: pd.DataFrame, cfg: WalkForwardConfig, rounds: int, features: list[str] | None = None):
    """The configuration refit on every complete label of `frame` (all of it lies before the as-of
    date, so nothing after it needs a purge), for the median early-stopped rounds of its folds."""
    import lightgbm as lgb

    features = list(features or FEATURE_NAMES)
    frame = frame.dropna(subset=[cfg.label])
    data = lgb.Dataset(frame[features], label=normalized(frame, cfg.label), free_raw_data=False)
    return lgb.train(cfg.params, data, num_boost_round=max(1, int(rounds)))


def final_rounds(oos: pd.DataFrame) -> int:
    return int(np.median(oos.groupby("fold")["rounds"].first()))


def last_sessions(oos: pd.DataFrame, n: int) -> pd.DataFrame:
    """The rows of the latest `n` out-of-sample sessions."""
    sessions = np.sort(oos["date"].unique())[-n:]
    return oos[oos["date"].isin(sessions)]


def session_series(oos: pd.DataFrame, cfg: WalkForwardConfig) -> dict[str, pd.DataFrame]:
    """Per-session series of the model and each baseline, for charts and the paired gate:
    `rank_ic` (sessions x scorers) and `net_5bp` (the turnover-controlled long-short, net of 5 bp)."""
    scorers = ["score", *[c for c in oos.columns if c.startswith("base_") and oos[c].notna().any()]]
    ic, net = {}, {}
    for col in scorers:
        frame = oos[["ticker", "date", "label", col]].rename(columns={col: "score"}).dropna()
        name = "model" if col == "score" else col.removeprefix("base_")
        ic[name] = ev.rank_ic_by_session(frame)
        book = ev.long_short_portfolio(frame, fraction=cfg.long_short_fraction,
                                       max_swap_fraction=cfg.max_swap_fraction, label_horizon=cfg.label_horizon)
        net[name] = book.sessions["gross"] - book.sessions["turnover"] * 5.0 / 1e4
    return {"rank_ic": pd.DataFrame(ic), "net_5bp": pd.DataFrame(net)}


def _figures(oos: pd.DataFrame, score: str, cfg: WalkForwardConfig) -> dict:
    frame = oos[["ticker", "date", "label", score]].rename(columns={score: "score"}).dropna()
    ic = ev.rank_ic_by_session(frame)
    s = ev.summarize(ic, cfg.label_horizon)
    book = ev.long_short_portfolio(frame, fraction=cfg.long_short_fraction, max_swap_fraction=cfg.max_swap_fraction,
                                   label_horizon=cfg.label_horizon)
    by_year = ev.by_year(ic, cfg.label_horizon)
    deciles = ev.decile_returns(frame)
    return {
        "rank_ic_mean": s["mean"], "rank_ic_std": s["std"], "rank_ic_t": s["t_nw"], "nw_lags": s["lags"],
        "icir": s["icir"], "icir_annual": s["icir_annual"], "hit_rate": s["hit_rate"], "sessions": s["n"],
        "ic_mean": float(ev.ic_by_session(frame).mean()),
        "top_minus_bottom": float(ev.top_minus_bottom(frame).mean()),
        "deciles": [float(x) for x in deciles.to_numpy()],
        "sharpe_gross": book.summary["sharpe_gross"],
        **{k: v for k, v in book.summary.items() if k.startswith(("sharpe_net_", "mean_net_"))},
        "turnover": book.summary["mean_turnover"],
        "break_even_cost_bps": book.summary["break_even_cost_bps"],
        "rank_ic_by_year": {str(y): float(r["mean"]) for y, r in by_year.iterrows()},
    }


def coverage(rows: pd.DataFrame) -> float:
    """Share of out-of-sample rows whose label falls inside [pred_lo, pred_hi] (absolute bounds)."""
    rows = rows.dropna(subset=["pred_lo", "pred_hi", "label"])
    if rows.empty:
        return float("nan")
    return ev.interval_coverage(rows["pred_return"], rows["pred_lo"] - rows["pred_return"],
                                rows["pred_hi"] - rows["pred_return"], rows["label"])


def score_oos(oos: pd.DataFrame, cfg: WalkForwardConfig = WalkForwardConfig()) -> dict:
    """The model's figures, the interval coverage, and the same figures for every baseline."""
    out = _figures(oos, "score", cfg)
    covered = oos.dropna(subset=["pred_lo", "pred_hi", "label"])
    out["coverage"] = coverage(covered)
    out["coverage_target"] = cfg.coverage
    out["coverage_sessions"] = int(covered["date"].nunique())
    out["baselines"] = {c.removeprefix("base_"): _figures(oos, c, cfg) for c in oos.columns
                        if c.startswith("base_") and oos[c].notna().any()}
    best = max(out["baselines"].items(), key=lambda kv: kv[1]["rank_ic_mean"], default=(None, None))
    out["best_baseline"] = best[0]
    out["beats_every_baseline"] = all(out["rank_ic_mean"] > b["rank_ic_mean"] for b in out["baselines"].values())
    return out


def evaluate(settings, start: dt.date, end: dt.date, out_path: str | Path,
             cfg: WalkForwardConfig = WalkForwardConfig()) -> dict:
    """Walk-forward over the training set of [start, end] (Feast point-in-time features, labels by
    key); the figures to `out_path` as JSON; the out-of-sample rows to gold.predictions_oos."""
    from tickerlake.training import load_training_data

    data = load_training_data(settings, end)
    frame = data.frame[(data.frame["date"] >= start) & (data.frame["date"] <= end)]
    oos = walk_forward(frame, cfg)
    figures = score_oos(oos, cfg)
    figures.update({"start": str(start), "end": str(end), "config_hash": cfg.config_hash(),
                    "features_delta_version": data.features_version, "macro_delta_version": data.macro_version,
                    "labels_delta_version": data.labels_version,
                    "folds": int(oos["fold"].nunique())})
    write_oos(settings, oos, f"evaluate:{cfg.config_hash()}:{start}:{end}", cfg)
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(finite(figures), indent=2, default=str) + "\n")
    return figures


def write_oos(settings, oos: pd.DataFrame, run_key: str, cfg: WalkForwardConfig) -> int:
    """The out-of-sample rows of one walk-forward into gold.predictions_oos under `run_key`
    (what ran, its configuration and data): a rerun of the same key replaces its rows, so the
    table is the same after it; other runs' rows are untouched."""
    from tickerlake import lake

    rows = oos.assign(year=pd.to_datetime(oos["date"]).dt.year.astype("int32"), config_hash=cfg.config_hash(),
                      run_key=run_key)
    return lake.replace_key(settings, "gold.predictions_oos", rows, "run_key", run_key)


def read_oos(settings, run_key: str) -> pd.DataFrame:
    from tickerlake import lake

    rows = lake.read_table(settings, "gold.predictions_oos", filters=[("run_key", "=", run_key)])
    if rows.empty:
        raise LookupError(f"gold.predictions_oos has no rows of {run_key!r}")
    rows["date"] = pd.to_datetime(rows["date"]).dt.date
    return rows.drop(columns=["year", "config_hash", "run_key"]).sort_values(["date", "ticker"]).reset_index(drop=True)


def finite(obj):
    """`obj` with every non-finite float as None (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
