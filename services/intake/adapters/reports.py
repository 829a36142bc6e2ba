"""Báo cáo tỷ lệ đúng hạn: the on-time report, counted in SQL from the `intake_dossiers` read model.

Three GROUP BY queries (received, finished, still pending) and one for procedure names; no
dossier is ever loaded into Python, so the cost is one row per agency and procedure.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.core.domain.lifecycle import PENDING_STATUSES
from services.intake.adapters import tables as t

d = t.dossiers
OUTCOMES = ("early", "on_time", "late")
#: From the second supplement request on, the law was broken: all items at once (docs/domain.md).
VIOLATION_FROM = 2


@dataclass(frozen=True)
class Period:
    """Half-open [start, end) in UTC instants; built from local dates by the caller."""

    start: datetime
    end: datetime


@dataclass
class Counts:
    """The counted figures of one report row (or of the totals)."""

    received: int = 0
    finished_early: int = 0
    finished_on_time: int = 0
    finished_late: int = 0
    in_progress: int = 0
    overdue: int = 0
    supplement_violations: int = 0

    @property
    def on_time_rate(self) -> float | None:
        """Tỷ lệ đúng hạn: (early + on time) / finished; None when nothing finished."""
        in_time = self.finished_early + self.finished_on_time
        finished = in_time + self.finished_late
        return round(in_time / finished, 4) if finished else None

    def add(self, other: Counts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass(frozen=True)
class ReportRow:
    agency_code: str
    procedure_code: str
    procedure_name: str | None
    counts: Counts


@dataclass(frozen=True)
class OnTimeReport:
    rows: list[ReportRow]
    totals: Counts


Key = tuple[str, str]


async def on_time_report(conn: AsyncConnection, agency: str | None, period: Period) -> OnTimeReport:
    """The report for one agency (or all when ``agency`` is None) over ``period``."""
    counts: dict[Key, Counts] = {}
    await _count_received(conn, agency, period, counts)
    await _count_finished(conn, agency, period, counts)
    await _count_pending(conn, agency, period, counts)
    names = await procedure_names(conn, {procedure for _, procedure in counts})
    rows = [
        ReportRow(agency_code, procedure, names.get(procedure), counts[(agency_code, procedure)])
        for agency_code, procedure in sorted(counts)
    ]
    totals = Counts()
    for row in rows:
        totals.add(row.counts)
    return OnTimeReport(rows, totals)


def _of_agency(query: sa.Select, agency: str | None) -> sa.Select:
    # The receiving agency (bộ phận một cửa) answers for its dossiers, transferred or not.
    return query.where(d.c.agency_code == agency) if agency else query


def _grouped(*aggregates: sa.ColumnElement) -> sa.Select:
    return sa.select(d.c.agency_code, d.c.procedure_code, *aggregates).group_by(
        d.c.agency_code, d.c.procedure_code
    )


def _count_if(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    # SUM(CASE ...) rather than COUNT(*) FILTER: the same SQL on SQLite and PostgreSQL.
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


async def _count_received(
    conn: AsyncConnection, agency: str | None, period: Period, counts: dict[Key, Counts]
) -> None:
    query = _grouped(
        sa.func.count().label("received"),
        _count_if(d.c.supplement_requests >= VIOLATION_FROM).label("violations"),
    ).where(d.c.received_at >= period.start, d.c.received_at < period.end)
    for row in await conn.execute(_of_agency(query, agency)):
        entry = counts.setdefault((row.agency_code, row.procedure_code), Counts())
        entry.received = int(row.received)
        entry.supplement_violations = int(row.violations)


async def _count_finished(
    conn: AsyncConnection, agency: str | None, period: Period, counts: dict[Key, Counts]
) -> None:
    # Rejected and withdrawn dossiers have a finished_at but no outcome: not counted here.
    query = (
        _grouped(d.c.outcome, sa.func.count().label("finished"))
        .where(d.c.finished_at >= period.start, d.c.finished_at < period.end)
        .where(d.c.outcome.in_(OUTCOMES))
        .group_by(d.c.outcome)
    )
    for row in await conn.execute(_of_agency(query, agency)):
        entry = counts.setdefault((row.agency_code, row.procedure_code), Counts())
        setattr(entry, f"finished_{row.outcome}", int(row.finished))


async def _count_pending(
    conn: AsyncConnection, agency: str | None, period: Period, counts: dict[Key, Counts]
) -> None:
    # "Still pending" is as of now: the read model keeps no past statuses to ask about.
    query = _grouped(
        sa.func.count().label("pending"),
        _count_if(d.c.flag == "overdue").label("overdue"),
    ).where(
        d.c.received_at < period.end,
        d.c.status.in_(sorted(s.value for s in PENDING_STATUSES)),
    )
    for row in await conn.execute(_of_agency(query, agency)):
        entry = counts.setdefault((row.agency_code, row.procedure_code), Counts())
        entry.in_progress = int(row.pending)
        entry.overdue = int(row.overdue)


async def procedure_names(conn: AsyncConnection, codes: set[str]) -> dict[str, str]:
    if not codes:
        return {}
    query = sa.select(t.procedures.c.code, t.procedures.c.name).where(
        t.procedures.c.code.in_(sorted(codes))
    )
    return {row.code: row.name for row in await conn.execute(query)}
