"""Intraday scoring end to end: a synthetic daily history (ingest, validation, Spark features), a champion
trained and promoted, its features materialized to the Feast online store; then the next session's 5-minute
bars on a real broker, drained by Spark into Delta and scored into gold.predictions_intraday."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from tickerlake import lake
from tickerlake.calendar import sessions_between
from tickerlake.catalog import FEATURE_NAMES
from tickerlake.kafka_broker import start_broker, stop_broker
from tickerlake.procs import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

ASOF = dt.date(2025, 12, 30)  # the last daily close the features know
SESSION = dt.date(2025, 12, 31)  # the intraday session


def test_the_sessions_latest_bars_are_scored_by_the_champion(make_settings, tmp_path):
    from tickerlake.feast_store import apply, online_features
    from tickerlake.ingest import land_bars, validate_interval
    from tickerlake.intraday.replay import publish, synthetic_bars
    from tickerlake.intraday.scoring import TABLE, score_and_record
    from tickerlake.intraday.service import drain_and_record
    from tickerlake.pipeline import features_in_process, materialize, train_and_promote
    from tickerlake.predict import champion_calibration, score_features
    from tickerlake.training import champion_version

    port, controller = free_port(), free_port()
    settings = make_settings(tmp_path / "home", universe_size=50, history_start="2023-01-03",
                             kafka_port=port, kafka_controller_port=controller, kafka_bootstrap=f"127.0.0.1:{port}",
                             spark_driver_memory="1g", data_docs="off")
    start = dt.date.fromisoformat(settings.history_start)
    logical = dt.datetime.combine(ASOF, dt.time(), tzinfo=dt.UTC)
    land_bars(settings, "synthetic", start, ASOF, "seed", logical)
    validate_interval(settings, start, ASOF, "seed")
    features_in_process(settings, start, ASOF)
    apply(settings)  # setup's feast apply: training reads its set through the feature service
    decision = train_and_promote(settings, ASOF)
    assert decision["decision"] == "promoted", decision
    materialize(settings, ASOF, ASOF)

    bars = synthetic_bars(settings, SESSION, SESSION)
    first_hour = bars[bars["ts"] < pd.Timestamp("2025-12-31T15:30:00Z")]  # 09:30-10:25 New York: 12 bars
    start_broker(settings)
    try:
        publish(settings, first_hour, source="synthetic")
        drained = drain_and_record(settings, "intraday-1")
        scored = score_and_record(settings, SESSION, "intraday-1")
    finally:
        stop_broker(settings)
    assert drained["messages"] == 50 * 12 and scored["status"] == "ok" and scored["rows"] == 50

    preds = lake.read_table(settings, TABLE)
    assert len(preds) == 50 and set(preds["run_id"]) == {"intraday-1"}
    assert (pd.to_datetime(preds["bar_ts"], utc=True) == pd.Timestamp("2025-12-31T15:25:00Z")).all()
    assert set(preds["asof_date"]) == {ASOF} and set(preds["session"]) == {SESSION}
    champion = champion_version(settings)
    assert set(preds["model_version"]) == {str(champion.version)}

    # Intraday features against the bars themselves and the previous close in silver.bars_daily.
    daily = lake.read_table(settings, "silver.bars_daily", filters=[("date", "=", ASOF)]).set_index("ticker")
    for row in preds.itertuples():
        mine = first_hour[first_hour["ticker"] == row.ticker].sort_values("ts")
        assert row.ret_open == pytest.approx(mine["close"].iloc[-1] / mine["open"].iloc[0] - 1)
        assert row.ret_last_bar == pytest.approx(mine["close"].iloc[-1] / mine["close"].iloc[-2] - 1)
        assert row.gap_open == pytest.approx(mine["open"].iloc[0] / daily.loc[row.ticker, "close"] - 1)
        assert np.isnan(row.vol_tod_ratio)  # no earlier intraday session in silver yet

    # The scores are the champion's on the online store's daily features.
    import mlflow

    model = mlflow.lightgbm.load_model(f"models:/{settings.model_name}@champion")
    online = online_features(settings, sorted(preds["ticker"]), list(FEATURE_NAMES))
    expected = score_features(model, online, champion_calibration(champion), settings.signal_threshold)
    got = preds.set_index("ticker").loc[expected["ticker"]]
    assert np.allclose(got["pred_return"].to_numpy(), expected["pred_return"].to_numpy())
    assert list(got["signal"]) == list(expected["signal"])

    # The same run's rows were pushed to the online store: served per ticker through the push view.
    from tickerlake.feast_store import INTRADAY_FEATURES, INTRADAY_VIEW

    assert scored["online_rows"] == 50
    tickers = sorted(preds["ticker"])
    served = online_features(settings, [*tickers, "NOPE"], [f"{INTRADAY_VIEW}:{n}" for n in INTRADAY_FEATURES])
    assert served["ticker"].tolist() == [*tickers, "NOPE"]
    assert served.iloc[-1][list(INTRADAY_FEATURES)].isna().all(), "an unknown ticker gets nulls"
    want = preds.set_index("ticker").loc[tickers]
    for name in INTRADAY_FEATURES:
        got_values, want_values = served[name].iloc[:-1].to_numpy(), want[name].to_numpy()
        if want[name].dtype == object:
            assert list(got_values) == list(want_values), name
        else:
            assert np.allclose(got_values.astype(float), want_values.astype(float), equal_nan=True), name

    runs = lake.read_table(settings, "ops.pipeline_runs").set_index("pipeline")
    score_row = runs.loc["intraday_score"]
    assert score_row["run_id"] == "intraday-1" and score_row["rows"] == 50
    assert 0 < score_row["latency_p50_s"] <= score_row["latency_p95_s"] < 600
    drain_row = runs.loc["intraday_drain"]
    assert drain_row["rows"] == 600 and 0 < drain_row["latency_p50_s"] <= drain_row["latency_p95_s"]
    assert sessions_between(SESSION, SESSION) == [SESSION]
