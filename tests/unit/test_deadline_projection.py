"""What each deadline event says of a dossier, and the forward-only order a read model keeps."""

from __future__ import annotations

from datetime import datetime

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
    is_newer,
    mark_of,
)

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
