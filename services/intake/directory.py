"""The agencies' directory: each agency's name and its supervisors (lãnh đạo), whom the
notifier texts overdue alerts and digests.

Commands are plain data; each use case owns its transaction and writes, with the change, the
agency's directory entry as it stands after it (name and whole supervisor list) to the outbox
for motcua.directory.v1. The HTTP layer only translates requests and answers.

Writes to one agency's directory take turns on the agency's row: otherwise two admins adding
a supervisor each at once would each publish a list without the other's, and the notifier
would keep whichever came last, one supervisor short.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from schemas.events import Supervisor
from services.intake.adapters import catalogue_store
from services.intake.adapters import tables as t


class NotFound(LookupError):
    """The agency or the supervisor a command names does not exist (→ HTTP 404)."""

    def __init__(self, field_name: str, what: str, key: str, hint: str = "") -> None:
        super().__init__(f"{what} {key} not found{hint}")
        self.field = field_name


@dataclass(frozen=True)
class SupervisorDetails:
    name: str
    phone: str  # E.164, normalised by whoever built the command
    email: str | None = None


@dataclass(frozen=True)
class AddSupervisor:
    agency_code: str
    details: SupervisorDetails


@dataclass(frozen=True)
class ChangeSupervisor:
    """Replace a supervisor's details (all of them: the answer is what is stored)."""

    agency_code: str
    supervisor_id: str
    details: SupervisorDetails


@dataclass(frozen=True)
class RemoveSupervisor:
    agency_code: str
    supervisor_id: str


@dataclass(frozen=True)
class SetAgency:
    """Name an agency and set its office hours (an already validated schedule)."""

    agency_code: str
    name: str
    office_schedule: dict[str, Any]


def _agency_created_meanwhile() -> catalogue_store.CodeTaken:
    # Two requests created the agency (or two spellings of it) at once: the unique index
    # kept one of them; the other may simply be sent again.
    message = "the agency was created by another request meanwhile; try again"
    return catalogue_store.CodeTaken("agency_code", message)


async def _lock_agency(conn: AsyncConnection, agency_code: str) -> Any:
    """The agency's row, locked until the transaction ends (PostgreSQL; SQLite has one writer
    at a time anyway). NotFound, with the stored spelling as a hint, when there is none."""
    row = (
        await conn.execute(
            sa.select(t.agencies).where(t.agencies.c.code == agency_code).with_for_update()
        )
    ).first()
    if row is None:
        raise await unknown_agency(conn, agency_code)
    return row


async def unknown_agency(conn: AsyncConnection, agency_code: str) -> NotFound:
    spelled = await catalogue_store.code_in_any_case(conn, t.agencies, agency_code)
    return NotFound(
        "agency_code", "agency", agency_code, f"; did you mean {spelled}?" if spelled else ""
    )


async def add_supervisor(engine: AsyncEngine, command: AddSupervisor, now: datetime) -> Supervisor:
    """Register a supervisor; the agency exists from then on (default office hours)."""
    supervisor = Supervisor(id=str(uuid.uuid4()), **_details(command.details))
    try:
        async with engine.begin() as conn:
            await catalogue_store.ensure_agency(conn, command.agency_code, now)
            await _lock_agency(conn, command.agency_code)
            await catalogue_store.add_supervisor(conn, command.agency_code, supervisor, now)
            await catalogue_store.publish_directory_entry(conn, command.agency_code, now)
    except IntegrityError:
        raise _agency_created_meanwhile() from None
    return supervisor


async def change_supervisor(
    engine: AsyncEngine, command: ChangeSupervisor, now: datetime
) -> Supervisor:
    supervisor = Supervisor(id=command.supervisor_id, **_details(command.details))
    async with engine.begin() as conn:
        await _lock_agency(conn, command.agency_code)
        if not await catalogue_store.save_supervisor(conn, command.agency_code, supervisor):
            raise NotFound(
                "supervisor_id", "supervisor", command.supervisor_id, f" at {command.agency_code}"
            )
        await catalogue_store.publish_directory_entry(conn, command.agency_code, now)
    return supervisor


async def remove_supervisor(engine: AsyncEngine, command: RemoveSupervisor, now: datetime) -> None:
    """The notifier hears of the shorter list (an empty one when the last one goes)."""
    async with engine.begin() as conn:
        await _lock_agency(conn, command.agency_code)
        if not await catalogue_store.remove_supervisor(
            conn, command.agency_code, command.supervisor_id
        ):
            raise NotFound(
                "supervisor_id", "supervisor", command.supervisor_id, f" at {command.agency_code}"
            )
        await catalogue_store.publish_directory_entry(conn, command.agency_code, now)


async def set_agency(engine: AsyncEngine, command: SetAgency, now: datetime) -> None:
    """A new name reaches the notifier (its texts name agencies); new office hours do not
    concern it, so they alone publish nothing."""
    try:
        async with engine.begin() as conn:
            created = await catalogue_store.ensure_agency(conn, command.agency_code, now)
            before = await _lock_agency(conn, command.agency_code)
            await conn.execute(
                t.agencies.update()
                .where(t.agencies.c.code == command.agency_code)
                .values(name=command.name, office_schedule=command.office_schedule)
            )
            if created or before.name != command.name:
                await catalogue_store.publish_directory_entry(conn, command.agency_code, now)
    except IntegrityError:
        raise _agency_created_meanwhile() from None


def _details(details: SupervisorDetails) -> dict[str, Any]:
    return {"name": details.name, "phone": details.phone, "email": details.email}
