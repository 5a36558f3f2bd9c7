"""Feast: the feature store over the gold Delta tables.

Definitions live in `feature_repo/definitions.py`; configuration in `feature_repo/feature_store.yaml`
(embedded default: file registry, SQLite online store, DuckDB offline store reading Delta) or
`feature_store.scale.yaml` (SQL registry, Redis, Spark), selected the Feast way with
FEAST_FS_YAML_FILE_PATH. Feast is imported inside the functions so that importing this module
(DAG parsing, the CLI) stays cheap.

Rules kept here:
* `apply` is setup work (like `feast apply`), never part of the daily DAG.
* `materialize_interval` loads exactly the data interval [start, end): no wall clock, so a rerun
  of a run writes the same online values.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from tickerlake.catalog import FEATURE_NAMES, MACRO_FEATURE_NAMES, SENTIMENT_FEATURE_NAMES
from tickerlake.settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from feast import FeatureStore

log = logging.getLogger(__name__)

# --- names shared with feature_repo/definitions.py ---------------------------------------
ENTITY = "ticker"
FEATURES_VIEW = "daily_features"  # the features of each ticker's own bars and the cross-section
ALTERNATIVE_VIEW = "alternative_daily"  # alternative data per ticker and market: social sentiment
MACRO_VIEW = "macro_daily"  # market-wide macro series: no entity, one row per session
PREDICTIONS_VIEW = "daily_predictions"
INTRADAY_VIEW = "intraday_predictions"
INTRADAY_PUSH_SOURCE = "intraday_predictions_push"
FEATURE_SERVICE = "tickerlake_daily_lgbm"
FEATURES_TABLE = "gold.features_daily"
PREDICTIONS_TABLE = "gold.predictions_daily"
MACRO_TABLE = "gold.macro_daily"
INTRADAY_TABLE = "gold.predictions_intraday"
EVENT_TIMESTAMP = "event_ts"
# The event time of an intraday prediction: the start of the 5-minute bar it scored.
INTRADAY_TIMESTAMP = "bar_ts"
# The prediction columns served online (float64 except `signal` and `model_version`: strings).
PREDICTION_FEATURES: tuple[str, ...] = (
    "pred_return",
    "pred_lo",
    "pred_hi",
    "percentile",
    "signal",
    "model_version",
)
# The intraday columns served online (float64 except `signal` and `model_version`: strings).
INTRADAY_FEATURES: tuple[str, ...] = (
    "pred_return",
    "pred_lo",
    "pred_hi",
    "percentile",
    "signal",
    "ret_open",
    "ret_last_bar",
    "vol_tod_ratio",
    "gap_open",
    "model_version",
)
# The model's features by the view that serves them (together: catalog.FEATURE_NAMES, in its order).
VIEW_FEATURES: dict[str, tuple[str, ...]] = {
    FEATURES_VIEW: tuple(n for n in FEATURE_NAMES if n not in {*SENTIMENT_FEATURE_NAMES, *MACRO_FEATURE_NAMES}),
    ALTERNATIVE_VIEW: SENTIMENT_FEATURE_NAMES,
    MACRO_VIEW: MACRO_FEATURE_NAMES,
}
# The views the daily DAG materializes after the feature job (the model's feature service).
DAILY_FEATURE_VIEWS: tuple[str, ...] = tuple(VIEW_FEATURES)
# How long a daily row stays valid for point-in-time joins: covers long weekends and holidays.
DAILY_TTL = timedelta(days=10)
# An intraday score is served for the rest of its session, not into the next one.
INTRADAY_TTL = timedelta(hours=8)
# The entity dataframe's time column for historical retrieval (Feast's conventional name).
ENTITY_TIMESTAMP = "event_timestamp"

_DEFINITIONS_FILE = "definitions.py"
_DEFINITIONS_MODULE = "_tickerlake_feast_definitions"
_ONE_TICK = timedelta(microseconds=1)  # event_ts is timestamp[us]


# --- configuration -----------------------------------------------------------------------
def feature_store(settings: Settings) -> FeatureStore:
    """A FeatureStore over `settings.feast_repo`, with ${TICKERLAKE_HOME} taken from `settings`.

    The YAML is `feature_store.yaml` in the repo, or the file named by FEAST_FS_YAML_FILE_PATH.
    """
    from feast import FeatureStore

    _export_env(settings)
    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    store = FeatureStore(repo_path=str(settings.feast_repo))
    if _offline_type(store.config.offline_store) == "duckdb":
        try:
            install_duckdb_delta_extension()
        except FileNotFoundError as exc:
            log.warning("%s; DuckDB will try to download the delta extension itself", exc)
    return store


def offline_store_type(repo: str | os.PathLike[str]) -> str:
    """The `offline_store.type` of the repo's YAML (after ${VAR} expansion), `dask` when unset.

    `definitions.py` uses it to declare the source class the offline store reads (FileSource
    for duckdb, SparkSource for spark), so one definitions file serves both shapes.
    """
    import yaml
    from feast.utils import get_default_yaml_file_path

    path = get_default_yaml_file_path(Path(repo))
    with open(path, encoding="utf-8") as f:
        raw = yaml.safe_load(os.path.expandvars(f.read())) or {}
    return _offline_type(raw.get("offline_store"))


def _offline_type(offline_store: Any) -> str:
    if offline_store is None:
        return "dask"  # Feast's default for provider local
    if isinstance(offline_store, str):
        return offline_store
    if isinstance(offline_store, dict):
        return str(offline_store.get("type", "dask"))
    return str(getattr(offline_store, "type", "dask"))


def _export_env(settings: Settings) -> None:
    # feature_store.yaml refers to ${TICKERLAKE_HOME}; the scale example also to the Spark master.
    os.environ["TICKERLAKE_HOME"] = str(settings.home)
    os.environ.setdefault("TICKERLAKE_SPARK_MASTER", settings.spark_master)


def install_duckdb_delta_extension(extension_dir: str | os.PathLike[str] | None = None) -> Path:
    """Install DuckDB's signed `delta` extension from the pip package duckdb-ext-delta.

    DuckDB (and Ibis, which Feast's duckdb offline store uses) loads extensions from
    `<extension_dir>/<duckdb version>/<platform>/`, default `~/.duckdb/extensions`; it would
    download `delta` there on first use, which is not possible without network. Idempotent:
    an installed copy of the same size is kept. Returns the installed file.
    """
    import duckdb

    version = f"v{duckdb.__version__}"
    with duckdb.connect() as con:
        row = con.execute("SELECT platform FROM pragma_platform()").fetchone()
    platform = str(row[0]) if row else "linux_amd64"
    base = Path(extension_dir) if extension_dir else Path.home() / ".duckdb" / "extensions"
    target = base / version / platform / "delta.duckdb_extension"

    bundled = _bundled_delta_extension(version, platform)
    if bundled is None:
        if target.is_file():
            return target
        raise FileNotFoundError(
            f"no DuckDB delta extension for duckdb {version} on {platform}: install the pip package "
            f"duckdb-ext-delta matching duckdb {duckdb.__version__}"
        )
    if target.is_file() and target.stat().st_size == bundled.stat().st_size:
        return target

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    try:
        shutil.copyfile(bundled, partial)
        os.replace(partial, target)  # atomic: a concurrent reader sees the old file or the new one
    finally:
        partial.unlink(missing_ok=True)
    with duckdb.connect(config={"extension_directory": str(base)}) as con:
        con.execute("LOAD delta")  # fails loudly if the copy is not a loadable extension
    log.info("installed the DuckDB delta extension at %s", target)
    return target


def _bundled_delta_extension(version: str, platform: str) -> Path | None:
    spec = importlib.util.find_spec("duckdb_ext")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "extensions" / version / platform / "delta.duckdb_extension"
        if candidate.is_file():
            return candidate
    return None


# --- definitions and apply ---------------------------------------------------------------
def load_definitions(settings: Settings, offline_store: str | None = None) -> Any:
    """Build the Feast objects of `feature_repo/definitions.py` for `settings`.

    The file is executed afresh on each call (not imported and cached), so paths always follow
    the given settings. `offline_store` (duckdb, spark, ...) defaults to the repo YAML's.
    Returns its `Definitions` (see `build_definitions` there).
    """
    _export_env(settings)
    module = _definitions_module(settings.feast_repo)
    return module.build_definitions(
        settings, offline_store=offline_store or offline_store_type(settings.feast_repo)
    )


def _definitions_module(repo: Path) -> ModuleType:
    path = Path(repo) / _DEFINITIONS_FILE
    spec = importlib.util.spec_from_file_location(_DEFINITIONS_MODULE, path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"no Feast definitions at {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[_DEFINITIONS_MODULE] = module  # dataclasses look their module up while executing
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(_DEFINITIONS_MODULE, None)
    return module


def apply(settings: Settings) -> list[str]:
    """`feast apply` for `feature_repo`: register the definitions, create the online tables.

    Idempotent, and like `feast apply` it removes registered objects that the definitions no
    longer declare. Setup work: never call it from the daily DAG. Works before the gold tables
    exist (the schemas are declared, nothing is inferred from data). Returns the applied names.
    """
    from feast.feature_view import DUMMY_ENTITY_NAME

    store = feature_store(settings)
    definitions = load_definitions(settings, _offline_type(store.config.offline_store))
    check_feature_schemas(settings, definitions)
    objects = definitions.objects()
    wanted = {(_kind(o), o.name) for o in objects}

    registered: list[Any] = [
        *store.list_feature_views(),
        *store.list_on_demand_feature_views(),
        *store.list_stream_feature_views(),
        *store.list_feature_services(),
        *store.list_entities(),
        *store.list_data_sources(),
    ]
    stale = [o for o in registered if (_kind(o), o.name) not in wanted and o.name != DUMMY_ENTITY_NAME]
    store.apply(objects, objects_to_delete=stale, partial=False)
    if stale:
        log.info("removed from the Feast registry: %s", sorted(o.name for o in stale))
    return sorted(o.name for o in objects)


class FeatureSchemaMismatch(RuntimeError):
    """The feature views and the Delta tables they read disagree (a column missing or mistyped)."""


# Columns of a source table that are keys, time or lineage, never features.
_NOT_FEATURES = {FEATURES_TABLE: {ENTITY, "date", EVENT_TIMESTAMP, "year"}, MACRO_TABLE: {"date", EVENT_TIMESTAMP, "year"}}
# Feature columns a table repeats from another view's table: gold.features_daily carries each
# session's macro values on every ticker's row (for analysts and daily scoring); macro_daily serves them.
_COPIES = {FEATURES_TABLE: set(MACRO_FEATURE_NAMES)}
_VIEW_TABLES = {FEATURES_VIEW: FEATURES_TABLE, ALTERNATIVE_VIEW: FEATURES_TABLE, MACRO_VIEW: MACRO_TABLE,
                PREDICTIONS_VIEW: PREDICTIONS_TABLE, INTRADAY_VIEW: INTRADAY_TABLE}
_VIEW_TIMESTAMPS = {INTRADAY_VIEW: INTRADAY_TIMESTAMP}


def feature_schema_mismatches(settings: Settings, definitions: Any) -> list[str]:
    """What the declared feature views and the existing Delta tables disagree on, one line each.

    Every served field must be a column of its table with the same type; in a table that holds
    only features (gold.features_daily, gold.macro_daily) every other column must be served by one
    of the views reading it, so a feature added in Spark but not declared in a view is named.
    Tables that do not exist yet are skipped."""
    import pyarrow as pa
    from deltalake import DeltaTable
    from feast.types import Float64, String

    arrow_types = {Float64: (pa.float64(),), String: (pa.string(), pa.large_string(), pa.string_view())}
    problems: list[str] = []
    views = [v for v in definitions.views() if v.name in _VIEW_TABLES]
    columns_of: dict[str, dict[str, Any]] = {}
    for view in views:
        table = _VIEW_TABLES[view.name]
        path = settings.table_path(table)
        if table not in columns_of:
            if not DeltaTable.is_deltatable(path):
                continue
            columns_of[table] = {f.name: f.type for f in pa.schema(DeltaTable(path).schema().to_arrow())}
        columns = columns_of[table]
        keys = [c.name for c in view.entity_columns]
        for required in (*keys, _VIEW_TIMESTAMPS.get(view.name, EVENT_TIMESTAMP)):
            if required not in columns:
                problems.append(f"{table} has no column {required!r}, which feature view {view.name} needs")
        for field in view.features:
            if field.name not in columns:
                problems.append(f"feature {field.name!r} of view {view.name} is not a column of {table}")
            elif columns[field.name] not in arrow_types.get(field.dtype, ()):
                problems.append(f"feature {field.name!r} of view {view.name} is {field.dtype} but {table} "
                                f"has {columns[field.name]}")
    for table, columns in columns_of.items():
        if table not in _NOT_FEATURES:
            continue
        readers = [v for v in views if _VIEW_TABLES[v.name] == table]
        served = {f.name for v in readers for f in v.features} | _COPIES.get(table, set())
        for name in columns:
            if name not in served and name not in _NOT_FEATURES[table]:
                problems.append(f"column {name!r} of {table} is not in feature view "
                                f"{' or '.join(v.name for v in readers)} "
                                "(add it to the catalogue and the view, or drop it from the job)")
    return problems


def check_feature_schemas(settings: Settings, definitions: Any | None = None) -> None:
    """Raise FeatureSchemaMismatch naming every column the views and the Delta tables disagree on."""
    definitions = definitions if definitions is not None else load_definitions(settings)
    problems = feature_schema_mismatches(settings, definitions)
    if problems:
        raise FeatureSchemaMismatch("feature views and Delta tables disagree:\n  " + "\n  ".join(problems))


def _kind(obj: Any) -> str:
    from feast import Entity, FeatureService
    from feast.data_source import DataSource

    for kind in (Entity, FeatureService, DataSource):
        if isinstance(obj, kind):
            return kind.__name__
    return "FeatureView"  # all view classes share one namespace in the registry


# --- materialization and retrieval -------------------------------------------------------
def materialize_interval(
    settings: Settings,
    start: datetime,
    end: datetime,
    views: list[str] | None = None,
) -> None:
    """Load the rows with `start <= event_ts < end` of `views` (default: all) into the online store.

    Per entity the latest row of the interval wins; the online store keeps the last interval written.
    On Tickerlake's online store (the embedded default) all-float views take the batched path
    (materialize_floats); a view without entity (macro_daily), on any store, materialize_market_wide;
    other views, and other stores (Redis at scale), Feast's materialize, whose
    interval is closed at both ends: one microsecond (the resolution of event_ts) is taken off `end`
    so that consecutive data intervals never load a row twice.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("materialize_interval needs timezone-aware datetimes (UTC)")
    if not start < end:
        raise ValueError(f"empty interval: start {start.isoformat()} is not before end {end.isoformat()}")
    if views is not None and not views:
        raise ValueError("views is an empty list; pass None for all feature views")
    materialize_store(feature_store(settings), start, end, views)


def materialize_store(store: FeatureStore, start: datetime, end: datetime, views: list[str] | None = None) -> None:
    """materialize_interval on a FeatureStore at hand (the interval's checks are the caller's)."""
    from tickerlake.feast_online import STORE_TYPE

    ours = store.config.online_store.type == STORE_TYPE
    names = views if views is not None else [v.name for v in store.list_feature_views() if v.online]
    stock: list[str] = []
    batched: dict[tuple[str, str, str], list[Any]] = {}  # views reading one table: one read for all
    for name in names:
        view = store.get_feature_view(name)
        if market_wide(view):
            materialize_market_wide(store, view, start, end)
        elif ours and batch_materializable(view):
            table = (view.batch_source.path, view.batch_source.timestamp_field, view.entity_columns[0].name)
            batched.setdefault(table, []).append(view)
        else:  # Redis at scale, and views with strings: Feast's own materialization
            stock.append(name)
    for same_table in batched.values():
        materialize_floats(store, same_table, start, end)
    if stock:
        store.materialize(start_date=start, end_date=end - _ONE_TICK, feature_views=stock)


def market_wide(view: Any) -> bool:
    """A view without entity (Feast keys its rows by a dummy entity)."""
    from feast.feature_view import DUMMY_ENTITY_ID

    return [c.name for c in view.entity_columns] in ([], [DUMMY_ENTITY_ID])


def _interval(view: Any, start: datetime, end: datetime) -> tuple[Any, Any]:
    """The view's Delta source as a pyarrow dataset (read through the Delta log: the current version's
    files only) and the filter start <= event time < end."""
    import pyarrow as pa
    import pyarrow.dataset as ds
    from deltalake import DeltaTable

    ts = view.batch_source.timestamp_field
    dataset = DeltaTable(view.batch_source.path).to_pyarrow_dataset()
    ts_type = dataset.schema.field(ts).type
    return dataset, (ds.field(ts) >= pa.scalar(start, ts_type)) & (ds.field(ts) < pa.scalar(end, ts_type))


def materialize_market_wide(store: FeatureStore, view: Any, start: datetime, end: datetime) -> int:
    """Load a view without entity: its latest row with start <= event time < end, on any online store.

    Feast 0.67 cannot: its materialization looks for the dummy entity column in the source table, and
    `write_to_online_store` writes the row under an empty key. So the row is read with delta-rs and
    written through the provider under the dummy entity key that get_online_features looks up.
    Returns the rows written (0 or 1)."""
    from feast.feature_view import DUMMY_ENTITY_ID, DUMMY_ENTITY_VAL
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
    from feast.protos.feast.types.Value_pb2 import Value as ValueProto
    from feast.type_map import python_values_to_proto_values

    ts = view.batch_source.timestamp_field
    dataset, window = _interval(view, start, end)
    rows = dataset.to_table(columns=[ts, *(f.name for f in view.features)], filter=window)
    if rows.num_rows == 0:
        return 0
    latest = rows.sort_by([(ts, "descending")]).slice(0, 1).to_pylist()[0]
    key = EntityKeyProto(join_keys=[DUMMY_ENTITY_ID], entity_values=[ValueProto(string_val=DUMMY_ENTITY_VAL)])
    values = {f.name: python_values_to_proto_values([latest[f.name]], f.dtype.to_value_type())[0]
              for f in view.features}
    store._get_provider().online_write_batch(store.config, view, [(key, values, latest[ts], None)], None)
    return 1


def batch_materializable(view: Any) -> bool:
    """A view the batched path can load: one entity (not the market-wide kind, whose single row Feast
    keys by its dummy entity), all features float64, read from a Delta FileSource."""
    from feast import FileSource
    from feast.data_format import DeltaFormat
    from feast.feature_view import DUMMY_ENTITY_ID
    from feast.types import Float64

    source = view.batch_source
    return (isinstance(source, FileSource) and isinstance(source.file_format, DeltaFormat)
            and all(f.dtype == Float64 for f in view.features) and len(view.entity_columns) == 1
            and view.entity_columns[0].name != DUMMY_ENTITY_ID)


def materialize_floats(store: FeatureStore, views: Sequence[Any], start: datetime, end: datetime) -> int:
    """The batched materialization of all-float views that read one table with one entity (daily_features
    and alternative_daily) into Tickerlake's online store: per entity the latest row with
    start <= event time < end (what Feast's materialize selects), read with delta-rs through the Delta
    log (only the current version's files) once for all `views`, written as one row per entity and
    view. Two reads: the keys and times of the interval, then only the rows at each entity's latest
    time, so a year of history is never held in memory whole. Returns the entities written."""
    import contextlib

    import pyarrow as pa
    import pyarrow.dataset as ds
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
    from feast.protos.feast.types.Value_pb2 import Value as ValueProto

    from tickerlake.feast_online import TickerlakeSqliteOnlineStore, stored_keys

    first = views[0]
    key = first.entity_columns[0].name
    ts = first.batch_source.timestamp_field
    if any((v.batch_source.path, v.batch_source.timestamp_field, v.entity_columns[0].name)
           != (first.batch_source.path, ts, key) for v in views):
        raise ValueError(f"views {[v.name for v in views]} do not read one table by one entity and time")
    names = list(dict.fromkeys(f.name for v in views for f in v.features))
    dataset, window = _interval(first, start, end)
    ts_type = dataset.schema.field(ts).type
    times = dataset.to_table(columns=[key, ts], filter=window)
    if times.num_rows == 0:
        return 0
    latest = times.group_by(key).aggregate([(ts, "max")]).to_pandas()
    stamps = pa.array(latest[f"{ts}_max"].unique(), type=ts_type)
    rows = dataset.to_table(columns=[key, ts, *names], filter=window & ds.field(ts).isin(stamps)).to_pandas()
    rows = rows.merge(latest, on=key)
    rows = rows[rows[ts] == rows[f"{ts}_max"]].drop_duplicates(key, keep="last")
    micros = rows[ts].dt.tz_convert("UTC").dt.as_unit("us").astype("int64").to_numpy()
    keys = stored_keys(store.config, [EntityKeyProto(join_keys=[key], entity_values=[ValueProto(string_val=str(t))])
                                      for t in rows[key]])
    with contextlib.closing(TickerlakeSqliteOnlineStore()) as online:  # a store of its own: close its connection
        for view in views:
            values = rows[[f.name for f in view.features]].to_numpy(dtype="<f8", na_value=float("nan"))
            online.write_float_frame(store.config, view, keys, values, micros)
    return len(rows)


def push_predictions(settings: Settings, predictions: pd.DataFrame) -> int:
    """Write one run's published predictions straight to the online store.

    The predictions table is append-only per run, so several runs can hold rows with the same
    ticker and event time; materializing the view could serve any of them. Publishing writes
    exactly the rows the run produced. Returns the number of rows written.
    """
    if predictions.empty:
        return 0
    frame = _one_row_per_ticker(predictions, [ENTITY, EVENT_TIMESTAMP, *PREDICTION_FEATURES], "published run")
    feature_store(settings).write_to_online_store(PREDICTIONS_VIEW, frame)
    return len(frame)


def _one_row_per_ticker(predictions: pd.DataFrame, columns: list[str], what: str) -> pd.DataFrame:
    """`columns` of a run's predictions, checked: every column there, one row per ticker."""
    missing = set(columns) - set(predictions.columns)
    if missing:
        raise ValueError(f"predictions of a {what} lack column(s) {sorted(missing)}")
    if predictions[ENTITY].duplicated().any():
        raise ValueError(f"one prediction per ticker expected in a {what}")
    return predictions[columns].copy()


def push_intraday_predictions(settings: Settings, predictions: pd.DataFrame) -> int:
    """Push one intraday run's scores through the push source into the online store.

    Only the online store: gold.predictions_intraday is the offline copy, appended by scoring
    itself before the push, so a retried push writes the same values again. Returns the rows pushed.
    """
    import pandas as pd
    from feast.data_source import PushMode

    if predictions.empty:
        return 0
    frame = _one_row_per_ticker(predictions, [ENTITY, INTRADAY_TIMESTAMP, *INTRADAY_FEATURES], "intraday run")
    frame[INTRADAY_TIMESTAMP] = pd.to_datetime(frame[INTRADAY_TIMESTAMP], utc=True)
    feature_store(settings).push(INTRADAY_PUSH_SOURCE, frame, to=PushMode.ONLINE)
    return len(frame)


def feature_refs(features: Sequence[str] | None = None) -> list[str]:
    """Feast references (`view:feature`) for bare names or references; None: features + prediction."""
    if features is None:
        features = [*FEATURE_NAMES, *PREDICTION_FEATURES]
    view_of = {name: view for view, names in VIEW_FEATURES.items() for name in names}
    refs: list[str] = []
    for name in features:
        if ":" in name:
            refs.append(name)
        elif name in view_of:
            refs.append(f"{view_of[name]}:{name}")
        elif name in PREDICTION_FEATURES:
            refs.append(f"{PREDICTIONS_VIEW}:{name}")
        else:
            raise ValueError(
                f"unknown feature {name!r}: not in catalog.FEATURE_NAMES nor the prediction fields "
                f"{PREDICTION_FEATURES}"
            )
    if len(set(refs)) != len(refs):
        raise ValueError(f"duplicate features requested: {list(features)}")
    return refs


def online_features(
    settings: Settings,
    tickers: list[str],
    features: list[str] | None = None,
) -> pd.DataFrame:
    """The online values per ticker: one row per ticker in the given order, `ticker` first.

    `features` are bare names (a catalog feature or a prediction field) or `view:feature`
    references; by default every daily feature and the prediction. Tickers are canonical
    (upper case, `BRK.B`); unknown tickers get nulls, except the market-wide macro features,
    which are the same for every ticker.
    """
    import pandas as pd

    refs = feature_refs(features)
    columns = [ENTITY, *(r.split(":", 1)[1] for r in refs)]
    if not tickers:
        return pd.DataFrame(columns=columns)
    store = feature_store(settings)
    response = store.get_online_features(features=refs, entity_rows=[{ENTITY: t} for t in tickers])
    return response.to_df()[columns].reset_index(drop=True)


def historical_features(settings: Settings, entity_df: pd.DataFrame) -> pd.DataFrame:
    """Point-in-time join of the feature service `tickerlake_daily_lgbm` onto `entity_df`.

    `entity_df` has `ticker` and `event_timestamp` (UTC; for a daily row, the session's close)
    plus any other columns, which are passed through. Each row gets, per ticker, the latest
    feature row with event_ts <= event_timestamp, no older than the view's TTL.
    """
    missing = {ENTITY, ENTITY_TIMESTAMP} - set(entity_df.columns)
    if missing:
        raise ValueError(f"entity_df lacks column(s) {sorted(missing)}")
    store = feature_store(settings)
    service = store.get_feature_service(FEATURE_SERVICE)
    job = store.get_historical_features(entity_df=entity_df, features=service)
    return job.to_df().reset_index(drop=True)


# --- lineage ---------------------------------------------------------------------------
def feature_list_hash(feature_names: Iterable[str]) -> str:
    """sha256 (hex) of the feature names sorted and joined by newlines, for model lineage."""
    names = sorted(feature_names)
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate feature names: {names}")
    return hashlib.sha256("\n".join(names).encode("utf-8")).hexdigest()


# --- serving ---------------------------------------------------------------------------------
def feature_server_command(settings: Settings, port: int | None = None) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of Feast's HTTP feature server for this repo.

    It listens on 127.0.0.1 only: Feast's server has no login of its own, so anything beyond this
    machine goes through an authenticating reverse proxy (see docs/feast.md). Feast's own CLI runs it,
    with its startup heap frozen (tickerlake.feast_serve: the p99 of large requests)."""
    env = {**os.environ, "TICKERLAKE_HOME": str(settings.home)}
    env.setdefault("TICKERLAKE_SPARK_MASTER", settings.spark_master)
    command = [sys.executable, "-m", "tickerlake.feast_serve", "--chdir", str(settings.feast_repo), "serve", "--host", "127.0.0.1",
               "--port", str(port or settings.feature_server_port), "--no-access-log", "--workers", "1"]
    return command, env


def run_feature_server(settings: Settings, port: int | None = None) -> int:
    """Run Feast's feature server in the foreground until interrupted; returns its exit code."""
    import subprocess

    feature_store(settings)  # the DuckDB delta extension in place, the state folder made
    command, env = feature_server_command(settings, port)
    log.info("Feast feature server on http://127.0.0.1:%s", port or settings.feature_server_port)
    return subprocess.call(command, env=env)
