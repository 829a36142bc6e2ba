"""HttpPostalOperator against the fake operator (a real HTTP server on loopback),
JsonlPostalOperator on a real file, and the fake's own checks."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.core.domain.calendar import VN_TZ
from services.core.domain.codes import TRACKING_CODE_MAX_LENGTH
from services.notifier.adapters.postal import (
    HttpPostalOperator,
    JsonlPostalOperator,
    PostalOrderRequest,
)
from services.notifier.adapters.rate_limit import TokenBucket
from services.notifier.domain.notices import PLACEHOLDER_LIMITS
from tests.fixtures.gateways import CallbackReceiver, FakePostalOperator, s10_tracking_code

NAME = "Nguyễn Thị Hồng Nhung"
PHONE = "+84912345678"
ADDRESS = {
    "street": "12 Lê Lợi",
    "ward": "Phường Bến Nghé",
    "district": "Quận 1",
    "province": "Thành phố Hồ Chí Minh",
}
S10 = re.compile(r"EB\d{9}VN")


def order(reference: str = "000.00.01.H29-260302-0001", **changes: Any) -> PostalOrderRequest:
    fields: dict[str, Any] = {
        "reference": reference,
        "receiver_name": NAME,
        "receiver_phone": PHONE,
        "address": ADDRESS,
        "content": "Kết quả giải quyết thủ tục hành chính",
        "callback_url": None,
    }
    fields.update(changes)
    return PostalOrderRequest(**fields)


@pytest.fixture
async def operator(fake_postal_operator: FakePostalOperator) -> AsyncIterator[HttpPostalOperator]:
    client = HttpPostalOperator("vnpost", fake_postal_operator.url, rate_per_second=0)
    yield client
    await client.aclose()


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def assert_no_personal_data(error: str | None) -> None:
    assert error is not None
    for secret in (NAME, PHONE, PHONE[1:], *ADDRESS.values()):
        assert secret not in error


# -- accepted -----------------------------------------------------------------------------


async def test_accepted_returns_the_operators_tracking_code(
    operator: HttpPostalOperator, fake_postal_operator: FakePostalOperator
) -> None:
    result = await operator.place(order(callback_url="http://127.0.0.1:1/postal", cod_amount=0))

    assert result.outcome == "accepted"
    assert result.tracking_code is not None and S10.fullmatch(result.tracking_code)
    stored = fake_postal_operator.orders["000.00.01.H29-260302-0001"]
    assert stored["tracking_code"] == result.tracking_code
    assert fake_postal_operator.requests == [
        {
            "reference": "000.00.01.H29-260302-0001",
            "receiver": {"name": NAME, "phone": PHONE, "address": ADDRESS},
            "content": "Kết quả giải quyết thủ tục hành chính",
            "cod_amount": 0,
            "callback_url": "http://127.0.0.1:1/postal",
        }
    ]


async def test_a_repeated_reference_gets_the_first_order(
    operator: HttpPostalOperator, fake_postal_operator: FakePostalOperator
) -> None:
    first = await operator.place(order())
    again = await operator.place(order())

    assert again == first
    assert fake_postal_operator.accepted_count() == 1
    assert len(fake_postal_operator.requests) == 2


def test_tracking_codes_carry_the_s10_check_digit() -> None:
    # The UPU S10 worked example: serial 47312482 has check digit 9.
    assert s10_tracking_code(47312482) == "EB473124829VN"
    assert all(S10.fullmatch(s10_tracking_code(n)) for n in (1, 10_000_001, 99_999_999))


# -- retry --------------------------------------------------------------------------------


async def test_429_is_retried_after_the_operators_retry_after(
    operator: HttpPostalOperator, fake_postal_operator: FakePostalOperator
) -> None:
    fake_postal_operator.fail_next(429, retry_after=30)

    result = await operator.place(order())

    assert (result.outcome, result.retry_after_seconds) == ("retry", 30.0)
    assert result.error == "HTTP 429 rate_limited"
    assert (await operator.place(order())).outcome == "accepted"


@pytest.mark.parametrize("status", [500, 503])
async def test_5xx_is_retried(
    operator: HttpPostalOperator, fake_postal_operator: FakePostalOperator, status: int
) -> None:
    fake_postal_operator.fail_next(status, times=2)

    assert (await operator.place(order())).outcome == "retry"
    assert (await operator.place(order())).outcome == "retry"
    assert (await operator.place(order())).outcome == "accepted"


async def test_an_operator_that_hangs_is_a_timeout_to_retry(
    fake_postal_operator: FakePostalOperator,
) -> None:
    fake_postal_operator.hang_next()
    client = HttpPostalOperator("p", fake_postal_operator.url, timeout_seconds=0.3)
    try:
        result = await client.place(order())
    finally:
        await client.aclose()
    assert (result.outcome, result.error) == ("retry", "timeout (ReadTimeout)")
    assert fake_postal_operator.accepted_count() == 0


async def test_connection_refused_is_retried() -> None:
    client = HttpPostalOperator("p", closed_port_url())
    try:
        result = await client.place(order())
    finally:
        await client.aclose()
    assert (result.outcome, result.error) == ("retry", "transport error (ConnectError)")


async def test_200_without_a_tracking_code_is_a_malformed_response_to_retry(
    callback_receiver: CallbackReceiver,
) -> None:
    client = HttpPostalOperator("p", callback_receiver.url)
    try:
        result = await client.place(order())
    finally:
        await client.aclose()
    assert (result.outcome, result.error) == ("retry", "malformed response")


# -- permanent failure --------------------------------------------------------------------


async def test_a_tracking_code_too_long_to_text_whole_fails_the_order(
    operator: HttpPostalOperator,
    fake_postal_operator: FakePostalOperator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """It could be neither stored nor texted whole, and asking again gets it again: the order
    fails, which tells the agency's supervisors (the result is still with them)."""
    too_long = "EB" + "1" * (TRACKING_CODE_MAX_LENGTH - 3) + "VN"
    monkeypatch.setattr(fake_postal_operator, "_new_id", lambda: too_long)
    result = await operator.place(order())
    assert (result.outcome, result.tracking_code) == ("failed", None)
    assert result.error == f"tracking code over {TRACKING_CODE_MAX_LENGTH} characters"


async def test_a_tracking_code_at_its_longest_is_accepted(
    operator: HttpPostalOperator,
    fake_postal_operator: FakePostalOperator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    longest = "EB" + "1" * (TRACKING_CODE_MAX_LENGTH - 4) + "VN"
    monkeypatch.setattr(fake_postal_operator, "_new_id", lambda: longest)
    result = await operator.place(order())
    assert (result.outcome, result.tracking_code) == ("accepted", longest)


async def test_400_fails_at_once_with_the_code_and_no_personal_data(
    operator: HttpPostalOperator, fake_postal_operator: FakePostalOperator
) -> None:
    fake_postal_operator.reject_next()

    result = await operator.place(order())

    assert (result.outcome, result.error) == ("failed", "HTTP 400 invalid_address")
    assert_no_personal_data(result.error)
    assert fake_postal_operator.accepted_count() == 0


# -- hold ---------------------------------------------------------------------------------


async def test_hold_records_the_order_before_the_answer_comes_back(
    operator: HttpPostalOperator, fake_postal_operator: FakePostalOperator
) -> None:
    hold = fake_postal_operator.hold_next()
    placing = asyncio.create_task(operator.place(order("R-1")))

    assert await asyncio.to_thread(hold.wait_arrived) == "R-1"
    await fake_postal_operator.wait_for_async(lambda op: "R-1" in op.orders)
    again = await operator.place(order("R-1"))  # answered from the first order meanwhile
    assert not placing.done()

    hold.release()
    assert await placing == again
    assert fake_postal_operator.accepted_count() == 1


# -- status callbacks ---------------------------------------------------------------------


async def test_send_status_posts_to_the_orders_callback_url(
    operator: HttpPostalOperator,
    fake_postal_operator: FakePostalOperator,
    callback_receiver: CallbackReceiver,
) -> None:
    result = await operator.place(order(callback_url=f"{callback_receiver.url}/postal/status"))
    assert result.tracking_code is not None

    for status in ("picked_up", "delivered"):
        assert fake_postal_operator.send_status(result.tracking_code, status) == 200

    assert callback_receiver.wait_for_count(2) == [
        ("/postal/status", {"tracking_code": result.tracking_code, "status": "picked_up"}),
        ("/postal/status", {"tracking_code": result.tracking_code, "status": "delivered"}),
    ]


async def test_send_status_for_an_unknown_code_says_so(
    fake_postal_operator: FakePostalOperator,
) -> None:
    with pytest.raises(AssertionError, match="no accepted tracking_code"):
        fake_postal_operator.send_status("EB000000000VN", "delivered")


# -- rate limit ---------------------------------------------------------------------------


async def test_each_order_takes_a_token_from_the_operators_bucket(
    fake_postal_operator: FakePostalOperator,
) -> None:
    sleeps: list[float] = []
    now = [0.0]

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(0.5, 2, clock=lambda: now[0], sleep=sleep)
    client = HttpPostalOperator("p", fake_postal_operator.url, bucket=bucket)
    try:
        for i in range(4):
            assert (await client.place(order(f"R-{i}"))).outcome == "accepted"
    finally:
        await client.aclose()
    assert sleeps == [2.0, 2.0]


# -- the fake's checks and scripting ------------------------------------------------------


def valid_body() -> dict[str, Any]:
    return {
        "reference": "R-1",
        "receiver": {"name": NAME, "phone": PHONE, "address": dict(ADDRESS)},
        "content": "x",
        "cod_amount": 0,
        "callback_url": None,
    }


def without(body: dict[str, Any], *path: str) -> dict[str, Any]:
    inner = body
    for key in path[:-1]:
        inner = inner[key]
    del inner[path[-1]]
    return body


@pytest.mark.parametrize(
    "body",
    [
        without(valid_body(), "reference"),
        without(valid_body(), "callback_url"),
        without(valid_body(), "receiver", "phone"),
        without(valid_body(), "receiver", "address", "province"),
        {**valid_body(), "cod_amount": True},
        {**valid_body(), "cod_amount": -1},
    ],
)
def test_the_fake_answers_400_bad_request_to_a_body_off_the_contract(
    fake_postal_operator: FakePostalOperator, body: dict[str, Any]
) -> None:
    response = httpx.post(f"{fake_postal_operator.url}/orders", json=body, trust_env=False)

    assert (response.status_code, response.json()) == (400, {"error": "bad_request"})
    assert fake_postal_operator.accepted_count() == 0


def test_the_fake_takes_the_contracts_body(fake_postal_operator: FakePostalOperator) -> None:
    response = httpx.post(f"{fake_postal_operator.url}/orders", json=valid_body(), trust_env=False)
    assert response.status_code == 200
    assert S10.fullmatch(response.json()["tracking_code"])


def test_wait_for_says_what_it_saw_when_it_times_out(
    fake_postal_operator: FakePostalOperator,
) -> None:
    with pytest.raises(AssertionError, match="0 requests, 0 accepted"):
        fake_postal_operator.wait_for(lambda op: op.accepted_count() > 0, timeout=0.05)


def test_stopping_the_fake_ends_held_and_hung_requests() -> None:
    fake = FakePostalOperator()
    hold = fake.hold_next()
    fake.hang_next()

    def post(reference: str) -> int | str:
        body = {**valid_body(), "reference": reference}
        try:
            return httpx.post(f"{fake.url}/orders", json=body, timeout=20).status_code
        except httpx.HTTPError as exc:
            return type(exc).__name__

    with fake, ThreadPoolExecutor(2) as pool:
        held = pool.submit(post, "held")
        hold.wait_arrived()
        hung = pool.submit(post, "hung")
        fake.wait_for(lambda op: len(op.requests) == 2)
        fake.stop()  # stopping twice (again on leaving the with) is harmless
        assert (held.result(10), hung.result(10)) == (200, "RemoteProtocolError")


# -- JSON lines ---------------------------------------------------------------------------


def clock() -> datetime:
    return datetime(2026, 3, 6, 16, 0, tzinfo=VN_TZ)


async def test_jsonl_writes_the_order_with_diacritics_and_a_local_code(tmp_path: Path) -> None:
    path = tmp_path / "outbox" / "postal.jsonl"
    operator = JsonlPostalOperator(path, clock)

    result = await operator.place(order("R-9", cod_amount=25000))

    assert result.outcome == "accepted" and result.tracking_code is not None
    code = result.tracking_code
    raw = path.read_text(encoding="utf-8")
    assert NAME in raw and ADDRESS["province"] in raw
    assert [json.loads(line) for line in raw.splitlines()] == [
        {
            "reference": "R-9",
            "receiver": {"name": NAME, "phone": PHONE, "address": ADDRESS},
            "content": "Kết quả giải quyết thủ tục hành chính",
            "cod_amount": 25000,
            "callback_url": None,
            "tracking_code": code,
            "at": "2026-03-06T16:00:00+07:00",
        }
    ]


async def test_jsonl_tracking_code_is_the_same_for_a_repeated_reference(tmp_path: Path) -> None:
    path = tmp_path / "postal.jsonl"
    first = await JsonlPostalOperator(path, clock).place(order("R-9"))
    again = await JsonlPostalOperator(path, clock).place(order("R-9"))
    other = await JsonlPostalOperator(path, clock).place(order("R-10"))

    assert first == again  # a restarted notifier ordering again gets the first code back
    assert other.tracking_code != first.tracking_code
    assert len(path.read_text(encoding="utf-8").splitlines()) == 2


async def test_jsonl_tracking_codes_cannot_be_guessed_from_the_reference(tmp_path: Path) -> None:
    """A forged 'delivered' needs the code: it must not follow from the dossier code."""
    codes = [
        (
            await JsonlPostalOperator(tmp_path / f"{n}.jsonl", clock).place(order("R-9"))
        ).tracking_code
        for n in range(50)
    ]
    assert len(set(codes)) == 50  # the same reference, a new code in each office's file
    for code in codes:
        assert code is not None and "R-9" not in code
        assert re.fullmatch(r"LOCAL-[0-9A-F]{14}", code)  # 56 random bits
        assert len(code) <= PLACEHOLDER_LIMITS["tracking"]  # the SMS shows it whole


async def test_jsonl_gives_an_order_written_before_codes_were_kept_a_whole_code(
    tmp_path: Path,
) -> None:
    """It was "LOCAL-" + the dossier code, which a text cut ("LOCAL-VPDK-Q1-202...")."""
    path = tmp_path / "postal.jsonl"
    reference = "UBND-PHUONG-BENNGHE1-20261123-999999"  # the longest dossier code
    path.write_text(json.dumps({"reference": reference, "at": "2026-03-06T16:00:00+07:00"}) + "\n")
    again = await JsonlPostalOperator(path, clock).place(order(reference))
    once_more = await JsonlPostalOperator(path, clock).place(order(reference))
    assert again.tracking_code == once_more.tracking_code  # the same order, the same code
    assert again.tracking_code is not None
    assert re.fullmatch(r"LOCAL-[0-9A-F]{14}", again.tracking_code)
    assert len(path.read_text(encoding="utf-8").splitlines()) == 1
