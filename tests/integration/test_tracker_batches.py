"""The tracker's batches (issue 12) on a real database, SQLite and PostgreSQL: a run of the
dossier topic's records is applied in one transaction, with one query claiming its event ids
and one loading its dossiers, and leaves what applying the records one by one leaves."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from schemas.events import Envelope
from services.core.runtime.consumer import DUPLICATE, PoisonEvent, TopicHandler
from services.core.runtime.kafka import DOSSIER_TOPIC
from services.core.runtime.settings import Settings
from services.tracker import handlers
from services.tracker.adapters import tables as t
from services.tracker.app import TrackerService
from services.tracker.domain import EventOutcome
from tests.fixtures.tracker import THRESHOLD_MINUTES, TrackerHarness


async def act(tracker: TrackerHarness, code: str, action: str, **body: Any) -> None:
    h = tracker.intake
    r = await h.client.post(f"/dossiers/{code}/{action}", json=body, headers=h.clerk)
    assert r.status_code == 200, r.text


async def dossier_events(tracker: TrackerHarness) -> list[Envelope]:
    """The intake's dossier events, in the order its outbox holds them."""
    rows = await tracker.intake_envelopes_all(DOSSIER_TOPIC)
    return [Envelope.model_validate_json(row["value"]) for _, row in rows]


async def two_dossiers_with_history(
    tracker: TrackerHarness,
) -> tuple[list[Envelope], dict[str, dict[str, Any]]]:
    """Dossiers A and B received, then A paused, B paused, A resumed (events in that order).
    Returns the events and the dossiers."""
    h, clock = tracker.intake, tracker.clock
    await h.procedure(time_limit={"value": 16, "unit": "working_hours"})
    a = await h.dossier()
    b = await h.dossier()
    clock.advance(hours=2)
    await act(tracker, a["code"], "pause", reason="Chờ nộp lệ phí")
    clock.advance(hours=1)
    await act(tracker, b["code"], "pause", reason="Chờ xác minh")
    clock.advance(days=1)
    await act(tracker, a["code"], "resume")
    return await dossier_events(tracker), {"a": a, "b": b}


@dataclass
class Snapshot:
    dossiers: list[tuple[Any, ...]]
    processed: list[str]
    outbox: list[tuple[Any, ...]]  # in id order, ids left out (a sequence is not reset)


async def snapshot(engine: AsyncEngine) -> Snapshot:
    async with engine.connect() as conn:
        dossiers = [
            tuple(r) for r in await conn.execute(sa.select(t.dossiers).order_by("dossier_id"))
        ]
        processed = list(
            (
                await conn.execute(sa.select(t.processed_events.c.event_id).order_by("event_id"))
            ).scalars()
        )
        o = t.outbox.c
        outbox = [
            tuple(r)
            for r in await conn.execute(
                sa.select(o.event_id, o.topic, o.key, o.value, o.created_at).order_by(o.id)
            )
        ]
    return Snapshot(dossiers, processed, outbox)


async def forget_everything(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        for table in (t.dossiers, t.processed_events, t.outbox):
            await conn.execute(table.delete())


async def one_by_one(
    tracker: TrackerHarness, envelopes: list[Envelope]
) -> list[EventOutcome | None]:
    return [await tracker.deliver(envelope) for envelope in envelopes]


async def as_a_run(tracker: TrackerHarness, envelopes: list[Envelope]) -> list[EventOutcome | None]:
    return await handlers.handle_dossier_events(
        tracker.engine, envelopes, tracker.calendars, THRESHOLD_MINUTES, tracker.clock()
    )


async def test_a_run_leaves_what_one_by_one_leaves(tracker: TrackerHarness) -> None:
    events, d = await two_dossiers_with_history(tracker)
    received_a, received_b, *later = events
    assert [e.type for e in later] == ["dossier.paused", "dossier.paused", "dossier.resumed"]
    # B's receipt was applied before the run (its row is updated), A's is in it (its row is
    # inserted, then changed twice); A's receipt comes twice, B's again though applied before.
    before = [received_b]
    run = [received_a, *later, received_a, received_b]

    for envelope in before:
        await tracker.deliver(envelope)
    expected = await one_by_one(tracker, run)
    expected_state = await snapshot(tracker.engine)

    await forget_everything(tracker.engine)
    for envelope in before:
        await tracker.deliver(envelope)
    decisions = await as_a_run(tracker, run)

    assert decisions == expected
    assert [x is None for x in decisions] == [False] * 4 + [True, True]
    assert await snapshot(tracker.engine) == expected_state
    # The events of A chained: paused then resumed, from the state its receipt produced.
    tracked = await tracker.tracked(d["a"]["id"])
    assert [step.kind.value for step in tracked.transitions] == ["stop", "resume"]
    assert (await tracker.tracked(d["b"]["id"])).due_at is None  # B's clock stopped
    reasons = [f["payload"]["reason"] for f in await tracker.flags(d["a"]["id"])]
    assert reasons == ["received", "paused", "resumed"]


@dataclass
class Statements:
    """What the engine sent: transactions begun and statements, by verb and table."""

    begun: int = 0
    sent: Counter[tuple[str, str]] = field(default_factory=Counter)

    def of(self, table: sa.Table) -> dict[str, int]:
        return {verb: n for (verb, name), n in self.sent.items() if name == table.name}


@contextmanager
def counting(engine: AsyncEngine) -> Iterator[Statements]:
    seen = Statements()
    tables = [table.name for table in t.metadata.sorted_tables]

    def on_begin(_conn: Any) -> None:
        seen.begun += 1

    def on_statement(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        verb = statement.split(None, 1)[0].upper()
        words = statement.replace('"', " ").replace("(", " ").split()
        for name in tables:
            if name in words:
                seen.sent[(verb, name)] += 1

    event.listen(engine.sync_engine, "begin", on_begin)
    event.listen(engine.sync_engine, "before_cursor_execute", on_statement)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "begin", on_begin)
        event.remove(engine.sync_engine, "before_cursor_execute", on_statement)


async def test_a_run_is_one_transaction_with_one_claim_and_one_load(
    tracker: TrackerHarness,
) -> None:
    events, d = await two_dossiers_with_history(tracker)
    with counting(tracker.engine) as seen:
        decisions = await as_a_run(tracker, events)
    assert all(x is not None and x.applied for x in decisions)
    assert seen.begun == 1
    assert seen.of(t.processed_events) == {"INSERT": 1}
    # A and B read in one query, inserted in one statement (executemany), their flags too.
    assert seen.of(t.dossiers) == {"SELECT": 1, "INSERT": 1}
    assert seen.of(t.outbox) == {"INSERT": 1}
    assert len(await tracker.flags()) == 5

    # Later events of dossiers tracked before the run: their rows updated in one statement.
    tracker.clock.advance(hours=1)
    await act(tracker, d["a"]["code"], "pause", reason="Chờ nộp lệ phí")
    await act(tracker, d["b"]["code"], "resume")
    more = (await dossier_events(tracker))[len(events) :]
    assert [e.type for e in more] == ["dossier.paused", "dossier.resumed"]
    with counting(tracker.engine) as seen:
        await as_a_run(tracker, more)
    assert seen.begun == 1
    assert seen.of(t.processed_events) == {"INSERT": 1}
    assert seen.of(t.dossiers) == {"SELECT": 1, "UPDATE": 1}
    assert seen.of(t.outbox) == {"INSERT": 1}


async def test_the_service_reports_duplicates_and_logs_each_event(
    tracker: TrackerHarness, tmp_path: Path
) -> None:
    events, _ = await two_dossiers_with_history(tracker)
    service = TrackerService(
        Settings(data_dir=tmp_path),
        clock=tracker.clock,
        engine=tracker.engine,
        run_scheduler=False,
    )
    handler = service.handlers()[DOSSIER_TOPIC]
    assert isinstance(handler, TopicHandler) and handler.many is not None
    bodies = [e.model_dump_json().encode() for e in events]
    assert await handler.one(bodies[0]) is None
    with capture_logs() as logs:
        outcomes = await handler.many([*bodies, bodies[2]])
    assert outcomes == [DUPLICATE, None, None, None, None, DUPLICATE]
    assert [line["event"] for line in logs] == ["event_duplicate"] + ["event_applied"] * 4 + [
        "event_duplicate"
    ]
    assert [line["event_id"] for line in logs] == [e.event_id for e in [*events, events[2]]]


async def test_a_poison_record_in_a_run_applies_none_of_it(tracker: TrackerHarness) -> None:
    events, _ = await two_dossiers_with_history(tracker)
    invalid = events[1].model_copy(update={"payload": {"status": "no such status"}})
    with pytest.raises(PoisonEvent):
        await as_a_run(tracker, [events[0], invalid])
    assert await snapshot(tracker.engine) == Snapshot([], [], [])
    # As the consumer then does: applied one by one, the good record is applied once.
    assert (await tracker.deliver(events[0])) is not None
    with pytest.raises(PoisonEvent):
        await tracker.deliver(invalid)
    assert len((await snapshot(tracker.engine)).dossiers) == 1
