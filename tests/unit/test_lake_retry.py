"""retry_on_conflict: an idempotent Delta write is retried after a commit conflict, nothing else;
row_group_rows: the Parquet row group size of the delta-rs writers."""

from __future__ import annotations

import pytest
from delta.exceptions import ConcurrentAppendException, ConcurrentWriteException

from tickerlake.lake import retry_on_conflict

pytestmark = pytest.mark.unit


def flaky(failures: list[Exception]):
    calls = []

    def write():
        calls.append(1)
        if failures:
            raise failures.pop(0)
        return "committed"

    return write, calls


def test_a_conflict_is_retried_until_the_write_commits():
    write, calls = flaky([ConcurrentAppendException("files were added to partition year=2024"),
                          ConcurrentWriteException("a concurrent transaction wrote new data")])
    assert retry_on_conflict(write, backoff_s=0) == "committed"
    assert len(calls) == 3


def test_other_errors_are_not_retried():
    write, calls = flaky([ValueError("bad schema")])
    with pytest.raises(ValueError):
        retry_on_conflict(write, backoff_s=0)
    assert len(calls) == 1


def test_the_last_conflict_is_raised_after_the_attempts():
    write, calls = flaky([ConcurrentAppendException(f"conflict {k}") for k in range(5)])
    with pytest.raises(ConcurrentAppendException, match="conflict 2"):
        retry_on_conflict(write, attempts=3, backoff_s=0)
    assert len(calls) == 3


def test_row_group_rows_sizes_groups_by_the_width_of_a_row():
    import pyarrow as pa

    from tickerlake.lake import ROW_GROUP_BYTES, row_group_rows

    wide = pa.table({f"f{i}": pa.array([0.5] * 100) for i in range(200)})  # 1,600 bytes a row
    narrow = pa.table({"x": pa.array([1.0] * 100)})  # 8 bytes a row
    assert row_group_rows(wide) == ROW_GROUP_BYTES // 1600
    assert row_group_rows(narrow) == ROW_GROUP_BYTES // 8
    assert row_group_rows(pa.table({f"f{i}": pa.array([0.5]) for i in range(10_000)})) == 1024  # floor
    assert row_group_rows(pa.table({"x": pa.array([], pa.float64())})) == ROW_GROUP_BYTES // 1


def test_row_group_rows_of_a_stream_estimates_the_width_from_its_schema():
    import pyarrow as pa

    from tickerlake.lake import ROW_GROUP_BYTES, row_group_rows

    schema = pa.schema([("ticker", pa.string()), ("date", pa.date32()), ("close", pa.float64()), ("ok", pa.bool_())])
    per_row = 16 + 4 + 8 + 1 / 8  # a string value counted as 16 bytes, a boolean as one bit
    assert row_group_rows(schema) == int(ROW_GROUP_BYTES / per_row)
