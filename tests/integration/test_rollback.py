"""Rollback through the real MLflow registry: champion moves back, the replaced version keeps
`previous`, and the decision lands in ops.model_decisions beside that day's gate decision."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tickerlake import lake

pytestmark = pytest.mark.integration

DAY = dt.date(2024, 6, 3)


@pytest.fixture
def registry(make_settings, tmp_path):
    import mlflow

    from tickerlake.training import CHAMPION, configure_mlflow, record_decision

    settings = make_settings(tmp_path / "home", mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    configure_mlflow(settings)
    client = mlflow.MlflowClient()
    client.create_registered_model(settings.model_name)
    for _ in range(3):
        client.create_model_version(settings.model_name, settings.mlflow_artifacts.as_uri())
    client.set_registered_model_alias(settings.model_name, CHAMPION, "3")
    record_decision(settings, {"decided_on": DAY, "model_name": settings.model_name, "candidate_version": "3",
                               "champion_version": "2", "decision": "promoted", "candidate_rank_ic": 0.02,
                               "champion_rank_ic": 0.01, "best_baseline": "reversal_1d", "best_baseline_rank_ic": 0.005,
                               "gates": json.dumps({"beats_best_baseline": True}), "holdout_start": "2024-01-02",
                               "holdout_end": "2024-05-31"})
    return settings, client


def test_rollback_restores_a_version_and_records_it(registry):
    from tickerlake.training import CHAMPION, PREVIOUS, rollback

    settings, client = registry
    result = rollback(settings, "2", DAY, reason="live IC fell")
    assert result["champion"] == "2" and result["previous"] == "3"
    assert str(client.get_model_version_by_alias(settings.model_name, CHAMPION).version) == "2"
    assert str(client.get_model_version_by_alias(settings.model_name, PREVIOUS).version) == "3"
    rows = lake.read_table(settings, "ops.model_decisions").sort_values("decision")
    assert list(rows["decision"]) == ["promoted", "rolled_back"], "the day's gate decision is kept"
    rolled = rows[rows["decision"] == "rolled_back"].iloc[0]
    assert rolled["candidate_version"] == "2" and rolled["champion_version"] == "3"
    assert json.loads(rolled["gates"]) == {"manual_rollback": True, "reason": "live IC fell"}


def test_rollback_to_a_missing_or_current_version_is_refused(registry):
    from tickerlake.training import rollback

    settings, _ = registry
    with pytest.raises(ValueError, match="no version '9'"):
        rollback(settings, "9", DAY)
    with pytest.raises(ValueError, match="already holds alias champion"):
        rollback(settings, "3", DAY)
