"""The promotion gate through the real MLflow registry and Delta tables, on a market with a planted
signal: the first model is promoted over the baselines, a better configuration moves `champion`
(the old one keeps `previous`), a worse one leaves it, a rollback restores it, and each decision
is a row of ops.model_decisions with both sides' figures and every gate's result."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from tickerlake import lake
from tickerlake.calendar import sessions_between
from tickerlake.catalog import FEATURE_NAMES

pytestmark = pytest.mark.integration

N_TICKERS, N_SESSIONS = 30, 360
# Stumps that learn slowly: they find the planted feature but rank in a few coarse groups.
# Coarse bins and one thread keep the five walk-forwards of the test quick.
WEAK = {"num_leaves": 2, "learning_rate": 0.02, "min_data_in_leaf": 50, "feature_fraction": 1.0, "max_bin": 15,
        "num_threads": 1}
STRONG = {"num_leaves": 7, "learning_rate": 0.1, "min_data_in_leaf": 50, "max_bin": 15, "num_threads": 1}


def _market():
    from tickerlake.training import TrainingData

    rng = np.random.default_rng(11)
    days = sessions_between("2022-01-03", "2024-12-31")[:N_SESSIONS]
    n = N_TICKERS * N_SESSIONS
    frame = pd.DataFrame({"ticker": np.tile([f"T{i:02d}" for i in range(N_TICKERS)], N_SESSIONS),
                          "date": np.repeat(days, N_TICKERS)})
    features = pd.DataFrame(rng.standard_normal((n, len(FEATURE_NAMES))), columns=list(FEATURE_NAMES))
    frame = pd.concat([frame, features], axis=1)
    frame["ret_1d"] = 0.01 * (0.3 * frame["KMID"] + 0.3 * frame["KLEN"] ** 2 + rng.standard_normal(n))
    return TrainingData(frame, 0, 0, days[0], days[-1])


@pytest.fixture(scope="module")
def market(make_settings, tmp_path_factory):
    home = tmp_path_factory.mktemp("promotion")
    settings = make_settings(home / "home", mlflow_tracking_uri=f"sqlite:///{home / 'mlflow.db'}",
                             train_min_sessions=120, train_validation_sessions=20, train_test_sessions=40,
                             train_num_rounds=80, train_early_stopping_rounds=20, promotion_window_sessions=120)
    data = _market()
    # serving's table: the gate checks the candidate's features against its columns
    served = data.frame.head(1).drop(columns=["ret_1d"]).assign(year=np.int32(2022))
    lake.replace_interval(settings, "gold.features_daily", served, data.start, data.start)
    return settings, data


def _train_and_promote(settings, data, params: dict, day: dt.date):
    from tickerlake.training import promote, train

    configured = dataclasses.replace(settings, train_params=json.dumps(params))
    candidate = train(configured, day, data)
    return candidate, promote(configured, candidate, day, data)


def test_gate_moves_champion_only_for_a_better_configuration_and_records_every_decision(market):
    import mlflow

    from tickerlake.training import CHAMPION, PREVIOUS, configure_mlflow, rollback

    settings, data = market
    configure_mlflow(settings)
    client = mlflow.MlflowClient()

    def alias(name):
        return str(client.get_model_version_by_alias(settings.model_name, name).version)

    d1, d2, d3, d4 = (dt.date(2025, 1, d) for d in (6, 7, 8, 9))
    weak, first = _train_and_promote(settings, data, WEAK, d1)
    assert first["decision"] == "promoted", first  # the first model: against the baselines only
    assert "beats_champion" not in first["gates"] and first["gates"]["beats_best_baseline"]
    assert alias(CHAMPION) == weak["version"]

    strong, better = _train_and_promote(settings, data, STRONG, d2)
    assert better["decision"] == "promoted", better
    assert better["paired_ic_diff"] > 0 and better["candidate_rank_ic"] > better["champion_rank_ic"]
    assert alias(CHAMPION) == strong["version"] and alias(PREVIOUS) == weak["version"]

    again, worse = _train_and_promote(settings, data, WEAK, d3)
    assert worse["decision"] == "rejected" and worse["gates"]["beats_champion"] is False, worse
    assert alias(CHAMPION) == strong["version"], "a worse challenger leaves champion where it is"
    # the same configuration on the same data: the same out-of-sample scores, hence the same figures
    assert worse["candidate_rank_ic"] == pytest.approx(first["candidate_rank_ic"], abs=0, rel=0)

    rollback(settings, weak["version"], d4, reason="test")
    assert alias(CHAMPION) == weak["version"] and alias(PREVIOUS) == strong["version"]

    rows = lake.read_table(settings, "ops.model_decisions").sort_values("decided_on").reset_index(drop=True)
    assert list(rows["decision"]) == ["promoted", "promoted", "rejected", "rolled_back"]
    assert list(rows["candidate_version"]) == [weak["version"], strong["version"], again["version"], weak["version"]]
    for row in rows.iloc[:3].itertuples():
        gates = json.loads(row.gates)
        assert {"beats_best_baseline", "no_missing_predictions", "feature_schema_compatible",
                "interval_coverage", "enough_sessions"} <= set(gates)
        details = json.loads(row.details)
        assert details["sessions"] == 120 and details["baselines"], details
        assert abs(details["coverage"] - 0.8) <= 0.05
    assert pd.isna(rows.loc[0, "champion_version"]) and rows.loc[1, "champion_version"] == weak["version"]
    assert rows.loc[2, "champion_config_hash"] == strong["config_hash"]
    assert rows.loc[2, "candidate_config_hash"] == weak["config_hash"]


def test_the_case_is_on_the_run_and_the_version(market):
    import mlflow

    from tickerlake.training import configure_mlflow

    settings, _ = market
    configure_mlflow(settings)
    client = mlflow.MlflowClient()
    versions = client.search_model_versions(f"name='{settings.model_name}'")
    version = min(versions, key=lambda v: int(v.version))
    for tag in ("config_hash", "config_json", "calib_a", "calib_b", "interval_lo", "interval_hi",
                "features_delta_version", "labels_delta_version", "train_start", "train_end", "feature_list_hash",
                "git_commit", "backtest_rank_ic", "gate_decision"):
        assert tag in version.tags, tag
    assert float(version.tags["interval_lo"]) < 0 < float(version.tags["interval_hi"])
    assert "| **model** |" in version.description and "momentum_20d" in version.description
    run = client.get_run(version.run_id)
    assert run.data.metrics["wf_rank_ic_mean"] > run.data.metrics["wf_baseline_reversal_1d_rank_ic_mean"]
    assert run.data.params["config_hash"] == version.tags["config_hash"]
    history = client.get_metric_history(version.run_id, "oos_rank_ic_by_session")
    assert len(history) == int(run.data.metrics["wf_sessions"])
    files = {f.path for f in client.list_artifacts(version.run_id, "case")}
    assert {"case/rank_ic_cumulative.png", "case/equity_net_5bp.png", "case/decile_returns.png",
            "case/feature_importance.png", "case/rank_ic_by_year.csv", "case/interval_coverage_by_fold.csv",
            "case/figures.json", "case/case.md"} <= files
    model = mlflow.lightgbm.load_model(f"models:/{settings.model_name}/{version.version}")
    assert model.num_feature() == len(FEATURE_NAMES)


def test_promote_from_the_cli_gates_a_registered_version(market, monkeypatch):
    """`tickerlake promote --version N` rebuilds the candidate from the version's tags. Version 3 has
    the configuration of the champion restored by the rollback (version 1): the same configuration
    on the same data is a refresh, judged by the other gates."""
    import mlflow

    from tickerlake.cli import main
    from tickerlake.training import CHAMPION, configure_mlflow

    settings, _ = market
    for name, value in {"TICKERLAKE_HOME": str(settings.home), "TICKERLAKE_MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
                        "TICKERLAKE_JARS_DIR": str(settings.jars_dir), "TICKERLAKE_PROMOTION_WINDOW_SESSIONS": "120"}.items():
        monkeypatch.setenv(name, value)
    assert main(["promote", "--version", "3", "--date", "2025-01-10"]) == 0
    configure_mlflow(settings)
    assert str(mlflow.MlflowClient().get_model_version_by_alias(settings.model_name, CHAMPION).version) == "3"
    rows = lake.read_table(settings, "ops.model_decisions", filters=[("decided_on", "=", dt.date(2025, 1, 10))])
    assert list(rows["decision"]) == ["promoted"] and json.loads(rows["details"].iloc[0])["same_configuration"]
    assert main(["promote", "--version", "99"]) != 0  # no such version: a clear error, nothing recorded
    assert len(lake.read_table(settings, "ops.model_decisions")) == 5
