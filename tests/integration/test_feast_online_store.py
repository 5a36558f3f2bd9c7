"""Tickerlake's Feast online store on its own: the batched write path gives the bytes Feast's write path
gives, reads hand back the same ValueProtos, the last write wins, and rows of an older view layout stay
readable. (Against stock Feast's answers through get_online_features: tests/integration/test_feast_bench.py.)"""

from __future__ import annotations

import datetime as dt
import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from feast import Entity, FeatureView, Field, FileSource, RepoConfig, ValueType
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.types import Float64, String

from tickerlake.feast_online import STORE_TYPE, TickerlakeSqliteOnlineStore, table_name

pytestmark = pytest.mark.integration

TS = dt.datetime(2025, 12, 31, 21, tzinfo=dt.UTC)


def _config(tmp_path: Path) -> RepoConfig:
    return RepoConfig(project="t", provider="local", registry=str(tmp_path / "registry.db"),
                      online_store={"type": STORE_TYPE, "path": str(tmp_path / "online.db")},
                      offline_store={"type": "duckdb"}, entity_key_serialization_version=3, repo_path=str(tmp_path))


def _view(features: list[str]) -> FeatureView:
    ticker = Entity(name="ticker", join_keys=["ticker"], value_type=ValueType.STRING)
    source = FileSource(name="src", path="/nowhere", timestamp_field="event_ts")
    return FeatureView(name="v", entities=[ticker], schema=[Field(name="ticker", dtype=String),
                                                            *(Field(name=f, dtype=Float64) for f in features)],
                       source=source)


def _key(ticker: str) -> EntityKey:
    return EntityKey(join_keys=["ticker"], entity_values=[Value(string_val=ticker)])


def _blobs(config: RepoConfig, view: FeatureView) -> list[bytes]:
    with sqlite3.connect(config.online_store.path) as conn:
        return [r[0] for r in conn.execute(f'SELECT vals FROM "{table_name(config, view)}" ORDER BY entity_key')]


def test_the_batched_path_writes_the_bytes_feasts_path_writes_and_reads_them_back(tmp_path):
    config = _config(tmp_path)
    names = ["a", "b", "c", "d", "e", "f"]
    view = _view(names)
    row = [1.5, float("nan"), 0.0, -0.0, math.inf, -1e-300]  # NaN is a null, as stock Feast stores it
    protos = {n: (Value() if math.isnan(v) else Value(double_val=v)) for n, v in zip(names, row, strict=True)}

    feast_path, batched = TickerlakeSqliteOnlineStore(), TickerlakeSqliteOnlineStore()
    feast_path.update(config, [], [view], [], [], partial=False)
    feast_path.online_write_batch(config, view, [(_key("AAA"), protos, TS, None)], progress=None)
    micros = (TS - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)
    assert batched.write_float_frame(config, view, [_key("BBB")], np.array([row]), np.array([micros])) == 1

    first, second = _blobs(config, view)
    assert first == second  # byte for byte

    read = TickerlakeSqliteOnlineStore().online_read(config, view, [_key("BBB"), _key("AAA"), _key("ZZZ")])
    assert read[2] == (None, None)  # unknown ticker
    for event_ts, values in read[:2]:
        assert event_ts == TS and list(values) == names
        assert values == protos  # the same ValueProto per feature, nulls as empty Values


def test_the_last_write_wins_and_older_layouts_stay_readable(tmp_path):
    config = _config(tmp_path)
    store = TickerlakeSqliteOnlineStore()
    old, new = _view(["a", "b"]), _view(["a", "b", "c"])
    store.update(config, [], [old], [], [], partial=False)
    store.online_write_batch(config, old, [(_key("AAA"), {"a": Value(double_val=1.0), "b": Value(double_val=2.0)},
                                            TS, None)], progress=None)
    store.online_write_batch(config, old, [(_key("AAA"), {"a": Value(double_val=3.0), "b": Value(double_val=4.0)},
                                            TS - dt.timedelta(days=1), None)], progress=None)
    ((event_ts, values),) = store.online_read(config, old, [_key("AAA")])
    assert event_ts == TS - dt.timedelta(days=1) and values["a"].double_val == 3.0  # last write wins, as stock

    # the view gains a feature: the row written before reads as it was written, the new one has all three
    store.online_write_batch(config, new, [(_key("BBB"), {n: Value(double_val=9.0) for n in "abc"}, TS, None)],
                             progress=None)
    fresh = TickerlakeSqliteOnlineStore()  # layouts come from the database, not the writer's memory
    (_, a_values), (_, b_values) = fresh.online_read(config, new, [_key("AAA"), _key("BBB")])
    assert list(a_values) == ["a", "b"] and list(b_values) == ["a", "b", "c"]

    fresh.teardown(config, [new], [])
    assert not Path(config.online_store.path).exists()
