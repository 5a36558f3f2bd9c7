"""Feast definitions of Tickerlake: the ticker entity, the daily views, the model's feature service.

The model's features come from three views (tickerlake.feast_store.VIEW_FEATURES): `daily_features`
(each ticker's own bars and the cross-section) and `alternative_daily` (social sentiment per ticker
and market-wide) read gold.features_daily; `macro_daily`, market-wide and so without an entity,
reads gold.macro_daily, one row per session (the feature job writes it from the same
silver.macro_asof rows it joins to every ticker's row).

Read by `feast apply` (the module-level objects below, built from the environment through
tickerlake.settings.load_settings()) and by tickerlake.feast_store.apply(), which executes this file
afresh and calls build_definitions() with its own settings.

Sources are the gold Delta tables written by Spark; their locations come from the settings
(TICKERLAKE_LAKE_ROOT, default <TICKERLAKE_HOME>/lake) and are stored in the registry by apply.
Feast's event time of a daily row is `event_ts`: the session's close in UTC.

Labels (gold.labels_daily) are never a feature view: they meet the features only in training and
evaluation, so serving can never see them.

Intraday predictions reach the online store through a PushSource: the short-interval DAG pushes
each run's scores as it appends them to gold.predictions_intraday (the push source's batch source).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, ValueType
from feast.data_format import DeltaFormat
from feast.data_source import DataSource
from feast.types import Float64, String

from tickerlake import catalog
from tickerlake.feast_store import (
    ALTERNATIVE_VIEW,
    DAILY_TTL,
    ENTITY,
    EVENT_TIMESTAMP,
    FEATURE_SERVICE,
    FEATURES_TABLE,
    FEATURES_VIEW,
    INTRADAY_FEATURES,
    INTRADAY_PUSH_SOURCE,
    INTRADAY_TABLE,
    INTRADAY_TIMESTAMP,
    INTRADAY_TTL,
    INTRADAY_VIEW,
    MACRO_TABLE,
    MACRO_VIEW,
    PREDICTIONS_TABLE,
    PREDICTIONS_VIEW,
    VIEW_FEATURES,
    feature_list_hash,
    offline_store_type,
)
from tickerlake.settings import Settings, load_settings

# Types of the served prediction columns (tickerlake.feast_store.PREDICTION_FEATURES).
PREDICTION_SCHEMA: tuple[tuple[str, Any], ...] = (
    ("pred_return", Float64),
    ("pred_lo", Float64),
    ("pred_hi", Float64),
    ("percentile", Float64),
    ("signal", String),
    ("model_version", String),
)
_TYPES = {**dict(PREDICTION_SCHEMA), "ret_open": Float64, "ret_last_bar": Float64, "vol_tod_ratio": Float64,
          "gap_open": Float64}


@dataclass(frozen=True)
class Definitions:
    ticker: Entity
    features_source: DataSource
    macro_source: DataSource
    predictions_source: DataSource
    daily_features: FeatureView
    alternative_daily: FeatureView
    macro_daily: FeatureView
    daily_predictions: FeatureView
    intraday_source: PushSource
    intraday_predictions: FeatureView
    feature_service: FeatureService

    def views(self) -> list[FeatureView]:
        return [self.daily_features, self.alternative_daily, self.macro_daily, self.daily_predictions,
                self.intraday_predictions]

    def objects(self) -> list[Any]:
        """Everything to register, in dependency order."""
        return [
            self.ticker,
            self.features_source,
            self.macro_source,
            self.predictions_source,
            self.intraday_source,
            *self.views(),
            self.feature_service,
        ]


def delta_source(settings: Settings, table: str, offline_store: str,
                 timestamp_field: str = EVENT_TIMESTAMP) -> DataSource:
    """The batch source over a gold Delta table, of the class the offline store reads."""
    name = table.replace(".", "_")
    if offline_store == "spark":
        # At scale: Spark reads the Delta table (object storage URI) with the Delta extensions.
        from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource
        from feast.table_format import DeltaFormat as DeltaTableFormat

        return SparkSource(
            name=name,
            path=settings.table_uri(table),
            table_format=DeltaTableFormat(),
            timestamp_field=timestamp_field,
            description=f"Delta table {table}",
        )
    # Embedded: DuckDB's delta extension reads the table through its log (feature_store.yaml).
    return FileSource(
        name=name,
        path=settings.table_path(table),
        file_format=DeltaFormat(),
        timestamp_field=timestamp_field,
        description=f"Delta table {table}",
    )


def build_definitions(settings: Settings, offline_store: str = "duckdb") -> Definitions:
    ticker = Entity(
        name=ENTITY,
        join_keys=[ENTITY],
        value_type=ValueType.STRING,
        description="Canonical ticker: upper case, share classes with a dot (BRK.B)",
    )
    features_source = delta_source(settings, FEATURES_TABLE, offline_store)
    predictions_source = delta_source(settings, PREDICTIONS_TABLE, offline_store)

    macro_source = delta_source(settings, MACRO_TABLE, offline_store)

    def float_fields(view: str) -> list[Field]:
        return [Field(name=name, dtype=Float64) for name in VIEW_FEATURES[view]]

    # The entity column is declared too, so apply never has to read the table to infer it (setup
    # applies before the first Spark run has written anything).
    daily_features = FeatureView(
        name=FEATURES_VIEW,
        entities=[ticker],
        ttl=DAILY_TTL,
        schema=[Field(name=ENTITY, dtype=String), *float_fields(FEATURES_VIEW)],
        source=features_source,
        online=True,
        description="Alpha158-style features of each ticker's own bars, and cross-sectional ranks, "
                    "as of each session's close (tickerlake.catalog)",
        tags={"table": FEATURES_TABLE},
    )
    alternative_daily = FeatureView(
        name=ALTERNATIVE_VIEW,
        entities=[ticker],
        ttl=DAILY_TTL,
        schema=[Field(name=ENTITY, dtype=String), *float_fields(ALTERNATIVE_VIEW)],
        source=features_source,
        online=True,
        description="Social sentiment and message counts per ticker and market-wide, point in time by session",
        tags={"table": FEATURES_TABLE},
    )
    # Market-wide: no entity, so each session's values are stored once, not once per ticker.
    macro_daily = FeatureView(
        name=MACRO_VIEW,
        entities=[],
        ttl=DAILY_TTL,
        schema=float_fields(MACRO_VIEW),
        source=macro_source,
        online=True,
        description="Macro series (FRED) as known at each session's close, the same for every ticker",
        tags={"table": MACRO_TABLE},
    )
    # One row per ticker and asof session; `event_ts` is the asof session's close. Caveat: the
    # table is append-only per run (a rerun adds rows with the same event_ts, and unpublished
    # rows sit next to published ones), and Feast breaks ties between rows of one entity and
    # event_ts only by a created-timestamp column, which gold.predictions_daily lacks; a FileSource
    # cannot filter `published`. So materializing this view is exact only for an interval with a
    # single published run; otherwise publish should write its rows to the online store itself
    # (FeatureStore.write_to_online_store) or the table should gain a `published_ts` column.
    daily_predictions = FeatureView(
        name=PREDICTIONS_VIEW,
        entities=[ticker],
        ttl=DAILY_TTL,
        schema=[
            Field(name=ENTITY, dtype=String),
            *(Field(name=name, dtype=dtype) for name, dtype in PREDICTION_SCHEMA),
        ],
        source=predictions_source,
        online=True,
        description="Next-session return prediction and signal of the champion model",
        tags={"table": PREDICTIONS_TABLE},
    )
    # Pushed by each intraday run (tickerlake.feast_store.push_intraday_predictions); the Delta
    # table, appended by the same run, is its offline copy. Keyed by ticker like the daily views.
    intraday_source = PushSource(
        name=INTRADAY_PUSH_SOURCE,
        batch_source=delta_source(settings, INTRADAY_TABLE, offline_store, INTRADAY_TIMESTAMP),
        description="Intraday scores of the champion, pushed by the tickerlake_intraday DAG",
    )
    intraday_predictions = FeatureView(
        name=INTRADAY_VIEW,
        entities=[ticker],
        ttl=INTRADAY_TTL,
        schema=[
            Field(name=ENTITY, dtype=String),
            *(Field(name=name, dtype=_TYPES[name]) for name in INTRADAY_FEATURES),
        ],
        source=intraday_source,
        online=True,
        description="The latest intraday score and intraday features per ticker (event time: the bar's start)",
        tags={"table": INTRADAY_TABLE},
    )
    feature_service = FeatureService(
        name=FEATURE_SERVICE,
        features=[daily_features, alternative_daily, macro_daily],
        description="The features of the daily LightGBM model",
        tags={"feature_list_sha256": feature_list_hash(catalog.FEATURE_NAMES)},
    )
    return Definitions(
        ticker=ticker,
        features_source=features_source,
        macro_source=macro_source,
        predictions_source=predictions_source,
        daily_features=daily_features,
        alternative_daily=alternative_daily,
        macro_daily=macro_daily,
        daily_predictions=daily_predictions,
        intraday_source=intraday_source,
        intraday_predictions=intraday_predictions,
        feature_service=feature_service,
    )


# Module-level objects for the `feast` CLI (it collects Feast objects from module attributes).
_definitions = build_definitions(load_settings(), offline_store_type(Path(__file__).resolve().parent))
ticker = _definitions.ticker
gold_features_daily = _definitions.features_source
gold_macro_daily = _definitions.macro_source
gold_predictions_daily = _definitions.predictions_source
daily_features = _definitions.daily_features
alternative_daily = _definitions.alternative_daily
macro_daily = _definitions.macro_daily
daily_predictions = _definitions.daily_predictions
intraday_predictions_push = _definitions.intraday_source
intraday_predictions = _definitions.intraday_predictions
tickerlake_daily_lgbm = _definitions.feature_service
