"""Viettel Post (issue 15 item 3): the adapter against a fake Viettel Post that behaves as its
partner API is documented and integrated, then the notifier ordering the postal return
through it and taking its webhook, on SQLite and PostgreSQL. No test reaches the internet."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from services.core.runtime.settings import Settings
from services.notifier.adapters import tables as t
from services.notifier.adapters.postal import PostalOrderRequest
from services.notifier.adapters.viettelpost import ViettelPostOperator, place_key, status_of
from tests.fixtures.gateways import FakePostalOperator, FakeSmsGateway
from tests.fixtures.intake import FakeClock
from tests.fixtures.notifier import (
    CALLBACK_TOKEN,
    NotifierHarness,
    notifier_settings,
    running_notifier,
)
from tests.fixtures.tracker import TrackerHarness
from tests.fixtures.viettelpost import PASSWORD, PICKUP, PICKUP_Q3, USERNAME, FakeViettelPost

ADDRESS = {
    "street": "12 Lê Lợi",
    "ward": "Bến Nghé",
    "district": "Quận 1",
    "province": "TP HCM",
}
T0 = datetime(2026, 11, 16, 2, 0, tzinfo=UTC)


def order(
    reference: str = "UBND-Q1-20261116-0001", agency: str | None = None, **address: str
) -> PostalOrderRequest:
    return PostalOrderRequest(
        reference=reference,
        receiver_name="Nguyễn Văn An",
        receiver_phone="+84912345678",
        address={**ADDRESS, **address},
        content="Kết quả giải quyết hồ sơ",
        callback_url=None,
        agency_code=agency,
    )


def operator(
    fake: FakeViettelPost,
    clock: FakeClock | None = None,
    *,
    password: str = PASSWORD,
    timeout: float = 5,
    pickup_ids: dict[str, int] | None = None,
) -> ViettelPostOperator:
    return ViettelPostOperator(
        "postal",
        fake.url,
        username=USERNAME,
        password=password,
        clock=clock or FakeClock(T0),
        pickup_ids=pickup_ids,
        rate_per_second=0,
        timeout_seconds=timeout,
    )


async def test_an_order_speaks_viettel_posts_api(fake_viettelpost: FakeViettelPost) -> None:
    client = operator(fake_viettelpost)
    try:
        result = await client.place(order())
    finally:
        await client.aclose()
    (body,) = fake_viettelpost.requests
    stored = fake_viettelpost.orders["UBND-Q1-20261116-0001"]
    assert (result.outcome, result.tracking_code) == ("accepted", stored["number"])
    assert body["ORDER_NUMBER"] == "UBND-Q1-20261116-0001"  # our code, the partner's own
    # The sender is the pickup address registered on the account.
    assert (body["GROUPADDRESS_ID"], body["CUS_ID"]) == (5818802, 722)
    assert (body["SENDER_PROVINCE"], body["SENDER_DISTRICT"], body["SENDER_WARD"]) == (2, 43, 631)
    assert body["SENDER_FULLNAME"] == PICKUP["name"]
    # The receiver's names became Viettel Post's ids; its phone is in the national form.
    assert (body["RECEIVER_PROVINCE"], body["RECEIVER_DISTRICT"], body["RECEIVER_WARDS"]) == (
        2,
        43,
        631,
    )
    assert body["RECEIVER_PHONE"] == "0912345678"
    assert body["RECEIVER_ADDRESS"] == "12 Lê Lợi, Bến Nghé, Quận 1, TP HCM"
    assert (body["PRODUCT_TYPE"], body["ORDER_SERVICE"], body["MONEY_COLLECTION"]) == (
        "TH",
        "VCN",
        0,
    )


async def test_each_agency_sends_from_its_own_pickup_address(
    fake_viettelpost: FakeViettelPost,
) -> None:
    client = operator(fake_viettelpost, pickup_ids={"UBND-Q3": 5818803, "UBND-Q7": 999})
    try:
        q3 = await client.place(order("UBND-Q3-20261116-0001", agency="UBND-Q3"))
        q1 = await client.place(order("UBND-Q1-20261116-0001", agency="UBND-Q1"))
        q7 = await client.place(order("UBND-Q7-20261116-0001", agency="UBND-Q7"))
    finally:
        await client.aclose()
    assert (q3.outcome, q1.outcome) == ("accepted", "accepted")
    by_code = {b["ORDER_NUMBER"]: b for b in fake_viettelpost.requests}
    assert by_code["UBND-Q3-20261116-0001"]["GROUPADDRESS_ID"] == PICKUP_Q3["groupaddressId"]
    assert by_code["UBND-Q3-20261116-0001"]["SENDER_FULLNAME"] == PICKUP_Q3["name"]
    # An agency not listed sends from the account's default address (the first registered).
    assert by_code["UBND-Q1-20261116-0001"]["GROUPADDRESS_ID"] == PICKUP["groupaddressId"]
    # One listed with an address Viettel Post does not know waits, and sends no order.
    assert (q7.outcome, q7.error) == ("retry", "viettelpost: no such pickup address (999)")
    assert "UBND-Q7-20261116-0001" not in by_code


def test_pickup_ids_are_positive_numbers(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="pickup address id"):
        Settings(data_dir=tmp_path, postal_pickup_ids={"UBND-Q3": 0})


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ("TP. Hồ Chí Minh", "Hồ Chí Minh"),
        ("thanh pho ho chi minh", "HỒ CHÍ MINH"),
        ("Quận 01", "QUẬN 1"),
        ("phuong ben nghe", "PHƯỜNG BẾN NGHÉ"),
        ("Thị trấn Củ Chi", "THỊ TRẤN CỦ CHI"),
        ("Huyện Củ Chi", "HUYỆN CỦ CHI"),
    ],
)
def test_place_names_match_without_accents_case_or_prefix(ours: str, theirs: str) -> None:
    assert place_key(ours) == place_key(theirs)


def test_place_names_that_differ_do_not_match() -> None:
    assert place_key("Quận 1") != place_key("QUẬN 12")
    assert place_key("Phường Bến Nghé") != place_key("PHƯỜNG BẾN THÀNH")


async def test_lookups_are_cached_until_their_ttl(fake_viettelpost: FakeViettelPost) -> None:
    clock = FakeClock(T0)
    client = operator(fake_viettelpost, clock)
    try:
        first = await client.place(order("R-1"))
        read = len(fake_viettelpost.lookups)
        second = await client.place(
            order("R-2", ward="Phường Bến Thành", district="quan 1", province="Hồ Chí Minh")
        )
        cached = len(fake_viettelpost.lookups)
        clock.advance(hours=25)
        third = await client.place(order("R-3"))
    finally:
        await client.aclose()
    assert [r.outcome for r in (first, second, third)] == ["accepted"] * 3
    assert read == 4  # the pickup address, provinces, districts of HCM, wards of Quận 1
    assert cached == read  # the same lists, from the cache
    assert len(fake_viettelpost.lookups) == 2 * read  # a day later, read again
    assert fake_viettelpost.orders["R-2"]["RECEIVER_WARDS"] == 632


@pytest.mark.parametrize(
    ("address", "part"),
    [
        ({"ward": "Phường Không Có"}, "WARDS_ID"),
        ({"district": "Quận 99"}, "DISTRICT_ID"),
        ({"province": "Atlantis"}, "PROVINCE_ID"),
        ({"district": ""}, "DISTRICT_ID"),
    ],
)
async def test_an_address_that_matches_nothing_fails_without_an_order(
    fake_viettelpost: FakeViettelPost, address: dict[str, str], part: str
) -> None:
    client = operator(fake_viettelpost)
    try:
        result = await client.place(order(**address))
    finally:
        await client.aclose()
    assert result.outcome == "failed"
    assert result.error == f"viettelpost: address not matched ({part})"
    assert fake_viettelpost.requests == []


async def test_the_token_is_renewed_before_its_end_and_once_when_refused(
    fake_viettelpost: FakeViettelPost,
) -> None:
    clock = FakeClock(T0)
    fake_viettelpost.token_expired_ms = int((T0 + timedelta(hours=1)).timestamp() * 1000)
    client = operator(fake_viettelpost, clock)
    try:
        assert (await client.place(order("R-1"))).outcome == "accepted"
        clock.advance(minutes=30)
        assert (await client.place(order("R-2"))).outcome == "accepted"
        assert fake_viettelpost.logins == 1  # still fresh
        clock.advance(minutes=26)  # within five minutes of its end
        assert (await client.place(order("R-3"))).outcome == "accepted"
        assert fake_viettelpost.logins == 2
        # Viettel Post ends the token early: refused, renewed, the order sent again, once.
        fake_viettelpost.revoke_tokens()
        again = await client.place(order("R-4"))
        assert again.outcome == "accepted" and fake_viettelpost.logins == 3
        fake_viettelpost.refuse_token_next()
        fake_viettelpost.refuse_token_next()
        refused = await client.place(order("R-5"))
    finally:
        await client.aclose()
    assert (refused.outcome, refused.error) == (
        "retry",
        "viettelpost: token refused after renewal",
    )
    assert fake_viettelpost.logins == 5
    assert [b["ORDER_NUMBER"] for b in fake_viettelpost.requests].count("R-5") == 2
    assert "R-5" not in fake_viettelpost.orders


async def test_a_wrong_account_waits_and_sends_no_order(fake_viettelpost: FakeViettelPost) -> None:
    client = operator(fake_viettelpost, password="wrong")
    try:
        result = await client.place(order())
        checked = await client.check()
    finally:
        await client.aclose()
    assert (result.outcome, result.error) == ("retry", "viettelpost 204: sign-in refused")
    assert checked == (False, "viettelpost 204: sign-in refused")
    assert fake_viettelpost.requests == []


async def test_a_repeat_of_the_same_dossier_makes_no_second_pickup(
    fake_viettelpost: FakeViettelPost,
) -> None:
    """The first answer came too late (a timeout): the order was taken. Sent again, Viettel
    Post refuses the code as existing, and the order waits for the webhook's number."""
    client = operator(fake_viettelpost, timeout=0.5)
    try:
        fake_viettelpost.slow_next(2)
        first = await client.place(order())
        again = await client.place(order())
    finally:
        await client.aclose()
    assert (first.outcome, first.error) == ("retry", "timeout (ReadTimeout)")
    assert again.outcome == "retry"
    assert again.error == "viettelpost: order exists, its number awaited"
    assert len(fake_viettelpost.requests) == 2 and len(fake_viettelpost.orders) == 1


@pytest.mark.parametrize(
    ("status", "error"),
    [(503, "viettelpost HTTP 503"), (429, "viettelpost HTTP 429"), (500, "viettelpost HTTP 500")],
)
async def test_viettel_post_unwell_is_retried(
    fake_viettelpost: FakeViettelPost, status: int, error: str
) -> None:
    fake_viettelpost.fail_next(status)
    client = operator(fake_viettelpost)
    try:
        result = await client.place(order())
    finally:
        await client.aclose()
    assert (result.outcome, result.error) == ("retry", error)
    assert fake_viettelpost.orders == {}


async def test_ids_viettel_post_refuses_fail_the_order(
    fake_viettelpost: FakeViettelPost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its lists and its createOrder disagree (a ward moved between reads): refused, failed."""
    from tests.fixtures import viettelpost as fake

    client = operator(fake_viettelpost)
    try:
        await client.place(order("R-1"))  # the lists are read and cached
        monkeypatch.setitem(fake.WARDS, 43, [{"WARDS_ID": 999, "WARDS_NAME": "PHƯỜNG MỚI"}])
        result = await client.place(order("R-2"))
    finally:
        await client.aclose()
    assert (result.outcome, result.error) == ("failed", "viettelpost 204: order refused")
    assert "R-2" not in fake_viettelpost.orders


def test_status_codes_map_onto_ours() -> None:
    assert [status_of(c) for c in (105, 200, 500, 506, 501, 502, 504, 503)] == [
        "picked_up",
        "picked_up",
        "in_transit",
        "in_transit",
        "delivered",
        "returned",
        "returned",
        "failed",
    ]
    assert status_of(100) is None and status_of(-100) is None and status_of(12345) is None


def test_viettelpost_without_its_account_does_not_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="MOTCUA_POSTAL_USERNAME, MOTCUA_POSTAL_PASSWORD"):
        Settings(data_dir=tmp_path, postal_provider="viettelpost", postal_api_url="http://x")


# -- the notifier through Viettel Post -------------------------------------------------------


@asynccontextmanager
async def notifier_via_viettelpost(
    tracker: TrackerHarness,
    database_url: str,
    tmp_path: Path,
    fake_viettelpost: FakeViettelPost,
    fake_sms_gateway: FakeSmsGateway,
    fake_postal_operator: FakePostalOperator,
    **settings: Any,
) -> AsyncIterator[NotifierHarness]:
    """The notifier ordering postal returns from the fake Viettel Post; `settings` beside."""
    values = notifier_settings(
        tmp_path,
        fake_sms_gateway,
        fake_postal_operator,
        postal_api_url=fake_viettelpost.url,
        postal_provider="viettelpost",
        postal_username=USERNAME,
        postal_password=PASSWORD,
        **settings,
    )
    async with running_notifier(
        tracker, database_url, values, fake_sms_gateway, fake_postal_operator
    ) as harness:
        yield harness


@pytest.fixture
async def n(
    tracker: TrackerHarness,
    database_url: str,
    tmp_path: Path,
    fake_viettelpost: FakeViettelPost,
    fake_sms_gateway: FakeSmsGateway,
    fake_postal_operator: FakePostalOperator,
) -> AsyncIterator[NotifierHarness]:
    async with notifier_via_viettelpost(
        tracker, database_url, tmp_path, fake_viettelpost, fake_sms_gateway, fake_postal_operator
    ) as harness:
        yield harness


@pytest.fixture
async def n_own_pickup(
    tracker: TrackerHarness,
    database_url: str,
    tmp_path: Path,
    fake_viettelpost: FakeViettelPost,
    fake_sms_gateway: FakeSmsGateway,
    fake_postal_operator: FakePostalOperator,
) -> AsyncIterator[NotifierHarness]:
    """The notifier as `n`, with the agency UBND-Q1 shipping from an address of its own."""
    async with notifier_via_viettelpost(
        tracker,
        database_url,
        tmp_path,
        fake_viettelpost,
        fake_sms_gateway,
        fake_postal_operator,
        postal_pickup_ids={"UBND-Q1": PICKUP_Q3["groupaddressId"]},
    ) as harness:
        yield harness


WEBHOOK = f"/postal/viettelpost/{CALLBACK_TOKEN}"


async def completed(n: NotifierHarness) -> str:
    """A dossier whose result goes back by post, completed: its order is decided."""
    await n.supervisors()
    await n.intake.procedure()
    dossier = await n.intake.dossier(return_method="postal", return_address=ADDRESS)
    await n.feed()
    await n.act(dossier["code"], "complete")
    await n.feed()
    return str(dossier["code"])


async def orders(n: NotifierHarness) -> list[tuple[str, str | None, str | None]]:
    o = t.postal_orders.c
    async with n.engine.connect() as conn:
        rows = await conn.execute(sa.select(o.status, o.tracking_code, o.carrier_status))
    return [(r.status, r.tracking_code, r.carrier_status) for r in rows]


async def test_the_notifier_orders_through_viettel_post_and_follows_its_webhook(
    n: NotifierHarness, fake_viettelpost: FakeViettelPost
) -> None:
    code = await completed(n)
    await n.dispatch()
    number = fake_viettelpost.orders[code]["number"]
    assert await orders(n) == [("placed", number, None)]
    await n.dispatch()
    assert any(number in m["text"] for m in n.sms.requests)  # the citizen is texted it

    said = []
    for status in (-100, 105, 200, 500, 506, 501, 501, 12345):
        r = await n.client.post(WEBHOOK, json=fake_viettelpost.webhook(code, status))
        assert r.status_code == 200, r.text
        said.append(r.json()["status"])
    assert said == [
        "ignored",  # created: moves nothing
        "recorded",  # picked up
        "ignored",  # picked up again, at the post office
        "recorded",  # out for delivery
        "ignored",
        "recorded",  # delivered
        "ignored",  # told twice
        "ignored",  # a code we do not know
    ]
    published = await n.published()
    assert [e["type"] for e in published] == ["postal.ordered"] + ["postal.status_changed"] * 3
    assert [e["payload"].get("status") for e in published[1:]] == [
        "picked_up",
        "in_transit",
        "delivered",
    ]
    assert await orders(n) == [("placed", number, "delivered")]


async def test_the_webhook_refuses_a_wrong_token_and_bad_bodies_and_acks_strangers(
    n: NotifierHarness, fake_viettelpost: FakeViettelPost
) -> None:
    code = await completed(n)
    await n.dispatch()
    body = fake_viettelpost.webhook(code, 501)
    forged = await n.client.post("/postal/viettelpost/wrong", json=body)
    assert forged.status_code == 403
    missing = await n.client.post(WEBHOOK, json={"DATA": {"ORDER_NUMBER": "1"}})
    assert missing.status_code == 422 and "ORDER_STATUS" in missing.text
    stranger = {"DATA": {"ORDER_NUMBER": 1755979999999, "ORDER_STATUS": "501"}}
    unknown = await n.client.post(WEBHOOK, json=stranger)
    assert unknown.status_code == 200 and unknown.json() == {"status": "unknown"}
    # Its number as a JSON number is the same order.
    number = int(fake_viettelpost.orders[code]["number"])
    as_number = {"DATA": {"ORDER_NUMBER": number, "ORDER_STATUS": 105}}
    assert (await n.client.post(WEBHOOK, json=as_number)).json() == {"status": "recorded"}
    assert [s for _, _, s in await orders(n)] == ["picked_up"]  # only ours moved


async def test_a_returned_parcel_alerts_the_supervisors(
    n: NotifierHarness, fake_viettelpost: FakeViettelPost
) -> None:
    code = await completed(n)
    await n.dispatch()
    r = await n.client.post(WEBHOOK, json=fake_viettelpost.webhook(code, 502))
    assert r.json() == {"status": "recorded"}
    alerts = await n.notices(template="postal_problem")
    assert len(alerts) == 2 and all(a["audience"] == "supervisor" for a in alerts)


async def test_a_webhook_before_the_order_answer_places_the_order_once(
    n: NotifierHarness, fake_viettelpost: FakeViettelPost
) -> None:
    code = await completed(n)
    hold = fake_viettelpost.hold_next()
    placing = asyncio.create_task(n.dispatch())
    assert await asyncio.to_thread(hold.wait_arrived) == code
    number = fake_viettelpost.orders[code]["number"]
    early = await n.client.post(WEBHOOK, json=fake_viettelpost.webhook(code, 105))
    assert early.json() == {"status": "recorded"}  # placed with its number, then picked up
    hold.release()
    await placing
    assert await orders(n) == [("placed", number, "picked_up")]
    published = await n.published()
    assert [e["type"] for e in published] == ["postal.ordered", "postal.status_changed"]


async def test_a_duplicate_refusal_waits_for_the_webhooks_number(
    n: NotifierHarness, fake_viettelpost: FakeViettelPost
) -> None:
    """The notifier died after Viettel Post took the order (here: the answer too slow):
    asked again, Viettel Post refuses the code as existing; the webhook tells the number."""
    n.service.dispatcher.postal._timeout = 0.5  # type: ignore[attr-defined]
    code = await completed(n)
    fake_viettelpost.slow_next(2)
    await n.dispatch()
    n.intake.clock.advance(minutes=10)
    await n.dispatch()
    ((status, tracking, _),) = await orders(n)
    assert (status, tracking) == ("pending", None)
    async with n.engine.connect() as conn:
        error = (await conn.execute(sa.select(t.postal_orders.c.error))).scalar()
    assert error == "viettelpost: order exists, its number awaited"
    r = await n.client.post(WEBHOOK, json=fake_viettelpost.webhook(code, 100))
    assert r.json() == {"status": "placed"}
    number = fake_viettelpost.orders[code]["number"]
    assert await orders(n) == [("placed", number, None)]
    assert len(fake_viettelpost.orders) == 1 and len(fake_viettelpost.requests) == 2
    n.intake.clock.advance(hours=1)
    await n.dispatch()
    assert len(fake_viettelpost.requests) == 2  # placed: not asked again


async def test_the_order_leaves_from_the_receiving_agencys_pickup_address(
    n_own_pickup: NotifierHarness, fake_viettelpost: FakeViettelPost
) -> None:
    code = await completed(n_own_pickup)  # received by UBND-Q1
    await n_own_pickup.dispatch()
    (body,) = fake_viettelpost.requests
    assert body["ORDER_NUMBER"] == code
    assert body["GROUPADDRESS_ID"] == PICKUP_Q3["groupaddressId"]
    assert (body["SENDER_DISTRICT"], body["SENDER_WARD"]) == (45, 702)


def test_gateways_check_signs_in_to_viettel_post_and_sends_no_order(
    fake_viettelpost: FakeViettelPost, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOTCUA_")}
    env.update(
        MOTCUA_DATA_DIR=str(tmp_path),
        MOTCUA_POSTAL_PROVIDER="viettelpost",
        MOTCUA_POSTAL_API_URL=fake_viettelpost.url,
        MOTCUA_POSTAL_USERNAME=USERNAME,
        MOTCUA_POSTAL_PASSWORD=PASSWORD,
    )
    command = [sys.executable, "-m", "services.cli", "gateways", "check"]
    good = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "postal (viettelpost): ok: signed in; pickup address 5818802" in good.stdout
    # Each agency's own address is checked too: one Viettel Post does not know is reported.
    env["MOTCUA_POSTAL_PICKUP_IDS"] = '{"UBND-Q3": 5818803}'
    own = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert own.returncode == 0, own.stdout + own.stderr
    assert "pickup address 5818802, UBND-Q3 5818803" in own.stdout
    env["MOTCUA_POSTAL_PICKUP_IDS"] = '{"UBND-Q3": 999}'
    unknown = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 1 and "no such pickup address (999)" in unknown.stdout
    del env["MOTCUA_POSTAL_PICKUP_IDS"]
    env["MOTCUA_POSTAL_PASSWORD"] = "wrong"
    bad = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "NOT OK: viettelpost 204: sign-in refused" in bad.stdout
    assert "wrong" not in bad.stdout + bad.stderr and PASSWORD not in good.stdout + good.stderr
    assert fake_viettelpost.requests == []  # no order
