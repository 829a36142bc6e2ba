"""Loading and saving tracked dossiers, processed event ids, overrides and outgoing events,
within the caller's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from schemas.events import Envelope
from services.core.domain.calendar import VN_TZ, CalendarOverride, DayKind
from services.core.runtime.database import dialect_insert
from services.core.runtime.kafka import DEADLINE_TOPIC
from services.core.runtime.outbox import outbox_row
from services.tracker.adapters import tables as t
from services.tracker.domain import DeadlineEvent, TrackedDossier, from_state, to_state

# Flags get ids derived from what they say ("overdue of version 3 of dossier X"), so the
# outbox's unique event_id refuses the same flag written twice, whatever went wrong before.
EVENT_ID_NAMESPACE = uuid.UUID("5b0e6d0c-6f1c-4d7e-9a57-6d6f74637561")


def event_id_of(event: DeadlineEvent) -> str:
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, event.dedup_key))


# -- processed events --------------------------------------------------------------------


async def claim_events(conn: AsyncConnection, event_ids: Sequence[str], now: datetime) -> set[str]:
    """Record, in one statement, that this transaction handles `event_ids`; returns those not
    handled before (an id given twice is claimed once)."""
    if not event_ids:
        return set()
    rows = [{"event_id": event_id, "processed_at": now} for event_id in dict.fromkeys(event_ids)]
    query = (
        dialect_insert(conn, t.processed_events)
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(t.processed_events.c.event_id)
    )
    # One INSERT … VALUES (…), (…) RETURNING (SQLAlchemy's "insertmanyvalues"), on PostgreSQL
    # and on SQLite (RETURNING since 3.35): a run of records costs one round trip.
    return set((await conn.execute(query, rows)).scalars())


async def forget_processed_before(engine: AsyncEngine, before: datetime) -> int:
    query = t.processed_events.delete().where(t.processed_events.c.processed_at < before)
    async with engine.begin() as conn:
        result = await conn.execute(query)
    return int(result.rowcount or 0)


# -- dossiers ------------------------------------------------------------------------------


async def load(conn: AsyncConnection, dossier_id: str) -> TrackedDossier | None:
    return (await load_many(conn, [dossier_id])).get(dossier_id)


async def load_many(
    conn: AsyncConnection, dossier_ids: Collection[str]
) -> dict[str, TrackedDossier]:
    """The tracked dossiers among `dossier_ids`, in one query, locked for this transaction on
    PostgreSQL (the scan skips them meanwhile). Locked in id order, as a calendar change
    locks them, so that two transactions never wait on each other."""
    if not dossier_ids:
        return {}
    c = t.dossiers.c
    query = sa.select(c.state).where(c.dossier_id.in_(sorted(dossier_ids))).order_by(c.dossier_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    found = (from_state(state) for state in (await conn.execute(query)).scalars())
    return {tracked.dossier_id: tracked for tracked in found}


def columns_of(tracked: TrackedDossier, now: datetime) -> dict[str, Any]:
    return {
        "code": tracked.code,
        "agency_code": tracked.agency_code,
        "handling_agency": tracked.handling_agency,
        "status": tracked.status.value,
        "received_at": tracked.received_at,
        "due_at": tracked.due_at,
        "version": tracked.version,
        "next_check_at": tracked.next_check_at,
        "finished_at": tracked.finished_at,
        "outcome": tracked.outcome.value if tracked.outcome else None,
        "state": to_state(tracked),
        "updated_at": now,
    }


async def insert_many(
    conn: AsyncConnection, dossiers: Sequence[TrackedDossier], now: datetime
) -> None:
    """One executemany for the dossiers tracked from now on."""
    if dossiers:
        rows = [{"dossier_id": d.dossier_id, **columns_of(d, now)} for d in dossiers]
        await conn.execute(t.dossiers.insert(), rows)


async def update_many(
    conn: AsyncConnection, dossiers: Sequence[TrackedDossier], now: datetime
) -> None:
    """One executemany for a batch (the scan writes hundreds of rows per transaction)."""
    if not dossiers:
        return
    query = (
        t.dossiers.update()
        .where(t.dossiers.c.dossier_id == sa.bindparam("b_dossier_id"))
        .values({name: sa.bindparam(name) for name in columns_of(dossiers[0], now)})
    )
    rows = [{"b_dossier_id": d.dossier_id, **columns_of(d, now)} for d in dossiers]
    await conn.execute(query, rows)


async def due_for_scan(conn: AsyncConnection, now: datetime, limit: int) -> list[TrackedDossier]:
    """Dossiers whose next threshold has come, earliest first, via the partial index.

    On PostgreSQL the rows are locked and rows locked by others skipped, so scanners on
    several replicas share the work and never raise the same flag twice.
    """
    query = (
        sa.select(t.dossiers.c.state)
        .where(t.dossiers.c.next_check_at.is_not(None), t.dossiers.c.next_check_at <= now)
        .order_by(t.dossiers.c.next_check_at)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return [from_state(s) for s in (await conn.execute(query)).scalars()]


async def open_received_by(
    conn: AsyncConnection, day: date, after_id: str, limit: int
) -> list[TrackedDossier]:
    """Open dossiers received before the end of `day`, in id order after `after_id`."""
    day_end = datetime.combine(day + timedelta(days=1), time(0), VN_TZ)
    query = (
        sa.select(t.dossiers.c.state)
        .where(
            t.dossiers.c.finished_at.is_(None),
            t.dossiers.c.received_at < day_end,
            t.dossiers.c.dossier_id > after_id,
        )
        .order_by(t.dossiers.c.dossier_id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return [from_state(s) for s in (await conn.execute(query)).scalars()]


# -- outgoing events ---------------------------------------------------------------------


def envelope_of(tracked: TrackedDossier, event: DeadlineEvent) -> Envelope:
    return Envelope(
        event_id=event_id_of(event),
        type=event.type,
        occurred_at=event.occurred_at,
        dossier_id=tracked.dossier_id,
        dossier_code=tracked.code,
        agency_code=tracked.agency_code,
        payload=event.payload,
    )


async def write_events(
    conn: AsyncConnection,
    pairs: Iterable[tuple[TrackedDossier, DeadlineEvent]],
    now: datetime,
) -> None:
    """Add the events to the outbox; one already there (same fact) is skipped."""
    rows = []
    for tracked, event in pairs:
        envelope = envelope_of(tracked, event)
        rows.append(
            outbox_row(
                event_id=envelope.event_id,
                topic=DEADLINE_TOPIC,
                key=tracked.dossier_id,
                value=envelope.model_dump_json(),
                created_at=now,
            )
        )
    if rows:
        query = dialect_insert(conn, t.outbox).on_conflict_do_nothing(index_elements=["event_id"])
        await conn.execute(query, rows)


# -- calendar overrides ------------------------------------------------------------------


async def load_overrides(conn: AsyncConnection) -> list[CalendarOverride]:
    rows = await conn.execute(sa.select(t.calendar_overrides).order_by(t.calendar_overrides.c.day))
    return [CalendarOverride(r.day, DayKind(r.kind), r.note) for r in rows]


async def replace_overrides(conn: AsyncConnection, overrides: Iterable[CalendarOverride]) -> None:
    await conn.execute(t.calendar_overrides.delete())
    rows = [{"day": o.day, "kind": o.kind.value, "note": o.note} for o in overrides]
    if rows:
        await conn.execute(t.calendar_overrides.insert(), rows)
