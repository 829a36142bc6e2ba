"""The intake's read model follows the tracker: `due_at`, `flag` and `outcome` of each
dossier from `motcua.deadline.v1`, so `GET /dossiers?flag=overdue` shows the tracker's word.

Updates only move forward in (deadline version, rank) (core.domain.deadline_projection), and
flags only land on dossiers still owing a result.
"""

from __future__ import annotations

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.events import DEADLINE_EVENTS, Envelope, parse_deadline_payload
from services.core.domain.deadline_projection import DeadlineMark, mark_of
from services.core.domain.lifecycle import PENDING_STATUSES
from services.core.runtime.consumer import decode_envelope, typed_payload
from services.core.runtime.database import moves_forward
from services.core.runtime.kafka import DEADLINE_TOPIC
from services.intake.adapters import tables as t

log = structlog.get_logger("motcua.intake")


def decode(body: bytes) -> Envelope:
    return decode_envelope(body, DEADLINE_EVENTS, DEADLINE_TOPIC)


def mark_for(envelope: Envelope) -> DeadlineMark | None:
    """What the event says of the dossier's deadline; None when nothing for the read model
    (a step overdue is for supervisors, not for the dossier list)."""
    return mark_of(typed_payload(envelope, parse_deadline_payload))


async def apply_deadline_event(engine: AsyncEngine, envelope: Envelope) -> bool:
    """Project one deadline event; True when a row changed."""
    mark = mark_for(envelope)
    if mark is None:
        return False
    c = t.dossiers.c
    conditions = [
        c.id == envelope.dossier_id,
        moves_forward(c.deadline_version, c.deadline_rank, mark),
    ]
    if mark.flag:
        conditions.append(c.status.in_([s.value for s in PENDING_STATUSES]))
    values = {"due_at": mark.due_at, "flag": mark.flag}
    if mark.closed:
        values["outcome"] = mark.outcome
    query = (
        t.dossiers.update()
        .where(*conditions)
        .values(**values, deadline_version=mark.version, deadline_rank=mark.rank)
    )
    async with engine.begin() as conn:
        result = await conn.execute(query)
    applied = bool(result.rowcount)
    log.info(
        "deadline_projected" if applied else "deadline_not_newer",
        event_id=envelope.event_id,
        type=envelope.type,
        dossier_id=envelope.dossier_id,
        deadline_version=mark.version,
    )
    return applied
