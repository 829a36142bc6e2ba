"""The production shape: `motcua intake`, `motcua tracker` and `motcua notifier` as three
processes against PostgreSQL and the broker. Dossiers walk every path of the lifecycle over
HTTP, and the fake gateways receive exactly the notices docs/notices.md promises: each
citizen their texts, each supervisor their alerts, and nothing more."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.core.domain.calendar import VN_TZ
from tests.fixtures.broker import wait_for
from tests.fixtures.gateways import FakePostalOperator, FakeSmsGateway
from tests.fixtures.processes import ProcessStack, process_stack

AGENCY = "UBND-Q1"
SUPERVISORS = {"+84901000001": "Phạm Văn Giám", "+84901000002": "Lê Thị Đốc"}

# What each default text says, without diacritics (GSM-7), to tell the notices apart.
RECEIVED = "da duoc tiep nhan"
SUPPLEMENT_REQUESTED = "can bo sung"
SUPPLEMENT_RECEIVED = "da duoc bo sung day du"
REJECTED = "khong du dieu kien"
RESULT_AT_COUNTER = "Moi ong/ba den nhan"
RESULT_BY_POST = "da duoc gui qua buu dien"
EXTENDED = "xin loi"
RETURNED = "da duoc tra ket qua"
OVERDUE = "da qua han"
POSTAL_PROBLEM = "Ket qua ho so"

ADDRESS = {"street": "12 Lý Thường Kiệt", "ward": "Phường Hàng Bài",
           "district": "Quận Hoàn Kiếm", "province": "Hà Nội"}  # fmt: skip


@pytest.fixture
async def stack(
    tmp_path: Path, fake_sms_gateway: FakeSmsGateway, fake_postal_operator: FakePostalOperator
) -> AsyncIterator[ProcessStack]:
    async with process_stack(tmp_path, fake_sms_gateway, fake_postal_operator) as stack:
        yield stack


class Office:
    """The clerk and the admin of one agency, over the intake's HTTP API."""

    def __init__(self, client: httpx.AsyncClient, admin: dict, clerk: dict) -> None:
        self.client, self.admin, self.clerk = client, admin, clerk
        self.phones = iter(f"09123450{n:02d}" for n in range(100))

    async def setup(self) -> None:
        r = await self.client.post(
            "/procedures",
            json={"code": "DD-01", "name": "Cấp giấy chứng nhận quyền sử dụng đất",
                  "agency_code": AGENCY, "time_limit": {"value": 1, "unit": "working_days"},
                  "postal_return": True},
            headers=self.admin,
        )  # fmt: skip
        assert r.status_code == 201, r.text
        # The agency dossiers are transferred to (walk_transfer_and_rejection).
        r = await self.client.put("/agencies/STNMT", json={"name": "Sở TN&MT"}, headers=self.admin)
        assert r.status_code == 200, r.text
        for phone, name in SUPERVISORS.items():
            r = await self.client.post(
                f"/agencies/{AGENCY}/supervisors",
                json={"name": name, "phone": phone}, headers=self.admin,
            )  # fmt: skip
            assert r.status_code == 201, r.text

    async def receive(self, **kw: Any) -> dict:
        body: dict[str, Any] = {
            "procedure_code": "DD-01",
            "applicant": {"full_name": "Nguyễn Văn An", "phone": next(self.phones)},
            "channel": "counter",
            "return_method": "counter",
            **kw,
        }
        r = await self.client.post("/dossiers", json=body, headers=self.clerk)
        assert r.status_code == 201, r.text
        return r.json()

    async def act(self, dossier: dict, action: str, **body: Any) -> dict:
        r = await self.client.post(
            f"/dossiers/{dossier['code']}/{action}", json=body, headers=self.clerk
        )
        assert r.status_code == 200, (action, r.text)
        return r.json()

    async def get(self, dossier: dict) -> dict:
        r = await self.client.get(f"/dossiers/{dossier['code']}", headers=self.clerk)
        assert r.status_code == 200, r.text
        return r.json()


def texts_by_phone(sms: FakeSmsGateway) -> dict[str, list[str]]:
    by_phone: dict[str, list[str]] = defaultdict(list)
    for message in sorted(sms.messages.values(), key=lambda m: m["message_id"]):
        by_phone[message["to"]].append(message["text"])
    return by_phone


def e164(phone: str) -> str:
    return phone if phone.startswith("+") else "+84" + phone[1:]


async def texted(sms: FakeSmsGateway, phone: str, *markers: str, within: float = 60) -> None:
    """The phone has received exactly these notices, in this order (one marker each)."""

    def holds(gateway: FakeSmsGateway) -> bool:
        return len(texts_by_phone(gateway)[e164(phone)]) >= len(markers)

    await sms.wait_for_async(holds, within=within)
    texts = texts_by_phone(sms)[e164(phone)]
    assert len(texts) == len(markers), texts
    for text, marker in zip(texts, markers, strict=True):
        assert marker in text, (marker, text)


def phone_of(dossier: dict) -> str:
    return str(dossier["applicant"]["phone"])


async def postal_status(stack: ProcessStack, tracking_code: str, status: str) -> None:
    answer = await asyncio.to_thread(stack.postal.send_status, tracking_code, status)
    assert answer == 202


async def walk_supplement(stack: ProcessStack, office: Office) -> dict:
    """Received, in progress, supplement requested and supplied, result at the counter."""
    dossier = await office.receive()
    await texted(stack.sms, phone_of(dossier), RECEIVED)
    await office.act(dossier, "start")
    await office.act(dossier, "request-supplement",
                     items=["Bản sao sổ hộ khẩu"], reason="Thiếu giấy tờ")  # fmt: skip
    await texted(stack.sms, phone_of(dossier), RECEIVED, SUPPLEMENT_REQUESTED)
    await office.act(dossier, "receive-supplement")
    await office.act(dossier, "complete")
    await office.act(dossier, "return")
    await texted(stack.sms, phone_of(dossier), RECEIVED, SUPPLEMENT_REQUESTED,
                 SUPPLEMENT_RECEIVED, RESULT_AT_COUNTER, RETURNED)  # fmt: skip
    return dossier


async def walk_postal_return(stack: ProcessStack, office: Office) -> dict:
    """Paused, resumed, extended with an apology, the result delivered by post."""
    dossier = await office.receive(return_method="postal", return_address=ADDRESS)
    await texted(stack.sms, phone_of(dossier), RECEIVED)
    await office.act(dossier, "pause", reason="Chờ kết quả xác minh")
    await office.act(dossier, "resume")
    later = datetime.fromisoformat((await office.get(dossier))["due_at"]) + timedelta(days=7)
    await office.act(dossier, "extend", new_due_at=later.isoformat(), reason="Cần xác minh")
    await texted(stack.sms, phone_of(dossier), RECEIVED, EXTENDED)
    await office.act(dossier, "complete")
    order = await placed_order(stack, dossier)
    await texted(stack.sms, phone_of(dossier), RECEIVED, EXTENDED, RESULT_BY_POST)
    assert order["tracking_code"] in texts_by_phone(stack.sms)[phone_of(dossier)][-1]
    for status in ("picked_up", "in_transit", "delivered"):
        await postal_status(stack, order["tracking_code"], status)

    async def returned() -> bool:
        return (await office.get(dossier))["status"] == "returned"

    await wait_for(returned, timeout=60, message="the delivery returns the dossier")
    await texted(stack.sms, phone_of(dossier), RECEIVED, EXTENDED, RESULT_BY_POST, RETURNED)
    return dossier


async def placed_order(stack: ProcessStack, dossier: dict) -> dict:
    def placed(operator: FakePostalOperator) -> bool:
        return any(o["reference"] == dossier["code"] for o in operator.orders.values())

    await stack.postal.wait_for_async(placed, within=60)
    (order,) = [o for o in stack.postal.orders.values() if o["reference"] == dossier["code"]]
    return order


async def walk_transfer_and_rejection(stack: ProcessStack, office: Office) -> dict:
    dossier = await office.receive()
    await office.act(dossier, "transfer", to_agency="STNMT", allotted_hours=8)
    await office.act(dossier, "reject", reason="Đất đang có tranh chấp")
    await texted(stack.sms, phone_of(dossier), RECEIVED, REJECTED)
    return dossier


async def walk_withdrawal(stack: ProcessStack, office: Office) -> dict:
    dossier = await office.receive()
    await office.act(dossier, "withdraw", reason="Công dân rút hồ sơ")
    await texted(stack.sms, phone_of(dossier), RECEIVED)
    return dossier


async def walk_overdue_import(stack: ProcessStack, office: Office) -> dict:
    """History texts no citizen; the flag it raises still reaches every supervisor."""
    received_at = datetime.now(VN_TZ) - timedelta(days=20)
    dossier = await office.receive(received_at=received_at.isoformat())

    async def flagged() -> bool:
        return (await office.get(dossier))["flag"] == "overdue"

    await wait_for(flagged, timeout=60, message="the tracker flags it overdue")
    for phone in SUPERVISORS:
        await texted(stack.sms, phone, OVERDUE)
        assert dossier["code"] in texts_by_phone(stack.sms)[phone][0]
    return dossier


async def walk_undeliverable_parcel(stack: ProcessStack, office: Office) -> dict:
    dossier = await office.receive(return_method="postal", return_address=ADDRESS)
    await office.act(dossier, "complete")
    parcel = await placed_order(stack, dossier)
    await postal_status(stack, parcel["tracking_code"], "failed")
    for phone in SUPERVISORS:
        await texted(stack.sms, phone, OVERDUE, POSTAL_PROBLEM)
    await texted(stack.sms, phone_of(dossier), RECEIVED, RESULT_BY_POST)
    return dossier


async def test_every_path_of_the_lifecycle_texts_exactly_what_design_promises(
    stack: ProcessStack,
) -> None:
    async with stack.client() as client:
        office = Office(client, stack.admin, await stack.token("clerk", AGENCY))
        await office.setup()
        citizens = [
            await walk_supplement(stack, office),
            await walk_postal_return(stack, office),
            await walk_transfer_and_rejection(stack, office),
            await walk_withdrawal(stack, office),
        ]
        overdue = await walk_overdue_import(stack, office)
        citizens.append(await walk_undeliverable_parcel(stack, office))

    await wait_for(lambda: _settled(stack), timeout=30, message="no notice left to send")
    texts = texts_by_phone(stack.sms)
    assert phone_of(overdue) not in texts  # history is not news
    assert set(texts) == {phone_of(d) for d in citizens} | set(SUPERVISORS)
    assert len(stack.sms.messages) == 5 + 4 + 2 + 1 + 2 + 2 * 2
    assert len({r["request_id"] for r in stack.sms.requests}) == len(stack.sms.messages)
    assert len(stack.postal.orders) == 2
    for service in stack.services:
        assert service.running, service.log_tail()


async def _settled(stack: ProcessStack) -> bool:
    waiting = await stack.scalar(
        "SELECT count(*) FROM notifier_notices WHERE status IN ('pending', 'sending', 'held')"
    )
    return waiting == 0
