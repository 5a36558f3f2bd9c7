"""Feast's Redis online store (the store at scale) with restatements that reach it.

Feast's Redis store keeps one event time per (entity, feature view) and skips every write whose
event time is not newer than it, "exact same instant" included. A corrected backfill of a session
(a late reject restates its features, see tickerlake.features.run) carries the same event time as
the row it corrects, so stock Redis would keep serving the wrong values. This store differs in one
rule: a write with the same event time replaces the stored values; an older one is still skipped,
so backfilling an old interval never overwrites newer values. Reads are Feast's own.

Selected in feature_store.scale.yaml as `type: tickerlake.feast_redis.TickerlakeRedisOnlineStore`
with the options of Feast's `redis` type, except `skip_dedup`, which it ignores: its rule always applies.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any, Literal

from feast import FeatureView
from feast.infra.online_stores.helpers import _mmh3, _redis_key
from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig, _versioned_fv_name
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.repo_config import RepoConfig
from google.protobuf.timestamp_pb2 import Timestamp

REDIS_STORE_TYPE = "tickerlake.feast_redis.TickerlakeRedisOnlineStore"

Row = tuple[EntityKeyProto, dict[str, ValueProto], dt.datetime, dt.datetime | None]


class TickerlakeRedisOnlineStoreConfig(RedisOnlineStoreConfig):
    """Feast's Redis options; only the type differs."""

    type: Literal["tickerlake.feast_redis.TickerlakeRedisOnlineStore"] = REDIS_STORE_TYPE  # type: ignore[assignment]


def _timestamp(value: dt.datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC))
    return stamp


def _nanos(stamp: Timestamp) -> int:
    return stamp.seconds * 1_000_000_000 + stamp.nanos


def rows_to_write(rows: list[tuple[bytes, Row]], stored: dict[bytes, bytes | None]) -> dict[bytes, Row]:
    """Per Redis key, the row to write: the latest event time of the batch (the last such row on a
    tie), unless the stored event time is newer. `stored` maps keys to the serialized Timestamp held
    now (None: nothing stored)."""
    latest: dict[bytes, tuple[int, Row]] = {}
    for key, row in rows:
        nanos = _nanos(_timestamp(row[2]))
        if key not in latest or nanos >= latest[key][0]:
            latest[key] = (nanos, row)
    chosen: dict[bytes, Row] = {}
    for key, (nanos, row) in latest.items():
        previous = stored.get(key)
        if previous:
            held = Timestamp()
            held.ParseFromString(previous)
            if nanos < _nanos(held):
                continue
        chosen[key] = row
    return chosen


class TickerlakeRedisOnlineStore(RedisOnlineStore):
    """RedisOnlineStore whose writes let an equal event time replace the stored values."""

    def online_write_batch(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: list[Row],
        progress: Callable[[int], Any] | None,
    ) -> None:
        store_config = config.online_store
        client = self._get_client(store_config)
        view = _versioned_fv_name(table, config)
        ts_field = f"_ts:{view}"
        keyed = [(_redis_key(config.project, row[0],
                             entity_key_serialization_version=config.entity_key_serialization_version), row)
                 for row in data]
        keys = list(dict.fromkeys(key for key, _ in keyed))
        with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hget(key, ts_field)
            stored = dict(zip(keys, pipe.execute(), strict=True))
        chosen = rows_to_write(keyed, stored)
        with client.pipeline(transaction=False) as pipe:
            for key, (_, values, event_ts, _) in chosen.items():
                mapping: dict[Any, bytes] = {ts_field: _timestamp(event_ts).SerializeToString()}
                for name, value in values.items():
                    mapping[_mmh3(f"{view}:{name}")] = value.SerializeToString()
                pipe.hset(key, mapping=mapping)
                if store_config.key_ttl_seconds:
                    pipe.expire(name=key, time=store_config.key_ttl_seconds)
            pipe.execute()
        if progress:
            progress(len(data))

    async def online_write_batch_async(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: list[Row],
        progress: Callable[[int], Any] | None,
    ) -> None:
        # One write rule for both paths: the synchronous one, off the event loop.
        await asyncio.to_thread(self.online_write_batch, config, table, data, progress)
