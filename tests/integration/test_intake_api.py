"""The intake HTTP API on SQLite and PostgreSQL: receipt, actions, listing, lookup, auth."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime

import sqlalchemy as sa

from services.core.domain.calendar import VN_TZ
from services.intake.adapters import tables as t
from tests.fixtures.intake import IntakeHarness, dossier_body


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


async def test_no_token_is_401_and_unknown_token_is_401(intake: IntakeHarness) -> None:
    assert (await intake.client.get("/dossiers")).status_code == 401
    bad = {"Authorization": "Bearer mc_not-a-token"}
    r = await intake.client.get("/dossiers", headers=bad)
    assert r.status_code == 401
    assert r.json()["error"]["field"] == "Authorization"


async def test_clerk_of_another_agency_can_neither_read_nor_act(intake: IntakeHarness) -> None:
    await intake.procedure()
    d = await intake.dossier()
    other = await intake.token("clerk", "UBND-Q3")
    assert (await intake.client.get(f"/dossiers/{d['code']}", headers=other)).status_code == 404
    r = await intake.client.post(f"/dossiers/{d['code']}/start", json={}, headers=other)
    assert r.status_code == 404
    listing = await intake.client.get("/dossiers", headers=other)
    assert listing.json()["items"] == []
    assert (await intake.client.get("/dossiers?agency=UBND-Q1", headers=other)).status_code == 403
    got = await intake.client.get(f"/dossiers/{d['code']}", headers=intake.clerk)
    assert got.json()["status"] == "received"


async def test_clerk_cannot_receive_for_another_agencys_procedure(intake: IntakeHarness) -> None:
    await intake.procedure(code="P3", agency="UBND-Q3")
    r = await intake.client.post(
        "/dossiers", json=dossier_body(procedure_code="P3"), headers=intake.clerk
    )
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "procedure_code"


async def test_roles_are_enforced(intake: IntakeHarness) -> None:
    r = await intake.client.post(
        "/procedures",
        json={"code": "X", "name": "x", "agency_code": "A",
              "time_limit": {"value": 1, "unit": "working_days"}},
        headers=intake.clerk,
    )  # fmt: skip
    assert r.status_code == 403
    await intake.procedure()
    r = await intake.client.post("/dossiers", json=dossier_body(), headers=intake.supervisor)
    assert r.status_code == 403
    d = await intake.dossier()
    assert (
        await intake.client.get(f"/dossiers/{d['code']}", headers=intake.supervisor)
    ).status_code == 200


async def test_supplement_restarts_the_full_time_limit(intake: IntakeHarness) -> None:
    await intake.procedure(time_limit={"value": 2, "unit": "working_days"})
    d = await intake.dossier()  # Mon 16 Nov 09:00 → due Wed 18 Nov 09:00
    code = d["code"]
    intake.clock.advance(days=1)  # Tue 09:00
    r = await intake.client.post(
        f"/dossiers/{code}/request-supplement",
        json={"items": ["Bản sao CCCD"], "reason": "Thiếu giấy tờ"},
        headers=intake.clerk,
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "awaiting_supplement"
    assert r.json()["due_at"] is None
    intake.clock.advance(days=2)  # Thu 19 Nov 09:00
    r = await intake.client.post(f"/dossiers/{code}/receive-supplement", headers=intake.clerk)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "in_progress"
    # Full two working days from Thu 09:00: Mon 23 Nov 09:00.
    assert datetime.fromisoformat(r.json()["due_at"]) == datetime(2026, 11, 23, 9, tzinfo=VN_TZ)


async def test_pause_and_resume_keep_the_remaining_time(intake: IntakeHarness) -> None:
    await intake.procedure(time_limit={"value": 16, "unit": "working_hours"})
    d = await intake.dossier()  # Mon 09:00 → due Wed 09:00
    intake.clock.advance(hours=4)  # Mon 13:00: 3 working hours used (lunch is not counted)
    r = await intake.client.post(
        f"/dossiers/{d['code']}/pause", json={"reason": "Chờ nộp lệ phí"}, headers=intake.clerk
    )
    assert r.json()["status"] == "paused"
    intake.clock.advance(days=1)  # Tue 13:00
    r = await intake.client.post(f"/dossiers/{d['code']}/resume", json={}, headers=intake.clerk)
    assert r.json()["status"] == "received"  # the status before the pause
    # 13 working hours left from Tue 13:00: Tue 4h, Wed 8h, Thu 1h → Thu 19 Nov 09:00.
    assert datetime.fromisoformat(r.json()["due_at"]) == datetime(2026, 11, 19, 9, tzinfo=VN_TZ)


async def test_full_path_with_extension_counts_late(intake: IntakeHarness) -> None:
    await intake.procedure(time_limit={"value": 1, "unit": "working_days"})
    d = await intake.dossier()  # due Tue 17 Nov 09:00
    code, h = d["code"], intake.clerk
    assert (await intake.client.post(f"/dossiers/{code}/start", json={}, headers=h)).json()[
        "status"
    ] == "in_progress"
    r = await intake.client.post(
        f"/dossiers/{code}/extend",
        json={"new_due_at": "2026-11-20T17:00:00+07:00", "reason": "Cần xác minh thực địa"},
        headers=h,
    )
    assert r.status_code == 200, r.text
    assert r.json()["due_at"] == "2026-11-20T17:00:00+07:00"
    assert r.json()["original_due_at"] == "2026-11-17T09:00:00+07:00"
    second = await intake.client.post(
        f"/dossiers/{code}/extend",
        json={"new_due_at": "2026-11-27T17:00:00+07:00", "reason": "again"},
        headers=h,
    )
    assert second.status_code == 422
    intake.clock.advance(days=2)  # Wed 18 Nov: within the extension, after the legal deadline
    r = await intake.client.post(f"/dossiers/{code}/complete", json={}, headers=h)
    assert r.json()["status"] == "result_ready"
    assert r.json()["outcome"] == "late"
    r = await intake.client.post(f"/dossiers/{code}/return", json={}, headers=h)
    assert r.json()["status"] == "returned"
    actions = [e["action"] for e in r.json()["history"]]
    assert actions == ["receive", "start", "extend", "complete", "return"]


async def test_transfer_gives_the_receiving_agency_access(intake: IntakeHarness) -> None:
    await intake.procedure()
    await intake.agency("STNMT")
    d = await intake.dossier()
    r = await intake.client.post(
        f"/dossiers/{d['code']}/transfer",
        json={"to_agency": "STNMT", "allotted_hours": 16},
        headers=intake.clerk,
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "transferred"
    assert r.json()["handling_agency"] == "STNMT"
    receiving = await intake.token("clerk", "STNMT")
    got = await intake.client.get(f"/dossiers/{d['code']}", headers=receiving)
    assert got.status_code == 200


async def test_imported_history_uses_the_given_times(intake: IntakeHarness) -> None:
    await intake.procedure(time_limit={"value": 3, "unit": "working_days"})
    d = await intake.dossier(received_at="2026-11-02T14:00:00+07:00")
    assert d["code"].startswith("UBND-Q1-20261102-")
    assert d["due_at"] == "2026-11-05T14:00:00+07:00"
    r = await intake.client.post(
        f"/dossiers/{d['code']}/complete", json={"at": "2026-11-04T10:00:00+07:00"},
        headers=intake.clerk,
    )  # fmt: skip
    assert r.json()["outcome"] == "early"
    assert r.json()["history"][-1]["at"] == "2026-11-04T10:00:00+07:00"


async def test_withdraw_and_reject_are_final(intake: IntakeHarness) -> None:
    await intake.procedure()
    a, b = await intake.dossier(), await intake.dossier()
    h = intake.clerk
    r = await intake.client.post(
        f"/dossiers/{a['code']}/withdraw", json={"reason": "Công dân rút hồ sơ"}, headers=h
    )
    assert r.json()["status"] == "withdrawn"
    r = await intake.client.post(
        f"/dossiers/{b['code']}/reject", json={"reason": "Không thuộc thẩm quyền"}, headers=h
    )
    assert r.json()["status"] == "rejected"
    for code in (a["code"], b["code"]):
        again = await intake.client.post(f"/dossiers/{code}/start", json={}, headers=h)
        assert again.status_code == 409


async def test_listing_filters_and_paginates_without_gaps(intake: IntakeHarness) -> None:
    await intake.procedure()
    codes = [(await intake.dossier())["code"] for _ in range(7)]
    await intake.client.post(f"/dossiers/{codes[0]}/start", json={}, headers=intake.clerk)
    seen: list[str] = []
    cursor = None
    while True:
        url = "/dossiers?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = (await intake.client.get(url, headers=intake.clerk)).json()
        seen += [item["code"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(codes))
    started = await intake.client.get("/dossiers?status=in_progress", headers=intake.clerk)
    assert [i["code"] for i in started.json()["items"]] == [codes[0]]
    bad = await intake.client.get("/dossiers?cursor=%%%", headers=intake.clerk)
    assert bad.status_code == 422


async def test_public_lookup_same_404_for_wrong_code_or_phone(intake: IntakeHarness) -> None:
    await intake.procedure()
    d = await intake.dossier()
    ok = await intake.client.get(f"/public/dossiers/{d['code']}?phone=+84912345678")
    assert ok.status_code == 200
    assert set(ok.json()) == {"code", "status", "procedure_name", "received_at", "due_at"}
    assert "Nguyễn" not in ok.text and "912345678" not in ok.text
    wrong_phone = await intake.client.get(f"/public/dossiers/{d['code']}?phone=0987654321")
    wrong_code = await intake.client.get("/public/dossiers/UBND-Q1-20261116-9999?phone=0912345678")
    assert wrong_phone.status_code == wrong_code.status_code == 404
    assert wrong_phone.json() == wrong_code.json()


async def test_public_lookup_is_rate_limited(intake: IntakeHarness) -> None:
    intake.client._transport.app.state.public_limiter.limit = 3  # type: ignore[attr-defined]
    statuses = [
        (await intake.client.get("/public/dossiers/X-1?phone=0912345678")).status_code
        for _ in range(5)
    ]
    assert statuses == [404, 404, 404, 429, 429]


async def test_idempotency_key_returns_the_first_result(intake: IntakeHarness) -> None:
    await intake.procedure()
    headers = {**intake.clerk, "Idempotency-Key": "quay-1-0001"}
    first = await intake.client.post("/dossiers", json=dossier_body(), headers=headers)
    again = await intake.client.post("/dossiers", json=dossier_body(), headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    listing = await intake.client.get("/dossiers", headers=intake.clerk)
    assert len(listing.json()["items"]) == 1
    other_body = dossier_body(channel="online")
    reused = await intake.client.post("/dossiers", json=other_body, headers=headers)
    assert reused.status_code == 422
    assert reused.json()["error"]["field"] == "Idempotency-Key"


async def test_concurrent_receipts_get_unique_codes(intake: IntakeHarness) -> None:
    await intake.procedure()
    responses = await asyncio.gather(
        *[intake.client.post("/dossiers", json=dossier_body(), headers=intake.clerk)
          for _ in range(40)]
    )  # fmt: skip
    assert all(r.status_code == 201 for r in responses), [r.text for r in responses[:3]]
    codes = [r.json()["code"] for r in responses]
    assert len(set(codes)) == 40
    assert sorted(int(c.rsplit("-", 1)[1]) for c in codes) == list(range(1, 41))


async def test_concurrent_retries_with_one_key_record_one_dossier(intake: IntakeHarness) -> None:
    await intake.procedure()
    headers = {**intake.clerk, "Idempotency-Key": "retry-storm"}
    responses = await asyncio.gather(
        *[intake.client.post("/dossiers", json=dossier_body(), headers=headers) for _ in range(8)]
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["code"] for r in responses}) == 1
    async with intake.service.engine.connect() as conn:
        count = (await conn.execute(sa.select(sa.func.count()).select_from(t.dossiers))).scalar()
    assert count == 1


async def test_every_change_queues_its_event_in_the_outbox(intake: IntakeHarness) -> None:
    await intake.procedure()
    d = await intake.dossier()
    await intake.client.post(f"/dossiers/{d['code']}/start", json={}, headers=intake.clerk)
    async with intake.service.engine.connect() as conn:
        rows = (await conn.execute(sa.select(t.outbox).order_by(t.outbox.c.id))).all()
    envelopes = [json.loads(r.value) for r in rows]
    assert [e["type"] for e in envelopes] == ["dossier.received", "dossier.started"]
    assert {r.key for r in rows} == {d["id"]}
    assert envelopes[0]["dossier_code"] == d["code"]
    assert envelopes[0]["payload"]["due_at"] == d["due_at"]


async def test_admin_day_off_moves_new_appointments(intake: IntakeHarness) -> None:
    await intake.procedure(time_limit={"value": 1, "unit": "working_days"})
    before = await intake.dossier()  # Mon 09:00 → Tue 17 Nov 09:00
    assert before["due_at"] == "2026-11-17T09:00:00+07:00"
    r = await intake.client.put(
        "/calendar/overrides/2026-11-17",
        json={"kind": "day_off", "note": "Nghỉ theo quyết định của UBND tỉnh"},
        headers=intake.admin,
    )
    assert r.status_code == 200, r.text
    after = await intake.dossier()
    assert after["due_at"] == "2026-11-18T09:00:00+07:00"
    listed = await intake.client.get("/calendar/overrides", headers=intake.clerk)
    assert listed.json() == [
        {"day": "2026-11-17", "kind": "day_off", "note": "Nghỉ theo quyết định của UBND tỉnh"}
    ]
    gone = await intake.client.delete("/calendar/overrides/2026-11-17", headers=intake.admin)
    assert gone.status_code == 204
    assert (await intake.dossier())["due_at"] == "2026-11-17T09:00:00+07:00"


async def test_agency_saturday_mornings_count(intake: IntakeHarness) -> None:
    weekday = [["08:00", "12:00"], ["13:00", "17:00"]]
    schedule = {"week": {**{str(d): weekday for d in range(5)}, "5": [["08:00", "12:00"]]}}
    r = await intake.client.put(
        "/agencies/UBND-Q1",
        json={"name": "UBND Quận 1", "office_schedule": schedule},
        headers=intake.admin,
    )
    assert r.status_code == 200, r.text
    await intake.procedure(time_limit={"value": 8, "unit": "working_hours"})
    intake.clock.now = datetime(2026, 11, 20, 15, 0, tzinfo=VN_TZ)  # Friday 15:00
    d = await intake.dossier()
    # Fri 15–17 (2h), Sat 08–12 (4h), Mon 08–10 (2h).
    assert d["due_at"] == "2026-11-23T10:00:00+07:00"


async def test_each_new_supervisor_publishes_the_agencys_whole_list(intake: IntakeHarness) -> None:
    people = [
        ("UBND-Q1", {"name": "Lê Minh Tuấn", "phone": "0903123456", "email": "tuan@example.vn"}),
        ("UBND-Q1", {"name": "Phạm Thu", "phone": "0987000111"}),
        ("UBND-Q3", {"name": "Đỗ Hải", "phone": "0912000333"}),
    ]
    added = []
    for agency, body in people:
        intake.clock.advance(minutes=1)
        r = await intake.client.post(
            f"/agencies/{agency}/supervisors", json=body, headers=intake.admin
        )
        assert r.status_code == 201, r.text
        added.append(r.json())
    async with intake.service.engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(t.outbox)
                .where(t.outbox.c.topic == "motcua.directory.v1")
                .order_by(t.outbox.c.id)
            )
        ).all()
    assert [r.key for r in rows] == ["UBND-Q1", "UBND-Q1", "UBND-Q3"]
    envelopes = [json.loads(r.value) for r in rows]
    assert {e["type"] for e in envelopes} == {"directory.supervisors_changed"}
    assert [r.event_id for r in rows] == [e["event_id"] for e in envelopes]
    assert envelopes[1]["occurred_at"] == "2026-11-16T09:02:00+07:00"
    assert envelopes[1]["payload"] == {
        "agency_code": "UBND-Q1",
        "agency_name": "UBND-Q1",  # named by its code until an admin names it
        "supervisors": [
            {
                "id": added[0]["id"],
                "name": "Lê Minh Tuấn",
                "phone": "+84903123456",
                "email": "tuan@example.vn",
            },
            {"id": added[1]["id"], "name": "Phạm Thu", "phone": "+84987000111", "email": None},
        ],
    }
    assert [s["id"] for s in envelopes[0]["payload"]["supervisors"]] == [added[0]["id"]]
    assert envelopes[2]["payload"]["agency_code"] == "UBND-Q3"
    assert [s["name"] for s in envelopes[2]["payload"]["supervisors"]] == ["Đỗ Hải"]


async def test_a_refused_supervisor_publishes_nothing(intake: IntakeHarness) -> None:
    r = await intake.client.post(
        "/agencies/UBND-Q1/supervisors",
        json={"name": "Lê Minh Tuấn", "phone": "12345"},
        headers=intake.admin,
    )
    assert r.status_code == 422
    async with intake.service.engine.connect() as conn:
        count = await conn.scalar(sa.select(sa.func.count()).select_from(t.outbox))
    assert count == 0
