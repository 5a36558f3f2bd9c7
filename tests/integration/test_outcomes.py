"""The live record (gold.signal_outcomes), skipped tickers and the published mark, on real Delta tables."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from tickerlake import lake
from tickerlake.calendar import next_session, sessions_between
from tickerlake.catalog import FEATURE_NAMES
from tickerlake.settings import load_settings

pytestmark = pytest.mark.integration

TICKERS = ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF"]
SESSIONS = sessions_between("2025-06-02", "2025-06-13")  # ten sessions


@pytest.fixture
def settings(tmp_path):
    return load_settings(home=tmp_path / "home")


def _preds(day: dt.date, run_id: str, pred: np.ndarray, *, published: bool = False, version: str = "1",
           features_version: int = 1, half_width: float = 0.02) -> pd.DataFrame:
    out = pd.DataFrame({"ticker": TICKERS, "pred_return": pred.astype("float64")})
    out["pred_lo"], out["pred_hi"] = out["pred_return"] - half_width, out["pred_return"] + half_width
    out["rank"] = out["pred_return"].rank(ascending=False, method="first").astype("int32")
    out["percentile"] = out["pred_return"].rank(pct=True)
    out["signal"] = np.where(out["percentile"] >= 0.8, "long", np.where(out["percentile"] <= 0.2, "short", "neutral"))
    return out.assign(asof_date=day, target_session=next_session(day),
                      event_ts=pd.Timestamp(dt.datetime.combine(day, dt.time(20), tzinfo=dt.UTC)),
                      model_name="m", model_version=version, features_version=np.int64(features_version),
                      run_id=run_id, published=published, year=np.int32(day.year))


def _labels(day: dt.date, ret: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"ticker": TICKERS, "date": day, "ret_1d": ret.astype("float64"), "year": np.int32(day.year)})


BASE = np.array([0.03, 0.02, 0.01, -0.01, -0.02, -0.03])


def _write(settings, preds: list[pd.DataFrame], labels: list[pd.DataFrame]) -> None:
    lake.append(settings, "gold.predictions_daily", pd.concat(preds, ignore_index=True))
    lab = pd.concat(labels, ignore_index=True)
    lake.replace_interval(settings, "gold.labels_daily", lab, lab["date"].min(), lab["date"].max())


def test_only_complete_labels_are_scored_from_the_report_run(settings):
    from tickerlake.outcomes import complete_through, score_session

    s = SESSIONS
    preds = [_preds(d, f"run-{d}", BASE, published=True) for d in s]
    # s[3]: a published run and a rerun that read newer features: the published run is the record
    preds.append(_preds(s[3], "rerun", -BASE, features_version=9))
    # s[4]: two unpublished runs (its published one replaced): the newest features win
    preds[4] = _preds(s[4], "old", -BASE, features_version=1)
    preds.append(_preds(s[4], "new", BASE, features_version=2))
    realised = BASE * 0.5 + np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.05])  # FFF: outside, and a miss
    labels = [_labels(d, realised) for d in s]  # the table already holds labels of s[8], s[9] too
    _write(settings, preds, labels)

    result = score_session(settings, s[9])
    assert complete_through(s[9]) == s[7]
    out = lake.read_table(settings, "gold.signal_outcomes").sort_values(["asof_date", "ticker"])
    assert result["rows"] == len(out) == 8 * len(TICKERS) and result["complete_through"] == s[7].isoformat()
    assert sorted(set(out["asof_date"])) == s[:8]  # s[8] is complete at the open of s[10], s[9] later
    assert set(out.loc[out["asof_date"] == s[3], "run_id"]) == {f"run-{s[3]}"}
    assert set(out.loc[out["asof_date"] == s[4], "run_id"]) == {"new"}
    row = out[(out["asof_date"] == s[0]) & (out["ticker"] == "FFF")].iloc[0]
    assert row["realised_return"] == pytest.approx(0.035) and not row["hit"] and not row["inside_interval"]
    row = out[(out["asof_date"] == s[0]) & (out["ticker"] == "AAA")].iloc[0]
    assert row["realised_return"] == pytest.approx(0.015) and row["hit"] and row["inside_interval"]
    assert row["target_session"] == s[1] and row["scored_through"] == s[9] and row["published"]

    # a rerun writes the same rows; a restated label is re-scored
    score_session(settings, s[9])
    again = lake.read_table(settings, "gold.signal_outcomes").sort_values(["asof_date", "ticker"])
    pd.testing.assert_frame_equal(out.reset_index(drop=True), again.reset_index(drop=True))
    restated = _labels(s[2], -realised)
    lake.replace_interval(settings, "gold.labels_daily", restated, s[2], s[2])
    score_session(settings, s[9])
    third = lake.read_table(settings, "gold.signal_outcomes", filters=[("asof_date", "=", s[2])])
    assert len(third) == len(TICKERS)
    assert third.set_index("ticker")["hit"].to_dict() == {t: t == "FFF" for t in TICKERS}  # every call flipped


def test_live_record_rank_ic_coverage_and_deciles_per_model_version(settings):
    from tickerlake.outcomes import live_record, score_session

    s = SESSIONS
    preds = [_preds(d, f"r{d}", BASE, published=True, version="1" if i < 4 else "2") for i, d in enumerate(s)]
    # version 1: realised follows the prediction's order (IC +1); version 2: the reverse order (IC -1)
    labels = [_labels(d, BASE * 0.5 if i < 4 else -2 * BASE) for i, d in enumerate(s)]
    _write(settings, preds, labels)
    score_session(settings, s[9])
    record = live_record(settings, s[9], window=20)
    v1, v2 = record["by_version"]["1"], record["by_version"]["2"]
    assert v1["sessions"] == 4 and v1["rank_ic"] == pytest.approx(1.0) and v1["coverage"] == pytest.approx(1.0)
    assert v1["hit_rate"] == pytest.approx(1.0)
    assert v2["sessions"] == 4 and v2["rank_ic"] == pytest.approx(-1.0) and v2["hit_rate"] == pytest.approx(0.0)
    assert v2["coverage"] == pytest.approx(0.0)  # |realised - pred| = 3|pred| >= 0.03 > 0.02
    assert record["sessions_scored"] == 8 and len(record["history"]) == 8
    # the window: only the last 2 sessions of version 2
    assert live_record(settings, s[9], window=2)["by_version"]["2"]["sessions"] == 2
    deciles = record["deciles"].set_index("decile")
    assert deciles.loc[10, "mean_return"] == pytest.approx((0.03 * 0.5 * 4 - 0.03 * 2 * 4) / 8)
    # at an earlier session the record stops where labels were complete then
    assert set(live_record(settings, s[5])["by_version"]) == {"1"}


def test_skipped_tickers_get_reason_rows_and_no_prediction(settings):
    from tickerlake.predict import SKIPPED, skipped_tickers, write_skipped

    day = SESSIONS[5]
    features = pd.DataFrame({"ticker": ["AAA", "BBB", "CCC"], "date": day})
    for i, name in enumerate(FEATURE_NAMES):
        features[name] = [0.1 * i, np.nan if name in ("ROC20", "MA20") else 0.2, np.inf if i == 0 else 0.3]
    lake.append(settings, "bronze.bars_daily", pd.DataFrame(
        {"ticker": ["AAA", "BBB", "CCC", "DDD", "EEE"], "date": [day] * 5, "close": 1.0}))
    lake.append(settings, "quarantine.bars_daily", pd.DataFrame(
        {"ticker": ["DDD", "DDD"], "date": [day, day], "rule": ["ohlc_consistent", "price_positive"],
         "severity": ["critical", "critical"]}))
    skipped = skipped_tickers(settings, day, features).set_index("ticker")
    assert sorted(skipped.index) == ["BBB", "CCC", "DDD", "EEE"]  # AAA is complete
    assert skipped.loc["BBB", "reason"] == "incomplete features"
    assert set(skipped.loc["BBB", "missing_features"].split(",")) == {"ROC20", "MA20"}
    assert skipped.loc["CCC", "missing_features"] == FEATURE_NAMES[0]  # an infinite value is no value either
    assert skipped.loc["DDD", "reason"] == "no feature row: bar quarantined (ohlc_consistent, price_positive)"
    assert skipped.loc["EEE", "reason"] == "no feature row: bar did not reach silver"
    version = write_skipped(settings, skipped.reset_index().assign(
        target_session=next_session(day), run_id="run-x", model_version="1", features_version=np.int64(4)))
    assert version is not None
    rows = lake.read_table(settings, SKIPPED)
    assert len(rows) == 4 and set(rows["run_id"]) == {"run-x"} and set(rows["asof_date"]) == {day}


def test_mark_published_flips_exactly_one_runs_rows(settings):
    from tickerlake.predict import mark_published

    s = SESSIONS
    _write(settings, [_preds(s[0], "a", BASE), _preds(s[0], "b", BASE * 2), _preds(s[1], "a", BASE)],
           [_labels(s[0], BASE)])
    before = lake.read_table(settings, "gold.predictions_daily")
    assert mark_published(settings, s[0], "a")["marked"] == len(TICKERS)
    assert mark_published(settings, s[0], "a")["marked"] == 0  # already published: nothing changes
    after = lake.read_table(settings, "gold.predictions_daily")
    key = ["asof_date", "run_id", "ticker"]
    merged = before.merge(after, on=key, suffixes=("_before", "_after"))
    assert len(merged) == len(before) == len(after)
    flipped = merged[merged["published_after"]]
    assert set(zip(flipped["asof_date"], flipped["run_id"], strict=True)) == {(s[0], "a")}
    for c in ("pred_return", "pred_lo", "pred_hi", "rank", "signal", "model_version", "features_version"):
        assert (merged[f"{c}_before"] == merged[f"{c}_after"]).all(), c


def test_predict_session_skips_incomplete_tickers_with_reasons_and_no_silent_zero(settings):
    """A real champion (LightGBM in MLflow, alias champion): the complete tickers are predicted, the
    others get reason rows, and the report counts them."""
    import lightgbm as lgb
    import mlflow

    from tickerlake.predict import SKIPPED, predict_session
    from tickerlake.report import build_context
    from tickerlake.training import CHAMPION, configure_mlflow

    day = SESSIONS[5]
    rng = np.random.default_rng(3)
    x = pd.DataFrame(rng.normal(size=(400, len(FEATURE_NAMES))), columns=list(FEATURE_NAMES))
    booster = lgb.train({"objective": "regression", "verbose": -1, "num_leaves": 4},
                        lgb.Dataset(x, x[FEATURE_NAMES[0]] * 0.01), num_boost_round=5)
    configure_mlflow(settings)
    with mlflow.start_run():
        mlflow.lightgbm.log_model(booster, name="model", registered_model_name=settings.model_name)
    client = mlflow.MlflowClient()
    version = client.search_model_versions(f"name='{settings.model_name}'")[0].version
    for k, v in {"calib_a": "0.0", "calib_b": "1.0", "interval_lo": "-0.02", "interval_hi": "0.02",
                 "backtest_rank_ic": "0.05"}.items():
        client.set_model_version_tag(settings.model_name, version, k, v)
    client.set_registered_model_alias(settings.model_name, CHAMPION, version)

    tickers = ["AAA", "BBB", "CCC", "DDD"]
    features = pd.DataFrame(rng.normal(size=(4, len(FEATURE_NAMES))), columns=list(FEATURE_NAMES))
    features.loc[1, "ROC20"] = np.nan  # BBB: too short a history
    features.insert(0, "ticker", tickers)
    features.insert(1, "date", day)
    features["year"] = np.int32(day.year)
    lake.append(settings, "gold.features_daily", features)
    lake.append(settings, "bronze.bars_daily", pd.DataFrame({"ticker": tickers + ["EEE"], "date": day}))

    result = predict_session(settings, day, "run-p")
    assert result["status"] == "ok" and result["rows"] == 3 and result["skipped"] == 2
    preds = lake.read_table(settings, "gold.predictions_daily")
    assert sorted(preds["ticker"]) == ["AAA", "CCC", "DDD"] and preds["pred_return"].notna().all()
    skipped = lake.read_table(settings, SKIPPED).set_index("ticker")
    assert skipped.loc["BBB", "reason"] == "incomplete features" and skipped.loc["BBB", "missing_features"] == "ROC20"
    assert skipped.loc["EEE", "reason"] == "no feature row: bar did not reach silver"
    assert set(skipped["run_id"]) == {"run-p"} and set(skipped["model_version"]) == {str(version)}
    context = build_context(settings, day, "run-p")
    assert context["n_predicted"] == 3 and context["n_skipped"] == 2 and context["universe_coverage"] == 0.6
    assert {s["ticker"] for s in context["skipped"]} == {"BBB", "EEE"}
    assert context["backtest_ic"] == 0.05 and context["champion_version"] == str(version)
