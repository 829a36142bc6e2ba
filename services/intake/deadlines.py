"""The intake's read model follows the tracker: `due_at`, `flag` and `outcome` of each
dossier from `motcua.deadline.v1`, so `GET /dossiers?flag=overdue` shows the tracker's word.

Events of one dossier arrive in order, but may arrive twice or after the intake's own action
already moved the clock. Each update therefore only moves forward in (deadline version, rank),
rank being changed < due_soon < overdue < stopped < closed (a stop keeps its version, and no
flag of that version may land after it), and flags only land on dossiers still owing a result.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
import structlog
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.events import (
    DEADLINE_EVENTS,
    DeadlineChanged,
    DeadlineClosed,
    DeadlineDueSoon,
    DeadlineOverdue,
    Envelope,
    parse_deadline_payload,
)
from services.core.domain.lifecycle import PENDING_STATUSES
from services.core.runtime.consumer import PoisonEvent, decode_envelope
from services.core.runtime.kafka import DEADLINE_TOPIC
from services.intake.adapters import tables as t

log = structlog.get_logger("motcua.intake")

RANK = {
    "deadline.changed": 0,
    "deadline.due_soon": 1,
    "deadline.overdue": 2,
    "deadline.stopped": 3,  # deadline.changed with due_at None
    "deadline.closed": 4,
}


def decode(body: bytes) -> Envelope:
    return decode_envelope(body, DEADLINE_EVENTS, DEADLINE_TOPIC)


def columns_for(envelope: Envelope) -> dict[str, Any] | None:
    """The read-model columns an event sets; None when it has nothing for the read model."""
    try:
        payload = parse_deadline_payload(envelope)
    except ValidationError as exc:
        raise PoisonEvent(f"invalid {envelope.type} payload") from exc
    match payload:
        case DeadlineChanged():
            return {"due_at": payload.due_at, "flag": None}
        case DeadlineDueSoon():
            return {"due_at": payload.due_at, "flag": "due_soon"}
        case DeadlineOverdue():
            return {"due_at": payload.due_at, "flag": "overdue"}
        case DeadlineClosed():
            return {"due_at": payload.due_at, "flag": None, "outcome": payload.outcome}
    return None  # step_overdue: for supervisors (notifier), not for the dossier list


async def apply_deadline_event(engine: AsyncEngine, envelope: Envelope) -> bool:
    """Project one deadline event; True when a row changed."""
    values = columns_for(envelope)
    if values is None:
        return False
    version = int(envelope.payload["version"])
    stopped = envelope.type == "deadline.changed" and values["due_at"] is None
    rank = RANK["deadline.stopped" if stopped else envelope.type]
    c = t.dossiers.c
    newer = sa.or_(
        c.deadline_version < version,
        sa.and_(c.deadline_version == version, c.deadline_rank <= rank),
    )
    conditions = [c.id == envelope.dossier_id, newer]
    if values.get("flag"):
        conditions.append(c.status.in_([s.value for s in PENDING_STATUSES]))
    query = (
        t.dossiers.update()
        .where(*conditions)
        .values(**values, deadline_version=version, deadline_rank=rank)
    )
    async with engine.begin() as conn:
        result = await conn.execute(query)
    applied = bool(result.rowcount)
    log.info(
        "deadline_projected" if applied else "deadline_not_newer",
        event_id=envelope.event_id,
        type=envelope.type,
        dossier_id=envelope.dossier_id,
        deadline_version=version,
    )
    return applied
