"""Delta tables from Python (delta-rs): the small writers and every reader outside Spark.

Each table has one writer engine: bronze, quarantine and ops tables are written here;
silver and gold by the Spark jobs. Writes are idempotent per interval: a replace with a
predicate is one atomic Delta commit, so readers see the old version or the new one.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

import pandas as pd
import pyarrow as pa

from tickerlake.settings import Settings
from tickerlake.sql import sql_string_literal

if TYPE_CHECKING:
    from deltalake import CommitProperties, WriterProperties

log = logging.getLogger(__name__)

T = TypeVar("T")

# Parquet row groups of about this many bytes, from Spark (parquet.block.size, counted as the
# writer buffers pages) and from this module's delta-rs writers (rows sized by their Arrow bytes).
# A reader skips row groups by their min/max statistics but decodes a whole row group of each
# column it reads: with the writers' defaults (128 MiB in Spark, a million rows in delta-rs) a
# year file of the 200-column features table was one row group, and one ticker's history decoded
# every ticker's rows. Sorted by ticker (maintenance Z-orders by it), 16 MiB groups of that table
# hold about 10,000 rows, so a ticker's year sits in one or two of them.
ROW_GROUP_BYTES = 16 * 1024 * 1024


def row_group_rows(table: pa.Table | pa.Schema) -> int:
    """Rows per Parquet row group that give `table`'s rows about ROW_GROUP_BYTES (at least 1,024).
    From a schema alone (a stream not read yet) the width is estimated: fixed-width columns by
    their width, 16 bytes for a string or binary value."""
    if isinstance(table, pa.Schema):
        per_row = float(sum(_value_bytes(f.type) for f in table))
    else:
        per_row = table.nbytes / max(table.num_rows, 1)
    return max(1024, int(ROW_GROUP_BYTES / max(per_row, 1.0)))


def _value_bytes(t: pa.DataType) -> float:
    try:
        return max(t.bit_width / 8, 1 / 8)
    except ValueError:  # variable width: strings, binary, nested
        return 16.0


def _writer_properties(rows: pa.Table | pa.Schema) -> WriterProperties:
    """delta-rs writer settings: the row group size, and Snappy as delta-rs uses without settings
    (given any WriterProperties, the writer starts from parquet-rs' defaults: uncompressed)."""
    from deltalake import WriterProperties

    return WriterProperties(max_row_group_size=row_group_rows(rows), compression="SNAPPY")


def _commit_conflicts() -> tuple[type[Exception], ...]:
    """Delta's optimistic-concurrency conflicts as delta-spark raises them in Python (separate
    classes, no common base but PySparkException)."""
    from delta import exceptions as e

    return (e.ConcurrentAppendException, e.ConcurrentDeleteDeleteException, e.ConcurrentDeleteReadException,
            e.ConcurrentTransactionException, e.ConcurrentWriteException, e.DeltaConcurrentModificationException,
            e.MetadataChangedException)


def retry_on_conflict(write: Callable[[], T], attempts: int = 5, backoff_s: float = 0.5) -> T:
    """Run an idempotent Delta write, again after a concurrent commit conflicted with it
    (Delta's optimistic concurrency: the loser of a race re-reads and commits on top)."""
    conflicts = _commit_conflicts()
    for attempt in range(1, attempts + 1):
        try:
            return write()
        except conflicts:
            if attempt == attempts:
                raise
            time.sleep(backoff_s * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


def table_exists(settings: Settings, name: str) -> bool:
    from deltalake import DeltaTable

    return DeltaTable.is_deltatable(settings.table_path(name))


def table_version(settings: Settings, name: str) -> int:
    from deltalake import DeltaTable

    return DeltaTable(settings.table_path(name)).version()


def date_predicate(column: str, start: dt.date, end: dt.date) -> str:
    """`column` in [start, end] as a delta-rs predicate."""
    return f"{column} >= '{start.isoformat()}' AND {column} <= '{end.isoformat()}'"


Rows = pd.DataFrame | pa.Table | Callable[[], pa.RecordBatchReader]


def replace_rows(settings: Settings, name: str, rows: Rows, predicate: str,
                 partition_by: Sequence[str] | None = ("year",), schema_mode: str | None = None,
                 commit_properties: CommitProperties | None = None) -> int:
    """The one delta-rs replace: the rows `predicate` selects become `rows`, in one commit; returns
    the new version. Every row of `rows` must satisfy `predicate` (delta-rs checks it), so a rerun with
    the same inputs gives the same table. The first write creates the table (partitioned by
    `partition_by`); when another writer creates it first, this write replaces as usual.

    `rows`: a frame, a table, or a function returning a fresh stream (read once per attempt).
    `schema_mode="merge"` lets a write add columns. Parquet row groups of about ROW_GROUP_BYTES."""
    from deltalake import DeltaTable, write_deltalake

    def data() -> pa.Table | pa.RecordBatchReader:
        if callable(rows):
            return rows()
        return rows if isinstance(rows, pa.Table) else pa.Table.from_pandas(rows, preserve_index=False)

    path = settings.table_path(name)
    first = data()
    props = _writer_properties(first if isinstance(first, pa.Table) else first.schema)
    if not DeltaTable.is_deltatable(path):
        try:
            write_deltalake(path, first, mode="error", partition_by=list(partition_by or []) or None,
                            writer_properties=props, commit_properties=commit_properties)
            return DeltaTable(path).version()
        except Exception as exc:  # another writer created it first: replace as usual
            if not DeltaTable.is_deltatable(path) or "exists" not in str(exc).lower():
                raise
            first = data()
    write_deltalake(path, first, mode="overwrite", predicate=predicate, schema_mode=schema_mode,
                    writer_properties=props, commit_properties=commit_properties)
    version = DeltaTable(path).version()
    log.info("replaced the rows of %s where %s -> v%d", name, predicate, version)
    return version


def replace_interval(
    settings: Settings,
    name: str,
    frame: pd.DataFrame | pa.Table,
    start: dt.date,
    end: dt.date,
    date_column: str = "date",
    partition_by: Sequence[str] | None = ("year",),
) -> int:
    """Replace exactly the rows of [start, end] with `frame` in one commit; returns the new version."""
    return replace_rows(settings, name, frame, date_predicate(date_column, start, end), partition_by)


def replace_key(settings: Settings, name: str, frame: pd.DataFrame | pa.Table, column: str, value: str,
                partition_by: Sequence[str] | None = ("year",)) -> int:
    """Replace exactly the rows whose `column` equals `value` with `frame` in one commit."""
    return replace_rows(settings, name, frame, f"{column} = {sql_string_literal(value)}", partition_by)


def append(settings: Settings, name: str, frame: pd.DataFrame | pa.Table) -> int:
    from deltalake import DeltaTable, write_deltalake

    table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
    path = settings.table_path(name)
    # a table created by its first append is partitioned by year like every other (maintenance
    # compacts and Z-orders per partition; readers prune by year)
    partition = ["year"] if "year" in table.column_names and not DeltaTable.is_deltatable(path) else None
    write_deltalake(path, table, mode="append", partition_by=partition, writer_properties=_writer_properties(table))
    return DeltaTable(path).version()


def read_table(
    settings: Settings,
    name: str,
    version: int | None = None,
    filters: list[tuple] | None = None,
    columns: list[str] | None = None,
) -> pd.DataFrame:
    """Read a Delta table (optionally at a version) into pandas."""
    from deltalake import DeltaTable

    table = DeltaTable(settings.table_path(name), version=version)
    return table.to_pandas(filters=filters, columns=columns)


def read_interval(
    settings: Settings,
    name: str,
    start: dt.date,
    end: dt.date,
    version: int | None = None,
    date_column: str = "date",
) -> pd.DataFrame:
    return read_table(
        settings, name, version=version, filters=[(date_column, ">=", start), (date_column, "<=", end)]
    )
