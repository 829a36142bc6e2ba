"""Events the tracker publishes on ``motcua.deadline.v1`` (type name + JSON-ready payload).

Plain values: the adapter wraps each in an ``Envelope`` (dossier id, code and agency from the
``TrackedDossier``) and writes it to the outbox. Datetimes in payloads are ISO 8601 strings
in Asia/Ho_Chi_Minh.

``dedup_key`` is stable for the same fact (e.g. "overdue of version 3 of dossier X"): an
adapter that derives the envelope's ``event_id`` from it (``uuid5``) lets the outbox's unique
``event_id`` refuse a flag written twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.core.domain.clock_state import iso

DEADLINE_CHANGED = "deadline.changed"
DEADLINE_DUE_SOON = "deadline.due_soon"
DEADLINE_OVERDUE = "deadline.overdue"
DEADLINE_STEP_OVERDUE = "deadline.step_overdue"
DEADLINE_CLOSED = "deadline.closed"

DEADLINE_EVENT_TYPES = (
    DEADLINE_CHANGED,
    DEADLINE_DUE_SOON,
    DEADLINE_OVERDUE,
    DEADLINE_STEP_OVERDUE,
    DEADLINE_CLOSED,
)


@dataclass(frozen=True)
class DeadlineEvent:
    """One outgoing event. ``occurred_at`` is when the fact became true (see each builder)."""

    type: str
    dossier_id: str
    occurred_at: datetime
    payload: dict[str, Any]
    dedup_key: str


def changed(
    dossier_id: str,
    at: datetime,
    due_at: datetime | None,
    version: int,
    reason: str,
) -> DeadlineEvent:
    """The appointment in force changed (``due_at`` None: the clock is stopped)."""
    return DeadlineEvent(
        type=DEADLINE_CHANGED,
        dossier_id=dossier_id,
        occurred_at=at,
        payload={"due_at": iso(due_at), "version": version, "reason": reason},
        dedup_key=f"{dossier_id}/changed/v{version}/{reason}/{iso(at)}",
    )


def due_soon(
    dossier_id: str,
    at: datetime,
    due_at: datetime,
    version: int,
    remaining_working_minutes: int,
    handling_agency: str,
) -> DeadlineEvent:
    return DeadlineEvent(
        type=DEADLINE_DUE_SOON,
        dossier_id=dossier_id,
        occurred_at=at,
        payload={
            "due_at": iso(due_at),
            "version": version,
            "remaining_working_minutes": remaining_working_minutes,
            "handling_agency": handling_agency,
        },
        dedup_key=f"{dossier_id}/due_soon/v{version}",
    )


def overdue(
    dossier_id: str,
    at: datetime,
    due_at: datetime,
    version: int,
    overdue_working_minutes: int,
    handling_agency: str,
) -> DeadlineEvent:
    return DeadlineEvent(
        type=DEADLINE_OVERDUE,
        dossier_id=dossier_id,
        occurred_at=at,
        payload={
            "due_at": iso(due_at),
            "version": version,
            "overdue_working_minutes": overdue_working_minutes,
            "handling_agency": handling_agency,
        },
        dedup_key=f"{dossier_id}/overdue/v{version}",
    )


def step_overdue(
    dossier_id: str,
    at: datetime,
    step_number: int,
    agency_code: str,
    handed_over_at: datetime,
    step_due_at: datetime,
) -> DeadlineEvent:
    return DeadlineEvent(
        type=DEADLINE_STEP_OVERDUE,
        dossier_id=dossier_id,
        occurred_at=at,
        payload={
            "agency_code": agency_code,
            "step_number": step_number,
            "handed_over_at": iso(handed_over_at),
            "step_due_at": iso(step_due_at),
        },
        dedup_key=f"{dossier_id}/step_overdue/{step_number}",
    )


def closed(
    dossier_id: str,
    at: datetime,
    reason: str,
    outcome: str | None,
    due_at: datetime | None,
    original_due_at: datetime | None,
    version: int,
) -> DeadlineEvent:
    """The clock ended: result ready (with its outcome), rejected or withdrawn (no outcome)."""
    return DeadlineEvent(
        type=DEADLINE_CLOSED,
        dossier_id=dossier_id,
        occurred_at=at,
        payload={
            "reason": reason,
            "outcome": outcome,
            "finished_at": iso(at),
            "due_at": iso(due_at),
            "original_due_at": iso(original_due_at),
            "version": version,
        },
        dedup_key=f"{dossier_id}/closed",
    )
