"""A service starts without waiting for the broker: clerks record dossiers while the consumer
group has not joined (or the broker is not there at all), `/readyz` says so, and the outbox
holds the events until the broker answers."""

from __future__ import annotations

from pathlib import Path

import httpx

from services.core.runtime.database import create_engine
from services.core.runtime.embedded_broker import free_port
from services.core.runtime.host import build_app
from services.core.runtime.outbox import backlog
from services.core.runtime.settings import Settings
from services.intake.adapters import tables as t
from services.intake.app import IntakeService
from tests.fixtures.broker import start_embedded_broker, wait_for
from tests.fixtures.intake import FakeClock, IntakeHarness, monday_morning


async def test_dossiers_are_recorded_before_the_broker_is_there(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens here yet
    engine = create_engine(database_url.format(service="intake"))
    settings = Settings(data_dir=tmp_path, outbox_poll_seconds=0.2)
    clock = FakeClock(monday_morning())
    bootstrap = f"127.0.0.1:{port}"
    service = IntakeService(settings, clock=clock, engine=engine, kafka_bootstrap=bootstrap)
    app = build_app([service])
    await service.start()  # returns at once: the broker is tried in the background
    broker = None
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
            h = IntakeHarness(client, service, clock, {}, {}, {})
            h.admin = await h.token("admin", None)
            h.clerk = await h.token("clerk", "UBND-Q1")
            await h.procedure()
            await h.dossier()
            r = await client.get("/readyz")
            assert r.status_code == 503
            assert r.json()["checks"] == {
                "intake.database": True, "intake.broker": False, "intake.consumers": False,
            }  # fmt: skip
            assert await backlog(engine, t.outbox) == 1  # held until the broker answers

            broker = await start_embedded_broker(tmp_path / "broker", port=port)

            async def ready() -> bool:
                return (await client.get("/readyz")).status_code == 200

            async def published() -> bool:
                return await backlog(engine, t.outbox) == 0

            await wait_for(ready, timeout=60, message="/readyz once the group has joined")
            await wait_for(published, timeout=30, message="the held dossier published")
    finally:
        await service.stop()
        if broker is not None:
            await broker.stop()
