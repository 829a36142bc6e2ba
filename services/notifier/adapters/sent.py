"""What was sent: the notices and postal orders read back, with their history, for the
internal routes the intake asks (schemas.internal_api). Read only; a few queries per answer,
none per notice.

Phones leave masked (mask_phone): the intake shows them to clerks and supervisors, who need
to know a text went to the applicant's number, not the number."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas.internal_api import NoticeStep, SentNotice
from services.core.phones import mask_phone
from services.notifier.adapters import tables as t

CITIZEN = "citizen"  # the postal order goes to the applicant
# A parcel the operator could not deliver, or sent back, failed as much as an unplaced order.
POSTAL_FAILED = ("failed", "returned")


async def dossier_notices(conn: AsyncConnection, dossier_id: str) -> list[SentNotice]:
    """Every SMS about the dossier in the order they were decided, then its postal order."""
    n = t.notices.c
    rows = list(
        await conn.execute(
            sa.select(t.notices).where(n.dossier_id == dossier_id).order_by(n.seq, n.created_at)
        )
    )
    orders = list(
        await conn.execute(
            sa.select(t.postal_orders, t.dossiers.c.code, t.dossiers.c.agency_code)
            .outerjoin(t.dossiers, t.dossiers.c.dossier_id == t.postal_orders.c.dossier_id)
            .where(t.postal_orders.c.dossier_id == dossier_id)
        )
    )
    return [*await _sms(conn, rows), *await _postal(conn, orders)]


async def failed_notices(
    conn: AsyncConnection, agency: str | None, start: datetime, end: datetime, limit: int
) -> tuple[list[SentNotice], int]:
    """The SMS and postal orders of ``agency`` (None: every agency) that failed for good in
    [start, end), the latest first, at most ``limit``; and how many there are in all."""
    n = t.notices.c
    sms_where = [n.status == "failed", n.updated_at >= start, n.updated_at < end]
    if agency:
        sms_where.append(n.agency_code == agency)
    o, d = t.postal_orders.c, t.dossiers.c
    postal_where = [
        sa.or_(o.status == "failed", o.carrier_status.in_(POSTAL_FAILED)),
        o.updated_at >= start,
        o.updated_at < end,
    ]
    if agency:
        postal_where.append(d.agency_code == agency)
    joined = t.postal_orders.outerjoin(t.dossiers, d.dossier_id == o.dossier_id)
    sms_total = await conn.scalar(
        sa.select(sa.func.count()).select_from(t.notices).where(*sms_where)
    )
    postal_total = await conn.scalar(
        sa.select(sa.func.count()).select_from(joined).where(*postal_where)
    )
    rows = list(
        await conn.execute(
            sa.select(t.notices).where(*sms_where).order_by(n.updated_at.desc()).limit(limit)
        )
    )
    orders = list(
        await conn.execute(
            sa.select(t.postal_orders, d.code, d.agency_code)
            .select_from(joined)
            .where(*postal_where)
            .order_by(o.updated_at.desc())
            .limit(limit)
        )
    )
    found = [*await _sms(conn, rows), *await _postal(conn, orders)]
    found.sort(key=lambda notice: notice.updated_at, reverse=True)
    return found[:limit], int(sms_total or 0) + int(postal_total or 0)


async def _sms(conn: AsyncConnection, rows: Sequence[Any]) -> list[SentNotice]:
    history = await _history(conn, t.notice_history, "notice_id", [r.id for r in rows])
    return [
        SentNotice(
            kind="sms",
            role=r.audience,
            recipient=mask_phone(r.recipient),
            template=r.template,
            text=r.text,
            status=r.status,
            reason=r.error,
            tracking_code=None,
            dossier_code=r.dossier_code,
            agency_code=r.agency_code,
            created_at=r.created_at,
            updated_at=r.updated_at,
            history=history.get(r.id, []),
        )
        for r in rows
    ]


async def _postal(conn: AsyncConnection, rows: Sequence[Any]) -> list[SentNotice]:
    history = await _history(conn, t.postal_history, "dossier_id", [r.dossier_id for r in rows])
    return [
        SentNotice(
            kind="postal",
            role=CITIZEN,
            recipient=mask_phone(str((r.receiver or {}).get("phone") or "")),
            template=None,
            text=r.content,
            status=r.carrier_status or r.status,
            reason=r.error,
            tracking_code=r.tracking_code,
            dossier_code=r.code if r.code is not None else r.reference,
            agency_code=r.agency_code,
            created_at=r.created_at,
            updated_at=r.updated_at,
            history=history.get(r.dossier_id, []),
        )
        for r in rows
    ]


async def _history(
    conn: AsyncConnection, table: sa.Table, key: str, ids: Iterable[str]
) -> dict[str, list[NoticeStep]]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    c = table.c
    query = sa.select(c[key], c.status, c.at, c.detail).where(c[key].in_(wanted)).order_by(c.id)
    steps: dict[str, list[NoticeStep]] = {}
    for row in await conn.execute(query):
        step = NoticeStep(status=row.status, at=row.at, detail=row.detail)
        steps.setdefault(row._mapping[key], []).append(step)
    return steps
