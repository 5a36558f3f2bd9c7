"""Feast over the gold Delta tables: apply, interval materialization, online and point-in-time reads.

Real Feast (file registry, SQLite online store, DuckDB offline store with the delta extension) on
Delta tables written with delta-rs under a temporary TICKERLAKE_HOME. No mocks.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from tickerlake import catalog
from tickerlake.feast_store import (
    ALTERNATIVE_VIEW,
    DAILY_FEATURE_VIEWS,
    FEATURE_SERVICE,
    FEATURES_TABLE,
    FEATURES_VIEW,
    INTRADAY_PUSH_SOURCE,
    INTRADAY_TABLE,
    INTRADAY_VIEW,
    MACRO_TABLE,
    MACRO_VIEW,
    PREDICTION_FEATURES,
    PREDICTIONS_TABLE,
    PREDICTIONS_VIEW,
    VIEW_FEATURES,
    FeatureSchemaMismatch,
    apply,
    check_feature_schemas,
    feature_list_hash,
    feature_schema_mismatches,
    feature_store,
    historical_features,
    install_duckdb_delta_extension,
    load_definitions,
    materialize_interval,
    online_features,
)
from tickerlake.settings import PROJECT_ROOT, Settings, load_settings

NEW_YORK = ZoneInfo("America/New_York")
UTC = ZoneInfo("UTC")
TICKERS = ("AAPL", "BRK.B", "MSFT")
# Five sessions around Independence Day (no session on 2024-07-04).
SESSIONS = (date(2024, 7, 1), date(2024, 7, 2), date(2024, 7, 3), date(2024, 7, 5), date(2024, 7, 8))


def close_utc(session: date) -> datetime:
    """The session's close in UTC from the exchange calendar (2024-07-03 closed early, at 13:00 New
    York): the event time the feature job writes and the training set joins at."""
    from tickerlake.calendar import session_close_utc

    return session_close_utc(session)


def feature_value(session_idx: int, ticker_idx: int, feature_idx: int) -> float:
    """A value per (session, ticker, feature); the market-wide macro features are the same for every
    ticker, as the feature job writes them."""
    if catalog.FEATURE_NAMES[feature_idx] in catalog.MACRO_FEATURE_NAMES:
        ticker_idx = 0
    return session_idx * 1000.0 + ticker_idx * 100.0 + feature_idx + 0.25


def expected_features(session_idx: int) -> pd.DataFrame:
    rows = [
        {"ticker": t, **{f: feature_value(session_idx, j, k) for k, f in enumerate(catalog.FEATURE_NAMES)}}
        for j, t in enumerate(TICKERS)
    ]
    return pd.DataFrame(rows)


def write_macro_table(settings: Settings) -> None:
    """gold.macro_daily, one row per session, as the feature job writes it beside gold.features_daily."""
    from tickerlake.altdata.macro import macro_daily_schema

    index = {f: catalog.FEATURE_NAMES.index(f) for f in catalog.MACRO_FEATURE_NAMES}
    rows = [{"date": session, "event_ts": close_utc(session), "year": session.year,
             **{f: feature_value(i, 0, k) for f, k in index.items()}} for i, session in enumerate(SESSIONS)]
    write_deltalake(settings.table_path(MACRO_TABLE), pa.Table.from_pylist(rows, schema=macro_daily_schema()),
                    partition_by=["year"], mode="overwrite")


def write_features_daily(settings: Settings) -> None:
    """gold.features_daily and gold.macro_daily over SESSIONS."""
    write_macro_table(settings)
    rows = []
    for i, session in enumerate(SESSIONS):
        for j, ticker in enumerate(TICKERS):
            row = {"ticker": ticker, "date": session, "event_ts": close_utc(session), "year": session.year}
            row.update({f: feature_value(i, j, k) for k, f in enumerate(catalog.FEATURE_NAMES)})
            rows.append(row)
    schema = pa.schema(
        [
            ("ticker", pa.string()),
            ("date", pa.date32()),
            ("event_ts", pa.timestamp("us", tz="UTC")),
            ("year", pa.int32()),
            *((f, pa.float64()) for f in catalog.FEATURE_NAMES),
        ]
    )
    table = pa.Table.from_pylist(rows, schema=schema)
    write_deltalake(settings.table_path(FEATURES_TABLE), table, partition_by=["year"], mode="overwrite")


def write_predictions_daily(settings: Settings, session_idx: int) -> pd.DataFrame:
    """One published run's predictions made at the close of SESSIONS[session_idx]."""
    asof, target = SESSIONS[session_idx], SESSIONS[session_idx + 1]
    rows = []
    for j, ticker in enumerate(TICKERS):
        pred = 0.01 * (j - 1)
        rows.append(
            {
                "ticker": ticker,
                "asof_date": asof,
                "target_session": target,
                "event_ts": close_utc(asof),
                "pred_return": pred,
                "pred_lo": pred - 0.02,
                "pred_hi": pred + 0.02,
                "rank": j + 1,
                "percentile": j / 2,
                "signal": ("short", "neutral", "long")[j],
                "model_name": "tickerlake_daily_lgbm",
                "model_version": "3",
                "features_version": 12,
                "run_id": "scheduled__2024-07-03",
                "published": True,
            }
        )
    schema = pa.schema(
        [
            ("ticker", pa.string()),
            ("asof_date", pa.date32()),
            ("target_session", pa.date32()),
            ("event_ts", pa.timestamp("us", tz="UTC")),
            ("pred_return", pa.float64()),
            ("pred_lo", pa.float64()),
            ("pred_hi", pa.float64()),
            ("rank", pa.int32()),
            ("percentile", pa.float64()),
            ("signal", pa.string()),
            ("model_name", pa.string()),
            ("model_version", pa.string()),
            ("features_version", pa.int64()),
            ("run_id", pa.string()),
            ("published", pa.bool_()),
        ]
    )
    write_deltalake(settings.table_path(PREDICTIONS_TABLE), pa.Table.from_pylist(rows, schema=schema))
    return pd.DataFrame(rows)[["ticker", *PREDICTION_FEATURES]]


def session_interval(session: date) -> tuple[datetime, datetime]:
    """The UTC calendar day of the session: contains its close."""
    start = datetime(session.year, session.month, session.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    home = tmp_path / "home"
    monkeypatch.setenv("TICKERLAKE_HOME", str(home))
    for name in ("TICKERLAKE_LAKE_ROOT", "TICKERLAKE_FEAST_REPO", "FEAST_FS_YAML_FILE_PATH"):
        monkeypatch.delenv(name, raising=False)
    s = load_settings(home=home)
    assert s.feast_repo == PROJECT_ROOT / "feature_repo"
    return s


@pytest.mark.unit
@pytest.mark.integration
def test_feature_view_fields_equal_catalog(settings: Settings) -> None:
    from feast.types import Float64

    defs = load_definitions(settings)
    views = {v.name: v for v in (defs.daily_features, defs.alternative_daily, defs.macro_daily)}
    assert tuple(views) == DAILY_FEATURE_VIEWS == (FEATURES_VIEW, ALTERNATIVE_VIEW, MACRO_VIEW)
    # Together the three views serve the catalogue, each feature once, in its order.
    served_names = [f.name for v in views.values() for f in v.features]
    assert sorted(served_names) == sorted(catalog.FEATURE_NAMES) and len(set(served_names)) == len(served_names)
    assert {n: tuple(f.name for f in v.features) for n, v in views.items()} == VIEW_FEATURES
    assert VIEW_FEATURES[ALTERNATIVE_VIEW] == ("SENT", "MSGCNT", "MKT_SENT", "MKT_MSGCNT")
    assert all(n.startswith("MACRO_") for n in VIEW_FEATURES[MACRO_VIEW]) and len(VIEW_FEATURES[MACRO_VIEW]) == 5
    for view in views.values():
        assert all(f.dtype == Float64 for f in view.features)
        assert view.batch_source.timestamp_field == "event_ts"
    for name in (FEATURES_VIEW, ALTERNATIVE_VIEW):
        assert [c.name for c in views[name].entity_columns] == ["ticker"]
        assert views[name].batch_source.path == settings.table_path(FEATURES_TABLE)
    # Market-wide: no entity, its own table with one row per session.
    assert views[MACRO_VIEW].entity_columns == []
    assert views[MACRO_VIEW].batch_source.path == settings.table_path(MACRO_TABLE)

    assert tuple(f.name for f in defs.daily_predictions.features) == PREDICTION_FEATURES
    assert defs.feature_service.name == FEATURE_SERVICE
    assert [p.name for p in defs.feature_service.feature_view_projections] == list(DAILY_FEATURE_VIEWS)
    assert defs.feature_service.tags["feature_list_sha256"] == feature_list_hash(catalog.FEATURE_NAMES)
    # Labels are never served.
    served = {f.name for v in defs.views() for f in v.features}
    assert not served & set(catalog.LABEL_COLUMNS)


@pytest.mark.unit
@pytest.mark.integration
def test_feature_list_hash_is_order_free() -> None:
    names = list(catalog.FEATURE_NAMES)
    assert feature_list_hash(names) == feature_list_hash(reversed(names))
    assert len(feature_list_hash(names)) == 64
    assert feature_list_hash(names) != feature_list_hash(names[:-1])
    with pytest.raises(ValueError, match="duplicate"):
        feature_list_hash([*names, names[0]])


@pytest.mark.integration
def test_install_duckdb_delta_extension(tmp_path: Path) -> None:
    import duckdb

    installed = install_duckdb_delta_extension(tmp_path / "ext")
    assert installed.is_file()
    assert install_duckdb_delta_extension(tmp_path / "ext") == installed  # idempotent
    with duckdb.connect(config={"extension_directory": str(tmp_path / "ext")}) as con:
        con.execute("LOAD delta")


@pytest.mark.integration
def test_apply_before_tables_exist_is_idempotent(settings: Settings) -> None:
    names = apply(settings)
    assert names == sorted(
        [
            "ticker",
            "gold_features_daily",
            "gold_macro_daily",
            "gold_predictions_daily",
            FEATURES_VIEW,
            ALTERNATIVE_VIEW,
            MACRO_VIEW,
            PREDICTIONS_VIEW,
            INTRADAY_PUSH_SOURCE,
            INTRADAY_VIEW,
            FEATURE_SERVICE,
        ]
    )
    assert apply(settings) == names
    store = feature_store(settings)
    assert sorted(v.name for v in store.list_feature_views()) == sorted(
        [*DAILY_FEATURE_VIEWS, PREDICTIONS_VIEW, INTRADAY_VIEW])
    # the intraday view is fed by its push source, whose batch source is the Delta table
    intraday = store.get_feature_view(INTRADAY_VIEW)
    assert intraday.stream_source.name == INTRADAY_PUSH_SOURCE
    assert intraday.batch_source.path == settings.table_path(INTRADAY_TABLE)
    assert intraday.batch_source.timestamp_field == "bar_ts"
    assert (settings.feast_dir / "registry.db").is_file()
    assert (settings.feast_dir / "online.db").is_file()


@pytest.mark.integration
def test_materialize_one_session_serves_exactly_its_values(settings: Settings) -> None:
    write_features_daily(settings)
    predictions = write_predictions_daily(settings, session_idx=2)
    apply(settings)

    start, end = session_interval(SESSIONS[2])
    materialize_interval(settings, start, end, [*DAILY_FEATURE_VIEWS, PREDICTIONS_VIEW])

    online = online_features(settings, list(TICKERS))
    assert list(online.columns) == ["ticker", *catalog.FEATURE_NAMES, *PREDICTION_FEATURES]
    pd.testing.assert_frame_equal(
        online[["ticker", *catalog.FEATURE_NAMES]], expected_features(2), check_dtype=False
    )
    pd.testing.assert_frame_equal(online[["ticker", *PREDICTION_FEATURES]], predictions, check_dtype=False)

    # A subset by bare names, and an unknown ticker gets nulls.
    subset = online_features(settings, ["MSFT", "ZZZZ"], ["KMID", "signal"])
    assert list(subset.columns) == ["ticker", "KMID", "signal"]
    assert subset.loc[0, "KMID"] == feature_value(2, 2, 0)
    assert subset.loc[0, "signal"] == "long"
    assert subset.loc[1, ["KMID", "signal"]].isna().all()


@pytest.mark.integration
def test_materialize_interval_excludes_its_end(settings: Settings) -> None:
    write_features_daily(settings)
    apply(settings)
    # [start of session 1's UTC day, session 2's close): session 1's close is in, session 2's is not.
    start, _ = session_interval(SESSIONS[1])
    materialize_interval(settings, start, close_utc(SESSIONS[2]), list(DAILY_FEATURE_VIEWS))
    online = online_features(settings, list(TICKERS), list(catalog.FEATURE_NAMES))
    pd.testing.assert_frame_equal(online, expected_features(1), check_dtype=False)

    with pytest.raises(ValueError, match="timezone-aware"):
        materialize_interval(settings, start.replace(tzinfo=None), close_utc(SESSIONS[2]))
    with pytest.raises(ValueError, match="empty interval"):
        materialize_interval(settings, start, start)


@pytest.mark.integration
def test_materialize_twice_gives_identical_online_values(settings: Settings) -> None:
    write_features_daily(settings)
    apply(settings)
    start, end = session_interval(SESSIONS[3])
    materialize_interval(settings, start, end, list(DAILY_FEATURE_VIEWS))
    first = online_features(settings, list(TICKERS), list(catalog.FEATURE_NAMES))
    materialize_interval(settings, start, end, list(DAILY_FEATURE_VIEWS))
    second = online_features(settings, list(TICKERS), list(catalog.FEATURE_NAMES))
    pd.testing.assert_frame_equal(first, second)
    pd.testing.assert_frame_equal(second, expected_features(3), check_dtype=False)


@pytest.mark.integration
def test_historical_features_are_point_in_time(settings: Settings) -> None:
    write_features_daily(settings)
    apply(settings)
    one_second = timedelta(seconds=1)
    entity_df = pd.DataFrame(
        {
            "ticker": ["AAPL", "AAPL", "BRK.B", "MSFT"],
            "event_timestamp": pd.to_datetime(
                [
                    close_utc(SESSIONS[3]) - one_second,  # before session 3's row: gets session 2
                    close_utc(SESSIONS[3]),  # at its close: session 3
                    close_utc(SESSIONS[0]) - one_second,  # before any row: nothing
                    close_utc(SESSIONS[4]) + timedelta(days=3),  # within the TTL of the last row
                ],
                utc=True,
            ),
            "row_id": [0, 1, 2, 3],  # passed through
        }
    )
    result = historical_features(settings, entity_df).sort_values("row_id").reset_index(drop=True)
    assert list(result["row_id"]) == [0, 1, 2, 3]
    assert set(catalog.FEATURE_NAMES) <= set(result.columns)
    assert not set(PREDICTION_FEATURES) & set(result.columns)  # the service is features only

    def row(i: int) -> list[float]:
        return list(result.loc[i, list(catalog.FEATURE_NAMES)])

    assert row(0) == list(expected_features(2).iloc[0, 1:])
    assert row(1) == list(expected_features(3).iloc[0, 1:])
    assert result.loc[2, list(catalog.FEATURE_NAMES)].isna().all()
    assert row(3) == list(expected_features(4).iloc[2, 1:])

    with pytest.raises(ValueError, match="event_timestamp"):
        historical_features(settings, entity_df.drop(columns=["event_timestamp"]))


@pytest.mark.integration
def test_schemas_of_views_and_tables_agree_after_the_job_writes(settings: Settings) -> None:
    write_features_daily(settings)
    write_predictions_daily(settings, session_idx=2)
    assert feature_schema_mismatches(settings, load_definitions(settings)) == []
    apply(settings)  # the check runs inside apply too


@pytest.mark.integration
def test_a_feature_added_in_the_job_but_not_in_the_view_is_named(settings: Settings) -> None:
    write_features_daily(settings)
    path = settings.table_path(FEATURES_TABLE)
    extra = pa.table({"ticker": ["AAPL"], "date": [SESSIONS[0]], "event_ts": [close_utc(SESSIONS[0])],
                      "year": pa.array([2024], pa.int32()), "SKEW20": [0.5]})
    write_deltalake(path, extra, mode="append", schema_mode="merge")
    with pytest.raises(FeatureSchemaMismatch, match="column 'SKEW20' of gold.features_daily is not in feature view"):
        apply(settings)
    with pytest.raises(FeatureSchemaMismatch, match="SKEW20"):
        check_feature_schemas(settings)


@pytest.mark.integration
def test_a_served_feature_missing_or_mistyped_in_the_table_is_named(settings: Settings) -> None:
    rows = {"ticker": ["AAPL"], "date": [SESSIONS[0]], "event_ts": [close_utc(SESSIONS[0])],
            "year": pa.array([2024], pa.int32())}
    names = [f for f in catalog.FEATURE_NAMES if f != "ROC5"]
    table = pa.table({**rows, **{f: ([1.0] if f != "ROC20" else ["1.0"]) for f in names}})  # ROC20 as text
    write_deltalake(settings.table_path(FEATURES_TABLE), table, partition_by=["year"])
    problems = feature_schema_mismatches(settings, load_definitions(settings))
    assert "feature 'ROC5' of view daily_features is not a column of gold.features_daily" in problems
    assert any(p.startswith("feature 'ROC20' of view daily_features is Float64") for p in problems), problems
    assert len(problems) == 2


@pytest.mark.integration
def test_the_ttl_boundary_holds_on_both_sides(settings: Settings) -> None:
    from tickerlake.feast_store import DAILY_TTL

    write_features_daily(settings)
    apply(settings)
    last = close_utc(SESSIONS[4])
    one_second = timedelta(seconds=1)
    entity_df = pd.DataFrame({"ticker": ["MSFT", "MSFT"], "row_id": [0, 1], "event_timestamp": pd.to_datetime(
        [last + DAILY_TTL - one_second, last + DAILY_TTL + one_second], utc=True)})
    result = historical_features(settings, entity_df).sort_values("row_id").reset_index(drop=True)
    assert list(result.loc[0, list(catalog.FEATURE_NAMES)]) == list(expected_features(4).iloc[2, 1:])
    assert result.loc[1, list(catalog.FEATURE_NAMES)].isna().all()  # older than the TTL: never joined


@pytest.mark.integration
def test_the_training_set_from_feast_equals_a_direct_join_of_the_delta_tables(settings: Settings) -> None:
    from tickerlake import lake, training

    write_features_daily(settings)
    labels = pa.Table.from_pylist(
        [{"ticker": t, "date": d, "ret_1d": (0.001 * i - 0.002 * j) if (i, j) != (1, 1) else None,
          "year": d.year} for i, d in enumerate(SESSIONS[:-1]) for j, t in enumerate(TICKERS)],
        schema=pa.schema([("ticker", pa.string()), ("date", pa.date32()), ("ret_1d", pa.float64()),
                          ("year", pa.int32())]))
    write_deltalake(settings.table_path("gold.labels_daily"), labels, partition_by=["year"])
    apply(settings)

    data = training.load_training_data(settings, SESSIONS[-1])
    # Per ticker from gold.features_daily, market-wide from gold.macro_daily (by session).
    macro = lake.read_table(settings, MACRO_TABLE, columns=["date", *catalog.MACRO_FEATURE_NAMES])
    per_ticker = lake.read_table(settings, FEATURES_TABLE).drop(columns=list(catalog.MACRO_FEATURE_NAMES))
    direct = (per_ticker.merge(macro, on="date").merge(lake.read_table(settings, "gold.labels_daily"),
                                                       on=["ticker", "date"]).dropna(subset=["ret_1d"]))
    direct["date"] = pd.to_datetime(direct["date"]).dt.date
    direct = direct.sort_values(["date", "ticker"]).reset_index(drop=True)[data.frame.columns]
    assert len(direct) == len(SESSIONS[:-1]) * len(TICKERS) - 1  # one label is incomplete
    pd.testing.assert_frame_equal(data.frame, direct, check_dtype=False)
    assert data.features_version == 0 and data.labels_version == 0 and data.macro_version == 0


@pytest.mark.integration
def test_the_market_wide_view_joins_by_session_for_every_ticker(settings: Settings) -> None:
    """macro_daily has no entity: a ticker the per-ticker tables never saw still gets each session's
    macro values, point in time; a macro column the views do not declare is named."""
    write_features_daily(settings)
    apply(settings)
    macro_idx = [catalog.FEATURE_NAMES.index(f) for f in catalog.MACRO_FEATURE_NAMES]
    entity_df = pd.DataFrame({"ticker": ["NEWCO", "AAPL"], "row_id": [0, 1], "event_timestamp": pd.to_datetime(
        [close_utc(SESSIONS[1]), close_utc(SESSIONS[3]) - timedelta(seconds=1)], utc=True)})
    result = historical_features(settings, entity_df).sort_values("row_id").reset_index(drop=True)
    assert list(result.loc[0, list(catalog.MACRO_FEATURE_NAMES)]) == [feature_value(1, 0, k) for k in macro_idx]
    assert result.loc[0, list(VIEW_FEATURES[FEATURES_VIEW])].isna().all()  # no per-ticker row for NEWCO
    assert list(result.loc[1, list(catalog.MACRO_FEATURE_NAMES)]) == [feature_value(2, 0, k) for k in macro_idx]

    start, end = session_interval(SESSIONS[4])
    materialize_interval(settings, start, end, list(DAILY_FEATURE_VIEWS))
    online = online_features(settings, ["NEWCO", "MSFT"], list(catalog.MACRO_FEATURE_NAMES))
    for row in range(2):
        assert list(online.loc[row, list(catalog.MACRO_FEATURE_NAMES)]) == [feature_value(4, 0, k) for k in macro_idx]

    extra = pa.table({"date": [SESSIONS[0]], "event_ts": [close_utc(SESSIONS[0])],
                      "year": pa.array([2024], pa.int32()), "MACRO_UNRATE": [4.1]})
    write_deltalake(settings.table_path(MACRO_TABLE), extra, mode="append", schema_mode="merge")
    with pytest.raises(FeatureSchemaMismatch, match="column 'MACRO_UNRATE' of gold.macro_daily is not in feature view macro_daily"):
        check_feature_schemas(settings)
