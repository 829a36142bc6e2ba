"""Intake and tracker over a real Kafka-protocol broker: events in, flags out, read model
updated; duplicates and poison records handled; a restarted tracker repeats nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer

from services.core.domain.calendar import VN_TZ
from services.core.runtime.database import create_engine
from services.core.runtime.embedded_broker import EmbeddedBroker
from services.core.runtime.host import build_app
from services.core.runtime.kafka import DEADLINE_TOPIC, DOSSIER_TOPIC, dlq
from services.core.runtime.outbox import backlog
from services.core.runtime.settings import Settings
from services.intake.app import IntakeService
from services.tracker.adapters import tables as tracker_tables
from services.tracker.app import TrackerService
from tests.fixtures.broker import consume, start_embedded_broker, wait_for
from tests.fixtures.intake import FakeClock, IntakeHarness, monday_morning


@dataclass
class Stack:
    broker: EmbeddedBroker
    settings: Settings
    clock: FakeClock
    intake: IntakeHarness
    tracker: TrackerService
    tracker_url: str

    def new_tracker(self, **kw: Any) -> TrackerService:
        return TrackerService(
            self.settings,
            clock=self.clock,
            engine=create_engine(self.tracker_url),
            kafka_bootstrap=self.broker.bootstrap,
            **kw,
        )

    async def tracked_count(self) -> int:
        async with self.tracker.engine.connect() as conn:
            query = sa.select(sa.func.count()).select_from(tracker_tables.dossiers)
            return int((await conn.execute(query)).scalar_one())

    async def listed(self, **query: str) -> list[dict[str, Any]]:
        r = await self.intake.client.get("/dossiers", params=query, headers=self.intake.admin)
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        return items


@pytest.fixture
async def stack(database_url: str, tmp_path: Path) -> AsyncIterator[Stack]:
    broker = await start_embedded_broker(tmp_path / "broker")
    clock = FakeClock(monday_morning())
    settings = Settings(data_dir=tmp_path, outbox_poll_seconds=0.1, scan_interval_seconds=3600)
    intake = IntakeService(
        settings,
        clock=clock,
        engine=create_engine(database_url.format(service="intake")),
        kafka_bootstrap=broker.bootstrap,
    )
    tracker_url = database_url.format(service="tracker")
    tracker = TrackerService(
        settings,
        clock=clock,
        engine=create_engine(tracker_url),
        kafka_bootstrap=broker.bootstrap,
        run_scheduler=False,
    )
    app = build_app([intake, tracker])
    await intake.start()
    await tracker.start()
    transport = httpx.ASGITransport(app=app)
    stack: Stack | None = None
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://motcua") as client:
            h = IntakeHarness(client, intake, clock, {}, {}, {})
            h.admin = await h.token("admin", None)
            h.clerk = await h.token("clerk", "UBND-Q1")
            stack = Stack(broker, settings, clock, h, tracker, tracker_url)
            yield stack
    finally:
        try:
            await (stack.tracker if stack else tracker).stop()
        finally:
            await intake.stop()
            await broker.stop()


async def deadline_events(stack: Stack, until: Any) -> list[dict[str, Any]]:
    records = await consume(stack.broker.bootstrap, DEADLINE_TOPIC, until=until, timeout=60)
    return [json.loads(r.value) for r in records]


async def test_overdue_flags_reach_the_clerks_list_and_results_close_them(stack: Stack) -> None:
    h = stack.intake
    await h.procedure(time_limit={"value": 1, "unit": "working_days"})
    dossiers = [await h.dossier() for _ in range(3)]  # due Tue 17 Nov 09:00

    async def all_tracked() -> bool:
        return await stack.tracked_count() == 3

    await wait_for(all_tracked, timeout=60, message="the tracker tracks the three dossiers")
    stack.clock.now = datetime(2026, 11, 17, 9, 30, tzinfo=VN_TZ)
    report = await stack.tracker.scan()
    assert report.flags == 3

    async def listed_overdue() -> bool:
        return len(await stack.listed(flag="overdue")) == 3

    await wait_for(listed_overdue, timeout=60, message="GET /dossiers?flag=overdue lists 3")
    assert await stack.listed(flag="due_soon") == []

    first = dossiers[0]["code"]
    r = await h.client.post(f"/dossiers/{first}/complete", json={}, headers=h.clerk)
    assert r.status_code == 200
    assert r.json()["flag"] is None  # the result ends the clock: no flag on it any more

    async def closed_late() -> bool:
        got = (await h.client.get(f"/dossiers/{first}", headers=h.clerk)).json()
        return got["outcome"] == "late" and got["flag"] is None

    await wait_for(closed_late, timeout=60, message="the tracker's outcome reaches the dossier")
    assert len(await stack.listed(flag="overdue")) == 2

    envelopes = await deadline_events(
        stack, lambda rs: sum(json.loads(r.value)["type"] == "deadline.closed" for r in rs) == 1
    )
    facts = [(e["dossier_id"], e["type"], e["payload"].get("version")) for e in envelopes]
    assert len(facts) == len(set(facts)) == 7  # 3 changed, 3 overdue, 1 closed


async def test_duplicates_change_nothing_and_poison_goes_to_the_dead_letter_topic(
    stack: Stack,
) -> None:
    h = stack.intake
    await h.procedure()
    d = await h.dossier()
    records = await consume(stack.broker.bootstrap, DOSSIER_TOPIC, until=lambda rs: len(rs) >= 1)
    received = records[0]
    producer = AIOKafkaProducer(bootstrap_servers=stack.broker.bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait(DOSSIER_TOPIC, received.value, key=received.key)
        await producer.send_and_wait(DOSSIER_TOPIC, b"{not json", key=received.key)
        await producer.send_and_wait(DOSSIER_TOPIC, received.value, key=received.key)
    finally:
        await producer.stop()
    dead = await consume(stack.broker.bootstrap, dlq(DOSSIER_TOPIC), until=lambda rs: len(rs) >= 1)
    assert dead[0].value == b"{not json"
    headers = {k: v.decode() for k, v in dead[0].headers}
    assert headers["original_topic"] == DOSSIER_TOPIC
    assert headers["consumer_group"] == "motcua-tracker"
    assert headers["error_class"] == "PoisonEvent"

    # The partition kept moving: an action after the poison record is applied.
    r = await h.client.post(f"/dossiers/{d['code']}/start", json={}, headers=h.clerk)
    assert r.status_code == 200

    async def started() -> bool:
        async with stack.tracker.engine.connect() as conn:
            status = await conn.scalar(
                sa.select(tracker_tables.dossiers.c.status).where(
                    tracker_tables.dossiers.c.dossier_id == d["id"]
                )
            )
        return status == "in_progress"

    await wait_for(started, timeout=60, message="the event after the poison record is applied")
    envelopes = await deadline_events(stack, lambda rs: len(rs) >= 1)
    assert [e["type"] for e in envelopes] == ["deadline.changed"]  # one receipt, one change


async def test_a_restarted_tracker_neither_repeats_nor_loses_a_flag(stack: Stack) -> None:
    h = stack.intake
    await h.procedure(time_limit={"value": 1, "unit": "working_days"})
    for _ in range(4):
        await h.dossier()

    async def all_tracked() -> bool:
        return await stack.tracked_count() == 4

    await wait_for(all_tracked, timeout=60, message="four dossiers tracked")
    stack.clock.now = datetime(2026, 11, 16, 9, 30, tzinfo=VN_TZ)  # due soon from the start
    assert (await stack.tracker.scan()).flags == 4
    await stack.tracker.stop()  # flags raised: some may still wait in the outbox

    stack.tracker = stack.new_tracker(run_scheduler=False)
    await stack.tracker.start()
    assert (await stack.tracker.scan()).flags == 0
    stack.clock.now = datetime(2026, 11, 17, 10, tzinfo=VN_TZ)
    assert (await stack.tracker.scan()).flags == 4

    async def drained() -> bool:
        return await backlog(stack.tracker.engine, tracker_tables.outbox) == 0

    await wait_for(drained, timeout=60, message="the tracker's outbox is published")
    envelopes = await deadline_events(stack, lambda rs: len(rs) >= 12)
    kinds = sorted(e["type"] for e in envelopes)
    assert kinds == ["deadline.changed"] * 4 + ["deadline.due_soon"] * 4 + ["deadline.overdue"] * 4


async def test_the_scheduler_scans_on_its_own(stack: Stack) -> None:
    h = stack.intake
    await h.procedure(time_limit={"value": 1, "unit": "working_days"})
    await h.dossier()
    await stack.tracker.stop()
    stack.settings = stack.settings.model_copy(update={"scan_interval_seconds": 0.2})
    stack.clock.now = datetime(2026, 11, 17, 9, 30, tzinfo=VN_TZ)
    stack.tracker = stack.new_tracker()
    await stack.tracker.start()

    async def listed_overdue() -> bool:
        return len(await stack.listed(flag="overdue")) == 1

    # The deadline covers Tansu's rejoin: a member joining a group that another member has
    # just left may wait twice the session timeout (~4 s with the tests' 2 s, ~18 s at 10 s).
    await wait_for(listed_overdue, timeout=120, message="the scheduled scan flags the dossier")
