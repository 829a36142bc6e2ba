"""The catalogue's rows: procedures, agencies and their supervisors, calendar corrections, and
the directory and calendar events that follow their changes. In the caller's transaction."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas.events import (
    CALENDAR_CHANGED,
    SUPERVISORS_CHANGED,
    CalendarChanged,
    CalendarDay,
    CalendarEnvelope,
    DirectoryEnvelope,
    Supervisor,
    SupervisorsChanged,
)
from services.core.domain.calendar import CalendarOverride, DayKind, OfficeSchedule
from services.core.domain.deadlines import TimeLimit, TimeUnit
from services.core.runtime.kafka import (
    CALENDAR_KEY,
    CALENDAR_TOPIC,
    DIRECTORY_TOPIC,
)
from services.core.runtime.outbox import add_to_outbox, outbox_row
from services.intake.adapters import tables as t
from services.intake.adapters.repository import new_id
from services.intake.domain.model import Procedure

# --- catalogue -------------------------------------------------------------------------


def procedure_from_row(row: Any) -> Procedure:
    return Procedure(
        code=row.code,
        name=row.name,
        agency_code=row.agency_code,
        time_limit=TimeLimit(row.time_limit_value, TimeUnit(row.time_limit_unit)),
        cutoff_time=time.fromisoformat(row.cutoff_time) if row.cutoff_time else None,
        postal_return=row.postal_return,
    )


async def get_procedure(conn: AsyncConnection, code: str) -> Procedure | None:
    row = (await conn.execute(sa.select(t.procedures).where(t.procedures.c.code == code))).first()
    return procedure_from_row(row) if row else None


async def get_agency(conn: AsyncConnection, code: str) -> Any:
    return (await conn.execute(sa.select(t.agencies).where(t.agencies.c.code == code))).first()


async def code_in_any_case(conn: AsyncConnection, table: sa.Table, code: str) -> str | None:
    """The code of the agency or procedure that `code` names whatever its case, as stored.

    Codes are unique case-insensitively (a unique index on lower(code)): VPDK-Q1 and vpdk-q1
    would be one office to a clerk and two to the database."""
    found = await conn.execute(
        sa.select(table.c.code).where(sa.func.lower(table.c.code) == code.lower())
    )
    return found.scalar_one_or_none()


async def list_procedures(conn: AsyncConnection) -> list[Any]:
    return list(await conn.execute(sa.select(t.procedures).order_by(t.procedures.c.code)))


async def insert_procedure(conn: AsyncConnection, procedure: Any, now: datetime) -> None:
    """A procedure row (catalogue.AddProcedure's fields)."""
    await conn.execute(
        t.procedures.insert().values(
            code=procedure.code,
            name=procedure.name,
            agency_code=procedure.agency_code,
            time_limit_value=procedure.time_limit_value,
            time_limit_unit=procedure.time_limit_unit,
            cutoff_time=procedure.cutoff_time,
            postal_return=procedure.postal_return,
            created_at=now,
        )
    )


async def replace_override(
    conn: AsyncConnection, day: date, kind: str, note: str | None, now: datetime
) -> None:
    c = t.calendar_overrides.c
    await conn.execute(t.calendar_overrides.delete().where(c.day == day))
    await conn.execute(
        t.calendar_overrides.insert().values(day=day, kind=kind, note=note, updated_at=now)
    )


async def delete_override(conn: AsyncConnection, day: date) -> bool:
    """Whether there was a correction that day."""
    c = t.calendar_overrides.c
    result = await conn.execute(t.calendar_overrides.delete().where(c.day == day))
    return bool(result.rowcount)


async def load_overrides(conn: AsyncConnection) -> list[CalendarOverride]:
    rows = await conn.execute(sa.select(t.calendar_overrides).order_by(t.calendar_overrides.c.day))
    return [CalendarOverride(r.day, DayKind(r.kind), r.note) for r in rows]


async def publish_calendar_change(
    conn: AsyncConnection,
    day: date,
    kind: str | None,
    overrides: list[CalendarOverride],
    now: datetime,
) -> None:
    """Tell the tracker (motcua.calendar.v1) in the same transaction as the change."""
    envelope = CalendarEnvelope(
        event_id=new_id(now),
        type=CALENDAR_CHANGED,
        occurred_at=now,
        payload=CalendarChanged(
            day=day,
            kind=kind,  # type: ignore[arg-type]
            overrides=[
                CalendarDay(day=o.day, kind=o.kind.value, note=o.note)  # type: ignore[arg-type]
                for o in overrides
            ],
        ),
    )
    await _to_outbox(conn, envelope, CALENDAR_TOPIC, CALENDAR_KEY, now)


class CodeTaken(Exception):
    """A code that another agency or procedure holds in another case (→ HTTP 409)."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


DEFAULT_SCHEDULE = OfficeSchedule.default().to_dict()


async def ensure_agency(conn: AsyncConnection, code: str, now: datetime) -> bool:
    """An agency named by a procedure exists from then on, with the default office hours.
    True when this call created it.

    A code that differs from an existing one only in case is refused, not made a second
    agency (the field is `agency_code` wherever an agency is named)."""
    existing = await code_in_any_case(conn, t.agencies, code)
    if existing is None:
        await conn.execute(
            t.agencies.insert().values(
                code=code, name=code, office_schedule=DEFAULT_SCHEDULE, created_at=now
            )
        )
        return True
    if existing != code:
        message = f"the agency {existing} exists: codes differ only in case; use {existing}"
        raise CodeTaken("agency_code", message)
    return False


async def list_agencies(conn: AsyncConnection) -> list[Any]:
    return list(await conn.execute(sa.select(t.agencies).order_by(t.agencies.c.code)))


async def load_supervisors(conn: AsyncConnection, agency_code: str) -> list[Supervisor]:
    c = t.supervisors.c
    rows = await conn.execute(
        sa.select(c.id, c.name, c.phone, c.email)
        .where(c.agency_code == agency_code)
        .order_by(c.created_at, c.id)
    )
    return [Supervisor(id=r.id, name=r.name, phone=r.phone, email=r.email) for r in rows]


async def add_supervisor(
    conn: AsyncConnection, agency_code: str, supervisor: Supervisor, now: datetime
) -> None:
    await conn.execute(
        t.supervisors.insert().values(
            id=supervisor.id,
            agency_code=agency_code,
            name=supervisor.name,
            phone=supervisor.phone,
            email=supervisor.email,
            created_at=now,
        )
    )


async def save_supervisor(conn: AsyncConnection, agency_code: str, supervisor: Supervisor) -> bool:
    """Store a supervisor's new details; False when the agency has no such supervisor."""
    c = t.supervisors.c
    result = await conn.execute(
        t.supervisors.update()
        .where(c.id == supervisor.id, c.agency_code == agency_code)
        .values(name=supervisor.name, phone=supervisor.phone, email=supervisor.email)
    )
    return bool(result.rowcount)


async def remove_supervisor(conn: AsyncConnection, agency_code: str, supervisor_id: str) -> bool:
    """False when the agency has no such supervisor."""
    c = t.supervisors.c
    result = await conn.execute(
        t.supervisors.delete().where(c.id == supervisor_id, c.agency_code == agency_code)
    )
    return bool(result.rowcount)


async def publish_directory_entry(conn: AsyncConnection, agency_code: str, now: datetime) -> None:
    """Tell the notifier (motcua.directory.v1) in the same transaction as the change. The
    record carries the agency's name and whole list, so the latest record of a key is all it
    needs."""
    agency = await get_agency(conn, agency_code)
    envelope = DirectoryEnvelope(
        event_id=new_id(now),
        type=SUPERVISORS_CHANGED,
        occurred_at=now,
        payload=SupervisorsChanged(
            agency_code=agency_code,
            agency_name=agency.name if agency else None,
            supervisors=await load_supervisors(conn, agency_code),
        ),
    )
    await _to_outbox(conn, envelope, DIRECTORY_TOPIC, agency_code, now)


async def _to_outbox(
    conn: AsyncConnection,
    envelope: CalendarEnvelope | DirectoryEnvelope,
    topic: str,
    key: str,
    now: datetime,
) -> None:
    """One catalogue event into the intake's outbox, in the caller's transaction."""
    row = outbox_row(envelope.event_id, topic, key, envelope.model_dump_json(), now)
    await add_to_outbox(conn, t.outbox, [row])
