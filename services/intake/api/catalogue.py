"""Procedures, agencies, supervisors and the calendar overrides: what an admin sets up."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from schemas.events import Supervisor
from services.core.domain.calendar import OfficeSchedule
from services.intake import catalogue, directory
from services.intake.adapters import catalogue_store
from services.intake.api import models as m
from services.intake.api.deps import Caller, Ctx, require
from services.intake.api.dossiers import ERRORS
from services.intake.api.errors import ApiError, not_found
from services.intake.domain import access

router = APIRouter(responses=ERRORS)
ADMIN = [require("admin")]
DEFAULT_SCHEDULE = catalogue_store.DEFAULT_SCHEDULE
MIN_WEEKLY_MINUTES = 8 * 60


@router.post(
    "/procedures", status_code=201, response_model=m.ProcedureOut, dependencies=ADMIN,
    tags=["catalogue"],
)  # fmt: skip
async def create_procedure(body: m.ProcedureIn, ctx: Ctx) -> Any:
    """Add a procedure (thủ tục hành chính) with its time limit (thời hạn giải quyết)."""
    command = catalogue.AddProcedure(
        code=body.code,
        name=body.name,
        agency_code=body.agency_code,
        time_limit_value=body.time_limit.value,
        time_limit_unit=body.time_limit.unit,
        cutoff_time=body.cutoff_time,
        postal_return=body.postal_return,
    )
    try:
        await catalogue.add_procedure(ctx.engine, command, ctx.clock())
    finally:
        ctx.catalogue.invalidate()
    return m.ProcedureOut(**body.model_dump())


@router.get("/procedures", response_model=list[m.ProcedureOut], tags=["catalogue"])
async def list_procedures(ctx: Ctx, _caller: Caller) -> Any:
    async with ctx.engine.connect() as conn:
        rows = await catalogue_store.list_procedures(conn)
        return [
            m.ProcedureOut(
                code=r.code,
                name=r.name,
                agency_code=r.agency_code,
                time_limit=m.TimeLimitIn(value=r.time_limit_value, unit=r.time_limit_unit),
                cutoff_time=r.cutoff_time,
                postal_return=r.postal_return,
            )
            for r in rows
        ]


def _plausible_schedule(schedule: OfficeSchedule) -> OfficeSchedule:
    """A week with (almost) no office hours would make every deadline of the agency run for
    seconds and end in an error: ask for at least one working day's worth a week."""
    weekly = sum(block.minutes for blocks in schedule.week.values() for block in blocks)
    if weekly < MIN_WEEKLY_MINUTES:
        raise ValueError("office schedule needs at least 8 working hours a week")
    return schedule


def _agency_out(row: Any) -> m.AgencyOut:
    return m.AgencyOut(code=row.code, name=row.name, office_schedule=row.office_schedule)


@router.get("/agencies", response_model=list[m.AgencyOut], tags=["catalogue"])
async def list_agencies(ctx: Ctx, _caller: Caller) -> Any:
    """The agencies of the catalogue, with their names and office hours; anyone with a token
    reads them, as procedures."""
    async with ctx.engine.connect() as conn:
        return [_agency_out(row) for row in await catalogue_store.list_agencies(conn)]


@router.get("/agencies/{agency_code}", response_model=m.AgencyOut, tags=["catalogue"])
async def get_agency(agency_code: m.Code, ctx: Ctx, _caller: Caller) -> Any:
    async with ctx.engine.connect() as conn:
        row = await catalogue_store.get_agency(conn, agency_code)
        if row is None:
            raise await directory.unknown_agency(conn, agency_code)
    return _agency_out(row)


@router.put(
    "/agencies/{agency_code}", response_model=m.AgencyOut, dependencies=ADMIN, tags=["catalogue"]
)
async def put_agency(agency_code: m.Code, body: m.AgencyIn, ctx: Ctx) -> Any:
    """Name an agency and set its office hours (giờ làm việc); default Mon–Fri 8–12, 13–17.

    A new name reaches the notifier on motcua.directory.v1."""
    try:
        schedule = (
            _plausible_schedule(OfficeSchedule.from_dict(body.office_schedule)).to_dict()
            if body.office_schedule
            else DEFAULT_SCHEDULE
        )
    except ValueError as exc:
        raise ApiError(422, "validation_error", str(exc), "office_schedule") from None
    command = directory.SetAgency(agency_code, body.name, schedule)
    try:
        await directory.set_agency(ctx.engine, command, ctx.clock())
    finally:
        ctx.catalogue.invalidate()  # receipts from now on use the new office hours
    ctx.wake_relay()
    return m.AgencyOut(code=agency_code, name=body.name, office_schedule=schedule)


def _supervisor_out(agency_code: str, supervisor: Supervisor) -> m.SupervisorOut:
    return m.SupervisorOut(agency_code=agency_code, **supervisor.model_dump())


def _details(body: m.SupervisorIn) -> directory.SupervisorDetails:
    return directory.SupervisorDetails(name=body.name, phone=body.phone, email=body.email)


@router.get(
    "/agencies/{agency_code}/supervisors",
    response_model=list[m.SupervisorOut],
    tags=["catalogue"],
)
async def list_supervisors(agency_code: m.Code, ctx: Ctx, caller: Caller) -> Any:
    """The agency's supervisors, in the order they were registered.

    **Who**: an admin, or a supervisor of that agency (the list holds phones: personal data,
    which clerks and other agencies do not need); others get 403."""
    if not access.may_read_supervisors(caller, agency_code):
        raise ApiError(403, "forbidden", "an admin or a supervisor of the agency reads its list")
    async with ctx.engine.connect() as conn:
        if await catalogue_store.get_agency(conn, agency_code) is None:
            raise await directory.unknown_agency(conn, agency_code)
        people = await catalogue_store.load_supervisors(conn, agency_code)
    return [_supervisor_out(agency_code, s) for s in people]


@router.post(
    "/agencies/{agency_code}/supervisors",
    status_code=201,
    response_model=m.SupervisorOut,
    dependencies=ADMIN,
    tags=["catalogue"],
)
async def add_supervisor(agency_code: m.Code, body: m.SupervisorIn, ctx: Ctx) -> Any:
    """Register a head of agency (lãnh đạo) who receives overdue alerts and digests.

    The notifier hears of it on motcua.directory.v1, with the agency's whole list."""
    command = directory.AddSupervisor(agency_code, _details(body))
    supervisor = await directory.add_supervisor(ctx.engine, command, ctx.clock())
    ctx.wake_relay()
    return _supervisor_out(agency_code, supervisor)


@router.put(
    "/agencies/{agency_code}/supervisors/{supervisor_id}",
    response_model=m.SupervisorOut,
    dependencies=ADMIN,
    tags=["catalogue"],
)
async def change_supervisor(
    agency_code: m.Code, supervisor_id: m.SupervisorId, body: m.SupervisorIn, ctx: Ctx
) -> Any:
    """Replace a supervisor's name, phone and e-mail (the body of the POST; an e-mail left
    out is removed). The notifier hears of the agency's whole list."""
    command = directory.ChangeSupervisor(agency_code, supervisor_id, _details(body))
    supervisor = await directory.change_supervisor(ctx.engine, command, ctx.clock())
    ctx.wake_relay()
    return _supervisor_out(agency_code, supervisor)


@router.delete(
    "/agencies/{agency_code}/supervisors/{supervisor_id}",
    status_code=204,
    dependencies=ADMIN,
    tags=["catalogue"],
)
async def remove_supervisor(agency_code: m.Code, supervisor_id: m.SupervisorId, ctx: Ctx) -> None:
    """The supervisor receives no more alerts; the notifier hears of the agency's whole list
    (an empty one when the last supervisor goes)."""
    command = directory.RemoveSupervisor(agency_code, supervisor_id)
    await directory.remove_supervisor(ctx.engine, command, ctx.clock())
    ctx.wake_relay()


@router.get("/calendar/overrides", response_model=list[m.CalendarDayOut], tags=["calendar"])
async def list_overrides(ctx: Ctx, _caller: Caller) -> Any:
    """Admin corrections to the holiday calendar: extra days off and extra working days."""
    return [
        m.CalendarDayOut(day=o.day.isoformat(), kind=o.kind.value, note=o.note)
        for o in ctx.calendars.overrides
    ]


@router.put(
    "/calendar/overrides/{day}",
    response_model=m.CalendarDayOut,
    dependencies=ADMIN,
    tags=["calendar"],
)
async def put_override(day: m.Day, body: m.CalendarDayIn, ctx: Ctx) -> Any:
    """Declare a day off (e.g. an announced Tết bridge) or a working day (make-up Saturday).

    The tracker hears of it on motcua.calendar.v1 and moves the open deadlines it touches."""
    overrides = await catalogue.set_calendar_day(ctx.engine, day, body.kind, body.note, ctx.clock())
    ctx.calendars.replace_overrides(overrides)
    ctx.wake_relay()
    return m.CalendarDayOut(day=day.isoformat(), kind=body.kind, note=body.note)


@router.delete("/calendar/overrides/{day}", status_code=204, dependencies=ADMIN, tags=["calendar"])
async def delete_override(day: m.Day, ctx: Ctx) -> None:
    overrides = await catalogue.clear_calendar_day(ctx.engine, day, ctx.clock())
    if overrides is None:
        raise not_found("override")
    ctx.calendars.replace_overrides(overrides)
    ctx.wake_relay()
