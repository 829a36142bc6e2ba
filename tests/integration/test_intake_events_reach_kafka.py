"""Dossiers recorded while the broker is down reach Kafka once, in order, when it returns."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import httpx

from services.core.runtime.database import create_engine
from services.core.runtime.host import build_app
from services.core.runtime.kafka import DOSSIER_TOPIC, ensure_topics
from services.core.runtime.outbox import backlog
from services.core.runtime.settings import Settings
from services.intake.adapters import tables as t
from services.intake.app import IntakeService
from tests.fixtures.broker import consume, start_embedded_broker, wait_for
from tests.fixtures.intake import FakeClock, IntakeHarness, monday_morning


def intake(
    database_url: str, settings: Settings, clock: FakeClock, bootstrap: str
) -> IntakeService:
    engine = create_engine(database_url.format(service="intake"))
    return IntakeService(settings, clock=clock, engine=engine, kafka_bootstrap=bootstrap)


async def test_events_recorded_during_an_outage_arrive_once_in_order(
    database_url: str, tmp_path: Path
) -> None:
    broker = await start_embedded_broker(tmp_path / "broker")
    await ensure_topics(broker.bootstrap, [DOSSIER_TOPIC])
    clock = FakeClock(monday_morning())
    settings = Settings(data_dir=tmp_path, outbox_poll_seconds=0.2)
    service = intake(database_url, settings, clock, broker.bootstrap)
    app = build_app([service])
    await service.start()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
            h = IntakeHarness(client, service, clock, {}, {}, {})
            h.admin = await h.token("admin", None)
            h.clerk = await h.token("clerk", "UBND-Q1")
            await h.procedure()
            await broker.stop()

            expected: dict[str, list[str]] = defaultdict(list)
            for _ in range(6):
                d = await h.dossier()
                expected[d["id"]].append("dossier.received")
                steps = (
                    ("start", {}, "dossier.started"),
                    ("pause", {"reason": "Chờ lệ phí"}, "dossier.paused"),
                )
                for action, body, event_type in steps:
                    r = await client.post(
                        f"/dossiers/{d['code']}/{action}", json=body, headers=h.clerk
                    )
                    assert r.status_code == 200, r.text
                    expected[d["id"]].append(event_type)
                    clock.advance(minutes=5)
            assert await backlog(service.engine, t.outbox) == 18
        # The bundled broker forgets its topics when it stops, and auto-creates one with its
        # own partition count when a client asks first: a relay racing the topics' creation
        # would write to partitions the new topic lacks. A real Kafka keeps its topics, so the
        # intake restarts only once they are back (its relay resumes from the outbox).
        await service.stop()
        await broker.restart()
        await ensure_topics(broker.bootstrap, [DOSSIER_TOPIC])
        service = intake(database_url, settings, clock, broker.bootstrap)
        await service.start()

        async def drained() -> bool:
            return await backlog(service.engine, t.outbox) == 0

        await wait_for(drained, timeout=90, message="outbox drained after the outage")
        records = await consume(
            broker.bootstrap, DOSSIER_TOPIC, until=lambda rs: len(rs) >= 18, timeout=30
        )
    finally:
        await service.stop()
        await broker.stop()

    envelopes = [json.loads(r.value) for r in records]
    assert len({e["event_id"] for e in envelopes}) == len(envelopes) == 18
    seen: dict[str, list[str]] = defaultdict(list)
    for record, envelope in zip(records, envelopes, strict=True):
        assert record.key.decode() == envelope["dossier_id"]
        seen[envelope["dossier_id"]].append(envelope["type"])
    assert seen == expected
