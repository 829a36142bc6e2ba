"""What was sent (GET /dossiers/{code}/notices, issue 14 item 2): the intake decides who may
see the dossier, then asks the notifier (a real one on a loopback port, fed with the intake's
real events, sending to fake gateways) over its internal route; SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from schemas.internal_api import INTERNAL_TOKEN_HEADER
from tests.fixtures.asking_notifier import (  # noqa: F401 (fixtures)
    intake_asking_the_notifier,
    notifier_answering_the_intake,
)
from tests.fixtures.intake import IntakeHarness, dossier_body
from tests.fixtures.notifier import (
    INTERNAL_TOKEN,
    SUPERVISOR_PHONES,
    NotifierHarness,
)

ADDRESS = {"street": "12 Lê Lợi", "ward": "Bến Nghé", "district": "Quận 1", "province": "TP HCM"}
APPLICANT_PHONE = "0912345678"  # tests.fixtures.intake.dossier_body's


async def notices(h: IntakeHarness, code: str, headers: dict[str, str]) -> httpx.Response:
    return await h.client.get(f"/dossiers/{code}/notices", headers=headers)


def statuses(notice: dict[str, Any]) -> list[str]:
    return [step["status"] for step in notice["history"]]


async def test_every_sms_and_the_postal_order_with_roles_masked_phones_and_history(
    notifier_on_loopback: NotifierHarness,
) -> None:
    n = notifier_on_loopback
    await n.supervisors()
    await n.intake.procedure()
    dossier = await n.intake.dossier(return_method="postal", return_address=ADDRESS)
    code = dossier["code"]
    await n.feed()
    await n.dispatch()
    (message,) = n.sms.messages.values()
    r = await n.client.post(
        "/sms/receipts", json={"message_id": message["message_id"], "status": "delivered"}
    )
    assert r.status_code == 202
    n.intake.clock.advance(hours=2)
    await n.act(code, "complete")
    await n.feed()
    await n.dispatch()  # the postal order
    await n.dispatch()  # the SMS of its tracking code
    (order,) = n.postal.orders.values()
    r = await n.client.post(
        "/postal/callbacks", json={"tracking_code": order["tracking_code"], "status": "returned"}
    )
    assert r.status_code == 202  # the parcel came back: the supervisors are told

    r = await notices(n.intake, code, n.intake.clerk)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["code"] == code
    sent = body["notices"]
    sms = [x for x in sent if x["kind"] == "sms"]
    assert [x["template"] for x in sms if x["role"] == "citizen"][:2] == [
        "received",
        "result_ready_postal",
    ]
    received = sms[0]
    assert received["recipient"] == "+8491*****78"
    assert statuses(received) == ["pending", "accepted", "delivered"]
    assert received["status"] == "delivered" and code in received["text"]
    assert all(step["at"].endswith("Z") or "+" in step["at"] for step in received["history"])
    to_supervisors = [x for x in sms if x["role"] == "supervisor"]
    assert {x["template"] for x in to_supervisors} == {"postal_problem"}
    assert {x["recipient"] for x in to_supervisors} == {"+8490*****01", "+8490*****02"}
    (postal,) = [x for x in sent if x["kind"] == "postal"]
    assert postal["role"] == "citizen" and postal["recipient"] == "+8491*****78"
    assert postal["tracking_code"] == order["tracking_code"]
    assert statuses(postal) == ["pending", "placed", "returned"]
    assert postal["status"] == "returned"
    # No phone leaves whole: neither the applicant's nor a supervisor's.
    for number in (APPLICANT_PHONE, *SUPERVISOR_PHONES):
        assert number[1:] not in r.text
    # A supervisor of the agency and an admin read the same.
    for who in (n.intake.supervisor, n.intake.admin):
        again = await notices(n.intake, code, who)
        assert again.status_code == 200 and again.json() == body


async def test_held_in_quiet_hours_then_failed_with_the_reason(
    notifier_on_loopback: NotifierHarness,
) -> None:
    n = notifier_on_loopback
    await n.intake.procedure()
    n.intake.clock.now = n.intake.clock.now.replace(hour=22)
    code = (await n.intake.dossier())["code"]
    await n.feed()
    (held,) = (await notices(n.intake, code, n.intake.clerk)).json()["notices"]
    assert held["status"] == "held" and statuses(held) == ["held"]

    n.intake.clock.now = (n.intake.clock.now + timedelta(days=1)).replace(hour=7, minute=0)
    assert await n.dispatch() == 1
    (message,) = n.sms.messages.values()
    failed = {"message_id": message["message_id"], "status": "failed", "error": "thuê bao tắt máy"}
    assert (await n.client.post("/sms/receipts", json=failed)).status_code == 202
    (notice,) = (await notices(n.intake, code, n.intake.clerk)).json()["notices"]
    assert statuses(notice) == ["held", "accepted", "failed"]
    assert notice["status"] == "failed" and notice["reason"] == "thuê bao tắt máy"
    assert notice["history"][-1]["detail"] == "thuê bao tắt máy"
    assert notice["history"][1]["at"] > notice["history"][0]["at"]


async def test_another_agencys_dossier_is_not_found_and_a_token_is_needed(
    notifier_on_loopback: NotifierHarness,
) -> None:
    n = notifier_on_loopback
    await n.intake.procedure()
    code = (await n.intake.dossier())["code"]
    for who in (
        await n.intake.token("clerk", "UBND-Q2"),
        await n.intake.token("supervisor", "UBND-Q2"),
    ):
        r = await notices(n.intake, code, who)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = await notices(n.intake, "UBND-Q1-20261116-9999", n.intake.admin)
    assert r.status_code == 404
    assert (await n.intake.client.get(f"/dossiers/{code}/notices")).status_code == 401


async def test_the_internal_route_answers_only_with_the_shared_secret(
    notifier_on_loopback: NotifierHarness, notifier_port: int
) -> None:
    url = f"http://127.0.0.1:{notifier_port}/internal/dossiers/some-id/notices"
    async with httpx.AsyncClient() as client:
        assert (await client.get(url)).status_code == 401
        wrong = await client.get(url, headers={INTERNAL_TOKEN_HEADER: "guess"})
        assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "forbidden"
        right = await client.get(url, headers={INTERNAL_TOKEN_HEADER: INTERNAL_TOKEN})
        assert right.status_code == 200 and right.json() == {"notices": []}


# -- the notifier down ---------------------------------------------------------------------


async def test_the_notifier_down_is_a_503_that_says_so(
    intake: IntakeHarness, notifier_port: int
) -> None:
    await intake.procedure()
    code = (await intake.dossier())["code"]
    r = await notices(intake, code, intake.clerk)  # nothing listens on notifier_port
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "notifier_unavailable"
    assert r.headers["Retry-After"] == "5"
    # Still a 404 first for a dossier the caller may not see: nothing is asked then.
    other = await intake.token("clerk", "UBND-Q2")
    assert (await notices(intake, code, other)).status_code == 404


@pytest.fixture
async def silent_notifier(notifier_port: int) -> AsyncIterator[None]:
    """A notifier that takes the connection and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def take(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(take, "127.0.0.1", notifier_port)
    try:
        yield
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_notifier_that_does_not_answer_costs_two_seconds_then_503(
    intake: IntakeHarness, silent_notifier: None
) -> None:
    await intake.procedure()
    code = (await intake.dossier())["code"]
    started = time.monotonic()
    r = await notices(intake, code, intake.clerk)
    waited = time.monotonic() - started
    assert r.status_code == 503 and r.json()["error"]["code"] == "notifier_unavailable"
    assert 1.9 <= waited < 4, waited


async def test_failures_of_a_period_hold_sms_and_parcels_of_the_agency_asked(
    notifier_on_loopback: NotifierHarness, notifier_port: int
) -> None:
    """The dashboard's question (GET /internal/notices/failed): an order the operator refused,
    a parcel sent back, an SMS that never arrived; one agency's, or all; in the period."""
    n = notifier_on_loopback
    await n.supervisors()
    await n.intake.procedure()
    await n.intake.procedure("P9", agency="UBND-Q2")
    both = [await n.intake.dossier(return_method="postal", return_address=ADDRESS) for _ in "ab"]
    q2_clerk = await n.intake.token("clerk", "UBND-Q2")
    r = await n.intake.client.post(
        "/dossiers", json={**dossier_body(procedure_code="P9")}, headers=q2_clerk
    )
    assert r.status_code == 201
    await n.feed()
    await n.dispatch()
    q2_message = next(m for m in n.sms.messages.values() if r.json()["code"] in m["text"])
    failed = {"message_id": q2_message["message_id"], "status": "failed", "error": "absent"}
    assert (await n.client.post("/sms/receipts", json=failed)).status_code == 202
    for dossier in both:
        await n.act(dossier["code"], "complete")
    await n.feed()
    n.postal.reject_next()  # one of the two orders: refused for good
    await n.dispatch()
    (order,) = n.postal.orders.values()  # the other, placed
    returned = order["reference"]
    (refused,) = {d["code"] for d in both} - {returned}
    sent_back = {"tracking_code": order["tracking_code"], "status": "returned"}
    assert (await n.client.post("/postal/callbacks", json=sent_back)).status_code == 202

    url = f"http://127.0.0.1:{notifier_port}/internal/notices/failed"
    day = {"from": "2026-11-16T00:00:00+07:00", "to": "2026-11-17T00:00:00+07:00"}
    async with httpx.AsyncClient(headers={INTERNAL_TOKEN_HEADER: INTERNAL_TOKEN}) as client:
        q1 = (await client.get(url, params={**day, "agency": "UBND-Q1"})).json()
        every = (await client.get(url, params=day)).json()
        before = (await client.get(url, params={"from": day["from"], "to": day["from"]})).json()
        one = (await client.get(url, params={**day, "limit": 1})).json()
        upside = await client.get(url, params={"from": day["to"], "to": day["from"]})
    assert q1["total"] == 2 and every["total"] == 3 and before == {"notices": [], "total": 0}
    parcels = {x["dossier_code"]: x for x in q1["notices"]}
    assert set(parcels) == {refused, returned}
    assert {x["kind"] for x in q1["notices"]} == {"postal"}
    assert parcels[returned]["status"] == "returned"
    assert parcels[returned]["tracking_code"] == order["tracking_code"]
    assert parcels[refused]["status"] == "failed" and parcels[refused]["reason"]
    (sms,) = [x for x in every["notices"] if x["kind"] == "sms"]
    assert sms["agency_code"] == "UBND-Q2" and sms["reason"] == "absent"
    assert sms["recipient"] == "+8491*****78"
    assert len(one["notices"]) == 1 and one["total"] == 3
    assert upside.status_code == 422 and upside.json()["error"]["field"] == "from"
