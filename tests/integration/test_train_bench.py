"""The training benchmark on a small tier, for real: reference features, LightGBM fits, the
walk-forward and the MLflow case in the tier's own registry, which is removed afterwards."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from tickerlake import train_bench
from tickerlake.settings import load_settings

pytestmark = pytest.mark.integration


def test_small_tier_reports_fit_walk_forward_and_logging_share(tmp_path: Path):
    settings = dataclasses.replace(load_settings(home=tmp_path / "home"), train_num_rounds=30, train_min_sessions=200,
                                   train_test_sessions=60, promotion_window_sessions=100,
                                   train_params=json.dumps({"num_threads": 1, "max_bin": 31}))
    out = tmp_path / "train.json"
    report = train_bench.bench_train(settings, out, tiers=["tiny"], progress=lambda line: None,
                                     specs={"tiny": {"tickers": 30, "start": "2024-01-02", "end": "2025-12-31"}})
    assert json.loads(out.read_text()) == json.loads(json.dumps(report, default=str))
    f = report["tiers"]["tiny"]
    assert f["rows"] > 30 * 400 and f["features"] == 194 and f["folds"] >= 3
    assert f["one_fit_rounds"] == 30 and f["one_fit_s"] > 0 and f["reference_fit_s"] > 0
    assert f["mlflow_share"] == pytest.approx(f["mlflow_s"] / (f["walk_forward_s"] + f["refit_s"]), rel=0.01)
    assert f["goal_mlflow_share_met"] == (f["mlflow_share"] <= train_bench.GOALS["mlflow_share"])
    assert not (tmp_path / "home" / "bench" / "train-tiny").exists()
