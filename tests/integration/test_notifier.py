"""The notifier on SQLite and PostgreSQL, fed with the intake's and the tracker's real events,
sending to fake gateways that are real HTTP servers on loopback."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from schemas.events import Envelope
from services.core.runtime.consumer import PoisonEvent
from services.core.runtime.database import create_engine
from services.notifier.adapters import tables as t
from services.notifier.adapters.repository import EarlyReceipts
from services.notifier.app import NotifierService
from services.notifier.domain.templates import TemplateError
from tests.fixtures.gateways import FakePostalOperator, FakeSmsGateway
from tests.fixtures.notifier import CALLBACK_TOKEN, NotifierHarness, notifier_settings


@pytest.fixture
def n(notifier: NotifierHarness) -> NotifierHarness:
    return notifier


ADDRESS = {"street": "12 Lê Lợi", "ward": "Bến Nghé", "district": "Quận 1", "province": "TP HCM"}


async def received(n: NotifierHarness, **kw: object) -> dict:
    await n.intake.procedure()
    dossier = await n.intake.dossier(**kw)
    await n.feed()
    return dossier


async def test_received_is_texted_once_with_code_and_appointment(n: NotifierHarness) -> None:
    dossier = await received(n)
    assert await n.dispatch() == 1
    (message,) = n.sms.messages.values()
    assert message["to"] == "+84912345678"
    assert dossier["code"] in message["text"] and "23/11/2026" in message["text"]
    assert message["text"].isascii() and message["unicode"] is False
    assert message["callback_url"] == f"http://notifier.test/sms/receipts?token={CALLBACK_TOKEN}"
    (notice,) = await n.notices()
    assert notice["status"] == "accepted" and message["request_id"] == notice["id"]
    assert await n.history(notice["id"]) == ["pending", "accepted"]
    assert await n.dispatch() == 0


async def test_redelivered_events_make_no_second_notice(n: NotifierHarness) -> None:
    await received(n)
    for topic, value in await n.intake_rows() * 2:
        await n.deliver(topic, value.encode())
    await n.dispatch()
    assert len(await n.notices()) == 1
    assert n.sms.accepted_count() == 1 and len(n.sms.requests) == 1


async def test_each_step_tells_the_citizen_what_design_promises(n: NotifierHarness) -> None:
    dossier = await received(n)
    code = dossier["code"]
    await n.act(code, "request-supplement", {"items": ["Bản sao CCCD"], "reason": "thiếu"})
    n.intake.clock.advance(hours=2)
    await n.act(code, "receive-supplement")
    due = (await n.intake.client.get(f"/dossiers/{code}", headers=n.intake.clerk)).json()
    new_due = due["due_at"]
    await n.act(
        code,
        "extend",
        {"new_due_at": "2026-12-10T16:00:00+07:00", "reason": "cần xác minh"},
    )
    await n.act(code, "complete")
    await n.act(code, "return")
    await n.feed()
    await n.dispatch()
    templates = [x["template"] for x in await n.notices(audience="citizen")]
    assert templates == [
        "received",
        "supplement_requested",
        "supplement_received",
        "extended",
        "result_ready_counter",
        "returned",
    ]
    texts = await n.texts(audience="citizen")
    assert "Ban sao CCCD" in texts[1]
    day, month, year = new_due[8:10], new_due[5:7], new_due[:4]
    assert f"{day}/{month}/{year}" in texts[2]
    assert "16:00 10/12/2026" in texts[3] and "xin loi" in texts[3]
    assert all(m["to"] == "+84912345678" for m in n.sms.requests)


async def test_rejection_gives_the_reason(n: NotifierHarness) -> None:
    dossier = await received(n)
    await n.act(dossier["code"], "reject", {"reason": "Không thuộc thẩm quyền"})
    await n.feed()
    await n.dispatch()
    (text,) = await n.texts(template="rejected")
    assert "Ly do: Khong thuoc tham quyen" in text


async def test_imported_history_texts_no_citizen(n: NotifierHarness) -> None:
    old = (n.intake.clock() - timedelta(days=3)).isoformat()
    await received(n, received_at=old)
    await n.dispatch()
    (notice,) = await n.notices()
    assert notice["status"] == "skipped" and notice["error"] == "historical_action"
    assert n.sms.requests == []


async def test_quiet_hours_hold_and_release_without_dropping(n: NotifierHarness) -> None:
    await n.intake.procedure()
    n.intake.clock.now = n.intake.clock.now.replace(hour=16, minute=59)
    await n.intake.dossier()
    n.intake.clock.now = n.intake.clock.now.replace(hour=22, minute=0)
    await n.feed()
    (notice,) = await n.notices()
    assert notice["status"] == "held"
    assert await n.dispatch() == 0
    n.intake.clock.now = (n.intake.clock.now + timedelta(days=1)).replace(hour=6, minute=59)
    assert await n.dispatch() == 0 and n.sms.requests == []
    n.intake.clock.advance(minutes=1)
    assert await n.dispatch() == 1
    assert await n.history(notice["id"]) == ["held", "accepted"]


async def test_an_invalid_phone_fails_the_notice_and_sends_nothing(n: NotifierHarness) -> None:
    await received(n)
    (row,) = [r for r in await n.intake_rows() if r[0] == "motcua.dossier.v1"]
    envelope = json.loads(row[1])
    envelope["event_id"] = "another-event"
    envelope["dossier_id"] = "another-dossier"
    envelope["payload"]["applicant"]["phone"] = "+8412"
    await n.deliver("motcua.dossier.v1", json.dumps(envelope).encode())
    failed = await n.notices(status="failed")
    assert [f["error"] for f in failed] == ["invalid phone number"]
    await n.dispatch()
    assert all(m["to"] == "+84912345678" for m in n.sms.requests)


async def test_429_then_accepted_after_backoff(n: NotifierHarness) -> None:
    await received(n)
    n.sms.fail_next(429, retry_after=30)
    await n.dispatch()
    (notice,) = await n.notices()
    assert notice["status"] == "pending" and notice["attempts"] == 1
    assert notice["next_attempt_at"] - n.intake.clock() == timedelta(seconds=30)
    n.intake.clock.advance(seconds=29)
    assert await n.dispatch() == 0
    n.intake.clock.advance(seconds=1)
    assert await n.dispatch() == 1
    (notice,) = await n.notices()
    assert notice["status"] == "accepted" and notice["attempts"] == 2
    assert await n.history(notice["id"]) == ["pending", "retry", "accepted"]
    assert n.sms.accepted_count() == 1


async def test_timeout_is_retried_with_the_same_request_id(n: NotifierHarness) -> None:
    await received(n)
    n.sms.hang_next(seconds=5)
    await n.dispatch()
    (notice,) = await n.notices()
    assert notice["status"] == "pending" and "imeout" in (notice["error"] or "")
    n.intake.clock.advance(minutes=1)
    await n.dispatch()
    ids = [r["request_id"] for r in n.sms.requests]
    assert len(ids) == 2 and len(set(ids)) == 1 and n.sms.accepted_count() == 1


async def test_a_4xx_is_permanent_at_once(n: NotifierHarness) -> None:
    await received(n)
    n.sms.reject_next(400, "invalid_number")
    await n.dispatch()
    n.intake.clock.advance(hours=1)
    await n.dispatch()
    (notice,) = await n.notices()
    assert notice["status"] == "failed" and "400" in notice["error"]
    assert len(n.sms.requests) == 1


async def test_5xx_past_the_horizon_is_a_permanent_failure(n: NotifierHarness) -> None:
    await received(n)
    n.sms.fail_for(500, seconds=3600)
    for _ in range(40):
        await n.dispatch()
        n.intake.clock.advance(hours=1)
    (notice,) = await n.notices()
    assert notice["status"] == "failed" and notice["error"].startswith("gave up after")
    assert n.sms.accepted_count() == 0
    assert 2 < len(n.sms.requests) < 40


async def test_receipts_move_the_notice_to_delivered_or_failed(n: NotifierHarness) -> None:
    await received(n)
    await n.dispatch()
    (message,) = n.sms.messages.values()
    r = await n.client.post(
        "/sms/receipts", json={"message_id": message["message_id"], "status": "delivered"}
    )
    assert r.status_code == 202
    (notice,) = await n.notices()
    assert notice["status"] == "delivered"
    assert await n.history(notice["id"]) == ["pending", "accepted", "delivered"]
    bad = await n.client.post("/sms/receipts", json={"message_id": "x", "status": "read"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "status"


async def test_a_receipt_before_the_answer_is_kept_and_applied(n: NotifierHarness) -> None:
    await received(n)
    hold = n.sms.hold_next()
    sending = asyncio.create_task(n.dispatch())
    await asyncio.to_thread(hold.arrived.wait, 10)
    (message,) = n.sms.messages.values()
    r = await n.client.post(
        "/sms/receipts",
        json={"message_id": message["message_id"], "status": "failed", "error": "absent"},
    )
    assert r.status_code == 202 and r.json()["status"] == "kept"
    hold.release()
    await sending
    (notice,) = await n.notices()
    assert notice["status"] == "failed" and notice["error"] == "absent"


async def test_overdue_alerts_each_supervisor_once_per_dossier(n: NotifierHarness) -> None:
    await n.supervisors()
    dossier = await received(n)
    n.intake.clock.advance(days=8)
    await n.tracker.scan()
    await n.feed()
    await n.dispatch()
    assert await n.notices(template="overdue_alert") == []  # the flag waits for news to settle
    n.intake.clock.advance(minutes=5)
    await n.dispatch()
    alerts = await n.notices(template="overdue_alert")
    assert sorted(a["recipient"] for a in alerts) == ["+84901000001", "+84901000002"]
    await n.act(
        dossier["code"],
        "extend",
        {"new_due_at": (n.intake.clock() + timedelta(days=2)).isoformat(), "reason": "x"},
    )
    n.intake.clock.advance(days=4)
    await n.tracker.scan()
    await n.feed()
    n.intake.clock.advance(minutes=5)
    await n.dispatch()
    assert len(await n.notices(template="overdue_alert")) == 2
    assert {m["to"] for m in n.sms.requests if "qua han" in m["text"]} == {
        "+84901000001",
        "+84901000002",
    }


async def test_daily_digest_one_per_supervisor_on_working_days(n: NotifierHarness) -> None:
    await n.supervisors()
    await received(n)
    await n.intake.dossier()
    await n.feed()
    n.intake.clock.advance(days=8)  # Tue 24 Nov: Ngày Văn hóa Việt Nam, a day off
    await n.tracker.scan()
    await n.feed()
    n.intake.clock.now = n.intake.clock.now.replace(hour=7, minute=30)
    assert await n.service.send_digests() == 0
    n.intake.clock.advance(days=1)  # Wednesday
    assert await n.service.send_digests() == 2
    assert await n.service.send_digests() == 0
    await n.dispatch()
    digests = [m for m in n.sms.requests if "sap den han" in m["text"]]
    assert len(digests) == 2 and "2 ho so qua han" in digests[0]["text"]
    n.intake.clock.now = n.intake.clock.now + timedelta(days=5 - n.intake.clock.now.weekday())
    assert n.intake.clock.now.weekday() == 5
    assert await n.service.send_digests() == 0


async def test_postal_return_orders_texts_the_tracking_code_and_follows_it(
    n: NotifierHarness,
) -> None:
    await n.supervisors()
    dossier = await received(n, return_method="postal", return_address=ADDRESS)
    await n.act(dossier["code"], "complete")
    await n.feed()
    await n.dispatch()
    (order,) = n.postal.orders.values()
    assert order["reference"] == dossier["code"]
    assert order["receiver"]["phone"] == "+84912345678"
    assert order["receiver"]["address"]["street"] == "12 Lê Lợi"
    tracking = order["tracking_code"]
    await n.dispatch()
    assert any(tracking in m["text"] for m in n.sms.requests)
    published = await n.published()
    assert [e["type"] for e in published] == ["postal.ordered"]
    assert published[0]["payload"]["tracking_code"] == tracking
    for status in ("picked_up", "in_transit", "delivered", "delivered"):
        r = await n.client.post(
            "/postal/callbacks", json={"tracking_code": tracking, "status": status}
        )
        assert r.status_code == 202
    published = await n.published()
    assert [e["payload"].get("status") for e in published[1:]] == [
        "picked_up",
        "in_transit",
        "delivered",
    ]
    assert (
        await n.client.post("/postal/callbacks", json={"tracking_code": "nope", "status": "failed"})
    ).status_code == 404


async def test_a_returned_parcel_alerts_the_supervisors(n: NotifierHarness) -> None:
    await n.supervisors()
    dossier = await received(n, return_method="postal", return_address=ADDRESS)
    await n.act(dossier["code"], "complete")
    await n.feed()
    await n.dispatch()
    (order,) = n.postal.orders.values()
    r = await n.client.post(
        "/postal/callbacks", json={"tracking_code": order["tracking_code"], "status": "returned"}
    )
    assert r.status_code == 202
    alerts = await n.notices(template="postal_problem")
    assert len(alerts) == 2 and all(a["audience"] == "supervisor" for a in alerts)


async def postal_rows(n: NotifierHarness) -> tuple[list[tuple[str, str | None]], list[str]]:
    """(status, carrier status) of every order, and the postal history's statuses."""
    async with n.engine.connect() as conn:
        orders = await conn.execute(
            sa.select(t.postal_orders.c.status, t.postal_orders.c.carrier_status)
        )
        history = await conn.execute(
            sa.select(t.postal_history.c.status).order_by(t.postal_history.c.id)
        )
        return [tuple(r) for r in orders], list(history.scalars())


@pytest.mark.parametrize("end", ["delivered", "failed", "returned"])
async def test_nothing_after_the_parcels_end_changes_anything(n: NotifierHarness, end: str) -> None:
    await n.supervisors()
    dossier = await received(n, return_method="postal", return_address=ADDRESS)
    await n.act(dossier["code"], "complete")
    await n.feed()
    await n.dispatch()
    (order,) = n.postal.orders.values()
    tracking = order["tracking_code"]

    async def callback(status: str) -> dict:
        r = await n.client.post(
            "/postal/callbacks", json={"tracking_code": tracking, "status": status}
        )
        assert r.status_code == 202, r.text
        return r.json()

    assert await callback("in_transit") == {"status": "recorded"}
    assert await callback(end) == {"status": "recorded"}
    published, notices, rows = await n.published(), await n.notices(), await postal_rows(n)
    assert rows[0] == [("placed", end)]
    for later in ("picked_up", "in_transit", "delivered", "failed", "returned"):
        assert await callback(later) == {"status": "ignored"}  # acknowledged, so not resent
    assert await n.published() == published
    assert await n.notices() == notices  # no new alert, no new SMS
    assert await postal_rows(n) == rows


async def test_postal_operator_errors_are_retried(n: NotifierHarness) -> None:
    dossier = await received(n, return_method="postal", return_address=ADDRESS)
    await n.act(dossier["code"], "complete")
    await n.feed()
    n.postal.fail_next(503)
    await n.dispatch()
    assert n.postal.orders == {}
    n.intake.clock.advance(minutes=5)
    await n.dispatch()
    assert len(n.postal.orders) == 1


async def test_poison_records_are_refused(n: NotifierHarness) -> None:
    with pytest.raises(PoisonEvent):
        await n.service.on_dossier_event(b"not json")
    await received(n)
    (row,) = [r for r in await n.intake_rows() if r[0] == "motcua.dossier.v1"]
    envelope = Envelope.model_validate_json(row[1]).model_dump(mode="json")
    envelope["payload"].pop("applicant")
    with pytest.raises(PoisonEvent):
        await n.service.on_dossier_event(json.dumps(envelope).encode())
    with pytest.raises(PoisonEvent):
        await n.service.on_deadline_event(json.dumps({**envelope, "type": "x"}).encode())


async def postal_ready(n: NotifierHarness) -> tuple[dict, str]:
    """A dossier whose result left by post: (the dossier, its real tracking code)."""
    await n.supervisors()
    dossier = await received(n, return_method="postal", return_address=ADDRESS)
    await n.act(dossier["code"], "complete")
    await n.feed()
    await n.dispatch()
    await n.dispatch()  # the citizen's SMS with the tracking code
    (order,) = n.postal.orders.values()
    return dossier, order["tracking_code"]


FORGED = [
    pytest.param("", 401, "unauthorized", id="no-token"),
    pytest.param("?token=", 401, "unauthorized", id="empty-token"),
    pytest.param("?token=guess", 403, "forbidden", id="wrong-token"),
    pytest.param(f"?token={CALLBACK_TOKEN}x", 403, "forbidden", id="longer-token"),
    pytest.param("?token=m%E1%BA%ADt", 403, "forbidden", id="non-ascii-token"),
    pytest.param(f"?TOKEN={CALLBACK_TOKEN}", 401, "unauthorized", id="other-name"),
]


@pytest.mark.parametrize(("query", "status", "code"), FORGED)
async def test_a_forged_callback_changes_nothing(
    n: NotifierHarness, query: str, status: int, code: str
) -> None:
    """Whoever knows a tracking code or a message id, without the token, changes nothing: no
    parcel delivered (which would return the dossier), no notice delivered, no SMS."""
    dossier, tracking = await postal_ready(n)
    (message,) = [m for m in n.sms.messages.values() if tracking in m["text"]]
    published, notices, rows = await n.published(), await n.notices(), await postal_rows(n)
    async with httpx.AsyncClient(transport=n.transport, base_url="http://notifier.test") as forger:
        for path, body in [
            ("/postal/callbacks", {"tracking_code": tracking, "status": "delivered"}),
            ("/sms/receipts", {"message_id": message["message_id"], "status": "failed"}),
        ]:
            r = await forger.post(path + query, json=body)
            assert r.status_code == status, r.text
            assert r.json()["error"]["code"] == code and r.json()["error"]["field"] == "token"
    assert await n.published() == published
    assert await n.notices() == notices
    assert await postal_rows(n) == rows
    await n.dispatch()
    assert await n.notices() == notices  # nothing decided meanwhile
    # The operator, which has the token, is heard.
    r = await n.client.post(
        "/postal/callbacks", json={"tracking_code": tracking, "status": "delivered"}
    )
    assert r.status_code == 202 and r.json() == {"status": "recorded"}
    assert [e["type"] for e in await n.published()][-1] == "postal.status_changed"


async def test_the_callback_urls_carry_the_token(n: NotifierHarness) -> None:
    await postal_ready(n)
    query = f"?token={CALLBACK_TOKEN}"
    assert {m["callback_url"] for m in n.sms.requests} == {
        f"http://notifier.test/sms/receipts{query}"
    }
    (order,) = n.postal.orders.values()
    assert order["callback_url"] == f"http://notifier.test/postal/callbacks{query}"


async def test_without_a_token_no_callback_acts(
    tmp_path: Path, fake_sms_gateway: FakeSmsGateway, fake_postal_operator: FakePostalOperator
) -> None:
    from services.core.runtime.host import build_app
    from services.core.runtime.migrations import upgrade_async

    settings = notifier_settings(
        tmp_path, fake_sms_gateway, fake_postal_operator, callback_token=""
    )
    assert settings.callback_token is None  # compose's unset ${MOTCUA_CALLBACK_TOKEN:-}
    settings = settings.model_copy(update={"database_url": f"sqlite+aiosqlite:///{tmp_path}/n.db"})
    await upgrade_async("notifier", settings.database_url_for("notifier"))
    service = NotifierService(settings, run_dispatcher=False, run_scheduler=False)
    transport = httpx.ASGITransport(app=build_app([service]))
    async with httpx.AsyncClient(transport=transport, base_url="http://n.test") as client:
        body = {"message_id": "m", "status": "delivered"}
        for query in ("", "?token=", "?token=None"):
            r = await client.post(f"/sms/receipts{query}", json=body)
            assert r.status_code == 403 and "MOTCUA_CALLBACK_TOKEN" in r.json()["error"]["message"]
    async with service.engine.connect() as conn:
        kept = await conn.execute(sa.select(sa.func.count()).select_from(t.early_receipts))
        assert kept.scalar() == 0
    await service.engine.dispose()


async def early_receipts(n: NotifierHarness) -> list[str]:
    async with n.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(t.early_receipts.c.message_id).order_by(t.early_receipts.c.message_id)
        )
        return list(rows.scalars())


async def test_early_receipts_are_capped_and_expire(n: NotifierHarness) -> None:
    n.service.early_receipts = EarlyReceipts(max_count=3, max_age=timedelta(hours=1))
    for k in range(1, 6):
        r = await n.client.post(
            "/sms/receipts", json={"message_id": f"m{k}", "status": "delivered"}
        )
        assert r.status_code == 202 and r.json() == {"status": "kept"}
        n.intake.clock.advance(seconds=1)
    assert await early_receipts(n) == ["m3", "m4", "m5"]  # the newest
    r = await n.client.post("/sms/receipts", json={"message_id": "m5", "status": "failed"})
    assert r.status_code == 202 and await early_receipts(n) == ["m3", "m4", "m5"]
    n.intake.clock.advance(hours=1, seconds=1)
    await n.client.post("/sms/receipts", json={"message_id": "m6", "status": "delivered"})
    assert await early_receipts(n) == ["m6"]


async def test_an_expired_early_receipt_is_not_applied(n: NotifierHarness) -> None:
    n.service.dispatcher.settings = replace(
        n.service.dispatcher.settings,
        early_receipts=EarlyReceipts(max_age=timedelta(hours=1)),
    )
    await received(n)
    hold = n.sms.hold_next()
    sending = asyncio.create_task(n.dispatch())
    await asyncio.to_thread(hold.arrived.wait, 10)
    (message,) = n.sms.messages.values()
    r = await n.client.post(
        "/sms/receipts", json={"message_id": message["message_id"], "status": "failed"}
    )
    assert r.json()["status"] == "kept"
    n.intake.clock.advance(hours=1, seconds=1)
    hold.release()
    await sending
    (notice,) = await n.notices()
    assert notice["status"] == "accepted"
    assert await early_receipts(n) == []


def test_a_bad_template_file_stops_the_start_naming_the_template(tmp_path: Path) -> None:
    path = tmp_path / "templates.json"
    path.write_text(json.dumps({"received": "{office}: {code} {appointment} {nonsense}"}))
    from services.core.runtime.settings import Settings

    settings = Settings(data_dir=tmp_path, sms_templates_file=path)
    with pytest.raises(TemplateError, match="'received'.*nonsense"):
        NotifierService(settings, engine=create_engine(f"sqlite+aiosqlite:///{tmp_path}/x.db"))
    path.write_text(json.dumps({"returned": "{office}: {code} " + "x" * 400}))
    with pytest.raises(TemplateError, match="'returned'.*segments"):
        NotifierService(settings, engine=create_engine(f"sqlite+aiosqlite:///{tmp_path}/x.db"))


async def test_without_gateway_urls_sms_and_orders_go_to_jsonl(
    tmp_path: Path, database_url: str
) -> None:
    from services.core.runtime.settings import Settings

    settings = Settings(data_dir=tmp_path)
    service = NotifierService(
        settings,
        engine=create_engine(database_url.format(service="notifier")),
        run_dispatcher=False,
        run_scheduler=False,
    )
    now = service.clock()
    async with service.engine.begin() as conn:
        await conn.execute(
            t.notices.insert().values(
                id="n-1",
                source_key="k",
                recipient="+84912345678",
                template="returned",
                audience="citizen",
                agency_code="A",
                text="Ho so da tra",
                unicode=False,
                segments=1,
                status="pending",
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
        )
    # Whatever the wall clock says, this test is not about quiet hours.
    service.dispatcher.composer = replace(service.dispatcher.composer, quiet=None)
    await service.dispatcher.run_once()
    lines = (tmp_path / "outbox" / "sms.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0])["request_id"] == "n-1"
    await service.stop()


async def test_a_refusing_gateway_fails_over_to_the_second(
    n: NotifierHarness, tmp_path: Path, database_url: str
) -> None:
    with FakeSmsGateway() as fallback:
        settings = notifier_settings(
            tmp_path, n.sms, n.postal, sms_gateway_fallback_url=fallback.url
        )
        service = NotifierService(
            settings,
            clock=n.intake.clock,
            engine=create_engine(database_url.format(service="notifier")),
            run_dispatcher=False,
            run_scheduler=False,
        )
        service.dispatcher.jitter = lambda: 0.0
        await received(n)
        n.sms.fail_next(503)
        await service.dispatcher.run_once()
        n.intake.clock.advance(minutes=1)
        await service.dispatcher.run_once()
        assert n.sms.accepted_count() == 0 and fallback.accepted_count() == 1
        (notice,) = await n.notices()
        assert notice["status"] == "accepted" and notice["gateway"] == "fallback"
        # A timeout is not a refusal: the first gateway may have the message, it stays there.
        await n.intake.dossier()
        await n.feed()
        n.sms.hang_next(seconds=5)
        await service.dispatcher.run_once()
        n.intake.clock.advance(minutes=1)
        await service.dispatcher.run_once()
        assert n.sms.accepted_count() == 1 and fallback.accepted_count() == 1
        await service.stop()


async def test_the_digest_is_scheduled_daily_at_the_configured_time(
    tmp_path: Path, fake_sms_gateway: FakeSmsGateway, fake_postal_operator: FakePostalOperator
) -> None:
    settings = notifier_settings(
        tmp_path, fake_sms_gateway, fake_postal_operator, digest_time="06:45"
    )
    settings = settings.model_copy(update={"database_url": f"sqlite+aiosqlite:///{tmp_path}/n.db"})
    from services.core.runtime.migrations import upgrade_async

    await upgrade_async("notifier", settings.database_url_for("notifier"))
    service = NotifierService(settings, run_dispatcher=False)
    await service.start()
    try:
        assert service.scheduler is not None
        job = service.scheduler.get_job("daily-digest")
        fields = {f.name: str(f) for f in job.trigger.fields}
        assert (fields["hour"], fields["minute"]) == ("6", "45")
        assert str(job.trigger.timezone) == "Asia/Ho_Chi_Minh"
    finally:
        await service.stop()


async def test_an_order_the_operator_refuses_alerts_the_supervisors(n: NotifierHarness) -> None:
    await n.supervisors()
    dossier = await received(n, return_method="postal", return_address=ADDRESS)
    await n.act(dossier["code"], "complete")
    await n.feed()
    n.postal.reject_next(422, "bad_address")
    await n.dispatch()
    assert n.postal.orders == {}
    alerts = await n.notices(template="postal_problem")
    assert len(alerts) == 2
    assert "khong tao duoc don" in alerts[0]["text"]
