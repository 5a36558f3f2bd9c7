"""Restatements reach Redis, the online store at scale.

A real redis-server on 127.0.0.1 with a password (`.ci/run` installs it from Debian's packages),
Feast materializing the gold Delta table written with delta-rs. Feast's own Redis store keeps the
stale values of a restated session (it skips writes whose event time is not newer); Tickerlake's
store lets the correction win while an older interval still never overwrites newer values.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from deltalake import DeltaTable, write_deltalake
from test_feast import (
    SESSIONS,
    TICKERS,
    expected_features,
    session_interval,
    write_features_daily,
)

from tickerlake import catalog
from tickerlake.feast_store import (
    DAILY_FEATURE_VIEWS,
    FEATURES_TABLE,
    MACRO_TABLE,
    feature_refs,
    load_definitions,
    materialize_store,
)
from tickerlake.procs import free_port, wait_until
from tickerlake.settings import PROJECT_ROOT, Settings, load_settings

pytestmark = pytest.mark.integration

REDIS = shutil.which("redis-server")


class Redis:
    def __init__(self, port: int, password: str) -> None:
        self.port, self.password = port, password

    def client(self, password: str | None = None):
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # No retries: redis-py retries a refused login with backoff for seconds.
        return redis.Redis(host="127.0.0.1", port=self.port, password=password, retry=Retry(NoBackoff(), 0))

    @property
    def connection_string(self) -> str:
        return f"127.0.0.1:{self.port},password={self.password}"


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    if REDIS is None:
        pytest.skip("redis-server is not installed (.ci/run installs Debian's redis-server)")
    server = Redis(free_port(), secrets.token_urlsafe(24))
    folder = tmp_path_factory.mktemp("redis")
    # The password goes in through stdin (a config file read from "-"), never the command line.
    proc = subprocess.Popen([REDIS, "-"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, cwd=folder)
    assert proc.stdin is not None
    proc.stdin.write(f"port {server.port}\nbind 127.0.0.1\nrequirepass {server.password}\nsave \"\"\n"
                     f"appendonly no\ndir {folder}\n".encode())
    proc.stdin.close()
    try:
        wait_until(lambda: _pings(server), 30, "redis-server to answer")
        yield server
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _pings(server: Redis) -> bool:
    import redis

    try:
        return bool(server.client(server.password).ping())
    except redis.ConnectionError:
        return False


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    home = tmp_path / "home"
    monkeypatch.setenv("TICKERLAKE_HOME", str(home))
    for name in ("TICKERLAKE_LAKE_ROOT", "TICKERLAKE_FEAST_REPO", "FEAST_FS_YAML_FILE_PATH"):
        monkeypatch.delenv(name, raising=False)
    s = load_settings(home=home)
    s.feast_dir.mkdir(parents=True, exist_ok=True)
    return s


def redis_store(s: Settings, server: Redis, store_type: str):
    """The repo's definitions on a Redis online store of `store_type` (its own registry and Redis database)."""
    from feast import FeatureStore, RepoConfig

    config = RepoConfig(
        project=f"tl_{store_type.rsplit('.', 1)[-1].lower()}", provider="local",
        registry={"registry_type": "file", "path": str(s.feast_dir / f"{store_type}.registry.db")},
        online_store={"type": store_type, "connection_string": server.connection_string},
        offline_store={"type": "duckdb"},
        entity_key_serialization_version=3,
        repo_path=str(s.feast_repo),
    )
    store = FeatureStore(config=config)
    store.apply(load_definitions(s).objects())
    return store


def restate(s: Settings, session_idx: int, delta: float) -> pd.DataFrame:
    """Correct every feature of one session in place (same event time), as a backfill does: the
    per-ticker and the market-wide tables."""
    for table, names in ((FEATURES_TABLE, catalog.FEATURE_NAMES), (MACRO_TABLE, catalog.MACRO_FEATURE_NAMES)):
        path = s.table_path(table)
        frame = DeltaTable(path).to_pandas()
        rows = frame["date"] == SESSIONS[session_idx]
        frame.loc[rows, list(names)] += delta
        write_deltalake(path, frame, partition_by=["year"], mode="overwrite")
    corrected = expected_features(session_idx)
    corrected[list(catalog.FEATURE_NAMES)] += delta
    return corrected


def served(store) -> pd.DataFrame:
    response = store.get_online_features(features=feature_refs(catalog.FEATURE_NAMES), entity_rows=[{"ticker": t} for t in TICKERS])
    return response.to_df()[["ticker", *catalog.FEATURE_NAMES]]


def test_redis_needs_its_password(redis_server: Redis) -> None:
    import redis

    with pytest.raises(redis.AuthenticationError):
        redis_server.client().ping()


def test_a_restated_session_reaches_redis_and_an_older_interval_never_overwrites(
    settings: Settings, redis_server: Redis
) -> None:
    from tickerlake.feast_redis import REDIS_STORE_TYPE

    write_features_daily(settings)
    ours, stock = redis_store(settings, redis_server, REDIS_STORE_TYPE), redis_store(settings, redis_server, "redis")
    start, end = session_interval(SESSIONS[2])
    for store in (ours, stock):
        materialize_store(store, start, end, list(DAILY_FEATURE_VIEWS))
        pd.testing.assert_frame_equal(served(store), expected_features(2), check_dtype=False)

    corrected = restate(settings, 2, delta=0.5)
    for store in (ours, stock):
        materialize_store(store, start, end, list(DAILY_FEATURE_VIEWS))
    pd.testing.assert_frame_equal(served(ours), corrected, check_dtype=False)
    # Why the store exists: Feast's own Redis store skips the correction (same event time).
    pd.testing.assert_frame_equal(served(stock), expected_features(2), check_dtype=False)

    # Backfilling an older session leaves the newer values; the same interval again changes nothing.
    older_start, older_end = session_interval(SESSIONS[1])
    materialize_store(ours, older_start, older_end, list(DAILY_FEATURE_VIEWS))
    pd.testing.assert_frame_equal(served(ours), corrected, check_dtype=False)
    materialize_store(ours, start, end, list(DAILY_FEATURE_VIEWS))
    pd.testing.assert_frame_equal(served(ours), corrected, check_dtype=False)

    # A newer session replaces it.
    newer_start, newer_end = session_interval(SESSIONS[3])
    materialize_store(ours, newer_start, newer_end, list(DAILY_FEATURE_VIEWS))
    pd.testing.assert_frame_equal(served(ours), expected_features(3), check_dtype=False)


@pytest.mark.unit
def test_the_scale_configuration_selects_this_store(monkeypatch: pytest.MonkeyPatch) -> None:
    from feast.repo_config import load_repo_config

    from tickerlake.feast_redis import TickerlakeRedisOnlineStoreConfig

    monkeypatch.setenv("TICKERLAKE_FEAST_REGISTRY_URL", "postgresql+psycopg://feast:unused@db.invalid:5432/feast")
    monkeypatch.setenv("TICKERLAKE_FEAST_REDIS", "redis.invalid:6379,ssl=true")
    monkeypatch.setenv("TICKERLAKE_SPARK_MASTER", "local[1]")
    repo = PROJECT_ROOT / "feature_repo"
    config = load_repo_config(repo, repo / "feature_store.scale.yaml")
    assert isinstance(config.online_store, TickerlakeRedisOnlineStoreConfig)
    assert config.online_store.connection_string == "redis.invalid:6379,ssl=true"
