"""Following the tracker's word (motcua.deadline.v1) in a read model: what each deadline event
says of a dossier, and whether it is newer than what a reader already holds.

Events of one dossier arrive in order, but may arrive twice or late. An update only moves
forward in (deadline version, rank), rank being changed < due_soon < overdue < stopped <
closed: a clock stop keeps its version, and no flag of that version may land after it
(``moves_forward``). A read model that updates a row at a time says the same in its UPDATE
(``core.runtime.database.moves_forward``, checked against this one by the tests); one that
applies a run of events to the rows it read asks ``moves_forward``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from schemas.events import (
    Contract,
    DeadlineChanged,
    DeadlineClosed,
    DeadlineDueSoon,
    DeadlineOverdue,
)

Flag = Literal["due_soon", "overdue"]
Outcome = Literal["early", "on_time", "late"]

RANK_CHANGED, RANK_DUE_SOON, RANK_OVERDUE, RANK_STOPPED, RANK_CLOSED = range(5)


@dataclass(frozen=True)
class DeadlineMark:
    """A dossier's deadline as one event leaves it."""

    version: int
    rank: int
    due_at: datetime | None
    flag: Flag | None
    closed: bool = False
    outcome: Outcome | None = None


def mark_of(payload: Contract) -> DeadlineMark | None:
    """The mark a deadline payload sets; None for events that set none (a step overdue)."""
    match payload:
        case DeadlineChanged():
            rank = RANK_STOPPED if payload.due_at is None else RANK_CHANGED
            return DeadlineMark(payload.version, rank, payload.due_at, None)
        case DeadlineDueSoon():
            return DeadlineMark(payload.version, RANK_DUE_SOON, payload.due_at, "due_soon")
        case DeadlineOverdue():
            return DeadlineMark(payload.version, RANK_OVERDUE, payload.due_at, "overdue")
        case DeadlineClosed():
            return DeadlineMark(
                payload.version, RANK_CLOSED, payload.due_at, None, True, payload.outcome
            )
    return None


def moves_forward(version: int, rank: int, mark: DeadlineMark) -> bool:
    """Whether a reader holding (``version``, ``rank``) takes ``mark``: not when it is older;
    the same again (a redelivery) is taken, harmlessly."""
    return (version, rank) <= (mark.version, mark.rank)
