"""Housekeeping through the shared runtime: each service forgets, with a moved clock, what
it no longer needs, and keeps what it still does."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from services.core.runtime.database import create_engine
from services.core.runtime.housekeeping import Housekeeping
from services.core.runtime.settings import Settings
from services.intake.adapters import tables as t
from services.intake.app import IntakeService
from services.intake.commands import StoredResponse, remember_idempotent
from tests.fixtures.intake import FakeClock, monday_morning


async def test_the_intake_forgets_idempotency_keys_after_their_horizon(
    database_url: str, tmp_path: Path
) -> None:
    clock = FakeClock(monday_morning())
    engine = create_engine(database_url.format(service="intake"))
    settings = Settings(data_dir=tmp_path, idempotency_keys_keep_hours=24)
    service = IntakeService(settings, clock=clock, engine=engine)
    try:
        async with engine.begin() as conn:
            for hours_ago, key in ((30, "old"), (2, "recent")):
                await remember_idempotent(
                    conn, "clerk-1", key, "f" * 64, StoredResponse(201, {"id": key}),
                    clock() - timedelta(hours=hours_ago),
                )  # fmt: skip
        removed = await service.housekeeping.run_once()
        assert removed == {"idempotency_keys_forgotten": 1}
        async with engine.connect() as conn:
            keys = await conn.execute(sa.select(t.idempotency_keys.c.key))
            assert list(keys.scalars()) == ["recent"]
    finally:
        await engine.dispose()


async def test_a_failing_job_does_not_stop_the_others() -> None:
    now = datetime(2026, 12, 1, 9, 0)
    done: list[datetime] = []

    async def broken(_now: datetime) -> int:
        raise RuntimeError("the database is away")

    async def works(when: datetime) -> int:
        done.append(when)
        return 3

    housekeeping = Housekeeping("demo", lambda: now)
    housekeeping.add("broken", broken)
    housekeeping.add("works", works)
    assert await housekeeping.run_once() == {"works": 3}
    assert done == [now]
