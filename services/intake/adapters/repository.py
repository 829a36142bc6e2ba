"""Loading and saving dossiers and the catalogue within one connection's transaction."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass
from datetime import date, datetime, time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas.events import (
    CALENDAR_CHANGED,
    EVENT_TYPE_OF,
    SUPERVISORS_CHANGED,
    Address,
    Applicant,
    CalendarChanged,
    CalendarDay,
    CalendarEnvelope,
    DirectoryEnvelope,
    DossierStatus,
    Envelope,
    Supervisor,
    SupervisorsChanged,
)
from services.core.domain.calendar import CalendarOverride, DayKind, OfficeSchedule
from services.core.domain.clock_state import clock_from_state, clock_to_state, iso, parse_dt
from services.core.domain.codes import dossier_code, dossier_code_prefix
from services.core.domain.deadlines import TimeLimit, TimeUnit
from services.core.runtime.database import dialect_insert
from services.core.runtime.group_commit import Batch
from services.core.runtime.kafka import (
    CALENDAR_KEY,
    CALENDAR_TOPIC,
    DIRECTORY_TOPIC,
    DOSSIER_TOPIC,
)
from services.core.runtime.outbox import add_to_outbox, outbox_row
from services.intake.adapters import tables as t
from services.intake.domain import access
from services.intake.domain.model import Dossier, HistoryEntry, Procedure
from services.intake.domain.postal import Postal


class ConcurrentUpdate(Exception):
    """Someone else changed the dossier between our read and our write (→ HTTP 409)."""


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
        event_id=new_id(),
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
    row = outbox_row(
        event_id=envelope.event_id,
        topic=CALENDAR_TOPIC,
        key=CALENDAR_KEY,
        value=envelope.model_dump_json(),
        created_at=now,
    )
    await add_to_outbox(conn, t.outbox, [row])


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
        event_id=new_id(),
        type=SUPERVISORS_CHANGED,
        occurred_at=now,
        payload=SupervisorsChanged(
            agency_code=agency_code,
            agency_name=agency.name if agency else None,
            supervisors=await load_supervisors(conn, agency_code),
        ),
    )
    row = outbox_row(
        event_id=envelope.event_id,
        topic=DIRECTORY_TOPIC,
        key=agency_code,
        value=envelope.model_dump_json(),
        created_at=now,
    )
    await add_to_outbox(conn, t.outbox, [row])


# --- dossier codes ---------------------------------------------------------------------


async def next_code(batch: Batch, conn: AsyncConnection, agency_code: str, day: date) -> str:
    """Mã hồ sơ: agency, date received, sequence of that agency's day (e.g. UBND-20261121-0007).

    The counter row is read once per group commit batch, locked until the batch commits (so
    concurrent batches, of any replica, never hand out the same number), counted on in the
    batch and stored once when the batch is flushed.
    """
    prefix = dossier_code_prefix(agency_code, day)
    sequence = await batch.next_value(conn, prefix, _read_counter, _write_counter)
    return dossier_code(prefix, sequence)


async def _read_counter(conn: AsyncConnection, prefix: str) -> int:
    # An upsert that changes nothing: creates the day's row if missing and, on PostgreSQL,
    # takes its row lock (a plain SELECT would not); SQLite's BEGIN IMMEDIATE holds the file.
    c = t.code_counters.c
    stmt = (
        dialect_insert(conn, t.code_counters)
        .values(prefix=prefix, last=0)
        .on_conflict_do_update(index_elements=[c.prefix], set_={"last": c.last})
        .returning(c.last)
    )
    return int((await conn.execute(stmt)).scalar_one())


async def _write_counter(conn: AsyncConnection, prefix: str, last: int) -> None:
    c = t.code_counters.c
    await conn.execute(t.code_counters.update().where(c.prefix == prefix).values(last=last))


def new_id() -> str:
    return str(uuid.uuid4())


# --- dossiers --------------------------------------------------------------------------


async def add_dossier(conn: AsyncConnection, dossier: Dossier, now: datetime) -> None:
    values = {**_row(dossier, now), **_clock_columns(dossier)}
    await conn.execute(t.dossiers.insert().values(**values, version=1))
    await _publish_events(conn, dossier, now)


def defer_new_dossier(batch: Batch, dossier: Dossier, now: datetime) -> None:
    """`add_dossier` within a group commit: the row and its events are inserted with the
    batch's other rows, in its transaction."""
    values = {**_row(dossier, now), **_clock_columns(dossier)}
    batch.insert(t.dossiers, {**values, "version": 1})
    batch.insert(t.outbox, *_event_rows(dossier, now))
    dossier.events.clear()


async def save_dossier(
    conn: AsyncConnection,
    dossier: Dossier,
    expected_version: int,
    now: datetime,
    *,
    clock_moved: bool,
) -> None:
    """Save the aggregate and its events. The deadline columns are written only when this
    action moved the clock (``clock_moved``): otherwise they keep the tracker's word, which
    may differ from the aggregate's after a calendar change."""
    values = _row(dossier, now)
    if clock_moved:
        values.update(_clock_columns(dossier))
    result = await conn.execute(
        t.dossiers.update()
        .where(t.dossiers.c.id == dossier.id, t.dossiers.c.version == expected_version)
        .values(**values, version=expected_version + 1)
    )
    if result.rowcount != 1:
        raise ConcurrentUpdate(dossier.code)
    await _publish_events(conn, dossier, now)


def _clock_columns(dossier: Dossier) -> dict[str, Any]:
    return asdict(DeadlineView.of_dossier(dossier))


async def get_dossier(conn: AsyncConnection, code: str) -> tuple[Dossier, Any] | None:
    row = (await conn.execute(sa.select(t.dossiers).where(t.dossiers.c.code == code))).first()
    return (dossier_from_state(row.state), row) if row else None


async def lock_dossiers(
    conn: AsyncConnection, dossier_ids: Collection[str]
) -> dict[str, tuple[Dossier, Any]]:
    """The dossiers among `dossier_ids` by id, in one query, their rows locked until commit
    (PostgreSQL, in id order; SQLite's BEGIN IMMEDIATE already holds the database): a clerk's
    concurrent action waits instead of racing us."""
    if not dossier_ids:
        return {}
    c = t.dossiers.c
    query = sa.select(t.dossiers).where(c.id.in_(sorted(dossier_ids))).order_by(c.id)
    rows = await conn.execute(query.with_for_update())
    return {row.id: (dossier_from_state(row.state), row) for row in rows}


def postal_of(row: Any) -> Postal | None:
    """The read model's bưu gửi columns; None while no postal order is known."""
    if row.postal_tracking_code is None:
        return None
    return Postal(row.postal_tracking_code, row.postal_status, row.postal_status_at)


async def save_postals(conn: AsyncConnection, postals: Mapping[str, Postal | None]) -> None:
    """Write the bưu gửi columns of these dossiers, in one executemany. Like the deadline
    columns they are the read model: the aggregate's version is left alone, so a clerk's
    action in flight is not refused for it."""
    if not postals:
        return
    names = ("postal_tracking_code", "postal_status", "postal_status_at")
    query = (
        t.dossiers.update()
        .where(t.dossiers.c.id == sa.bindparam("b_id"))
        .values({name: sa.bindparam(name) for name in names})
    )
    rows = [
        {
            "b_id": dossier_id,
            "postal_tracking_code": postal.tracking_code if postal else None,
            "postal_status": postal.status if postal else None,
            "postal_status_at": postal.status_at if postal else None,
        }
        for dossier_id, postal in postals.items()
    ]
    await conn.execute(query, rows)


def _row(dossier: Dossier, now: datetime) -> dict[str, Any]:
    return {
        "id": dossier.id,
        "code": dossier.code,
        "agency_code": dossier.agency_code,
        "handling_agency": dossier.handling_agency,
        "procedure_code": dossier.procedure.code,
        "status": dossier.status.value,
        "applicant_phone": dossier.applicant.phone if dossier.applicant else None,
        "received_at": dossier.received_at,
        "finished_at": dossier.finished_at,
        "closed_at": dossier.closed_at,
        "personal_data_erased_at": dossier.personal_data_erased_at,
        "supplement_requests": dossier.supplement_requests,
        "state": dossier_to_state(dossier),
        "updated_at": now,
    }


async def _publish_events(conn: AsyncConnection, dossier: Dossier, now: datetime) -> None:
    rows = _event_rows(dossier, now)
    if rows:
        await add_to_outbox(conn, t.outbox, rows)
    dossier.events.clear()


def _event_rows(dossier: Dossier, now: datetime) -> list[dict[str, Any]]:
    rows = []
    for event in dossier.events:
        envelope = Envelope(
            event_id=new_id(),
            type=EVENT_TYPE_OF[type(event)],
            occurred_at=event.at,
            dossier_id=dossier.id,
            dossier_code=dossier.code,
            agency_code=dossier.agency_code,
            payload=event.model_dump(mode="json"),
        )
        rows.append(
            outbox_row(
                event_id=envelope.event_id,
                topic=DOSSIER_TOPIC,
                key=dossier.id,
                value=envelope.model_dump_json(),
                created_at=now,
            )
        )
    return rows


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


async def list_dossiers(
    conn: AsyncConnection,
    *,
    visible_to_agency: str | None,
    status: str | None,
    agency: str | None,
    flag: str | None,
    limit: int,
    before_seq: int | None,
) -> tuple[list[Dossier], list[Any], str | None]:
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
    return [dossier_from_state(r.state) for r in rows], rows, cursor


def _visible_to(agency_code: str) -> sa.ColumnElement[bool]:
    """access.may_see as a filter: the agency received the dossier or holds it."""
    return sa.or_(*(t.dossiers.c[name] == agency_code for name in access.VISIBLE_THROUGH))


# --- state (de)serialisation -------------------------------------------------------------


def dossier_to_state(d: Dossier) -> dict[str, Any]:
    return {
        "id": d.id,
        "code": d.code,
        "agency_code": d.agency_code,
        "procedure": _procedure_state(d.procedure),
        "applicant": d.applicant.model_dump(mode="json") if d.applicant else None,
        "channel": d.channel,
        "return_method": d.return_method,
        "return_address": d.return_address.model_dump(mode="json") if d.return_address else None,
        "received_at": d.received_at.isoformat(),
        "clock": clock_to_state(d.clock),
        "status": d.status.value,
        "handling_agency": d.handling_agency,
        "status_before_pause": d.status_before_pause.value if d.status_before_pause else None,
        # Also in the clock, which is read first; kept here for a reader of the older format.
        "original_due_at": iso(d.original_due_at),
        "supplement_requests": d.supplement_requests,
        "outcome": d.outcome,
        "finished_at": iso(d.finished_at),
        "personal_data_erased_at": iso(d.personal_data_erased_at),
        "history": [
            {
                "action": h.action,
                "at": h.at.isoformat(),
                "status": h.status.value,
                "details": h.details,
            }
            for h in d.history
        ],
    }


def dossier_from_state(s: dict[str, Any]) -> Dossier:
    return Dossier(
        id=s["id"],
        code=s["code"],
        agency_code=s["agency_code"],
        procedure=_procedure_from_state(s["procedure"]),
        applicant=Applicant.model_validate(s["applicant"]) if s["applicant"] else None,
        channel=s["channel"],
        return_method=s["return_method"],
        return_address=Address.model_validate(s["return_address"]) if s["return_address"] else None,
        received_at=datetime.fromisoformat(s["received_at"]),
        clock=clock_from_state(s["clock"], original_due_at=parse_dt(s["original_due_at"])),
        status=DossierStatus(s["status"]),
        handling_agency=s["handling_agency"],
        status_before_pause=DossierStatus(s["status_before_pause"])
        if s["status_before_pause"]
        else None,
        supplement_requests=s["supplement_requests"],
        outcome=s["outcome"],
        finished_at=parse_dt(s["finished_at"]),
        # Absent from states stored before erasure existed: not erased.
        personal_data_erased_at=parse_dt(s.get("personal_data_erased_at")),
        history=[
            HistoryEntry(
                h["action"],
                datetime.fromisoformat(h["at"]),
                DossierStatus(h["status"]),
                h["details"],
            )
            for h in s["history"]
        ],
    )


def _procedure_state(p: Procedure) -> dict[str, Any]:
    return {
        "code": p.code,
        "name": p.name,
        "agency_code": p.agency_code,
        "time_limit": {"value": p.time_limit.value, "unit": p.time_limit.unit.value},
        "cutoff_time": p.cutoff_time.strftime("%H:%M") if p.cutoff_time else None,
        "postal_return": p.postal_return,
    }


def _procedure_from_state(s: dict[str, Any]) -> Procedure:
    return Procedure(
        code=s["code"],
        name=s["name"],
        agency_code=s["agency_code"],
        time_limit=TimeLimit(s["time_limit"]["value"], TimeUnit(s["time_limit"]["unit"])),
        cutoff_time=time.fromisoformat(s["cutoff_time"]) if s["cutoff_time"] else None,
        postal_return=s["postal_return"],
    )
