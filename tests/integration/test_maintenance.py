"""Delta maintenance keeps every version a registered model was trained on, and only those.

Real Spark (OPTIMIZE, VACUUM), real Delta written by delta-rs, a real MLflow registry (SQLite),
read back with Spark, delta-rs and DuckDB. The table's history is moved into the past by
rewriting its commit times (commitInfo, add/remove timestamps, file times), the way time passes
for a lake, before any Spark reads it.

gold.features_daily (partitioned by year):
  v0 -12 d  six sessions                  (files 2023-a, 2024-a)
  v1 -11 d  replace 2024-01-02            (2024-a -> 2024-b: v0 is not pinned, 2024-a may go)
  v2  -9 d  replace 2024-01-03            (2024-b -> 2024-c) <- the oldest version a model names
  v3  -8 d  replace 2023-12-28            (2023-a -> 2023-b; 2023-a, which v2 reads, now has a
                                           tombstone older than Delta's 7-day deleted-file retention)
  v4  -1 d  add 2024-01-05                (a second 2024 file)
  v5   now  add 2023-12-26                (a second 2023 file)
(delta-rs rewrites a partition's file when it replaces some of its rows.)
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from urllib.parse import unquote

import pandas as pd
import pytest

from tickerlake import lake
from tickerlake.settings import Settings

pytestmark = pytest.mark.integration

TABLE = "gold.features_daily"
TICKERS = ["AAPL", "BRK.B", "MSFT"]
SESSIONS = [dt.date(2023, 12, 27), dt.date(2023, 12, 28), dt.date(2023, 12, 29),
            dt.date(2024, 1, 2), dt.date(2024, 1, 3), dt.date(2024, 1, 4)]
# (sessions replaced, close multiplier, days ago); None = the whole first write
LATER = [dt.date(2024, 1, 5), dt.date(2023, 12, 26)]  # new sessions: a file more, none removed
HISTORY = [(None, 1.0, 12), ([SESSIONS[3]], 2.0, 11), ([SESSIONS[4]], 3.0, 9), ([SESSIONS[1]], 4.0, 8),
           ([LATER[0]], 5.0, 1), ([LATER[1]], 6.0, 0)]
PINNED = 2
HEADROOM = 24.0  # VACUUM keeps 218 + 24 h = 10.1 days: v1's tombstones (11 days) go, v2's (9 days) stay


def _frame(sessions, mult: float) -> pd.DataFrame:
    rows = [{"ticker": t, "date": d, "close": round(100.0 + i + 0.5 * j, 2) * mult, "volume": 1000 * (j + 1),
             "year": d.year} for i, d in enumerate(sessions) for j, t in enumerate(TICKERS)]
    frame = pd.DataFrame(rows)
    frame["year"] = frame["year"].astype("int32")
    return frame


def _backdate(path: str, version: int, when: dt.datetime) -> list[Path]:
    """Move commit `version` to `when`: its commitInfo, add and remove times, and the times of the
    log file and the data files it added. Returns the data files it removed."""
    ms = int(when.timestamp() * 1000)
    log_file = Path(path) / "_delta_log" / f"{version:020d}.json"
    actions, removed = [], []
    for line in log_file.read_text().splitlines():
        action = json.loads(line)
        if "commitInfo" in action:
            action["commitInfo"]["timestamp"] = ms
        if "remove" in action:
            action["remove"]["deletionTimestamp"] = ms
            removed.append(Path(path) / unquote(action["remove"]["path"]))
        if "add" in action:
            action["add"]["modificationTime"] = ms
            os.utime(Path(path) / unquote(action["add"]["path"]), (ms / 1000, ms / 1000))
        actions.append(action)
    log_file.write_text("".join(json.dumps(a) + "\n" for a in actions))
    os.utime(log_file, (ms / 1000, ms / 1000))
    return removed


def _build_history(settings: Settings) -> dict[int, list[Path]]:
    """The table above; version -> the data files that commit removed."""
    now = dt.datetime.now(dt.UTC)
    for version, (sessions, mult, _) in enumerate(HISTORY):
        days = sessions or SESSIONS
        got = lake.replace_interval(settings, TABLE, _frame(days, mult), min(days), max(days))
        assert got == version
    return {v: _backdate(settings.table_path(TABLE), v, now - dt.timedelta(days=days))
            for v, (_, _, days) in enumerate(HISTORY)}


def _rows(frame: pd.DataFrame) -> list[tuple]:
    frame = frame[["ticker", "date", "close", "volume"]].copy()
    frame["date"] = pd.to_datetime(frame["date"]).dt.date
    return sorted(frame.itertuples(index=False, name=None))


def _spark_rows(spark, settings: Settings, version: int | None = None) -> list[tuple]:
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return _rows(reader.load(settings.table_uri(TABLE)).select("ticker", "date", "close", "volume").toPandas())


def _register(settings: Settings) -> None:
    """Four model versions: tags on v1 (-> v2, the oldest), on v2 (newer), only on the training
    run (v3), none (v4)."""
    import mlflow

    from tickerlake.training import configure_mlflow

    configure_mlflow(settings)
    client = mlflow.MlflowClient()
    name = settings.model_name
    client.create_registered_model(name)
    source = settings.mlflow_artifacts.as_uri()
    client.create_model_version(name, source, tags={"features_delta_version": str(PINNED),
                                                    "labels_delta_version": "0", "asof_date": "2024-01-03"})
    client.create_model_version(name, source, tags={"features_delta_version": "4", "labels_delta_version": "3"})
    with mlflow.start_run() as run:
        mlflow.set_tags({"features_delta_version": "3", "labels_delta_version": "1"})
    client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    client.create_model_version(name, source)  # no lineage at all: pins nothing


@pytest.fixture(scope="module")
def spark(make_settings, tmp_path_factory: pytest.TempPathFactory):
    from tickerlake.spark import get_spark

    session = get_spark(make_settings(tmp_path_factory.mktemp("maintenance_spark"), spark_driver_memory="1g"),
                        "test-maintenance")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def registry(make_settings, tmp_path_factory: pytest.TempPathFactory) -> str:
    """One MLflow registry (SQLite) for the module, with the four model versions."""
    home = tmp_path_factory.mktemp("maintenance_registry")
    uri = f"sqlite:///{home / 'mlflow.db'}"
    _register(make_settings(home, mlflow_tracking_uri=uri))
    return uri


@pytest.fixture
def settings(make_settings, registry: str, tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "home", spark_driver_memory="1g", mlflow_tracking_uri=registry,
                         maintenance_retention_hours=1.0, maintenance_margin_hours=1.0,
                         maintenance_headroom_hours=HEADROOM)


def _listing(path: str) -> list[str]:
    return sorted(p.relative_to(path).as_posix() for p in Path(path).rglob("*") if p.is_file())


def test_protected_versions_read_the_registry(settings: Settings):
    from tickerlake.maintenance import lineage_pins, protected_versions

    assert protected_versions(settings) == {"gold.features_daily": PINNED, "gold.labels_daily": 0}
    pins = lineage_pins(settings)
    assert sorted((p.table, p.version, p.model_version) for p in pins) == [
        ("gold.features_daily", 2, "1"), ("gold.features_daily", 3, "3"), ("gold.features_daily", 4, "2"),
        ("gold.labels_daily", 0, "1"), ("gold.labels_daily", 1, "3"), ("gold.labels_daily", 3, "2")]


def test_maintenance_keeps_the_pinned_version_and_removes_what_nothing_needs(spark, settings: Settings):
    import duckdb
    from deltalake import DeltaTable

    from tickerlake.maintenance import maintained_tables, run_maintenance
    from tickerlake.sql import delta_extension_path

    removed_by = _build_history(settings)
    path = settings.table_path(TABLE)
    # a log retention shorter than VACUUM's must be extended (Delta's default, 30 days, is not)
    DeltaTable(path).alter.set_table_properties({"delta.logRetentionDuration": "interval 200 hours"})
    lake.append(settings, "silver.bars_daily", _frame(SESSIONS[:1], 1.0))
    lake.append(settings, "bronze.bars_daily", _frame(SESSIONS[:1], 1.0))
    assert maintained_tables(settings) == ["silver.bars_daily", TABLE]  # silver and gold that exist
    pinned_rows = _rows(DeltaTable(path, version=PINNED).to_pandas())
    current_rows = _rows(DeltaTable(path).to_pandas())
    files_before = len(DeltaTable(path).file_uris())
    unpinned_gone = removed_by[1]  # 2024-a: read by v0 only
    kept_for_pin = removed_by[3]  # 2023-a: read by v0..v2, its tombstone 8 days old
    assert unpinned_gone and kept_for_pin and all(p.exists() for p in unpinned_gone + kept_for_pin)

    # dry run: nothing changes; under Delta's default 7-day retention VACUUM would take a file of v2
    listing = _listing(path)
    dry = run_maintenance(spark, settings, [TABLE], dry_run=True)["tables"][TABLE]
    assert _listing(path) == listing
    assert dry["protected_files_at_risk"] == 1 and dry["files_vacuumed"] == 3 and "optimize" not in dry
    assert dry["property_changes"] == {"delta.deletedFileRetentionDuration": "interval 242 hours",
                                       "delta.logRetentionDuration": "interval 242 hours"}

    summary = run_maintenance(spark, settings, [TABLE])

    assert list(summary["tables"]) == [TABLE]
    assert summary["protected"] == {TABLE: PINNED, "gold.labels_daily": 0}
    gold = summary["tables"][TABLE]
    assert gold["protected_version"] == PINNED and gold["pinned_by"][0].startswith(f"{settings.model_name} v1")
    assert gold["retention_hours"] == 218.0  # 9 days + seconds -> 217 h, + 1 h margin
    assert gold["vacuum_retention_hours"] == gold["log_retention_hours"] == 218.0 + HEADROOM
    assert gold["optimize"]["zorder_by"] == ["ticker"]
    assert gold["files_before"] == files_before > gold["files_after"] == 2  # one file per year
    assert gold["files_vacuumed"] >= len(unpinned_gone) and gold["protected_files_at_risk"] == 0
    config = DeltaTable(path).metadata().configuration
    assert config["delta.deletedFileRetentionDuration"] == f"interval {int(218 + HEADROOM)} hours"
    assert config["delta.logRetentionDuration"] == f"interval {int(218 + HEADROOM)} hours"  # was 200 h

    # the pinned version reads the same rows in both engines; so does the current one
    assert _rows(DeltaTable(path, version=PINNED).to_pandas()) == pinned_rows
    assert _spark_rows(spark, settings, PINNED) == pinned_rows
    assert all(p.exists() for p in kept_for_pin)
    assert _rows(DeltaTable(path).to_pandas()) == current_rows == _spark_rows(spark, settings)
    with duckdb.connect() as con:
        con.execute(f"LOAD '{delta_extension_path()}'")
        duck = con.execute(f"SELECT ticker, date, close, volume FROM delta_scan('{path}')").fetchdf()
    assert _rows(duck) == current_rows

    # v0, which nothing pins, lost the file v1 replaced: time travel to it fails
    assert not any(p.exists() for p in unpinned_gone)
    with pytest.raises(Exception):  # noqa: B017 - delta-rs and Spark raise their own file-not-found errors
        DeltaTable(path, version=0).to_pandas()
    with pytest.raises(Exception):  # noqa: B017
        _spark_rows(spark, settings, 0)

    # delta-rs still writes the table after Spark compacted it
    lake.replace_interval(settings, TABLE, _frame([SESSIONS[0]], 7.0), SESSIONS[0], SESSIONS[0])
    assert len(DeltaTable(path).to_pandas()) == len(SESSIONS + LATER) * len(TICKERS)


def test_vacuum_refuses_when_a_checkpoint_already_dropped_a_pinned_files_tombstone(spark, settings: Settings):
    """A checkpoint written under the 7-day deleted-file retention forgot 2023-a's tombstone;
    VACUUM would delete a file v2 reads, so maintenance stops before VACUUM and says why."""
    from deltalake import DeltaTable

    from tickerlake.maintenance import MaintenanceError, run_maintenance

    removed_by = _build_history(settings)
    path = settings.table_path(TABLE)
    DeltaTable(path).create_checkpoint()
    pinned_rows = _rows(DeltaTable(path, version=PINNED).to_pandas())

    with pytest.raises(MaintenanceError, match=r"would delete 1 file\(s\) of version 2"):
        run_maintenance(spark, settings, [TABLE])

    assert all(p.exists() for p in removed_by[3])
    assert _rows(DeltaTable(path, version=PINNED).to_pandas()) == pinned_rows == _spark_rows(spark, settings, PINNED)
