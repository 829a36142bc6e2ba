"""What each deadline event says of a dossier, and the forward-only order a read model keeps
(checked on the SQL the read models run, and against the domain's for rows in memory)."""

from __future__ import annotations

import itertools
from datetime import datetime

import sqlalchemy as sa

from schemas.events import (
    DeadlineChanged,
    DeadlineClosed,
    DeadlineDueSoon,
    DeadlineOverdue,
    StepOverdue,
)
from services.core.domain.calendar import VN_TZ
from services.core.domain.deadline_projection import (
    RANK_CHANGED,
    RANK_CLOSED,
    RANK_DUE_SOON,
    RANK_OVERDUE,
    RANK_STOPPED,
    DeadlineMark,
    mark_of,
)
from services.core.domain.deadline_projection import moves_forward as domain_moves_forward
from services.core.runtime.database import moves_forward

DUE = datetime(2026, 11, 23, 9, tzinfo=VN_TZ)


def test_each_event_sets_its_mark() -> None:
    changed = mark_of(DeadlineChanged(due_at=DUE, version=2, reason="extended"))
    stopped = mark_of(DeadlineChanged(due_at=None, version=2, reason="paused"))
    soon = mark_of(
        DeadlineDueSoon(due_at=DUE, version=2, remaining_working_minutes=60, handling_agency="A")
    )
    late = mark_of(
        DeadlineOverdue(due_at=DUE, version=2, overdue_working_minutes=5, handling_agency="A")
    )
    closed = mark_of(
        DeadlineClosed(
            reason="result_ready", outcome="late", finished_at=DUE, due_at=DUE,
            original_due_at=None, version=2,
        )
    )  # fmt: skip
    assert changed is not None and (changed.rank, changed.flag) == (RANK_CHANGED, None)
    assert stopped is not None and (stopped.rank, stopped.due_at) == (RANK_STOPPED, None)
    assert soon is not None and (soon.rank, soon.flag) == (RANK_DUE_SOON, "due_soon")
    assert late is not None and (late.rank, late.flag) == (RANK_OVERDUE, "overdue")
    assert closed is not None and closed.rank == RANK_CLOSED
    assert (closed.closed, closed.outcome, closed.flag) == (True, "late", None)
    step = StepOverdue(agency_code="B", step_number=1, handed_over_at=DUE, step_due_at=DUE)
    assert mark_of(step) is None


def is_newer(mark: DeadlineMark, version: int, rank: int) -> bool:
    """Whether a row held at (version, rank) takes ``mark``, asked of the very SQL the read
    models run (SQLite in memory)."""
    table = sa.Table(
        "marks", sa.MetaData(), sa.Column("version", sa.Integer), sa.Column("rank", sa.Integer)
    )
    engine = sa.create_engine("sqlite://")
    with engine.begin() as conn:
        table.create(conn)
        conn.execute(table.insert().values(version=version, rank=rank))
        taken = conn.execute(
            table.update().where(moves_forward(table.c.version, table.c.rank, mark)).values(rank=9)
        )
    engine.dispose()
    return bool(taken.rowcount)


def test_only_forward_in_version_then_rank() -> None:
    late_v1 = mark_of(
        DeadlineOverdue(due_at=DUE, version=1, overdue_working_minutes=5, handling_agency="A")
    )
    assert late_v1 is not None
    assert is_newer(late_v1, 1, RANK_DUE_SOON)
    assert is_newer(late_v1, 1, RANK_OVERDUE)  # a redelivery is harmless
    assert not is_newer(late_v1, 1, RANK_STOPPED)  # no flag of a version after its stop
    assert not is_newer(late_v1, 2, RANK_CHANGED)  # a late flag of a replaced deadline
    assert is_newer(late_v1, 0, RANK_CLOSED)


def test_rows_read_into_memory_follow_the_same_order() -> None:
    """A run of events is applied to rows read into memory (the intake's batches): the
    domain's order there is the one the SQL applies to a row."""
    for version, rank, mark_version, mark_rank in itertools.product(
        range(3), range(5), range(1, 3), range(5)
    ):
        mark = DeadlineMark(mark_version, mark_rank, DUE, None)
        assert domain_moves_forward(version, rank, mark) == is_newer(mark, version, rank), (
            version,
            rank,
            mark,
        )
