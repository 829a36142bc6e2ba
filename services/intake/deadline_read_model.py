"""The intake's read model follows the tracker: `due_at`, `flag` and `outcome` of each
dossier from `motcua.deadline.v1`, so `GET /dossiers?flag=overdue` shows the tracker's word.

Updates only move forward in (deadline version, rank) (core.domain.deadline_projection), and
flags only land on dossiers still owing a result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.events import DEADLINE_EVENTS, Envelope, parse_deadline_payload
from services.core.domain.deadline_projection import DeadlineMark, mark_of, moves_forward
from services.core.domain.lifecycle import PENDING_STATUSES
from services.core.runtime.consumer import decode_envelope, typed_payload
from services.core.runtime.kafka import DEADLINE_TOPIC
from services.intake.adapters import read_model
from services.intake.adapters.read_model import HeldDeadline

log = structlog.get_logger("motcua.intake")
PENDING = frozenset(s.value for s in PENDING_STATUSES)  # the statuses still owing a result


def decode(body: bytes) -> Envelope:
    return decode_envelope(body, DEADLINE_EVENTS, DEADLINE_TOPIC)


def mark_for(envelope: Envelope) -> DeadlineMark | None:
    """What the event says of the dossier's deadline; None when nothing for the read model
    (a step overdue is for supervisors, not for the dossier list)."""
    return mark_of(typed_payload(envelope, parse_deadline_payload))


def take(held: HeldDeadline, mark: DeadlineMark) -> HeldDeadline | None:
    """The dossier's deadline after the mark; None when the dossier does not take it: older
    than what it holds, or a flag for a dossier no longer owing a result."""
    if not moves_forward(held.version, held.rank, mark):
        return None
    if mark.flag and held.status not in PENDING:
        return None
    return replace(
        held,
        version=mark.version,
        rank=mark.rank,
        due_at=mark.due_at,
        flag=mark.flag,
        outcome=mark.outcome if mark.closed else held.outcome,
    )


async def apply_deadline_event(engine: AsyncEngine, envelope: Envelope) -> bool:
    """Project one deadline event; True when its dossier took it."""
    [taken] = await apply_deadline_events(engine, [envelope])
    return taken


async def apply_deadline_events(engine: AsyncEngine, envelopes: Sequence[Envelope]) -> list[bool]:
    """Project a run of deadline events (each dossier's in order) in one transaction: one query
    reads and locks the dossiers concerned, the events are taken in memory one after the
    other (an event sees what the one before it left), one executemany writes the rows that
    changed. True for each event its dossier took. An invalid payload raises PoisonEvent
    before the transaction."""
    marks = [mark_for(envelope) for envelope in envelopes]
    taken = [False] * len(envelopes)
    concerned = {e.dossier_id for e, mark in zip(envelopes, marks, strict=True) if mark}
    if concerned:
        async with engine.begin() as conn:
            held = await read_model.lock_deadlines(conn, concerned)
            current = dict(held)
            for n, (envelope, mark) in enumerate(zip(envelopes, marks, strict=True)):
                before = current.get(envelope.dossier_id)
                after = take(before, mark) if before is not None and mark is not None else None
                if after is not None:
                    current[envelope.dossier_id] = after
                    taken[n] = True
            await read_model.save_deadlines(
                conn, {i: h for i, h in current.items() if h != held[i]}
            )
    # One line a run: a line an event cost more than projecting it (bench/README.md), and the
    # tracker has logged each event already. Each event's own line is at DEBUG.
    for envelope, mark, applied in zip(envelopes, marks, taken, strict=True):
        if mark is not None:
            log.debug(
                "deadline_projected" if applied else "deadline_not_newer",
                event_id=envelope.event_id,
                type=envelope.type,
                dossier_id=envelope.dossier_id,
                deadline_version=mark.version,
            )
    if concerned:
        marked, took = sum(mark is not None for mark in marks), sum(taken)
        log.info(
            "deadline_events_projected",
            events=len(envelopes),
            taken=took,
            not_newer=marked - took,
            not_for_the_list=len(envelopes) - marked,
        )
    return taken
