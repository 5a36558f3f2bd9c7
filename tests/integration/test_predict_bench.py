"""The prediction benchmark on a small tier, for real: reference features in Delta, a LightGBM
champion in a SQLite MLflow registry, predict_session in a fresh process, the analyst views."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from deltalake import DeltaTable

from tickerlake import lake, predict_bench, sql
from tickerlake.catalog import FEATURE_NAMES, REQUIRED_FEATURES
from tickerlake.predict import PREDICTION_COLUMNS
from tickerlake.settings import load_settings
from tickerlake.synthetic import generate_bars

pytestmark = pytest.mark.integration

# a year: the 60-session features complete for most of it, enough sessions for the purged calibration block
SPEC = {"tickers": 30, "start": "2025-01-02", "end": "2025-12-31"}


def test_small_tier_measures_the_real_paths_then_cleans(tmp_path: Path):
    settings = load_settings(home=tmp_path / "home")
    home = predict_bench.tier_home(settings, "tiny")
    seen: dict = {}

    def inspect(s, build):  # the tier's lake is removed at the end: look at it while it is there
        seen["asof"] = dt.date.fromisoformat(build["last_session"])
        seen["complete"], seen["run"], seen["history"] = _inspect(s, seen["asof"])

    out = tmp_path / "predict.json"
    predict_bench.bench_predict(settings, out, tiers=["tiny"], progress=print, specs={"tiny": SPEC},
                                history_queries=6, on_measured=inspect)

    report = json.loads(out.read_text())
    f = report["tiers"]["tiny"]
    p, h = f["predict"], f["history"]
    assert report["goals"] == {"predict_5000_s": 30, "history_p95_s": 1.0}
    assert not f["reused"] and f["build"]["reference_rows_computed"] == f["rows"]  # one year: no warm-up rows
    for key in ("total_s", "imports_s", "call_s", "model_s", "read_s", "scoring_s", "validate_write_s",
                "bare_booster_predict_s", "total_vs_bare_predict"):
        assert p[key] > 0, key
    assert h["p95_s"] >= h["p50_s"] > 0 and h["queries"] == 6 and f["estimate_5000x20y"]["build_s"] > 0
    assert not home.exists() and not f["kept"]  # the tier's lake and registry are removed

    # predictions written by predict_session: one per ticker with complete features, no more
    complete, run = seen["complete"], seen["run"]
    assert len(complete) > 0 and set(run["run_id"]) == {p["run_id"]}
    assert sorted(run["ticker"]) == sorted(complete["ticker"]) == sorted(set(run["ticker"]))
    assert p["rows"] == p["rows_written"] == len(complete) and p["rows_match_complete"]
    assert list(run.columns) == PREDICTION_COLUMNS and (run["asof_date"] == seen["asof"]).all()

    # the history query: every session the ticker has a bar on, with all feature columns, in date order
    bars = generate_bars(SPEC["tickers"], SPEC["start"], SPEC["end"], seed=settings.seed)
    ticker, history = seen["history"]
    days = sorted(bars.loc[bars["ticker"] == ticker, "date"].astype("datetime64[s]").dt.date)
    assert list(history["date"]) == days and set(FEATURE_NAMES) <= set(history.columns)
    # a prediction on the sessions whose features were complete, the timed run's session included
    assert history["pred_return"].notna().sum() > 0
    assert history.loc[history["date"] == seen["asof"], "run_id"].iloc[0] == p["run_id"]
    assert h["every_session_returned"] and h["rows_per_query"] == len(days)


def _inspect(s, asof: dt.date):
    """Independently of the bench: the tickers with complete features at `asof`, the rows the
    timed run wrote, and one ticker's history through the analyst views."""
    feats = lake.read_table(s, "gold.features_daily", filters=[("date", "=", asof)])
    assert len(feats) == SPEC["tickers"]
    complete = feats[np.isfinite(feats[list(REQUIRED_FEATURES)].to_numpy(dtype=np.float64, na_value=np.nan))
                     .all(axis=1)]
    preds = lake.read_table(s, "gold.predictions_daily", filters=[("asof_date", "=", asof)])
    meta = DeltaTable(s.table_path("gold.predictions_daily")).metadata()
    assert list(meta.partition_columns) == ["year"]
    ticker = sorted(complete["ticker"])[3]
    con = sql.connect(s)
    try:
        history = sql.query(s, predict_bench.history_sql(ticker), con=con)
    finally:
        con.close()
    return complete, preds, (ticker, history)
