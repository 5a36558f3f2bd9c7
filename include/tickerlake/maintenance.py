"""Delta table maintenance: compaction and VACUUM that never remove a version a model was trained on.

Each registered model version names the Delta versions it was trained on (tags
`features_delta_version`, `macro_delta_version`, `labels_delta_version`, set by `tickerlake.training.train`; rule 6 of
the design). Maintenance keeps every such version readable by time travel, in Spark, delta-rs
and DuckDB:

* The retention that keeps them (`retention_hours_for`) is at least `maintenance_retention_hours`
  and at least the age of the oldest pinned version's commit, rounded up to whole hours, plus
  `maintenance_margin_hours`: every file a version >= the pinned one reads was removed by a
  later commit, so its tombstone is younger than that.
* VACUUM's horizon is the table's `delta.deletedFileRetentionDuration` (Delta 4.4 ignores a
  RETAIN other than 0 hours). The same property is how long checkpoints keep tombstones (a file
  whose tombstone is gone is deleted by the next VACUUM whatever its age) and how far back
  Spark lets anyone time travel. So maintenance sets it to the retention, plus
  `maintenance_headroom_hours` on a pinned table (the pinned version ages until a later run
  moves the property again), and extends `delta.logRetentionDuration` to at least as much, so
  log cleanup keeps the pinned commit. A pinned commit already gone from the log cannot be
  protected: that is an error, and nothing of that table is changed.
* Before VACUUM deletes anything, its dry run is checked against the files of the pinned
  version; any overlap is an error and VACUUM does not run.

Compaction is Delta's OPTIMIZE; a table partitioned by `year` with a `ticker` column is
Z-ordered by ticker (clustered by ticker inside each year).

VACUUM's horizon is Delta's wall clock, so the retention is computed from the wall clock too,
right before it is used: a logical date would under-protect a run that starts late.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from tickerlake.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

# Model version tag -> the table whose Delta version it names (see tickerlake.training.train).
LINEAGE_TAGS: dict[str, str] = {
    "features_delta_version": "gold.features_daily",
    "macro_delta_version": "gold.macro_daily",
    "labels_delta_version": "gold.labels_daily",
}
MAINTAINED_LAYERS: tuple[str, ...] = ("silver", "gold")
# Delta's defaults when a table does not set the property.
DEFAULT_LOG_RETENTION_HOURS = 30 * 24.0
DEFAULT_DELETED_FILE_RETENTION_HOURS = 7 * 24.0
LOG_RETENTION = "delta.logRetentionDuration"
DELETED_FILE_RETENTION = "delta.deletedFileRetentionDuration"
LISTING_PARALLELISM = "spark.sql.sources.parallelPartitionDiscovery.parallelism"
MIN_RETENTION_HOURS = 1.0

_UNIT_HOURS = {
    "microsecond": 1 / 3_600_000_000, "millisecond": 1 / 3_600_000, "second": 1 / 3600, "minute": 1 / 60,
    "hour": 1.0, "day": 24.0, "week": 168.0,
}


class MaintenanceError(RuntimeError):
    """Maintenance refused to change a table (or some tables): the message says why."""


@dataclass(frozen=True)
class Pin:
    """A registered model version that read `table` at Delta version `version`."""

    table: str
    version: int
    model: str
    model_version: str

    def label(self) -> str:
        return f"{self.model} v{self.model_version}"


# --- lineage ----------------------------------------------------------------------------------
def lineage_pins(settings: Settings) -> list[Pin]:
    """Every (table, Delta version) a registered model version in the project's registry names.

    Tags are read from the model version, else from its training run (a version registered by a
    run that stopped before tagging it); a version with neither is logged and pins nothing.
    A registry that cannot be read raises: maintenance does not guess."""
    import mlflow

    from tickerlake.training import configure_mlflow

    configure_mlflow(settings)
    client = mlflow.MlflowClient()
    pins: list[Pin] = []
    token: str | None = None
    while True:
        page = client.search_model_versions(page_token=token)
        for mv in page:
            where = f"model {mv.name} v{mv.version}"
            tags = _lineage_tags(dict(mv.tags or {}), where)
            if not tags and mv.run_id:
                tags = _lineage_tags(_run_tags(client, mv.run_id), f"{where} (run {mv.run_id})")
            if not tags:
                log.warning("model %s v%s names no Delta versions (no lineage tags): nothing pinned",
                            mv.name, mv.version)
            pins += [Pin(table, version, mv.name, str(mv.version)) for table, version in tags.items()]
        token = page.token
        if not token:
            return pins


def _lineage_tags(tags: Mapping[str, str], where: str) -> dict[str, int]:
    """table -> version from a model version's (or run's) tags; a malformed value raises: what
    it pins is unknown, so nothing may be vacuumed."""
    found: dict[str, int] = {}
    for tag, table in LINEAGE_TAGS.items():
        raw = tags.get(tag)
        if raw is None or str(raw).strip() == "":
            continue
        try:
            found[table] = int(str(raw).strip())
        except ValueError:
            raise MaintenanceError(f"{where}: lineage tag {tag}={raw!r} is not a Delta version") from None
    return found


def _run_tags(client: Any, run_id: str) -> dict[str, str]:
    import mlflow

    try:
        return dict(client.get_run(run_id).data.tags)
    except mlflow.exceptions.MlflowException:  # the run was deleted: the version's own tags are all there is
        return {}


def oldest_pins(pins: Iterable[Pin]) -> dict[str, int]:
    """table -> the oldest Delta version any pin names."""
    oldest: dict[str, int] = {}
    for pin in pins:
        oldest[pin.table] = min(pin.version, oldest.get(pin.table, pin.version))
    return oldest


def protected_versions(settings: Settings) -> dict[str, int]:
    """For every table, the oldest Delta version a registered model version was trained on."""
    return oldest_pins(lineage_pins(settings))


# --- retention arithmetic -------------------------------------------------------------------------
def required_retention_hours(
    now: dt.datetime, protected_commit: dt.datetime | None, configured_hours: float, margin_hours: float
) -> float:
    """VACUUM's retention in whole hours: at least `configured_hours` and, with a protected
    commit, at least its age rounded up to whole hours plus `margin_hours`; never under
    MIN_RETENTION_HOURS (0 would delete the files of a write still in flight)."""
    if configured_hours < 0 or margin_hours < 0:
        raise ValueError(f"retention and margin must be >= 0 hours, got {configured_hours}, {margin_hours}")
    hours = max(MIN_RETENTION_HOURS, float(configured_hours))
    if protected_commit is not None:
        age_hours = (now - protected_commit).total_seconds() / 3600
        hours = max(hours, math.ceil(age_hours) + margin_hours)
    return float(math.ceil(hours))  # the table property is written in whole hours: never round down


def history_hours(retention_hours: float, pinned: bool, headroom_hours: float) -> float:
    """Hours of log and tombstones a table must keep so the next VACUUM still sees every file it
    must keep: VACUUM's retention, plus the headroom on a pinned table (the pinned version ages
    until a later run extends the properties again)."""
    return float(math.ceil(retention_hours + (headroom_hours if pinned else 0.0)))


def parse_interval_hours(text: str) -> float:
    """A Delta interval property (`interval 30 days`, `1 week`, `168 hours`, ...) in hours."""
    body = text.strip().lower()
    body = body[len("interval"):].strip() if body.startswith("interval") else body
    parts = re.findall(r"(-?\d+(?:\.\d+)?)\s*([a-z]+)", body)
    if not parts or re.sub(r"(-?\d+(?:\.\d+)?)\s*([a-z]+)", "", body).strip():
        raise ValueError(f"not a Delta interval: {text!r}")
    hours = 0.0
    for number, unit in parts:
        key = unit[:-1] if unit.endswith("s") else unit
        if key not in _UNIT_HOURS:
            raise ValueError(f"unit {unit!r} of the interval {text!r} has no fixed length in hours")
        hours += float(number) * _UNIT_HOURS[key]
    return hours


def commit_timestamp(settings: Settings, table: str, version: int) -> dt.datetime:
    """When `version` of `table` was committed (UTC), from the Delta log (delta-rs history).

    Raises MaintenanceError when the commit is no longer in the log (log retention dropped it,
    or the table was recreated): time travel to it is already impossible."""
    from deltalake import DeltaTable

    delta = DeltaTable(settings.table_path(table))
    current = delta.version()
    if version > current:
        raise MaintenanceError(f"{table} is at version {current}, but a model names version {version}: "
                               "was the table recreated? Its lineage cannot be protected")
    for entry in delta.history(limit=current - version + 1):
        if entry.get("version") == version and entry.get("timestamp") is not None:
            return dt.datetime.fromtimestamp(int(entry["timestamp"]) / 1000, tz=dt.UTC)
    raise MaintenanceError(
        f"{table} version {version}, which a registered model was trained on, is no longer in the Delta log "
        f"(log retention dropped it); it cannot be time travelled to or protected. Archive or delete that "
        "model version, or restore the table's history from a backup")


def retention_hours_for(settings: Settings, table: str, now: dt.datetime,
                        protected: Mapping[str, int] | None = None) -> float:
    """VACUUM retention for `table` that keeps every version >= the oldest one a registered model
    version points to (`protected`: table -> version; None reads the registry)."""
    pinned = (protected_versions(settings) if protected is None else protected).get(table)
    commit = None if pinned is None else commit_timestamp(settings, table, pinned)
    return required_retention_hours(now, commit, settings.maintenance_retention_hours,
                                    settings.maintenance_margin_hours)


# --- Spark -------------------------------------------------------------------------------------
def _wall_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)  # wall-clock ok: VACUUM's horizon is Delta's wall clock


def _quoted(settings: Settings, table: str) -> str:
    uri = settings.table_uri(table)
    if "`" in uri:
        raise ValueError(f"table location with a backtick: {uri!r}")
    return f"delta.`{uri}`"


def _table_state(settings: Settings, table: str) -> dict[str, Any]:
    """Version, file count, partitioning, columns and properties, from the log (delta-rs: no Spark job)."""
    from deltalake import DeltaTable

    delta = DeltaTable(settings.table_path(table))
    meta = delta.metadata()
    return {"version": delta.version(), "files": len(delta.file_uris()),
            "partition_columns": list(meta.partition_columns), "properties": dict(meta.configuration),
            "columns": [f.name for f in delta.schema().fields]}


def _property_hours(properties: Mapping[str, str], key: str, default: float) -> float:
    value = properties.get(key)
    return default if value is None else parse_interval_hours(value)


def history_properties(properties: Mapping[str, str], hours: float) -> tuple[dict[str, str], dict[str, float]]:
    """The property changes that make `hours` the table's deleted-file retention (VACUUM's horizon,
    up or down) with log retention at least as long (only ever extended; Delta wants log >=
    deleted-file retention). Returns (changes, hours in effect after them)."""
    deleted = _property_hours(properties, DELETED_FILE_RETENTION, DEFAULT_DELETED_FILE_RETENTION_HOURS)
    logs = _property_hours(properties, LOG_RETENTION, DEFAULT_LOG_RETENTION_HOURS)
    target = float(math.ceil(hours))
    changes: dict[str, str] = {}
    if deleted != target:
        changes[DELETED_FILE_RETENTION] = f"interval {int(target)} hours"
    if logs < target:
        logs = target
        changes[LOG_RETENTION] = f"interval {int(target)} hours"
    return changes, {"vacuum_retention_hours": target, "log_retention_hours": logs}


def _set_properties(spark: SparkSession, settings: Settings, table: str, changes: Mapping[str, str]) -> None:
    if changes:
        assignments = ", ".join(f"'{k}' = '{v}'" for k, v in changes.items())
        spark.sql(f"ALTER TABLE {_quoted(settings, table)} SET TBLPROPERTIES ({assignments})")
        log.info("%s: set %s", table, dict(changes))


def _file_key(path: str) -> str:
    """A data file's path without scheme, for comparing what different APIs print."""
    parts = urlsplit(path)
    return unquote(f"{parts.netloc}{parts.path}" if parts.scheme else path)


def _optimize(spark: SparkSession, settings: Settings, table: str, state: Mapping[str, Any]) -> dict[str, Any]:
    partitions, columns = state["partition_columns"], state["columns"]
    zorder = "year" in partitions and "ticker" in columns and "ticker" not in partitions
    statement = f"OPTIMIZE {_quoted(settings, table)}" + (" ZORDER BY (ticker)" if zorder else "")
    row = spark.sql(statement).first()
    metrics = row["metrics"].asDict(recursive=True) if row is not None and row["metrics"] is not None else {}
    return {"zorder_by": ["ticker"] if zorder else [], "files_added": int(metrics.get("numFilesAdded") or 0),
            "files_removed": int(metrics.get("numFilesRemoved") or 0)}


@contextmanager
def _session_conf(spark: SparkSession, conf: Mapping[str, str]) -> Iterator[None]:
    """Set SQL confs of this session for a block, then put back what was there."""
    previous = {key: spark.conf.get(key, None) for key in conf}
    for key, value in conf.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


def _vacuum(spark: SparkSession, settings: Settings, table: str, dry_run: bool) -> list[str]:
    """VACUUM at the table's deleted-file retention (or its dry run: the paths it would delete).

    No RETAIN clause: Delta 4.4 ignores one other than 0 hours (vacuum.retentionWindowIgnore)
    and uses `delta.deletedFileRetentionDuration`, which maintenance sets first. VACUUM lists
    the table in `parallelPartitionDiscovery.parallelism` tasks (10,000 by default: minutes of
    empty tasks on a small machine); a few per core is plenty."""
    listing = str(max(8, 4 * spark.sparkContext.defaultParallelism))
    with _session_conf(spark, {LISTING_PARALLELISM: listing}):
        rows = spark.sql(f"VACUUM {_quoted(settings, table)}" + (" DRY RUN" if dry_run else "")).collect()
    return [r["path"] for r in rows] if dry_run else []


def _files_of_version(settings: Settings, table: str, version: int) -> set[str]:
    """The data files `version` reads (delta-rs: Spark refuses to time travel beyond the table's
    deleted-file retention, which a dry run leaves as it is)."""
    from deltalake import DeltaTable

    return {_file_key(p) for p in DeltaTable(settings.table_path(table), version=version).file_uris()}


def compact_and_vacuum(spark: SparkSession, settings: Settings, table: str, pins: Sequence[Pin] | None = None,
                       dry_run: bool = False, clock: Callable[[], dt.datetime] = _wall_clock) -> dict[str, Any]:
    """Set the history properties, OPTIMIZE (Z-ordered by ticker on year-partitioned tables with a
    ticker column), then VACUUM, keeping every version a registered model points to.

    `retention_hours` is the least retention that keeps the pinned versions now
    (`retention_hours_for`); `vacuum_retention_hours`, what VACUUM keeps, adds the headroom on
    a pinned table. `pins`: the registry's lineage (None reads it). On a dry run nothing
    changes: the summary gives the property changes a run would make, and the files VACUUM
    would delete (and the pinned version's files among them) under the properties as they are."""
    pins = lineage_pins(settings) if pins is None else pins
    mine = [p for p in pins if p.table == table]
    protected = min((p.version for p in mine), default=None)
    summary: dict[str, Any] = {
        "table": table, "dry_run": dry_run, "protected_version": protected,
        "pinned_by": sorted({f"{p.label()} (Delta v{p.version})" for p in mine}),
    }
    commit = None if protected is None else commit_timestamp(settings, table, protected)
    if commit is not None:
        summary["protected_commit"] = commit.isoformat()

    def retention() -> float:
        return required_retention_hours(clock(), commit, settings.maintenance_retention_hours,
                                        settings.maintenance_margin_hours)

    def history(hours: float) -> float:
        return history_hours(hours, protected is not None, settings.maintenance_headroom_hours)

    state = _table_state(settings, table)
    summary.update(version_before=state["version"], files_before=state["files"])
    # Properties first: a commit of this run (OPTIMIZE, VACUUM's log entries) may checkpoint and
    # clean up the log under the table's properties as they are then.
    changes, effect = history_properties(state["properties"], history(retention()))
    summary.update(effect, property_changes=changes)
    if not dry_run:
        _set_properties(spark, settings, table, changes)
        summary["optimize"] = _optimize(spark, settings, table, state)
    hours = retention()  # after OPTIMIZE, which may take long: the pinned commit is older now
    summary["retention_hours"] = hours
    if hours > summary["vacuum_retention_hours"]:  # only when OPTIMIZE outlasted the headroom
        changes, effect = history_properties(_table_state(settings, table)["properties"], history(hours))
        summary.update(effect)
        summary["property_changes"] = {**summary["property_changes"], **changes}
        if not dry_run:
            _set_properties(spark, settings, table, changes)
    candidates = _vacuum(spark, settings, table, dry_run=True)
    if protected is not None:
        needed = _files_of_version(settings, table, protected)
        unsafe = sorted(c for c in candidates if _file_key(c) in needed)
        summary["protected_files_at_risk"] = len(unsafe)
        if unsafe and not dry_run:
            raise MaintenanceError(
                f"{table}: VACUUM would delete {len(unsafe)} file(s) of version {protected}, which "
                f"{', '.join(summary['pinned_by'])} was trained on (e.g. {unsafe[0]}): their tombstones are gone "
                f"from the table state (a checkpoint dropped them under a shorter {DELETED_FILE_RETENTION}), "
                "so no retention short of those files' age keeps them. VACUUM did not run (the table is "
                "otherwise maintained). Delete that model version from the registry to release the pin, or "
                "deep-copy the version first")
    summary["files_vacuumed"] = len(candidates)
    if not dry_run:
        _vacuum(spark, settings, table, dry_run=False)
    after = _table_state(settings, table)
    summary.update(files_after=after["files"], version_after=after["version"])
    log.info("maintenance %s", summary)
    return summary


def maintained_tables(settings: Settings) -> list[str]:
    """The silver and gold tables of the catalogue that exist."""
    from tickerlake import lake
    from tickerlake.catalog import TABLES

    return [t for t in TABLES if t.split(".", 1)[0] in MAINTAINED_LAYERS and lake.table_exists(settings, t)]


def run_maintenance(spark: SparkSession, settings: Settings, tables: Sequence[str] | None = None,
                    dry_run: bool = False) -> dict[str, Any]:
    """`compact_and_vacuum` for `tables` (default: `maintained_tables`), the registry read once.

    A table that fails does not stop the others; the run then raises MaintenanceError naming
    every failure (after the others are done)."""
    from tickerlake import lake

    pins = lineage_pins(settings)
    targets = list(tables) if tables else maintained_tables(settings)
    results: dict[str, Any] = {}
    failures: dict[str, str] = {}
    for table in targets:
        if not lake.table_exists(settings, table):
            failures[table] = "no Delta table at " + settings.table_uri(table)
            continue
        try:
            results[table] = compact_and_vacuum(spark, settings, table, pins=pins, dry_run=dry_run)
        except Exception as exc:  # reported with the others below
            log.exception("maintenance of %s failed", table)
            failures[table] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    summary = {"dry_run": dry_run, "protected": oldest_pins(pins), "tables": results}
    if failures:
        done = ", ".join(results) or "none"
        raise MaintenanceError("maintenance failed for " + "; ".join(f"{t}: {m}" for t, m in failures.items())
                               + f" (done: {done})")
    return summary


def maintenance_in_process(settings: Settings, tables: Sequence[str] | None = None,
                           dry_run: bool = False) -> dict[str, Any]:
    """`run_maintenance` with this process's Spark (the CLI); the DAG submits the same job."""
    from tickerlake.spark import get_spark

    spark = get_spark(settings, "tickerlake-maintenance")
    return run_maintenance(spark, settings, tables, dry_run=dry_run)
