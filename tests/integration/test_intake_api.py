"""The intake HTTP API on SQLite and PostgreSQL: receipt, actions, listing, lookup, auth."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from services.core.domain.calendar import VN_TZ
from services.intake.adapters import tables as t
from tests.fixtures.intake import IntakeHarness


async def test_receipt_carries_the_legal_appointment(intake: IntakeHarness) -> None:
    await intake.procedure(time_limit={"value": 5, "unit": "working_days"})
    body = await intake.dossier()
    assert body["status"] == "received"
    assert body["code"].startswith("UBND-Q1-20261116-")
    # Mon 16 Nov 2026 09:00 + 5 working days = Mon 23 Nov 09:00 (Tue 24 Nov is a day off
    # only from 2026: Vietnam Cultural Day, so it does not affect this one).
    assert datetime.fromisoformat(body["due_at"]) == datetime(2026, 11, 23, 9, 0, tzinfo=VN_TZ)
    assert body["due_at"].endswith("+07:00")
    assert body["applicant"]["phone"] == "+84912345678"


async def test_forbidden_action_is_409_and_writes_nothing(intake: IntakeHarness) -> None:
    await intake.procedure()
    d = await intake.dossier()
    async with intake.service.engine.connect() as conn:
        before = (await conn.execute(sa.select(sa.func.count()).select_from(t.outbox))).scalar()
    r = await intake.client.post(f"/dossiers/{d['code']}/return", json={}, headers=intake.clerk)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "forbidden_transition"
    async with intake.service.engine.connect() as conn:
        after = (await conn.execute(sa.select(sa.func.count()).select_from(t.outbox))).scalar()
    assert after == before
    got = await intake.client.get(f"/dossiers/{d['code']}", headers=intake.clerk)
    assert got.json()["status"] == "received"
    assert len(got.json()["history"]) == 1
