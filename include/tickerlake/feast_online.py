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

Semantics are the stock store's: a write replaces the entity's row (last write wins; the platform
re-materializes through the newest session after a restatement), reads of unknown entities give
(None, None).
"""

from __future__ import annotations

import datetime as dt
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
        sql = (f"INSERT INTO {_quote(table_name(config, view))} (entity_key, layout, vals, event_ts, created_ts) "
               "VALUES (?, ?, ?, ?, ?) ON CONFLICT(entity_key) DO UPDATE SET layout = excluded.layout, "
               "vals = excluded.vals, event_ts = excluded.event_ts, created_ts = excluded.created_ts")
        with self._lock:
            conn.execute("BEGIN")
            try:
                conn.executemany(sql, rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

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
            blob = RepeatedValue(val=[values.get(n, null) for n in names]).SerializeToString()
            rows.append((serialize_entity_key(entity_key, version), layout, blob, _micros(event_ts),
                         _micros(created_ts)))
        self._upsert(config, table, rows)
        if progress:
            progress(len(data))

    def write_float_frame(self, config: RepoConfig, table: FeatureView, entity_keys: list[EntityKeyProto],
                          values: Any, event_ts_micros: Any) -> int:
        """Write rows of an all-float view from a float64 matrix (rows x the view's features, NaN = null)
        without a Python object per value; the bytes equal online_write_batch's for the same values."""
        import numpy as np

        names = [f.name for f in table.features]
        matrix = np.ascontiguousarray(values, dtype="<f8")
        n, m = matrix.shape
        if m != len(names):
            raise ValueError(f"{m} value columns for the {len(names)} features of {table.name}")
        present = ~np.isnan(matrix)
        wire = np.empty((n, m, 11), dtype=np.uint8)
        wire[:, :, 0] = 0x0A  # RepeatedValue.val, length-delimited
        wire[:, :, 1] = np.where(present, 0x09, 0x00)  # 9 bytes of Value, or an empty Value
        wire[:, :, 2] = 0x29  # Value.double_val, fixed64
        wire[:, :, 3:] = matrix.view(np.uint8).reshape(n, m, 8)
        keep = np.ones((n, m, 11), dtype=bool)
        keep[~present, 2:] = False
        wire, keep = wire.reshape(n, -1), keep.reshape(n, -1)
        conn = self._get_conn(config)
        layout = self._layout_id(conn, names)
        version = config.entity_key_serialization_version
        ts = np.asarray(event_ts_micros, dtype=np.int64)
        rows = [(serialize_entity_key(entity_keys[i], version), layout, wire[i][keep[i]].tobytes(), int(ts[i]), None)
                for i in range(n)]
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
        version = config.entity_key_serialization_version
        keys = [serialize_entity_key(k, version) for k in entity_keys]
        found: dict[bytes, tuple[int, bytes, int]] = {}
        name = _quote(table_name(config, table))
        for i in range(0, len(keys), _MAX_PARAMS):
            chunk = keys[i:i + _MAX_PARAMS]
            cursor = conn.execute(f"SELECT entity_key, layout, vals, event_ts FROM {name} "
                                  f"WHERE entity_key IN ({','.join('?' * len(chunk))})", chunk)
            found.update((row[0], row[1:]) for row in cursor)
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
            conn.execute(f"CREATE TABLE IF NOT EXISTS {_quote(table_name(config, view))} (entity_key BLOB PRIMARY KEY, "
                         "layout INTEGER NOT NULL, vals BLOB NOT NULL, event_ts INTEGER, created_ts INTEGER) "
                         "WITHOUT ROWID")
        for view in tables_to_delete:
            conn.execute(f"DROP TABLE IF EXISTS {_quote(table_name(config, view))}")

    def teardown(self, config: RepoConfig, tables: Sequence[FeatureView], entities: Sequence[Entity]) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.db_path(config)}{suffix}").unlink(missing_ok=True)
