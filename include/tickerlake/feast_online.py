"""Tickerlake's Feast online store: SQLite, one row per entity, and a batched materialization.

Feast's stock SQLite store writes one database row (and two index entries) per feature value, from
one Python ValueProto per value: 194 rows per ticker, about 300 entity rows per second here. This
store keeps one row per (feature view, entity): the entity key exactly as Feast serializes it, the
values as one serialized `feast.types.RepeatedValue` (the view's features in the order of a recorded
layout), the event and created times. Reads hand Feast the same ValueProto per feature that the stock
store would, so `get_online_features` answers are identical (`tickerlake bench feast` checks it).

`write_float_frame` is the batched write path the daily materialization uses for all-float views: the
wire bytes of each row's RepeatedValue are laid out with numpy (a present double is the 11 bytes
0x0a 0x09 0x29 <little-endian float64>, a null the 2 bytes 0x0a 0x00, which is what protobuf writes for
`Value(double_val=x)` and `Value()`), so no Python object is made per value. Everything else (pushes,
`write_to_online_store`, stock `materialize` of views with strings) goes through `online_write_batch`.

Rows of all-float values also keep them as raw little-endian float64 (`floats`, NaN for null), and
`get_online_features` over such rows skips Feast's per-value Python assembly of the response
(`_read_features_per_fv`, the extension point Feast documents for batching): the response's
FeatureVectors are laid out as protobuf bytes with numpy and merged in one parse, with the values,
statuses and event times stock Feast would give (PRESENT for a found ticker, null values included;
NOT_FOUND, an empty Value and an empty Timestamp for an unknown one). Any row without `floats` (a
string feature, a NaN written as a value) takes Feast's generic path.

Semantics are the stock store's: a write replaces the entity's row (last write wins; the platform
re-materializes through the newest session after a restatement), reads of unknown entities give
(None, None).
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from feast import Entity, FeatureView, RepoConfig
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.online_store import OnlineStore
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import RepeatedValue
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.repo_config import FeastConfigBaseModel
from pydantic import StrictStr

STORE_TYPE = "tickerlake.feast_online.TickerlakeSqliteOnlineStore"
_LAYOUTS = "_tickerlake_layouts"
_MAX_PARAMS = 900  # below SQLite's smallest compiled-in limit on bound parameters
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_COLUMNS = ["entity_key", "layout", "vals", "floats", "event_ts", "created_ts"]
_PRESENT, _NOT_FOUND = 1, 3  # feast.serving.FieldStatus


class TickerlakeSqliteOnlineStoreConfig(FeastConfigBaseModel):
    """`online_store: {type: tickerlake.feast_online.TickerlakeSqliteOnlineStore, path: ...}`"""

    type: Literal["tickerlake.feast_online.TickerlakeSqliteOnlineStore"] = STORE_TYPE
    path: StrictStr = "data/online.db"


def _micros(ts: dt.datetime | None) -> int | None:
    if ts is None:
        return None
    if ts.tzinfo is None:  # Feast hands naive datetimes in UTC
        ts = ts.replace(tzinfo=dt.UTC)
    return (ts - _EPOCH) // dt.timedelta(microseconds=1)


def _from_micros(value: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=value)


def _raw_floats(values: list[ValueProto]) -> bytes | None:
    """The values as little-endian float64 bytes (NaN for an empty Value) when every one is a double or
    null and none is a NaN written as a value; else None (the row is read through Feast's path)."""
    import numpy as np

    out = np.empty(len(values), dtype="<f8")
    for i, value in enumerate(values):
        kind = value.WhichOneof("val")
        if kind is None:
            out[i] = np.nan
        elif kind == "double_val" and not math.isnan(value.double_val):
            out[i] = value.double_val
        else:
            return None
    return out.tobytes()


@functools.lru_cache(maxsize=65536)  # lengths and tags repeat call after call
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _timestamp(micros: int) -> bytes:
    """google.protobuf.Timestamp bytes, as Timestamp.FromDatetime writes them."""
    seconds, rest = divmod(micros, 1_000_000)
    out = b""
    if seconds:
        out += b"\x08" + _varint(seconds & (2**64 - 1))
    if rest:
        out += b"\x10" + _varint(rest * 1000)
    return out


def _double_values_wire(matrix: Any, present: Any) -> list[bytes]:
    """Per row of a float64 matrix, the wire bytes of a repeated Value field numbered 1 (RepeatedValue.val,
    FeatureVector.values) holding the row's values in order: a present double as 0x0a 0x09 0x29
    <little-endian float64>, else an empty Value as 0x0a 0x00, as protobuf writes them."""
    import numpy as np

    doubles = np.ascontiguousarray(matrix, dtype="<f8")
    n, m = doubles.shape
    wire = np.empty((n, m, 11), dtype=np.uint8)
    wire[:, :, 0] = 0x0A  # field 1, length-delimited
    wire[:, :, 1] = np.where(present, 0x09, 0x00)  # 9 bytes of Value, or an empty Value
    wire[:, :, 2] = 0x29  # Value.double_val, fixed64
    wire[:, :, 3:] = doubles.view(np.uint8).reshape(n, m, 8)
    keep = np.ones((n, m, 11), dtype=bool)
    keep[~present, 2:] = False  # an empty Value is its tag and a zero length
    wire, keep = wire.reshape(n, m * 11), keep.reshape(n, m * 11)
    return [wire[i][keep[i]].tobytes() for i in range(n)]


def _select(conn: sqlite3.Connection, table: str, columns: str, keys: list[bytes]) -> dict[bytes, tuple]:
    """entity key -> `columns` of its row, for the keys that have one (in chunks of bound parameters)."""
    found: dict[bytes, tuple] = {}
    for i in range(0, len(keys), _MAX_PARAMS):
        chunk = keys[i:i + _MAX_PARAMS]
        cursor = conn.execute(f"SELECT entity_key, {columns} FROM {_quote(table)} "
                              f"WHERE entity_key IN ({','.join('?' * len(chunk))})", chunk)
        found.update((row[0], row[1:]) for row in cursor)
    return found


def stored_keys(config: RepoConfig, entity_keys: list[EntityKeyProto] | list[bytes]) -> list[bytes]:
    """Entity keys as the store keeps them (Feast's serialization); bytes are taken as already serialized."""
    version = config.entity_key_serialization_version
    return [k if isinstance(k, bytes) else serialize_entity_key(k, version) for k in entity_keys]


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def table_name(config: RepoConfig, view: FeatureView) -> str:
    return f"{config.project}_{view.name}"


class TickerlakeSqliteOnlineStore(OnlineStore):
    """One SQLite row per (view, entity); see the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self._conn: sqlite3.Connection | None = None
        self._layouts: dict[int, tuple[str, ...]] = {}
        self._lock = threading.Lock()

    # --- connection and layouts -----------------------------------------------------------
    @staticmethod
    def db_path(config: RepoConfig) -> Path:
        path = Path(config.online_store.path)
        if config.repo_path and not path.is_absolute():
            path = Path(config.repo_path) / path
        return path

    def _get_conn(self, config: RepoConfig) -> sqlite3.Connection:
        if self._conn is None:
            path = self.db_path(config)
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            # WAL: the feature server keeps reading while a materialization writes
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"CREATE TABLE IF NOT EXISTS {_LAYOUTS} (id INTEGER PRIMARY KEY, names TEXT UNIQUE NOT NULL)")
            self._conn = conn
        return self._conn

    def close(self) -> None:
        """Close the SQLite connection (a store made for one job; the next call opens it again)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _layout_id(self, conn: sqlite3.Connection, names: Sequence[str]) -> int:
        """The id of this feature order (recorded once): rows written before a view changed stay readable."""
        text = "\n".join(names)
        conn.execute(f"INSERT OR IGNORE INTO {_LAYOUTS} (names) VALUES (?)", (text,))
        (layout,) = conn.execute(f"SELECT id FROM {_LAYOUTS} WHERE names = ?", (text,)).fetchone()
        self._layouts[layout] = tuple(names)
        return int(layout)

    def _layout(self, conn: sqlite3.Connection, layout: int) -> tuple[str, ...]:
        if layout not in self._layouts:
            (text,) = conn.execute(f"SELECT names FROM {_LAYOUTS} WHERE id = ?", (layout,)).fetchone()
            self._layouts[layout] = tuple(text.split("\n"))
        return self._layouts[layout]

    def _upsert(self, config: RepoConfig, view: FeatureView, rows: list[tuple]) -> None:
        conn = self._get_conn(config)
        sql = (f"INSERT INTO {_quote(table_name(config, view))} ({', '.join(_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?) "
               "ON CONFLICT(entity_key) DO UPDATE SET layout = excluded.layout, vals = excluded.vals, "
               "floats = excluded.floats, event_ts = excluded.event_ts, created_ts = excluded.created_ts")
        with self._lock:
            conn.execute("BEGIN")
            try:
                conn.executemany(sql, rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def _rows(self, config: RepoConfig, table: FeatureView, entity_keys: list[EntityKeyProto],
              columns: str) -> tuple[list[bytes], dict[bytes, tuple]]:
        """The entity keys as stored, in order, and `columns` of the rows found for them."""
        keys = stored_keys(config, entity_keys)
        return keys, _select(self._get_conn(config), table_name(config, table), columns, keys)

    # --- Feast's interface ----------------------------------------------------------------
    def online_write_batch(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: list[tuple[EntityKeyProto, dict[str, ValueProto], dt.datetime, dt.datetime | None]],
        progress: Callable[[int], Any] | None,
    ) -> None:
        names = [f.name for f in table.features]
        conn = self._get_conn(config)
        layout = self._layout_id(conn, names)
        version = config.entity_key_serialization_version
        null = ValueProto()
        rows = []
        for entity_key, values, event_ts, created_ts in data:
            ordered = [values.get(n, null) for n in names]
            blob = RepeatedValue(val=ordered).SerializeToString()
            rows.append((serialize_entity_key(entity_key, version), layout, blob, _raw_floats(ordered),
                         _micros(event_ts), _micros(created_ts)))
        self._upsert(config, table, rows)
        if progress:
            progress(len(data))

    def write_float_frame(self, config: RepoConfig, table: FeatureView, entity_keys: list[EntityKeyProto] | list[bytes],
                          values: Any, event_ts_micros: Any) -> int:
        """Write rows of an all-float view from a float64 matrix (rows x the view's features, NaN = null)
        without a Python object per value; the bytes equal online_write_batch's for the same values.
        `entity_keys` are EntityKey protos, or their serialized bytes (stored_keys) when several views
        of one table are written for the same entities."""
        import numpy as np

        names = [f.name for f in table.features]
        matrix = np.ascontiguousarray(values, dtype="<f8")
        n, m = matrix.shape
        if m != len(names):
            raise ValueError(f"{m} value columns for the {len(names)} features of {table.name}")
        blobs = _double_values_wire(matrix, ~np.isnan(matrix))  # each row's RepeatedValue
        conn = self._get_conn(config)
        layout = self._layout_id(conn, names)
        keys = stored_keys(config, entity_keys)
        ts = np.asarray(event_ts_micros, dtype=np.int64)
        rows = [(keys[i], layout, blobs[i], matrix[i].tobytes(), int(ts[i]), None) for i in range(n)]
        self._upsert(config, table, rows)
        return n

    def online_read(
        self,
        config: RepoConfig,
        table: FeatureView,
        entity_keys: list[EntityKeyProto],
        requested_features: list[str] | None = None,
    ) -> list[tuple[dt.datetime | None, dict[str, ValueProto] | None]]:
        conn = self._get_conn(config)
        keys, found = self._rows(config, table, entity_keys, "layout, vals, event_ts")
        out: list[tuple[dt.datetime | None, dict[str, ValueProto] | None]] = []
        for key in keys:
            row = found.get(key)
            if row is None:
                out.append((None, None))
                continue
            layout, blob, event_ts = row
            parsed = RepeatedValue()
            parsed.ParseFromString(blob)
            out.append((_from_micros(event_ts), dict(zip(self._layout(conn, layout), parsed.val, strict=True))))
        return out

    def update(
        self,
        config: RepoConfig,
        tables_to_delete: Sequence[FeatureView],
        tables_to_keep: Sequence[FeatureView],
        entities_to_delete: Sequence[Entity],
        entities_to_keep: Sequence[Entity],
        partial: bool,
    ) -> None:
        conn = self._get_conn(config)
        for view in tables_to_keep:
            name = _quote(table_name(config, view))
            columns = [row[1] for row in conn.execute(f"PRAGMA table_info({name})")]
            if columns and columns != _COLUMNS:  # another store's table (stock Feast's): the store is a cache
                conn.execute(f"DROP TABLE {name}")
            conn.execute(f"CREATE TABLE IF NOT EXISTS {name} (entity_key BLOB PRIMARY KEY, layout INTEGER NOT NULL, "
                         "vals BLOB NOT NULL, floats BLOB, event_ts INTEGER, created_ts INTEGER) WITHOUT ROWID")
        for view in tables_to_delete:
            conn.execute(f"DROP TABLE IF EXISTS {_quote(table_name(config, view))}")

    def teardown(self, config: RepoConfig, tables: Sequence[FeatureView], entities: Sequence[Entity]) -> None:
        self.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.db_path(config)}{suffix}").unlink(missing_ok=True)

    # --- get_online_features without a Python object per value -------------------------------
    def _read_features_per_fv(self, config: RepoConfig, grouped_refs: list, join_key_values: dict,
                              entity_name_to_join_key_map: dict, online_features_response: Any,
                              full_feature_names: bool, include_feature_view_version_metadata: bool) -> None:
        from feast import utils

        # Views with the same entities and join-key mapping (daily_features and alternative_daily)
        # share the request's unique entities and their serialized keys: once per call, not per view.
        entities: dict[tuple, tuple] = {}
        for table, requested in grouped_refs:
            join_keys = (tuple(table.entities), tuple(sorted(table.projection.join_key_map.items())))
            if join_keys not in entities:
                entity_values, indexes, output_len = utils._get_unique_entities(
                    table, join_key_values, entity_name_to_join_key_map)
                keys = utils._get_entity_key_protos(entity_values)
                entities[join_keys] = (keys, stored_keys(config, keys), indexes, output_len)
            keys, stored, indexes, output_len = entities[join_keys]
            floats = (None if include_feature_view_version_metadata
                      else self._read_floats(config, table, stored, requested))
            if floats is None:
                rows = self.online_read(config, table, keys, requested)
                utils._populate_response_from_feature_data(requested, rows, indexes, online_features_response,
                                                           full_feature_names, table, output_len,
                                                           include_feature_view_version_metadata)
                continue
            prefix = f"{table.projection.name_to_use()}__" if full_feature_names else ""
            online_features_response.metadata.feature_names.val.extend(f"{prefix}{n}" for n in requested)
            online_features_response.MergeFromString(_feature_vectors(*floats, indexes, output_len))

    def _read_floats(self, config: RepoConfig, table: FeatureView, keys: list[bytes],
                     requested: list[str]) -> tuple[Any, Any, Any] | None:
        """For serialized entity keys: (values: unique entities x requested features, found mask, event
        times in micros), or None when a found row has no raw floats or lacks a requested feature."""
        import numpy as np

        conn = self._get_conn(config)
        found = _select(conn, table_name(config, table), "layout, floats, event_ts", keys)
        values = np.full((len(keys), len(requested)), np.nan)
        mask = np.zeros(len(keys), dtype=bool)
        stamps = np.zeros(len(keys), dtype=np.int64)
        columns: dict[int, Any] = {}
        for i, key in enumerate(keys):
            row = found.get(key)
            if row is None:
                continue
            layout, raw, event_ts = row
            if raw is None:
                return None
            if layout not in columns:
                position = {n: j for j, n in enumerate(self._layout(conn, layout))}
                if any(n not in position for n in requested):
                    return None
                columns[layout] = np.array([position[n] for n in requested], dtype=np.intp)
            values[i] = np.frombuffer(raw, dtype="<f8")[columns[layout]]
            mask[i], stamps[i] = True, event_ts
        return values, mask, stamps


def _feature_vectors(values: Any, found: Any, stamps: Any, indexes: Any, output_len: int) -> bytes:
    """GetOnlineFeaturesResponse bytes holding one FeatureVector per column of `values` (unique entities x
    features), fanned out to the request's rows by `indexes` as Feast's _populate_response_from_feature_data
    does; merged into the response being built, they append its results."""
    import numpy as np

    row_of = np.zeros(output_len, dtype=np.intp)
    for unique, destinations in enumerate(indexes):
        row_of[list(destinations)] = unique
    vals, hit, ts = values[row_of], found[row_of], stamps[row_of]
    present = hit[:, None] & ~np.isnan(vals)
    per_feature = _double_values_wire(vals.T, present.T)  # feature-major: one FeatureVector per feature
    statuses = _field(2, np.where(hit, _PRESENT, _NOT_FOUND).astype(np.uint8).tobytes())
    times = b"".join(_field(3, _timestamp(int(t)) if h else b"") for t, h in zip(ts, hit, strict=True))
    return b"".join(_field(2, wire + statuses + times) for wire in per_feature)
