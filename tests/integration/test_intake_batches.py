"""The intake's batches (issue 12) on SQLite and PostgreSQL: a run of the tracker's deadline
events, or of the notifier's postal events, is applied in one transaction that reads its
dossiers in one query and writes them in one statement, and leaves what applying the events
one by one leaves."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from schemas.events import Envelope
from services.core.domain.calendar import VN_TZ
from services.core.runtime.consumer import PoisonEvent, TopicHandler
from services.core.runtime.kafka import DEADLINE_TOPIC, NOTIFICATION_TOPIC
from services.intake import deadline_read_model, postal_returns
from services.intake.adapters import tables as t
from tests.fixtures.intake import IntakeHarness

DUE = datetime(2026, 11, 23, 9, tzinfo=VN_TZ)
LATER = datetime(2026, 11, 25, 9, tzinfo=VN_TZ)
DEADLINE_COLUMNS = ("due_at", "flag", "outcome", "deadline_version", "deadline_rank")
POSTAL_COLUMNS = ("status", "postal_tracking_code", "postal_status", "postal_status_at")


def envelope(dossier: dict[str, Any], event_type: str, **payload: Any) -> Envelope:
    return Envelope(
        event_id=str(uuid.uuid4()),
        type=event_type,
        occurred_at=DUE,
        dossier_id=dossier["id"],
        dossier_code=dossier["code"],
        agency_code="UBND-Q1",
        payload={k: v.isoformat() if isinstance(v, datetime) else v for k, v in payload.items()},
    )


def changed(d: dict[str, Any], version: int, due_at: datetime | None = DUE) -> Envelope:
    return envelope(d, "deadline.changed", due_at=due_at, version=version, reason="r")


def due_soon(d: dict[str, Any], version: int, due_at: datetime = DUE) -> Envelope:
    return envelope(
        d,
        "deadline.due_soon",
        due_at=due_at,
        version=version,
        remaining_working_minutes=60,
        handling_agency="UBND-Q1",
    )


def overdue(d: dict[str, Any], version: int, due_at: datetime = DUE) -> Envelope:
    return envelope(
        d,
        "deadline.overdue",
        due_at=due_at,
        version=version,
        overdue_working_minutes=5,
        handling_agency="UBND-Q1",
    )


def closed(d: dict[str, Any], version: int, outcome: str) -> Envelope:
    return envelope(
        d,
        "deadline.closed",
        reason="result_ready",
        outcome=outcome,
        finished_at=DUE,
        due_at=DUE,
        original_due_at=None,
        version=version,
    )


def step_overdue(d: dict[str, Any]) -> Envelope:
    return envelope(
        d,
        "deadline.step_overdue",
        agency_code="STNMT",
        step_number=1,
        handed_over_at=DUE,
        step_due_at=DUE,
    )


async def columns(
    intake: IntakeHarness, names: tuple[str, ...] = DEADLINE_COLUMNS
) -> dict[str, tuple[Any, ...]]:
    c = t.dossiers.c
    query = sa.select(c.id, *(c[n] for n in names)).order_by(c.id)
    async with intake.service.engine.connect() as conn:
        return {row.id: tuple(row)[1:] for row in await conn.execute(query)}


async def put_back(intake: IntakeHarness, held: dict[str, tuple[Any, ...]]) -> None:
    async with intake.service.engine.begin() as conn:
        for dossier_id, values in held.items():
            await conn.execute(
                t.dossiers.update()
                .where(t.dossiers.c.id == dossier_id)
                .values(dict(zip(DEADLINE_COLUMNS, values, strict=True)))
            )


@dataclass
class Statements:
    """What the engine sent: transactions begun, and statements on the dossiers by verb."""

    begun: int = 0
    on_dossiers: Counter[str] = field(default_factory=Counter)


@contextmanager
def counting(engine: AsyncEngine) -> Iterator[Statements]:
    seen = Statements()

    def on_begin(_conn: Any) -> None:
        seen.begun += 1

    def on_statement(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if t.dossiers.name in statement.replace('"', " ").split():
            seen.on_dossiers[statement.split(None, 1)[0].upper()] += 1

    event.listen(engine.sync_engine, "begin", on_begin)
    event.listen(engine.sync_engine, "before_cursor_execute", on_statement)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "begin", on_begin)
        event.remove(engine.sync_engine, "before_cursor_execute", on_statement)


async def three_dossiers(intake: IntakeHarness) -> tuple[dict[str, Any], ...]:
    """Two open dossiers, and one whose result is ready (it owes nothing: no flag lands)."""
    await intake.procedure()
    a, b, ready = [await intake.dossier() for _ in range(3)]
    r = await intake.client.post(
        f"/dossiers/{ready['code']}/complete", json={}, headers=intake.clerk
    )
    assert r.status_code == 200, r.text
    return a, b, ready


def a_run(a: dict[str, Any], b: dict[str, Any], ready: dict[str, Any]) -> list[Envelope]:
    unknown = {"id": str(uuid.uuid4()), "code": "UBND-Q1-000"}
    return [
        changed(a, 1),
        due_soon(a, 1),
        overdue(a, 1),
        due_soon(a, 1),  # late: the overdue of that version is newer
        changed(b, 1),
        step_overdue(a),  # for supervisors: nothing for the dossier list
        overdue(ready, 1),  # the result is ready: no flag
        closed(ready, 1, "late"),
        changed(a, 2, None),  # A's clock stopped: its flag goes, no due_at
        overdue(a, 1),  # a flag of the version stopped since
        overdue(unknown, 1),
        changed(b, 1),  # a redelivery: taken again, harmlessly
    ]


async def test_a_deadline_run_leaves_what_one_by_one_leaves(intake: IntakeHarness) -> None:
    a, b, ready = await three_dossiers(intake)
    run = a_run(a, b, ready)
    engine = intake.service.engine
    before = await columns(intake)

    expected = [await deadline_read_model.apply_deadline_event(engine, e) for e in run]
    expected_rows = await columns(intake)
    await put_back(intake, before)
    assert await columns(intake) == before
    with counting(engine) as seen:
        taken = await deadline_read_model.apply_deadline_events(engine, run)

    assert taken == expected
    assert taken == [True, True, True, False, True, False, False, True, True, False, False, True]
    assert await columns(intake) == expected_rows
    assert expected_rows[a["id"]] == (None, None, None, 2, 3)  # stopped: rank 3, no flag
    assert expected_rows[b["id"]][1:] == (None, None, 1, 0)
    assert expected_rows[ready["id"]][1:] == (None, "late", 1, 4)
    # One transaction: one query reads and locks the dossiers, one executemany writes them.
    assert seen.begun == 1
    assert seen.on_dossiers == {"SELECT": 1, "UPDATE": 1}


async def test_a_deadline_run_is_logged_once_and_the_service_takes_runs(
    intake: IntakeHarness,
) -> None:
    a, b, ready = await three_dossiers(intake)
    run = a_run(a, b, ready)
    handler = intake.service.handlers()[DEADLINE_TOPIC]
    assert isinstance(handler, TopicHandler) and handler.many is not None
    with capture_logs() as logs:
        outcomes = await handler.many([e.model_dump_json().encode() for e in run])
    assert outcomes == [None] * len(run)  # a projection keeps no event ids: no duplicates
    [summary] = [line for line in logs if line["log_level"] == "info"]
    # The step overdue is for supervisors; of the eleven others seven moved their dossier on.
    assert summary == {
        "event": "deadline_events_projected",
        "log_level": "info",
        "events": 12,
        "taken": 7,
        "not_newer": 4,
        "not_for_the_list": 1,
    }


async def test_a_poison_deadline_record_in_a_run_applies_none_of_it(
    intake: IntakeHarness,
) -> None:
    a, b, _ = await three_dossiers(intake)
    before = await columns(intake)
    invalid = changed(b, 1).model_copy(update={"payload": {"version": 0}})
    with pytest.raises(PoisonEvent):
        await deadline_read_model.apply_deadline_events(
            intake.service.engine, [overdue(a, 1), invalid]
        )
    assert await columns(intake) == before


# -- postal returns ------------------------------------------------------------------------

TRACKING = "EL123456789VN"
ADDRESS = {
    "street": "12 Lê Lợi",
    "ward": "Phường Sài Gòn",
    "district": "Quận 1",
    "province": "Thành phố Hồ Chí Minh",
}


def postal_event(d: dict[str, Any], event_type: str, **payload: Any) -> Envelope:
    return envelope(d, event_type, tracking_code=TRACKING, **payload)


async def results_ready_for_post(intake: IntakeHarness, n: int) -> list[dict[str, Any]]:
    await intake.procedure()
    ready = []
    for _ in range(n):
        d = await intake.dossier(return_method="postal", return_address=ADDRESS)
        r = await intake.client.post(
            f"/dossiers/{d['code']}/complete", json={}, headers=intake.clerk
        )
        assert r.status_code == 200, r.text
        ready.append(d)
    intake.clock.advance(days=1)
    return ready


def deliveries(dossiers: list[dict[str, Any]]) -> list[Envelope]:
    """Each parcel ordered, in transit, delivered, the delivery told twice; interleaved."""
    at = intake_day = datetime(2026, 11, 16, 14, tzinfo=VN_TZ)
    per_dossier = [
        [
            postal_event(d, "postal.ordered", reference=d["code"], at=intake_day),
            postal_event(d, "postal.status_changed", status="in_transit", at=at),
            postal_event(d, "postal.status_changed", status="delivered", at=at.replace(hour=16)),
        ]
        for d in dossiers
    ]
    run = [e for step in zip(*per_dossier, strict=True) for e in step]
    return [*run, run[-1]]


async def returned_events(intake: IntakeHarness) -> list[str]:
    async with intake.service.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(t.outbox.c.key).where(t.outbox.c.value.contains('"dossier.returned"'))
        )
        return list(rows.scalars())


async def test_a_postal_run_returns_each_dossier_once_in_one_transaction(
    intake: IntakeHarness,
) -> None:
    dossiers = await results_ready_for_post(intake, 2)
    run = deliveries(dossiers)
    engine = intake.service.engine
    handler = intake.service.handlers()[NOTIFICATION_TOPIC]
    assert isinstance(handler, TopicHandler) and handler.many is not None
    with counting(engine) as seen, capture_logs() as logs:
        outcomes = await handler.many([e.model_dump_json().encode() for e in run])
    assert outcomes == [None] * len(run)

    assert seen.begun == 1
    # One query locks both dossiers, one executemany writes their postal returns; each
    # return is the clerk's own path (it reads the dossier again, and saves it).
    assert seen.on_dossiers == {"SELECT": 1 + 2, "UPDATE": 1 + 2}
    rows = await columns(intake, POSTAL_COLUMNS)
    for d in dossiers:
        assert rows[d["id"]][:3] == ("returned", TRACKING, "delivered")
    assert sorted(await returned_events(intake)) == sorted(d["id"] for d in dossiers)
    applied = [line for line in logs if line["event"].startswith("notification_")]
    assert [line["event_id"] for line in applied] == [e.event_id for e in run]
    assert [line["returned"] for line in applied] == [False] * 4 + [True, True, False]
    assert applied[-1]["event"] == "notification_not_newer"  # the delivery told again


async def test_a_postal_run_leaves_what_one_by_one_leaves(intake: IntakeHarness) -> None:
    [one, other] = await results_ready_for_post(intake, 2)
    calendars, now = intake.service.context.calendars, intake.clock()
    engine = intake.service.engine

    expected = [
        await postal_returns.apply_notification_event(engine, e, calendars, now)
        for e in deliveries([one])
    ]
    taken = await postal_returns.apply_notification_events(
        engine, deliveries([other]), calendars, now
    )

    assert taken == expected == [True, True, True, False]
    rows = await columns(intake, POSTAL_COLUMNS)
    assert rows[one["id"]] == rows[other["id"]]
