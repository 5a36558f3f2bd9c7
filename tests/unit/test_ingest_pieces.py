"""How a validation interval is cut into pieces (`ingest._row_chunks`)."""

from __future__ import annotations

import datetime as dt

import pytest

from tickerlake.calendar import sessions_between
from tickerlake.ingest import PARALLEL_MIN_ROWS, _row_chunks

pytestmark = pytest.mark.unit

LO, HI = dt.date(2021, 1, 1), dt.date(2021, 12, 31)
SESSIONS = sessions_between(LO, HI)


def rows_of(pieces, per_session):
    return [sum(n for d, n in per_session.items() if a <= d <= b) for a, b in pieces]


def assert_cover(pieces):
    assert pieces[0][0] == LO and pieces[-1][1] == HI
    for (_, b), (a, _) in zip(pieces, pieces[1:], strict=False):
        assert a == b + dt.timedelta(days=1)  # contiguous, no day lost or judged twice


def test_one_worker_cuts_at_the_row_limit_into_about_equal_pieces():
    per_session = {d: 5_000 for d in SESSIONS}  # 252 sessions, 1.26M rows
    pieces = _row_chunks(LO, HI, per_session, 300_000, workers=1)
    assert len(pieces) == 5
    assert_cover(pieces)
    sizes = rows_of(pieces, per_session)
    assert max(sizes) <= 300_000 * 1.02 and max(sizes) - min(sizes) <= 5_000


def test_several_workers_get_a_multiple_of_pieces_each_about_equal():
    per_session = {d: 5_000 for d in SESSIONS}
    pieces = _row_chunks(LO, HI, per_session, 300_000, workers=2)
    assert len(pieces) == 6  # 5 would leave a worker idle through the last round
    assert_cover(pieces)
    sizes = rows_of(pieces, per_session)
    assert max(sizes) - min(sizes) <= 5_000


def test_a_small_interval_is_one_piece_and_a_mid_sized_one_is_shared():
    small = {d: 500 for d in SESSIONS}  # 126k rows
    assert sum(small.values()) < PARALLEL_MIN_ROWS
    assert _row_chunks(LO, HI, small, 1_500_000, workers=2) == [(LO, HI)]
    mid = {d: 2_500 for d in SESSIONS}  # 630k rows: one piece's worth, cut for both workers
    pieces = _row_chunks(LO, HI, mid, 1_500_000, workers=2)
    assert len(pieces) == 2
    assert_cover(pieces)
    assert abs(rows_of(pieces, mid)[0] - rows_of(pieces, mid)[1]) <= 2_500


def test_uneven_sessions_and_a_missing_count():
    per_session = {d: (10_000 if i < 50 else 1_000) for i, d in enumerate(SESSIONS)}
    del per_session[SESSIONS[100]]  # a session the landing commits do not count: still inside a piece
    pieces = _row_chunks(LO, HI, per_session, 200_000, workers=1)
    assert_cover(pieces)
    assert max(rows_of(pieces, per_session)) <= 210_000
