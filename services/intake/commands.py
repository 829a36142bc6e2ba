"""Intake command handlers: each takes its ports as arguments and runs in one transaction.

The HTTP layer parses and authorises; these functions load, decide (through the domain
model), and save the state together with its events in the caller's transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.core.calendars import CalendarBook
from services.core.domain.calendar import VN_TZ, WorkingCalendar
from services.core.domain.codes import AGENCY_CODE_MAX_LENGTH, valid_agency_code
from services.core.domain.lifecycle import PENDING_STATUSES
from services.core.runtime.group_commit import Batch
from services.intake.adapters import catalogue_store, read_model
from services.intake.adapters import repository as repo
from services.intake.adapters import tables as t
from services.intake.context import CatalogueEntry
from services.intake.domain.actions import (
    DossierAction,
    DossierChange,
    ReceiveDossier,
    Transfer,
    decide,
)
from services.intake.domain.model import Dossier, InvalidCommand


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: dict[str, Any]


def request_fingerprint(body: dict[str, Any]) -> str:
    """Of a request's body as JSON: a key used again must come with the same request."""
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


async def find_idempotent(
    conn: AsyncConnection, principal_id: str, key: str, fingerprint: str
) -> StoredResponse | None:
    row = (
        await conn.execute(
            sa.select(t.idempotency_keys).where(
                t.idempotency_keys.c.principal_id == principal_id,
                t.idempotency_keys.c.key == key,
            )
        )
    ).first()
    if row is None:
        return None
    if row.request_hash != fingerprint:
        raise InvalidCommand("Idempotency-Key", "this key was already used for a different request")
    return StoredResponse(row.status_code, row.response)


async def remember_idempotent(
    conn: AsyncConnection,
    principal_id: str,
    key: str,
    fingerprint: str,
    response: StoredResponse,
    now: datetime,
) -> None:
    await conn.execute(
        t.idempotency_keys.insert().values(
            principal_id=principal_id,
            key=key,
            request_hash=fingerprint,
            status_code=response.status_code,
            response=response.body,
            created_at=now,
        )
    )


async def forget_idempotent_before(conn: AsyncConnection, before: datetime) -> int:
    """Housekeeping: a key is for retries of one request, minutes apart, and its stored answer
    holds the applicant's personal data, so it is not kept for long."""
    k = t.idempotency_keys
    result = await conn.execute(k.delete().where(k.c.created_at < before))
    return int(result.rowcount or 0)


async def agency_calendar(
    conn: AsyncConnection, calendars: CalendarBook, agency_code: str
) -> tuple[WorkingCalendar, dict[str, Any]]:
    agency = await catalogue_store.get_agency(conn, agency_code)
    schedule: dict[str, Any] = agency.office_schedule if agency else {}
    return calendars.for_schedule_dict(schedule or None), schedule


def check_receipt(
    order: ReceiveDossier, entry: CatalogueEntry | None, now: datetime, allowed_agency: str | None
) -> tuple[CatalogueEntry, datetime]:
    """Tiếp nhận hồ sơ, what needs no write: the procedure exists for the clerk's agency and
    the receipt is not in the future. Decided before the request joins a batch of writes."""
    # allowed_agency is the caller's access.agency_scope: None for an admin, who may
    # receive for any agency.
    if entry is None or (allowed_agency and entry.procedure.agency_code != allowed_agency):
        raise InvalidCommand("procedure_code", "no such procedure for your agency")
    if not valid_agency_code(entry.procedure.agency_code):
        # An agency recorded before codes were limited: its dossier codes would be longer
        # than the texts are budgeted for, and a code cut in an SMS is one nobody can find.
        raise InvalidCommand(
            "procedure_code",
            f"its agency code is longer than {AGENCY_CODE_MAX_LENGTH} characters; "
            "record the procedure under an agency with a shorter code",
        )
    received_at = (order.received_at or now).astimezone(VN_TZ)
    if received_at > now:
        raise InvalidCommand("received_at", "must not be in the future")
    return entry, received_at


async def record_receipt(
    conn: AsyncConnection,
    batch: Batch,
    order: ReceiveDossier,
    entry: CatalogueEntry,
    received_at: datetime,
    calendars: CalendarBook,
    now: datetime,
) -> Dossier:
    """Tiếp nhận hồ sơ: record it, fix its appointment, queue `dossier.received`.

    Runs inside a group commit's transaction (core.runtime.group_commit): the day's code is
    counted on in the batch (the counter row is locked until the batch commits, read and
    stored once per batch); the dossier and its outbox row are inserted with the batch's other
    rows, in the same transaction."""
    procedure, schedule = entry.procedure, entry.schedule
    calendar = calendars.for_schedule(entry.office_schedule)
    code = await repo.next_code(batch, conn, procedure.agency_code, received_at.date())
    dossier = Dossier.receive(
        id=repo.new_id(now),
        code=code,
        procedure=procedure,
        applicant=order.applicant,
        channel=order.channel,
        return_method=order.return_method,
        return_address=order.return_address,
        received_at=received_at,
        calendar=calendar,
        office_schedule=schedule,
        documents=order.documents,
    )
    repo.defer_new_dossier(batch, dossier, now)
    return dossier


async def check_references(conn: AsyncConnection, action: DossierAction) -> None:
    """What an action names must exist: a dossier is transferred to an agency of the
    catalogue, spelled as it is there (else the dossier would sit with an office no clerk
    or supervisor has)."""
    if not isinstance(action, Transfer) or await catalogue_store.get_agency(conn, action.to_agency):
        return
    spelled = await catalogue_store.code_in_any_case(conn, t.agencies, action.to_agency)
    hint = f"; did you mean {spelled}?" if spelled else ""
    raise InvalidCommand("to_agency", f"no such agency{hint}")


async def act(
    engine: AsyncEngine,
    code: str,
    action: DossierAction,
    calendars: CalendarBook,
    now: datetime,
    may_see: Callable[[Dossier], bool],
) -> read_model.StoredDossier | None:
    """A clerk's action on a dossier, in its own transaction: what it names is checked, then
    act_on_dossier. None when the dossier is not found or not the caller's to see."""
    async with engine.begin() as conn:
        await check_references(conn, action)
        return await act_on_dossier(conn, code, decide(action), action.at, calendars, now, may_see)


async def act_on_dossier(
    conn: AsyncConnection,
    code: str,
    change: DossierChange,
    at: datetime | None,
    calendars: CalendarBook,
    now: datetime,
    may_see: Callable[[Dossier], bool],
) -> read_model.StoredDossier | None:
    """Load, decide, save with the events: all or nothing. None when not found or not visible.

    Returns the dossier as saved, with its read-model deadline and its postal return."""
    found = await repo.load_dossier(conn, code)
    if found is None or not may_see(found.dossier):
        return None
    dossier = found.dossier
    when = (at or now).astimezone(VN_TZ)
    if when > now:
        raise InvalidCommand("at", "must not be in the future")
    calendar, _ = await agency_calendar(conn, calendars, dossier.agency_code)
    # The clock under the calendar in force (the tracker's deadline), before the action:
    # a deadline moved by a calendar change alone is the tracker's to publish.
    dossier.follow_calendar(calendar)
    due_before, was_pending = dossier.due_at, dossier.status in PENDING_STATUSES
    change(dossier, when, calendar)
    ended = was_pending and dossier.status not in PENDING_STATUSES
    moved = dossier.due_at != due_before or ended
    await repo.save_dossier(conn, dossier, found.version, now, clock_moved=moved)
    deadline = read_model.DeadlineView.of_dossier(dossier) if moved else found.deadline
    return read_model.StoredDossier(dossier, found.version + 1, deadline, found.postal)
