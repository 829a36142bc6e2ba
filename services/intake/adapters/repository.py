"""Loading and saving dossiers, and counting their codes, within one connection's
transaction. The catalogue's rows are in catalogue_store.py, the read model's in
read_model.py, the state document in dossier_state.py."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas.events import (
    EVENT_TYPE_OF,
    Envelope,
)
from services.core.domain.codes import dossier_code, dossier_code_prefix
from services.core.ids import time_ordered_id
from services.core.runtime.database import dialect_insert_for
from services.core.runtime.group_commit import Batch, Counters
from services.core.runtime.kafka import (
    DOSSIER_TOPIC,
)
from services.core.runtime.outbox import add_to_outbox, outbox_row
from services.intake.adapters import tables as t
from services.intake.adapters.dossier_state import dossier_to_state
from services.intake.adapters.read_model import DeadlineView, StoredDossier
from services.intake.domain.model import Dossier
from services.intake.domain.postal import Postal


class ConcurrentUpdate(Exception):
    """Someone else changed the dossier between our read and our write (→ HTTP 409)."""


# --- dossier codes ---------------------------------------------------------------------


async def next_code(batch: Batch, conn: AsyncConnection, agency_code: str, day: date) -> str:
    """Mã hồ sơ: agency, date received, sequence of that agency's day (e.g. UBND-20261121-0007).

    A group commit batch takes, in one statement for all its counters (`CODE_COUNTERS`), as
    many numbers of each as it has receipts of it; the rows stay locked until the batch
    commits (so concurrent batches, of any replica, never hand out the same number), and a
    counter is written again only when its batch used fewer (an idempotent replay takes no
    number), so the codes stay gapless.
    """
    prefix = dossier_code_prefix(agency_code, day)
    return dossier_code(prefix, await batch.next_value(conn, CODE_COUNTERS, prefix))


async def _read_counters(conn: AsyncConnection, prefixes: Sequence[str]) -> dict[str, int]:
    # A claim of nothing: creates the day's rows if missing and locks them, changing nothing.
    return await _claim_counters(conn, dict.fromkeys(prefixes, 0))


async def _claim_counters(conn: AsyncConnection, amounts: Mapping[str, int]) -> dict[str, int]:
    rows = [{"prefix": prefix, "last": amount} for prefix, amount in amounts.items()]
    stmt = _CLAIM_COUNTERS[conn.dialect.name]
    return {row.prefix: int(row.last) for row in await conn.execute(stmt, rows)}


async def _write_counters(conn: AsyncConnection, values: Mapping[str, int]) -> None:
    rows = [{"b_prefix": prefix, "b_last": last} for prefix, last in values.items()]
    await conn.execute(_WRITE_COUNTERS, rows)


def _claim_counters_statement(dialect: str) -> Any:
    # An upsert that adds each row's `last` to the stored one (a new row starts at it) and
    # returns the sums: the batch's codes taken in one statement. On PostgreSQL it takes the
    # rows' locks, in the order given (a plain SELECT would not lock); SQLite's BEGIN
    # IMMEDIATE holds the file.
    # The rows as executemany parameters, not .values([...]): a multi-row VALUES has no cache
    # key, and SQLAlchemy compiled it again for every batch. Sent as one INSERT … VALUES
    # (…), (…) all the same ("insertmanyvalues"), in the order given.
    c = t.code_counters.c
    insert = dialect_insert_for(dialect, t.code_counters)
    return insert.on_conflict_do_update(
        index_elements=[c.prefix], set_={"last": c.last + insert.excluded.last}
    ).returning(c.prefix, c.last, sort_by_parameter_order=True)


# Built once: building a statement cost about twice what executing it did (64 against
# 35 µs on SQLite, measured), and a batch of one receipt runs one or two of these.
_CLAIM_COUNTERS = {name: _claim_counters_statement(name) for name in ("postgresql", "sqlite")}
_WRITE_COUNTERS = (
    t.code_counters.update()
    .where(t.code_counters.c.prefix == sa.bindparam("b_prefix"))
    .values(last=sa.bindparam("b_last"))
)


CODE_COUNTERS = Counters(read=_read_counters, write=_write_counters, claim=_claim_counters)


def new_id(now: datetime) -> str:
    """A dossier's or an event's id: time-ordered, so that a batch's rows share the indexes'
    last pages (core.ids)."""
    return time_ordered_id(now)


# --- dossiers --------------------------------------------------------------------------


async def add_dossier(conn: AsyncConnection, dossier: Dossier, now: datetime) -> None:
    values = {**_row(dossier, now), **_clock_columns(dossier)}
    await conn.execute(t.dossiers.insert().values(**values, version=1))
    await _publish_events(conn, dossier, now)


def defer_new_dossier(batch: Batch, dossier: Dossier, now: datetime) -> None:
    """`add_dossier` within a group commit: the row and its events are inserted with the
    batch's other rows, in its transaction."""
    values = {**_row(dossier, now), **_clock_columns(dossier)}
    batch.insert(t.dossiers, {**values, "version": 1})
    batch.insert(t.outbox, *_event_rows(dossier, now))
    dossier.events.clear()


async def save_dossier(
    conn: AsyncConnection,
    dossier: Dossier,
    expected_version: int,
    now: datetime,
    *,
    clock_moved: bool,
) -> None:
    """Save the aggregate and its events. The deadline columns are written only when this
    action moved the clock (``clock_moved``): otherwise they keep the tracker's word, which
    may differ from the aggregate's after a calendar change."""
    values = _row(dossier, now)
    if clock_moved:
        values.update(_clock_columns(dossier))
    result = await conn.execute(
        t.dossiers.update()
        .where(t.dossiers.c.id == dossier.id, t.dossiers.c.version == expected_version)
        .values(**values, version=expected_version + 1)
    )
    if result.rowcount != 1:
        raise ConcurrentUpdate(dossier.code)
    await _publish_events(conn, dossier, now)


def _clock_columns(dossier: Dossier) -> dict[str, Any]:
    return DeadlineView.of_dossier(dossier).columns()


async def load_dossier(conn: AsyncConnection, code: str) -> StoredDossier | None:
    row = (await conn.execute(sa.select(t.dossiers).where(t.dossiers.c.code == code))).first()
    return StoredDossier.of(row) if row else None


async def lock_dossiers(
    conn: AsyncConnection, dossier_ids: Collection[str]
) -> dict[str, StoredDossier]:
    """The dossiers among `dossier_ids` by id, in one query, their rows locked until commit
    (PostgreSQL, in id order; SQLite's BEGIN IMMEDIATE already holds the database): a clerk's
    concurrent action waits instead of racing us."""
    if not dossier_ids:
        return {}
    c = t.dossiers.c
    query = sa.select(t.dossiers).where(c.id.in_(sorted(dossier_ids))).order_by(c.id)
    rows = await conn.execute(query.with_for_update())
    return {row.id: StoredDossier.of(row) for row in rows}


async def save_postals(conn: AsyncConnection, postals: Mapping[str, Postal | None]) -> None:
    """Write the bưu gửi columns of these dossiers, in one executemany. Like the deadline
    columns they are the read model: the aggregate's version is left alone, so a clerk's
    action in flight is not refused for it."""
    if not postals:
        return
    names = ("postal_tracking_code", "postal_status", "postal_status_at")
    query = (
        t.dossiers.update()
        .where(t.dossiers.c.id == sa.bindparam("b_id"))
        .values({name: sa.bindparam(name) for name in names})
    )
    rows = [
        {
            "b_id": dossier_id,
            "postal_tracking_code": postal.tracking_code if postal else None,
            "postal_status": postal.status if postal else None,
            "postal_status_at": postal.status_at if postal else None,
        }
        for dossier_id, postal in postals.items()
    ]
    await conn.execute(query, rows)


def _row(dossier: Dossier, now: datetime) -> dict[str, Any]:
    return {
        "id": dossier.id,
        "code": dossier.code,
        "agency_code": dossier.agency_code,
        "handling_agency": dossier.handling_agency,
        "procedure_code": dossier.procedure.code,
        "status": dossier.status.value,
        "applicant_phone": dossier.applicant.phone if dossier.applicant else None,
        "received_at": dossier.received_at,
        "finished_at": dossier.finished_at,
        "closed_at": dossier.closed_at,
        "personal_data_erased_at": dossier.personal_data_erased_at,
        "supplement_requests": dossier.supplement_requests,
        "state": dossier_to_state(dossier),
        "updated_at": now,
    }


async def _publish_events(conn: AsyncConnection, dossier: Dossier, now: datetime) -> None:
    rows = _event_rows(dossier, now)
    if rows:
        await add_to_outbox(conn, t.outbox, rows)
    dossier.events.clear()


def _event_rows(dossier: Dossier, now: datetime) -> list[dict[str, Any]]:
    rows = []
    for event in dossier.events:
        envelope = Envelope(
            event_id=new_id(now),
            type=EVENT_TYPE_OF[type(event)],
            occurred_at=event.at,
            dossier_id=dossier.id,
            dossier_code=dossier.code,
            agency_code=dossier.agency_code,
            payload=event.model_dump(mode="json"),
        )
        rows.append(
            outbox_row(
                event_id=envelope.event_id,
                topic=DOSSIER_TOPIC,
                key=dossier.id,
                value=envelope.model_dump_json(),
                created_at=now,
            )
        )
    return rows
