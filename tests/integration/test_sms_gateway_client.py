"""HttpSmsGateway against the fake gateway (a real HTTP server on loopback), JsonlSmsGateway
on a real file, and the classification rules on real httpx responses."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from services.core.domain.calendar import VN_TZ
from services.notifier.adapters.http_calls import HttpClient, classify
from services.notifier.adapters.jsonl_outbox import JsonlOutbox
from services.notifier.adapters.rate_limit import TokenBucket
from services.notifier.adapters.sms_gateway import (
    HttpSmsGateway,
    JsonlSmsGateway,
    SmsRequest,
)
from tests.fixtures.gateways import CallbackReceiver, FakeSmsGateway

PHONE = "+84912345678"
TEXT = "Ho so 000.00.01.H29-260302-0001 da duoc tiep nhan. Hen tra 06/03/2026."


def sms(request_id: str = "notice-1", **changes: object) -> SmsRequest:
    fields: dict[str, object] = {
        "to": PHONE,
        "text": TEXT,
        "unicode": False,
        "request_id": request_id,
        "sender": "MOTCUA",
        "callback_url": None,
    }
    fields.update(changes)
    return SmsRequest(**fields)  # type: ignore[arg-type]


@pytest.fixture
async def gateway(fake_sms_gateway: FakeSmsGateway) -> AsyncIterator[HttpSmsGateway]:
    client = HttpSmsGateway("primary", fake_sms_gateway.url, rate_per_second=0, burst=0)
    yield client
    await client.aclose()


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def assert_no_personal_data(error: str | None) -> None:
    assert error is not None
    for secret in (PHONE, PHONE[1:], "0912345678", TEXT, "Ho so"):
        assert secret not in error


# -- accepted -----------------------------------------------------------------------------


async def test_accepted_returns_the_gateways_message_id(
    gateway: HttpSmsGateway, fake_sms_gateway: FakeSmsGateway
) -> None:
    result = await gateway.send(sms(callback_url="http://127.0.0.1:1/receipts"))

    assert result.outcome == "accepted"
    assert result.gateway == "primary"
    assert result.error is None
    message = fake_sms_gateway.messages["notice-1"]
    assert result.message_id == message["message_id"]
    assert fake_sms_gateway.requests == [
        {
            "to": PHONE,
            "text": TEXT,
            "unicode": False,
            "request_id": "notice-1",
            "sender": "MOTCUA",
            "callback_url": "http://127.0.0.1:1/receipts",
        }
    ]


async def test_a_repeated_request_id_gets_the_first_answer_and_one_sms(
    gateway: HttpSmsGateway, fake_sms_gateway: FakeSmsGateway
) -> None:
    first = await gateway.send(sms())
    again = await gateway.send(sms())

    assert again == first
    assert fake_sms_gateway.accepted_count() == 1
    assert len(fake_sms_gateway.requests) == 2


async def test_a_base_url_with_a_trailing_slash_still_posts_to_messages(
    fake_sms_gateway: FakeSmsGateway,
) -> None:
    client = HttpSmsGateway("p", fake_sms_gateway.url + "/", rate_per_second=0, burst=0)
    try:
        assert (await client.send(sms())).outcome == "accepted"
    finally:
        await client.aclose()


# -- retry --------------------------------------------------------------------------------


async def test_429_is_retried_after_the_gateways_retry_after(
    gateway: HttpSmsGateway, fake_sms_gateway: FakeSmsGateway
) -> None:
    fake_sms_gateway.fail_next(429, retry_after=7)

    result = await gateway.send(sms())

    assert (result.outcome, result.retry_after_seconds) == ("retry", 7.0)
    assert result.error == "HTTP 429 rate_limited"
    assert result.message_id is None
    assert not result.maybe_taken  # the gateway answered: it did not take the message
    assert fake_sms_gateway.accepted_count() == 0
    assert (await gateway.send(sms())).outcome == "accepted"


@pytest.mark.parametrize(("status", "retry_after"), [(500, None), (503, 1.5), (502, None)])
async def test_5xx_is_retried(
    gateway: HttpSmsGateway,
    fake_sms_gateway: FakeSmsGateway,
    status: int,
    retry_after: float | None,
) -> None:
    fake_sms_gateway.fail_next(status, retry_after=retry_after)

    result = await gateway.send(sms())

    assert result.outcome == "retry"
    assert result.retry_after_seconds == retry_after
    assert result.error == f"HTTP {status} unavailable"


async def test_a_gateway_that_hangs_is_a_timeout_to_retry(
    fake_sms_gateway: FakeSmsGateway,
) -> None:
    fake_sms_gateway.hang_next(seconds=30)  # released when the fake stops
    client = HttpSmsGateway("p", fake_sms_gateway.url, rate_per_second=0, timeout_seconds=0.3)
    try:
        result = await client.send(sms())
        assert result.outcome == "retry"
        assert result.error == "timeout (ReadTimeout)"
        assert result.maybe_taken
        assert fake_sms_gateway.accepted_count() == 0
        assert (await client.send(sms())).outcome == "accepted"
    finally:
        await client.aclose()


async def test_connection_refused_is_retried() -> None:
    client = HttpSmsGateway("p", closed_port_url(), rate_per_second=0)
    try:
        result = await client.send(sms())
    finally:
        await client.aclose()
    assert result.outcome == "retry"
    assert result.error == "transport error (ConnectError)"
    assert not result.maybe_taken


async def test_200_without_a_message_id_is_a_malformed_response_to_retry(
    callback_receiver: CallbackReceiver,
) -> None:
    # The receiver answers 200 {} to any POST: a gateway that says OK but gives no id.
    client = HttpSmsGateway("p", callback_receiver.url, rate_per_second=0)
    try:
        result = await client.send(sms())
    finally:
        await client.aclose()
    assert (result.outcome, result.error) == ("retry", "malformed response")


async def test_fail_for_answers_every_new_request_until_it_is_lifted(
    gateway: HttpSmsGateway, fake_sms_gateway: FakeSmsGateway
) -> None:
    fake_sms_gateway.fail_for(503, seconds=60)
    assert (await gateway.send(sms("a"))).outcome == "retry"
    assert (await gateway.send(sms("b"))).outcome == "retry"

    fake_sms_gateway.fail_for(503, seconds=0)
    assert (await gateway.send(sms("a"))).outcome == "accepted"


# -- permanent failure --------------------------------------------------------------------


async def test_400_fails_at_once_with_the_gateways_code_and_no_personal_data(
    gateway: HttpSmsGateway, fake_sms_gateway: FakeSmsGateway
) -> None:
    fake_sms_gateway.reject_next(400, "invalid_number")

    result = await gateway.send(sms())

    assert (result.outcome, result.error) == ("failed", "HTTP 400 invalid_number")
    assert result.retry_after_seconds is None
    assert_no_personal_data(result.error)


@pytest.mark.parametrize(
    "code", ["0912345678", f"bad number {PHONE}", "x" * 60, "blocked_84912345678"]
)
async def test_an_error_field_that_is_not_a_short_code_is_left_out(
    gateway: HttpSmsGateway, fake_sms_gateway: FakeSmsGateway, code: str
) -> None:
    fake_sms_gateway.reject_next(422, code)

    result = await gateway.send(sms())

    assert (result.outcome, result.error) == ("failed", "HTTP 422")


async def test_the_fake_rejects_a_number_that_is_not_e164(
    gateway: HttpSmsGateway, fake_sms_gateway: FakeSmsGateway
) -> None:
    result = await gateway.send(sms(to="0912345678"))

    assert (result.outcome, result.error) == ("failed", "HTTP 400 invalid_number")
    assert fake_sms_gateway.accepted_count() == 0


def contract_body(**changes: object) -> dict[str, object]:
    return {**sms().__dict__, **changes}


@pytest.mark.parametrize(
    "body",
    [
        {k: v for k, v in contract_body().items() if k != "callback_url"},
        {k: v for k, v in contract_body().items() if k != "text"},
        contract_body(unicode="false"),
        contract_body(request_id=""),
        contract_body(sender="MOTCUA-HANOI-1"),  # a brandname is at most 11 characters
    ],
)
def test_the_fake_answers_400_bad_request_to_a_body_off_the_contract(
    fake_sms_gateway: FakeSmsGateway, body: dict[str, object]
) -> None:
    response = httpx.post(f"{fake_sms_gateway.url}/messages", json=body, trust_env=False)

    assert (response.status_code, response.json()) == (400, {"error": "bad_request"})
    assert fake_sms_gateway.requests == [body]
    assert fake_sms_gateway.accepted_count() == 0


def test_the_fake_answers_a_body_that_is_not_json_or_a_wrong_path(
    fake_sms_gateway: FakeSmsGateway,
) -> None:
    with httpx.Client(base_url=fake_sms_gateway.url, trust_env=False) as client:
        assert client.post("/messages", content=b"to=+84912345678").status_code == 400
        assert client.post("/sms", json=contract_body()).status_code == 404
    assert fake_sms_gateway.requests == []


# -- hold: accepted by the gateway, answer not yet delivered ------------------------------


async def test_hold_records_the_message_before_the_answer_comes_back(
    gateway: HttpSmsGateway, fake_sms_gateway: FakeSmsGateway
) -> None:
    hold = fake_sms_gateway.hold_next()
    sending = asyncio.create_task(gateway.send(sms()))

    assert await asyncio.to_thread(hold.wait_arrived) == "notice-1"
    assert fake_sms_gateway.accepted_count() == 1
    assert not sending.done()

    hold.release()
    result = await sending
    assert result.outcome == "accepted"
    assert result.message_id == fake_sms_gateway.messages["notice-1"]["message_id"]


async def test_a_send_repeated_after_a_lost_answer_is_one_sms(
    fake_sms_gateway: FakeSmsGateway,
) -> None:
    """What a notifier killed between the call and its commit goes through on restart."""
    hold = fake_sms_gateway.hold_next()
    client = HttpSmsGateway("p", fake_sms_gateway.url, rate_per_second=0, timeout_seconds=0.3)
    try:
        lost = await client.send(sms())  # times out: the answer never reaches us
        assert lost.outcome == "retry"
        assert hold.arrived.is_set()
        hold.release()

        again = await client.send(sms())
    finally:
        await client.aclose()
    assert again.outcome == "accepted"
    assert again.message_id == fake_sms_gateway.messages["notice-1"]["message_id"]
    assert fake_sms_gateway.accepted_count() == 1
    assert len(fake_sms_gateway.requests) == 2


async def test_scripts_are_kept_for_new_request_ids(
    gateway: HttpSmsGateway, fake_sms_gateway: FakeSmsGateway
) -> None:
    first = await gateway.send(sms("a"))
    fake_sms_gateway.fail_next(503)
    fake_sms_gateway.hang_next()

    assert await gateway.send(sms("a")) == first  # already accepted: no script consumed
    assert (await gateway.send(sms("b"))).outcome == "retry"  # the 503
    assert fake_sms_gateway.accepted_count() == 1


# -- delivery receipts --------------------------------------------------------------------


async def test_send_receipt_posts_to_the_messages_callback_url(
    gateway: HttpSmsGateway,
    fake_sms_gateway: FakeSmsGateway,
    callback_receiver: CallbackReceiver,
) -> None:
    result = await gateway.send(sms(callback_url=f"{callback_receiver.url}/receipts/sms"))
    assert result.message_id is not None

    assert fake_sms_gateway.send_receipt(result.message_id, "delivered") == 200
    assert fake_sms_gateway.send_receipt(result.message_id, "failed", "absent") == 200

    assert callback_receiver.wait_for_count(2) == [
        ("/receipts/sms", {"message_id": result.message_id, "status": "delivered"}),
        (
            "/receipts/sms",
            {"message_id": result.message_id, "status": "failed", "error": "absent"},
        ),
    ]


async def test_send_receipt_returns_the_receivers_status(
    gateway: HttpSmsGateway, fake_sms_gateway: FakeSmsGateway
) -> None:
    with CallbackReceiver(status=404) as receiver:
        result = await gateway.send(sms(callback_url=receiver.url))
        assert result.message_id is not None
        assert fake_sms_gateway.send_receipt(result.message_id, "delivered") == 404


# -- rate limit ---------------------------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


async def test_each_send_takes_a_token_from_the_gateways_bucket(
    fake_sms_gateway: FakeSmsGateway,
) -> None:
    time = FakeTime()
    bucket = TokenBucket(2, 1, clock=time.clock, sleep=time.sleep)
    client = HttpSmsGateway("p", fake_sms_gateway.url, bucket=bucket)
    try:
        results = [await client.send(sms(f"n{i}")) for i in range(4)]
    finally:
        await client.aclose()
    assert [r.outcome for r in results] == ["accepted"] * 4
    assert time.sleeps == [0.5, 0.5, 0.5]


# -- clients ------------------------------------------------------------------------------


async def test_a_client_passed_in_stays_open_after_aclose(
    fake_sms_gateway: FakeSmsGateway,
) -> None:
    shared = HttpClient()
    try:
        client = HttpSmsGateway("p", fake_sms_gateway.url, rate_per_second=0, client=shared)
        assert (await client.send(sms())).outcome == "accepted"
        await client.aclose()
        assert not shared.is_closed
        assert (await client.send(sms("notice-2"))).outcome == "accepted"
    finally:
        await shared.aclose()
    assert shared.is_closed


# -- classification on real responses ----------------------------------------------------

HTTP_DATE = "Wed, 21 Oct 2026 07:28:00 GMT"  # the other Retry-After form: left to the backoff


@pytest.mark.parametrize(
    ("status", "content", "headers", "expected"),
    [
        (200, b'{"message_id": "m1", "status": "accepted"}', {}, ("accepted", "m1", None, None)),
        (200, b"<html>ok</html>", {}, ("retry", None, "malformed response", None)),
        (200, b'["m1"]', {}, ("retry", None, "malformed response", None)),
        (200, b'{"message_id": ""}', {}, ("retry", None, "malformed response", None)),
        (200, b'{"message_id": 17}', {}, ("retry", None, "malformed response", None)),
        (429, b"", {"Retry-After": "120"}, ("retry", None, "HTTP 429", 120.0)),
        (503, b"busy", {"Retry-After": HTTP_DATE}, ("retry", None, "HTTP 503", None)),
        (503, b"", {"Retry-After": "-5"}, ("retry", None, "HTTP 503", None)),
        (408, b"", {}, ("retry", None, "HTTP 408", None)),
        (401, b'{"code": "bad_key"}', {}, ("failed", None, "HTTP 401 bad_key", None)),
        (400, b'{"error": {"code": "E_TEXT"}}', {}, ("failed", None, "HTTP 400 E_TEXT", None)),
        (404, b"not found", {}, ("failed", None, "HTTP 404", None)),
        (301, b"", {"Location": "http://x"}, ("retry", None, "HTTP 301", None)),
    ],
)  # fmt: skip
def test_classification(
    status: int,
    content: bytes,
    headers: dict[str, str],
    expected: tuple[str, str | None, str | None, float | None],
) -> None:
    verdict = classify(httpx.Response(status, content=content, headers=headers), "message_id")
    assert (verdict.outcome, verdict.value, verdict.error, verdict.retry_after_seconds) == expected


# -- JSON lines ---------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, 30, tzinfo=VN_TZ)

    def __call__(self) -> datetime:
        return self.now


def read_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


async def test_jsonl_writes_one_utf8_line_per_sms(tmp_path: Path) -> None:
    path = tmp_path / "outbox" / "sms.jsonl"  # the folder does not exist yet
    gateway = JsonlSmsGateway(path, Clock())
    text = "Hồ sơ của Ông Nguyễn Văn Ánh đã được tiếp nhận"

    result = await gateway.send(sms("r1", text=text, unicode=True, callback_url="http://cb"))
    await gateway.send(sms("r2"))
    await gateway.aclose()

    assert (result.outcome, result.gateway, result.message_id) == ("accepted", "jsonl", "jsonl-r1")
    assert text in path.read_text(encoding="utf-8")  # kept as UTF-8, not \u escapes
    assert read_lines(path) == [
        {
            "request_id": "r1",
            "to": PHONE,
            "text": text,
            "unicode": True,
            "sender": "MOTCUA",
            "callback_url": "http://cb",
            "at": "2026-03-02T09:30:00+07:00",
        },
        {
            "request_id": "r2",
            "to": PHONE,
            "text": TEXT,
            "unicode": False,
            "sender": "MOTCUA",
            "callback_url": None,
            "at": "2026-03-02T09:30:00+07:00",
        },
    ]


async def test_jsonl_keeps_the_first_answer_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "sms.jsonl"
    first = await JsonlSmsGateway(path, Clock()).send(sms("r1"))
    again = await JsonlSmsGateway(path, Clock()).send(sms("r1"))  # a restarted notifier

    assert again == first
    assert len(read_lines(path)) == 1


async def test_jsonl_starts_a_fresh_line_after_a_torn_one(tmp_path: Path) -> None:
    path = tmp_path / "sms.jsonl"
    path.write_text('{"request_id": "r0", "to": "+8491', encoding="utf-8")  # a crash mid-write

    await JsonlSmsGateway(path, Clock()).send(sms("r1"))

    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    assert json.loads(lines[1])["request_id"] == "r1"


async def test_jsonl_lines_never_interleave_under_concurrency(tmp_path: Path) -> None:
    path = tmp_path / "sms.jsonl"
    gateway = JsonlSmsGateway(path, Clock())

    await asyncio.gather(*(gateway.send(sms(f"r{i}", text="é" * 500)) for i in range(50)))

    assert {str(line["request_id"]) for line in read_lines(path)} == {f"r{i}" for i in range(50)}
    assert len(read_lines(path)) == 50


async def test_jsonl_remembers_only_the_recent_keys(tmp_path: Path) -> None:
    """Memory stays flat however long the file grows: a repeat comes from the calls in flight
    when a notifier stopped, and those are among the last keys, in this process or read back
    from the file's end."""
    path = tmp_path / "sms.jsonl"
    outbox = JsonlOutbox(path, key_field="request_id", recent_keys=3)
    for i in range(6):
        assert await outbox.append_once({"request_id": f"r{i}"})
    assert not await outbox.append_once({"request_id": "r5"})  # recent: one line kept
    assert len(outbox._answers or {}) == 3
    restarted = JsonlOutbox(path, key_field="request_id", recent_keys=3)
    assert not await restarted.append_once({"request_id": "r3"})  # the file's last keys
    assert len(restarted._answers or {}) == 3
    assert [line["request_id"] for line in read_lines(path)] == [f"r{i}" for i in range(6)]
