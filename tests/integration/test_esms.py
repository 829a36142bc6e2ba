"""eSMS (issue 15 item 1): the adapter against a fake eSMS that behaves as eSMS documents,
then the notifier sending through it and taking its delivery callbacks, on SQLite and
PostgreSQL. No test reaches the internet."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from services.core.runtime.settings import Settings
from services.notifier.adapters.esms import REQUEST_ID_PREFIX, EsmsGateway
from services.notifier.adapters.sms_gateway import SmsRequest
from tests.fixtures.esms import (
    API_KEY,
    BRANDNAME,
    SECRET_KEY,
    FakeEsms,
    gateways_check,
)
from tests.fixtures.notifier import CALLBACK_TOKEN, NotifierHarness, call_back


def request(request_id: str = "n-1", *, unicode: bool = False) -> SmsRequest:
    return SmsRequest(
        to="+84912345678",
        text="UBND Q1: Ho so X da duoc tiep nhan.",
        unicode=unicode,
        request_id=request_id,
        sender=BRANDNAME,
        callback_url="http://notifier.test/sms/esms/secret",
    )


def gateway(fake: FakeEsms, *, secret: str = SECRET_KEY, timeout: float = 5) -> EsmsGateway:
    return EsmsGateway(
        "primary",
        fake.url,
        api_key=API_KEY,
        secret_key=secret,
        sandbox=True,
        rate_per_second=0,
        timeout_seconds=timeout,
    )


async def test_a_send_speaks_esms_customer_care_api(fake_esms: FakeEsms) -> None:
    client = gateway(fake_esms)
    try:
        result = await client.send(request(unicode=True))
    finally:
        await client.aclose()
    assert result.outcome == "accepted"
    (body,) = fake_esms.requests
    assert result.message_id == fake_esms.sent["n-1"]["SMSID"]
    assert body["Phone"] == "0912345678"  # the national form eSMS takes
    assert (body["SmsType"], body["IsUnicode"], body["Sandbox"]) == ("2", "1", "1")
    assert (body["Brandname"], body["RequestId"]) == (BRANDNAME, "n-1")
    assert body["CallbackUrl"] == "http://notifier.test/sms/esms/secret"


async def test_a_resend_esms_recognises_is_the_same_message(fake_esms: FakeEsms) -> None:
    """The first answer never arrived (too slow): sent again, eSMS answers 124, and the
    notice counts as accepted, known by its request id; the citizen got one text."""
    client = gateway(fake_esms, timeout=0.5)
    try:
        fake_esms.slow_next(2)
        first = await client.send(request())
        again = await client.send(request())
    finally:
        await client.aclose()
    assert (first.outcome, first.maybe_taken) == ("retry", True)
    assert again.outcome == "accepted" and again.message_id == REQUEST_ID_PREFIX + "n-1"
    assert len(fake_esms.requests) == 2 and len(fake_esms.sent) == 1


@pytest.mark.parametrize(
    ("script", "outcome", "error"),
    [
        (("code", "103"), "retry", "esms 103: balance too low"),
        (("code", "140"), "retry", "esms 140: this server's IP is not whitelisted"),
        (("code", "146"), "failed", "esms 146: text does not match a registered"),
        (("code", "999"), "failed", "esms 999: unknown answer"),
        (("status", 503), "retry", "esms HTTP 503"),
        (("status", 429), "retry", "esms HTTP 429"),
    ],
)
async def test_esms_answers_become_our_outcomes(
    fake_esms: FakeEsms, script: tuple[str, object], outcome: str, error: str
) -> None:
    kind, value = script
    if kind == "code":
        fake_esms.code_next(str(value))
    else:
        fake_esms.fail_next(int(str(value)))
    client = gateway(fake_esms)
    try:
        result = await client.send(request())
    finally:
        await client.aclose()
    assert result.outcome == outcome
    assert result.error is not None and result.error.startswith(error)


async def test_wrong_keys_wait_and_an_unknown_brandname_fails(fake_esms: FakeEsms) -> None:
    wrong = gateway(fake_esms, secret="not-the-key")
    unknown = EsmsGateway("primary", fake_esms.url, api_key=API_KEY, secret_key=SECRET_KEY)
    try:
        refused = await wrong.send(request())
        branded = await unknown.send(SmsRequest("+84912345678", "x", False, "n-2", "KHAC", None))
        assert await wrong.check() == (False, "refused: esms 101")
        assert await unknown.check() == (True, "balance 36693")
    finally:
        await wrong.aclose()
        await unknown.aclose()
    assert refused.outcome == "retry"  # the account can be mended; the notice waits
    assert refused.error == "esms 101: wrong ApiKey or SecretKey"
    assert (branded.outcome, branded.error) == ("failed", "esms 104: brandname not registered")


def test_esms_without_its_keys_does_not_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="MOTCUA_SMS_API_KEY, MOTCUA_SMS_SECRET_KEY"):
        Settings(data_dir=tmp_path, sms_provider="esms", sms_gateway_url="http://x")


# -- the notifier through eSMS ---------------------------------------------------------------


@pytest.fixture
def n(esms_notifier: NotifierHarness) -> NotifierHarness:
    return esms_notifier


async def received(n: NotifierHarness) -> dict[str, object]:
    await n.intake.procedure()
    dossier = await n.intake.dossier()
    await n.feed()
    return dossier


async def test_the_notifier_texts_through_esms_and_takes_its_callbacks(
    n: NotifierHarness, fake_esms: FakeEsms
) -> None:
    dossier = await received(n)
    assert await n.dispatch() == 1
    (notice,) = await n.notices()
    sent = fake_esms.sent[notice["id"]]
    assert notice["status"] == "accepted" and notice["message_id"] == sent["SMSID"]
    assert str(dossier["code"]) in sent["Content"] and sent["Phone"] == "0912345678"
    # The token in the path: eSMS appends its own query string to the URL it was given.
    assert sent["CallbackUrl"] == f"http://notifier.test/sms/esms/{CALLBACK_TOKEN}"

    on_the_way = await call_back(n, fake_esms.callback_url(notice["id"], status="7"))
    assert on_the_way.json() == {"status": "ignored"}
    forged = await call_back(n, f"/sms/esms/wrong?SMSID={sent['SMSID']}&SendStatus=5")
    assert forged.status_code == 403
    done = await call_back(n, fake_esms.callback_url(notice["id"]))
    assert done.status_code == 200 and done.json() == {"status": "recorded"}
    (notice,) = await n.notices()
    assert notice["status"] == "delivered"
    assert await n.history(notice["id"]) == ["pending", "accepted", "delivered"]


async def test_a_callback_before_the_answer_and_a_resend_are_both_taken(
    n: NotifierHarness, fake_esms: FakeEsms
) -> None:
    await received(n)
    hold = fake_esms.hold_next()
    sending = asyncio.create_task(n.dispatch())
    notice_id = await asyncio.to_thread(hold.wait_arrived)
    url = fake_esms.callback_url(notice_id, status="5", ok=0, failed=1)
    early = await call_back(n, url)
    assert early.json() == {"status": "kept"}  # the send's answer is not recorded yet
    hold.release()
    await sending
    (notice,) = await n.notices()
    assert notice["status"] == "failed" and notice["error"] == "esms: not delivered to the phone"

    # A second dossier: eSMS took the message but its answer came too late; the resend is
    # recognised (124), and the callback finds the notice by its request id.
    await n.intake.dossier(applicant={"full_name": "Trần B", "phone": "0987654321"})
    await n.feed()
    fake_esms.slow_next(3)
    await n.dispatch()
    n.intake.clock.advance(minutes=10)
    await n.dispatch()
    resent = [x for x in await n.notices() if x["id"] != notice_id]
    (second,) = resent
    assert second["status"] == "accepted"
    assert second["message_id"] == REQUEST_ID_PREFIX + second["id"]
    done = await call_back(n, fake_esms.callback_url(second["id"]))
    assert done.json() == {"status": "recorded"}
    assert [x["status"] for x in await n.notices() if x["id"] == second["id"]] == ["delivered"]
    assert len(fake_esms.sent) == 2  # one text each


def test_gateways_check_asks_esms_its_balance_and_sends_nothing(
    fake_esms: FakeEsms, tmp_path: Path
) -> None:
    good = gateways_check(fake_esms, tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "sms (esms): ok: balance 36693" in good.stdout
    assert SECRET_KEY not in good.stdout + good.stderr
    bad = gateways_check(fake_esms, tmp_path, MOTCUA_SMS_SECRET_KEY="wrong")
    assert bad.returncode == 1 and "NOT OK: refused: esms 101" in bad.stdout
    assert fake_esms.requests == []  # nothing was sent
