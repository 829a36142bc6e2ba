"""The satisfaction ratings' rows (`intake_ratings`): one per dossier, and the sums the
report is made of. The rules are services.intake.satisfaction's."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.core.runtime.database import dialect_insert
from services.intake.adapters import tables as t
from services.intake.adapters.reports import Period

QUESTIONS = ("ease", "attitude", "on_time", "overall")
SATISFIED_FROM = 4  # "hài lòng" (4) or "rất hài lòng" (5) overall

r = t.ratings
d = t.dossiers


async def dossier_row(conn: AsyncConnection, code: str, *, lock: bool = False) -> Any | None:
    """The dossier ``code`` as the rating page needs it, with whether it was rated; its row
    locked until commit when ``lock`` (PostgreSQL; SQLite's BEGIN IMMEDIATE holds the
    database): the erasure of its data waits, so no comment is saved past it."""
    rated = sa.exists().where(r.c.dossier_id == d.c.id)
    query = sa.select(
        d.c.id,
        d.c.code,
        d.c.agency_code,
        d.c.procedure_code,
        d.c.status,
        d.c.personal_data_erased_at,
        d.c.state,
        rated.label("rated"),
    ).where(d.c.code == code)
    if lock:
        query = query.with_for_update(of=d)
    return (await conn.execute(query)).first()


async def insert(conn: AsyncConnection, row: Mapping[str, Any]) -> bool:
    """Save a rating; False when the dossier already has one (nothing changes then)."""
    query = dialect_insert(conn, r).values(**row).on_conflict_do_nothing()
    result = await conn.execute(query)
    return bool(result.rowcount)


async def erase_comments(conn: AsyncConnection, dossier_ids: Collection[str]) -> None:
    """Forget the comments of these dossiers' ratings (the answers stay, for the report)."""
    if dossier_ids:
        query = r.update().where(r.c.dossier_id.in_(sorted(dossier_ids))).values(comment=None)
        await conn.execute(query)


async def sums(
    conn: AsyncConnection, agency: str | None, period: Period
) -> list[tuple[str, str, int, dict[str, int], int]]:
    """Per agency and procedure, of the ratings answered in ``period``: (agency, procedure,
    answers, the sum of each question's answers, how many were satisfied overall)."""
    satisfied = sa.case((r.c.overall >= SATISFIED_FROM, 1), else_=0)
    query = (
        sa.select(
            r.c.agency_code,
            r.c.procedure_code,
            sa.func.count().label("answers"),
            *(sa.func.sum(r.c[name]).label(name) for name in QUESTIONS),
            sa.func.sum(satisfied).label("satisfied"),
        )
        .where(r.c.answered_at >= period.start, r.c.answered_at < period.end)
        .group_by(r.c.agency_code, r.c.procedure_code)
        .order_by(r.c.agency_code, r.c.procedure_code)
    )
    if agency:
        query = query.where(r.c.agency_code == agency)
    return [
        (
            row.agency_code,
            row.procedure_code,
            int(row.answers),
            {name: int(row._mapping[name]) for name in QUESTIONS},
            int(row.satisfied),
        )
        for row in await conn.execute(query)
    ]


def row_of(
    dossier_id: str,
    agency_code: str,
    procedure_code: str,
    answers: Mapping[str, int],
    comment: str | None,
    at: datetime,
) -> dict[str, Any]:
    return {
        "dossier_id": dossier_id,
        "agency_code": agency_code,
        "procedure_code": procedure_code,
        "answered_at": at,
        **{name: answers[name] for name in QUESTIONS},
        "comment": comment,
    }
