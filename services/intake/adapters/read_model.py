"""The read model's side of a dossier row: the tracker's deadline word (due_at, flag, outcome,
held per deadline version and rank), the dossier list with its cursors, and the dashboard's
lists of flagged dossiers."""

from __future__ import annotations

import base64
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.core.domain.lifecycle import PENDING_STATUSES
from services.intake.adapters import tables as t
from services.intake.adapters.dossier_state import dossier_from_state
from services.intake.domain import access
from services.intake.domain.model import Dossier
from services.intake.domain.postal import Postal


@dataclass(frozen=True)
class DeadlineView:
    """The read model's deadline columns: what the tracker last said (hạn xử lý, cờ cảnh báo,
    kết quả đúng hạn), or what the intake itself wrote when its own action moved the clock."""

    due_at: datetime | None
    flag: str | None
    outcome: str | None

    @classmethod
    def of(cls, row: Any) -> DeadlineView:
        return cls(row.due_at, row.flag, row.outcome)

    @classmethod
    def of_dossier(cls, dossier: Dossier) -> DeadlineView:
        """The aggregate's own deadline: a moved or ended clock has no flag until the
        tracker raises one for the new deadline."""
        return cls(dossier.due_at, None, dossier.outcome)

    def columns(self) -> dict[str, Any]:
        # Spelled out: dataclasses.asdict deep-copies every value, on every dossier written.
        return {"due_at": self.due_at, "flag": self.flag, "outcome": self.outcome}


def postal_of(row: Any) -> Postal | None:
    """The read model's bưu gửi columns; None while no postal order is known."""
    if row.postal_tracking_code is None:
        return None
    return Postal(row.postal_tracking_code, row.postal_status, row.postal_status_at)


@dataclass(frozen=True)
class StoredDossier:
    """A dossier as the intake holds it: the aggregate, the version it was saved at, and what
    the read model keeps beside it (the tracker's deadline, the notifier's postal return)."""

    dossier: Dossier
    version: int
    deadline: DeadlineView
    postal: Postal | None

    @classmethod
    def of(cls, row: Any) -> StoredDossier:
        """From a row of the dossiers table."""
        return cls(dossier_from_state(row.state), row.version, DeadlineView.of(row), postal_of(row))


@dataclass(frozen=True)
class HeldDeadline:
    """What the read model holds of the tracker's word on one dossier: its deadline columns,
    the (deadline version, rank) they came from, and the dossier's status."""

    status: str
    version: int
    rank: int
    due_at: datetime | None
    flag: str | None
    outcome: str | None


async def lock_deadlines(
    conn: AsyncConnection, dossier_ids: Collection[str]
) -> dict[str, HeldDeadline]:
    """The deadlines held for the dossiers among `dossier_ids`, in one query, their rows
    locked until commit (PostgreSQL, in id order; SQLite's BEGIN IMMEDIATE already holds the
    database): a clerk's action on one of them waits instead of changing its status under us."""
    if not dossier_ids:
        return {}
    c = t.dossiers.c
    query = (
        sa.select(c.id, c.status, c.deadline_version, c.deadline_rank, c.due_at, c.flag, c.outcome)
        .where(c.id.in_(sorted(dossier_ids)))
        .order_by(c.id)
        .with_for_update()
    )
    return {
        r.id: HeldDeadline(
            r.status, r.deadline_version, r.deadline_rank, r.due_at, r.flag, r.outcome
        )
        for r in await conn.execute(query)
    }


async def save_deadlines(conn: AsyncConnection, held: Mapping[str, HeldDeadline]) -> None:
    """Write the deadline columns of these dossiers, in one executemany (the status is the
    aggregate's, and is left alone)."""
    if not held:
        return
    c = t.dossiers.c
    names = ("due_at", "flag", "outcome", "deadline_version", "deadline_rank")
    query = (
        t.dossiers.update()
        .where(c.id == sa.bindparam("b_id"))
        .values({name: sa.bindparam(name) for name in names})
    )
    rows = [
        {
            "b_id": dossier_id,
            "due_at": h.due_at,
            "flag": h.flag,
            "outcome": h.outcome,
            "deadline_version": h.version,
            "deadline_rank": h.rank,
        }
        for dossier_id, h in held.items()
    ]
    await conn.execute(query, rows)


# --- listing ---------------------------------------------------------------------------


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(str(seq).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    padded = cursor + "=" * (-len(cursor) % 4)
    text = base64.urlsafe_b64decode(padded.encode()).decode()
    # Only what encode_cursor makes: a BIGINT the database can compare with (else a 500).
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        raise ValueError("not a cursor")
    # base64 decoding skips characters outside its alphabet: "MTA%3", a cursor mangled in
    # copying, would otherwise pass for "MTA3" and show a page the client never asked for.
    if encode_cursor(int(text)) != cursor:
        raise ValueError("not a cursor")
    return int(text)


async def dossier_page(
    conn: AsyncConnection,
    *,
    visible_to_agency: str | None,
    status: str | None,
    agency: str | None,
    flag: str | None,
    limit: int,
    before_seq: int | None,
) -> tuple[list[StoredDossier], str | None]:
    """One page of the dossiers a list shows, newest first, and the cursor of the next."""
    query = sa.select(t.dossiers).order_by(t.dossiers.c.seq.desc()).limit(limit + 1)
    if visible_to_agency:
        query = query.where(_visible_to(visible_to_agency))
    if agency:
        query = query.where(_visible_to(agency))
    if status:
        query = query.where(t.dossiers.c.status == status)
    if flag:
        query = query.where(t.dossiers.c.flag == flag)
    if before_seq is not None:
        query = query.where(t.dossiers.c.seq < before_seq)
    rows = list(await conn.execute(query))
    cursor = encode_cursor(rows[limit - 1].seq) if len(rows) > limit else None
    rows = rows[:limit]
    return [StoredDossier.of(r) for r in rows], cursor


def _visible_to(agency_code: str) -> sa.ColumnElement[bool]:
    """access.may_see as a filter: the agency received the dossier or holds it."""
    return sa.or_(*(t.dossiers.c[name] == agency_code for name in access.VISIBLE_THROUGH))


# --- the dashboard's lists -------------------------------------------------------------


@dataclass(frozen=True)
class FlaggedDossier:
    """An open dossier the tracker flagged due soon or overdue, as the dashboard lists it."""

    code: str
    agency_code: str
    procedure_code: str
    procedure_name: str | None
    status: str
    due_at: datetime | None


async def flagged_dossiers(
    conn: AsyncConnection, *, visible_to_agency: str | None, flag: str, limit: int
) -> tuple[list[FlaggedDossier], int]:
    """Open dossiers flagged ``flag`` that the agency sees (None: every agency), the earliest
    due first, at most ``limit``; and how many there are in all."""
    d, p = t.dossiers.c, t.procedures.c
    where = [d.flag == flag, d.status.in_(sorted(s.value for s in PENDING_STATUSES))]
    if visible_to_agency:
        where.append(_visible_to(visible_to_agency))
    total = await conn.scalar(sa.select(sa.func.count()).select_from(t.dossiers).where(*where))
    query = (
        sa.select(d.code, d.agency_code, d.procedure_code, p.name, d.status, d.due_at)
        .select_from(t.dossiers.outerjoin(t.procedures, p.code == d.procedure_code))
        .where(*where)
        .order_by(d.due_at, d.seq)
        .limit(limit)
    )
    rows = [
        FlaggedDossier(r.code, r.agency_code, r.procedure_code, r.name, r.status, r.due_at)
        for r in await conn.execute(query)
    ]
    return rows, int(total or 0)
