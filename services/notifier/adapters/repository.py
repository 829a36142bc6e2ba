"""Reading and writing the notifier's tables. Every function runs in the caller's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.core.domain.calendar import CalendarOverride, DayKind
from services.core.domain.deadline_projection import DeadlineMark
from services.core.domain.lifecycle import PENDING_STATUSES
from services.core.runtime.database import dialect_insert, moves_forward
from services.notifier.adapters import tables as t
from services.notifier.domain.decisions import (
    AgencyDigest,
    Contact,
    DossierCard,
    PostalOrderDraft,
)

NOTICE_ID_NAMESPACE = uuid.UUID("2f4d8c1e-3b6a-4e0f-9d71-6d6f74637561")
OPEN = [s.value for s in PENDING_STATUSES]


def notice_id(source_key: str, recipient: str, template: str) -> str:
    """The notice's identity, stable across redeliveries and restarts: the gateway's
    request_id, so a notice sent again after a crash is recognised as the same message."""
    return str(uuid.uuid5(NOTICE_ID_NAMESPACE, f"{source_key}|{recipient}|{template}"))


# -- dossiers -------------------------------------------------------------------------------


async def load_card(conn: AsyncConnection, dossier_id: str) -> DossierCard | None:
    row = (
        await conn.execute(sa.select(t.dossiers).where(t.dossiers.c.dossier_id == dossier_id))
    ).first()
    if row is None:
        return None
    return DossierCard(
        dossier_id=row.dossier_id,
        code=row.code,
        agency_code=row.agency_code,
        procedure_name=row.procedure_name,
        applicant=Contact(row.applicant_name, row.phone),
        return_method=row.return_method,
        return_address=row.return_address,
        status=row.status,
    )


async def save_card(conn: AsyncConnection, card: DossierCard, now: datetime) -> None:
    values = {
        "code": card.code,
        "agency_code": card.agency_code,
        "procedure_name": card.procedure_name[:300],
        "applicant_name": card.applicant.name[:200],
        "phone": card.applicant.phone,
        "return_method": card.return_method,
        "return_address": dict(card.return_address) if card.return_address else None,
        "status": card.status,
        "updated_at": now,
    }
    if card.status not in OPEN:
        values["flag"] = None  # a finished dossier is in no digest
    insert = dialect_insert(conn, t.dossiers).values(dossier_id=card.dossier_id, **values)
    await conn.execute(insert.on_conflict_do_update(index_elements=["dossier_id"], set_=values))


async def apply_mark(
    conn: AsyncConnection, dossier_id: str, mark: DeadlineMark, now: datetime
) -> bool:
    """Follow the tracker's flag for the digest, only forward (see deadline_projection)."""
    c = t.dossiers.c
    conditions = [
        c.dossier_id == dossier_id,
        moves_forward(c.deadline_version, c.deadline_rank, mark),
    ]
    if mark.flag:
        conditions.append(c.status.in_(OPEN))
    result = await conn.execute(
        t.dossiers.update()
        .where(*conditions)
        .values(
            due_at=mark.due_at,
            flag=mark.flag,
            deadline_version=mark.version,
            deadline_rank=mark.rank,
            updated_at=now,
        )
    )
    return bool(result.rowcount)


async def digests(conn: AsyncConnection, oldest: int = 5) -> list[AgencyDigest]:
    """Per agency with supervisors: open dossiers due soon, overdue, the oldest overdue."""
    c = t.dossiers.c
    counts = await conn.execute(
        sa.select(c.agency_code, c.flag, sa.func.count())
        .where(c.flag.is_not(None), c.status.in_(OPEN))
        .group_by(c.agency_code, c.flag)
    )
    by_agency: dict[str, dict[str, int]] = {}
    for agency, flag, count in counts:
        by_agency.setdefault(agency, {})[flag] = int(count)
    result = []
    for agency in sorted(by_agency):
        codes = (
            await conn.execute(
                sa.select(c.code)
                .where(c.agency_code == agency, c.flag == "overdue", c.status.in_(OPEN))
                .order_by(c.due_at, c.code)
                .limit(oldest)
            )
        ).scalars()
        flags = by_agency[agency]
        result.append(
            AgencyDigest(agency, flags.get("due_soon", 0), flags.get("overdue", 0), tuple(codes))
        )
    return result


# -- supervisors ----------------------------------------------------------------------------


async def replace_supervisors(
    conn: AsyncConnection, agency_code: str, people: Iterable[tuple[str, Contact]]
) -> None:
    await conn.execute(t.supervisors.delete().where(t.supervisors.c.agency_code == agency_code))
    rows = [
        {"agency_code": agency_code, "supervisor_id": sid, "name": p.name, "phone": p.phone}
        for sid, p in people
    ]
    if rows:
        await conn.execute(t.supervisors.insert(), rows)


async def supervisors_of(conn: AsyncConnection, agency_code: str) -> list[Contact]:
    rows = await conn.execute(
        sa.select(t.supervisors.c.name, t.supervisors.c.phone)
        .where(t.supervisors.c.agency_code == agency_code)
        .order_by(t.supervisors.c.supervisor_id)
    )
    return [Contact(r.name, r.phone) for r in rows]


# -- notices --------------------------------------------------------------------------------


async def add_notice(conn: AsyncConnection, row: Mapping[str, Any], now: datetime) -> bool:
    """Insert a notice unless its identity exists; True when it is new (with its history)."""
    insert = dialect_insert(conn, t.notices).values(**row, created_at=now, updated_at=now)
    result = await conn.execute(insert.on_conflict_do_nothing())
    if not result.rowcount:
        return False
    await add_history(conn, row["id"], row["status"], now, row.get("error"))
    return True


async def add_history(
    conn: AsyncConnection, notice: str, status: str, at: datetime, detail: str | None = None
) -> None:
    await conn.execute(
        t.notice_history.insert().values(
            notice_id=notice, status=status, at=at, detail=detail[:200] if detail else None
        )
    )


@dataclass(frozen=True)
class Outgoing:
    """A notice claimed for one attempt."""

    id: str
    recipient: str
    text: str
    unicode: bool
    attempts: int
    first_attempt_at: datetime | None
    gateway_index: int
    dossier_id: str | None


async def _claim_due(
    conn: AsyncConnection,
    table: sa.Table,
    key: str,
    waiting: tuple[str, ...],
    now: datetime,
    limit: int,
    lease: timedelta,
) -> list[Any]:
    """Rows whose time has come, and those whose sender died mid-attempt (lease over),
    marked `sending` until `now + lease`: another sender leaves them alone meanwhile."""
    c = table.c
    due = sa.or_(
        sa.and_(c.status.in_(waiting), c.next_attempt_at <= now),
        sa.and_(c.status == "sending", c.lease_until <= now),
    )
    query = (
        sa.select(table)
        .where(c.status.in_((*waiting, "sending")), c.next_attempt_at.is_not(None), due)
        .order_by(c.next_attempt_at)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = (await conn.execute(query)).all()
    if rows:
        await conn.execute(
            table.update()
            .where(c[key].in_([r._mapping[key] for r in rows]))
            .values(status="sending", lease_until=now + lease, updated_at=now)
        )
    return rows


async def claim_due_notices(
    conn: AsyncConnection, now: datetime, limit: int, lease: timedelta
) -> list[Outgoing]:
    rows = await _claim_due(conn, t.notices, "id", ("held", "pending"), now, limit, lease)
    return [
        Outgoing(
            r.id,
            r.recipient,
            r.text,
            r.unicode,
            r.attempts,
            r.first_attempt_at,
            r.gateway_index,
            r.dossier_id,
        )
        for r in rows
    ]


@dataclass(frozen=True)
class EarlyReceipts:
    """How many receipts for messages not recorded yet are kept, and how long. They wait for
    the gateway's answer to be committed (seconds; after a crash, until the resend): a bound
    keeps a flood of receipts for messages that will never come from filling the table."""

    max_count: int = 10_000
    max_age: timedelta = timedelta(hours=24)


async def mark_accepted(
    conn: AsyncConnection,
    notice: Outgoing,
    gateway: str,
    message_id: str,
    now: datetime,
    early_max_age: timedelta = EarlyReceipts.max_age,
) -> None:
    await _after_attempt(
        conn,
        notice,
        now,
        status="accepted",
        gateway=gateway,
        message_id=message_id,
        next_attempt_at=None,
        lease_until=None,
        error=None,
    )
    await add_history(conn, notice.id, "accepted", now, gateway)
    early = (
        await conn.execute(
            sa.delete(t.early_receipts)
            .where(t.early_receipts.c.message_id == message_id)
            .returning(
                t.early_receipts.c.status,
                t.early_receipts.c.error,
                t.early_receipts.c.received_at,
            )
        )
    ).first()
    if early is not None and early.received_at >= now - early_max_age:
        await apply_receipt(conn, message_id, early.status, early.error, now)


async def mark_retry(
    conn: AsyncConnection,
    notice: Outgoing,
    gateway: str,
    error: str,
    next_attempt_at: datetime,
    gateway_index: int,
    now: datetime,
) -> None:
    await _after_attempt(
        conn,
        notice,
        now,
        status="pending",
        gateway=gateway,
        next_attempt_at=next_attempt_at,
        lease_until=None,
        error=error[:200],
        gateway_index=gateway_index,
    )
    await add_history(conn, notice.id, "retry", now, f"{gateway}: {error}")


async def mark_failed(
    conn: AsyncConnection, notice: Outgoing, gateway: str, error: str, now: datetime
) -> None:
    await _after_attempt(
        conn,
        notice,
        now,
        status="failed",
        gateway=gateway,
        next_attempt_at=None,
        lease_until=None,
        error=error[:200],
    )
    await add_history(conn, notice.id, "failed", now, f"{gateway}: {error}")


async def _after_attempt(
    conn: AsyncConnection, notice: Outgoing, now: datetime, **values: Any
) -> None:
    await conn.execute(
        t.notices.update()
        .where(t.notices.c.id == notice.id)
        .values(
            attempts=notice.attempts + 1,
            first_attempt_at=notice.first_attempt_at or now,
            updated_at=now,
            **values,
        )
    )


async def apply_receipt(
    conn: AsyncConnection,
    message_id: str,
    status: str,
    error: str | None,
    now: datetime,
    early: EarlyReceipts | None = None,
) -> str | None:
    """Delivery receipt (báo cáo gửi tin): accepted → delivered | failed. Returns the notice
    id, or None when no notice has the message id yet (kept for when it does, within
    ``early``'s bounds)."""
    c = t.notices.c
    row = (await conn.execute(sa.select(c.id, c.status).where(c.message_id == message_id))).first()
    if row is None:
        await _keep_early_receipt(conn, message_id, status, error, now, early or EarlyReceipts())
        return None
    if row.status in ("accepted", "sending", "pending"):
        await conn.execute(
            t.notices.update()
            .where(c.id == row.id)
            .values(status=status, error=error[:200] if error else None, updated_at=now)
        )
        await add_history(conn, row.id, status, now, error)
    return str(row.id)


async def _keep_early_receipt(
    conn: AsyncConnection,
    message_id: str,
    status: str,
    error: str | None,
    now: datetime,
    bounds: EarlyReceipts,
) -> None:
    c = t.early_receipts.c
    await conn.execute(t.early_receipts.delete().where(c.received_at < now - bounds.max_age))
    insert = dialect_insert(conn, t.early_receipts).values(
        message_id=message_id, status=status, error=error, received_at=now
    )
    if not (await conn.execute(insert.on_conflict_do_nothing())).rowcount:
        return  # told twice: the first is kept
    kept = (await conn.execute(sa.select(sa.func.count()).select_from(t.early_receipts))).scalar()
    over = int(kept or 0) - bounds.max_count
    if over > 0:
        # The oldest go: a genuine early receipt is matched within seconds of its arrival.
        oldest = (
            sa.select(c.message_id)
            .where(c.message_id != message_id)
            .order_by(c.received_at, c.message_id)
            .limit(over)
        )
        await conn.execute(t.early_receipts.delete().where(c.message_id.in_(oldest)))


# -- postal orders --------------------------------------------------------------------------


async def add_postal_order(conn: AsyncConnection, order: PostalOrderDraft, now: datetime) -> bool:
    """Insert the order unless the dossier has one; True when it is new (with its history)."""
    receiver = {
        "name": order.receiver.name,
        "phone": order.receiver.phone,
        "address": dict(order.address),
    }
    insert = dialect_insert(conn, t.postal_orders).values(
        dossier_id=order.dossier_id,
        reference=order.reference,
        receiver=receiver,
        content=order.content,
        status="pending",
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )
    result = await conn.execute(insert.on_conflict_do_nothing())
    if not result.rowcount:
        return False
    await add_postal_history(conn, order.dossier_id, "pending", now)
    return True


async def add_postal_history(
    conn: AsyncConnection, dossier_id: str, status: str, at: datetime, detail: str | None = None
) -> None:
    await conn.execute(
        t.postal_history.insert().values(
            dossier_id=dossier_id, status=status, at=at, detail=detail[:200] if detail else None
        )
    )


@dataclass(frozen=True)
class PendingOrder:
    dossier_id: str
    reference: str
    receiver: Mapping[str, Any]
    content: str
    attempts: int
    first_attempt_at: datetime | None


async def claim_due_orders(
    conn: AsyncConnection, now: datetime, limit: int, lease: timedelta
) -> list[PendingOrder]:
    rows = await _claim_due(conn, t.postal_orders, "dossier_id", ("pending",), now, limit, lease)
    return [
        PendingOrder(
            r.dossier_id, r.reference, r.receiver, r.content, r.attempts, r.first_attempt_at
        )
        for r in rows
    ]


async def update_order(
    conn: AsyncConnection, order: PendingOrder, now: datetime, **values: Any
) -> None:
    await conn.execute(
        t.postal_orders.update()
        .where(t.postal_orders.c.dossier_id == order.dossier_id)
        .values(
            attempts=order.attempts + 1,
            first_attempt_at=order.first_attempt_at or now,
            lease_until=None,
            updated_at=now,
            **values,
        )
    )


async def advance_carrier_status(
    conn: AsyncConnection, dossier_id: str, known: str | None, status: str, now: datetime
) -> bool:
    """Set the operator's status if it is still ``known``; False when another callback moved
    it in the meantime (the caller decided on ``known``)."""
    c = t.postal_orders.c
    still = c.carrier_status.is_(None) if known is None else c.carrier_status == known
    result = await conn.execute(
        t.postal_orders.update()
        .where(c.dossier_id == dossier_id, still)
        .values(carrier_status=status, updated_at=now)
    )
    return bool(result.rowcount)


async def order_by_tracking(conn: AsyncConnection, tracking_code: str) -> Any:
    return (
        await conn.execute(
            sa.select(t.postal_orders).where(t.postal_orders.c.tracking_code == tracking_code)
        )
    ).first()


# -- metrics --------------------------------------------------------------------------------


async def count_by_status(conn: AsyncConnection, table: sa.Table) -> dict[str, int]:
    """Rows of the notices or the postal orders table by status."""
    query = sa.select(table.c.status, sa.func.count()).group_by(table.c.status)
    return {status: int(count) for status, count in await conn.execute(query)}


# -- calendar -------------------------------------------------------------------------------


async def load_overrides(conn: AsyncConnection) -> list[CalendarOverride]:
    raw = (
        await conn.execute(sa.select(t.calendar.c.overrides).where(t.calendar.c.id == 1))
    ).scalar_one_or_none()
    return [
        CalendarOverride(date.fromisoformat(o["day"]), DayKind(o["kind"]), o.get("note", ""))
        for o in raw or []
    ]


async def save_overrides(
    conn: AsyncConnection, overrides: Sequence[CalendarOverride], now: datetime
) -> None:
    values = {
        "overrides": [
            {"day": o.day.isoformat(), "kind": o.kind.value, "note": o.note} for o in overrides
        ],
        "updated_at": now,
    }
    insert = dialect_insert(conn, t.calendar).values(id=1, **values)
    await conn.execute(insert.on_conflict_do_update(index_elements=["id"], set_=values))
