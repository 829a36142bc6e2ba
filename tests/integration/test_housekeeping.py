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
from services.notifier.adapters import tables as nt
from tests.fixtures.intake import FakeClock, monday_morning
from tests.fixtures.notifier import NotifierHarness


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
        assert removed == {"idempotency_keys_forgotten": 1, "personal_data_erased": 0}
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


async def test_the_notifier_forgets_notices_done_with_old_receipts_and_orphan_flags(
    notifier: NotifierHarness,
) -> None:
    """Notices sent long ago go with their history; one still waiting to be sent stays,
    however old; receipts for messages never recorded and flags about a dossier never heard
    of go after their horizons. Run again, nothing more goes: the tables stay bounded."""
    n = notifier
    await n.intake.procedure()
    await n.intake.dossier()
    await n.intake.dossier(applicant={"full_name": "Trần B", "phone": "0987654321"})
    await n.feed()
    n.sms.fail_next(503)  # one stays pending, to be tried again
    await n.dispatch()
    statuses = sorted(x["status"] for x in await n.notices())
    assert statuses == ["accepted", "pending"]
    async with n.engine.begin() as conn:
        await conn.execute(
            sa.insert(nt.early_receipts).values(
                message_id="never-recorded", status="delivered", received_at=n.intake.clock()
            )
        )
        await conn.execute(
            sa.insert(nt.alerts).values(
                dossier_id="d-unknown", kind="overdue", dossier_code="X-1", agency_code="UBND-Q1",
                version=1, step_number=None, due_at=n.intake.clock(), overdue_minutes=5,
                raised_at=n.intake.clock(), settle_until=n.intake.clock(),
            )
        )  # fmt: skip

    n.intake.clock.advance(days=30)
    assert await n.service.housekeeping.run_once() == {  # (no broker here: no outbox job)
        "early_receipts_forgotten": 1,
        "notices_forgotten": 0,
        "alerts_forgotten": 0,
    }
    n.intake.clock.advance(days=61)
    removed = await n.service.housekeeping.run_once()
    assert removed["notices_forgotten"] == 1 and removed["alerts_forgotten"] == 1
    (kept,) = await n.notices()
    assert kept["status"] == "pending"
    async with n.engine.connect() as conn:
        history = await conn.execute(sa.select(nt.notice_history.c.notice_id))
        assert set(history.scalars()) == {kept["id"]}
    again = await n.service.housekeeping.run_once()
    assert again["notices_forgotten"] == 0 and again["alerts_forgotten"] == 0
