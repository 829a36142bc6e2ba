"""The catalogue's use cases: procedures (thủ tục hành chính) and calendar corrections.

Commands are plain data; each use case owns its transaction. A calendar correction is
published on motcua.calendar.v1 (with the whole table of corrections) in the same transaction,
for the tracker moves the open deadlines it touches. Agencies and their supervisors are in
directory.py; the HTTP layer (api/catalogue.py) only translates requests and answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.domain.calendar import CalendarOverride
from services.intake.adapters import catalogue_store
from services.intake.adapters import tables as t
from services.intake.adapters.catalogue_store import CodeTaken


@dataclass(frozen=True)
class AddProcedure:
    code: str
    name: str
    agency_code: str
    time_limit_value: int
    time_limit_unit: str
    cutoff_time: time | str | None
    postal_return: bool


async def add_procedure(engine: AsyncEngine, command: AddProcedure, now: datetime) -> None:
    """A procedure under a new or known agency; CodeTaken when its code exists, in any case
    (a clerk typing 'dd-01' must find 'DD-01', not a second procedure)."""
    try:
        async with engine.begin() as conn:
            existing = await catalogue_store.code_in_any_case(conn, t.procedures, command.code)
            if existing is not None:
                raise CodeTaken("code", f"a procedure with this code exists: {existing}")
            await catalogue_store.ensure_agency(conn, command.agency_code, now)
            await catalogue_store.insert_procedure(conn, command, now)
    except IntegrityError:  # the same code added at the same moment elsewhere
        raise CodeTaken("code", "a procedure with this code exists") from None


async def set_calendar_day(
    engine: AsyncEngine, day: date, kind: str, note: str | None, now: datetime
) -> list[CalendarOverride]:
    """Declare a day off or a working day; returns the corrections now in force."""
    async with engine.begin() as conn:
        await catalogue_store.replace_override(conn, day, kind, note, now)
        overrides = await catalogue_store.load_overrides(conn)
        await catalogue_store.publish_calendar_change(conn, day, kind, overrides, now)
    return overrides


async def clear_calendar_day(
    engine: AsyncEngine, day: date, now: datetime
) -> list[CalendarOverride] | None:
    """Withdraw a correction; None when there was none that day."""
    async with engine.begin() as conn:
        if not await catalogue_store.delete_override(conn, day):
            return None
        overrides = await catalogue_store.load_overrides(conn)
        await catalogue_store.publish_calendar_change(conn, day, None, overrides, now)
    return overrides
