"""eSMS (issue 15 item 1): the adapter against a fake eSMS that behaves as eSMS documents,
then the notifier sending through it and taking its delivery callbacks, on SQLite and
PostgreSQL. No test reaches the internet."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from services.core.runtime.database import create_engine
from services.core.runtime.host import build_app
from services.core.runtime.settings import Settings
from services.notifier.adapters.esms import REQUEST_ID_PREFIX, EsmsGateway
from services.notifier.adapters.sms_gateway import SmsRequest
from services.notifier.app import NotifierService
from tests.fixtures.esms import API_KEY, BRANDNAME, SECRET_KEY, FakeEsms
from tests.fixtures.gateways import FakePostalOperator, FakeSmsGateway
from tests.fixtures.notifier import CALLBACK, CALLBACK_TOKEN, NotifierHarness, notifier_settings
from tests.fixtures.tracker import TrackerHarness


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
async def n(
    tracker: TrackerHarness,
    database_url: str,
    tmp_path: Path,
    fake_esms: FakeEsms,
    fake_sms_gateway: FakeSmsGateway,
    fake_postal_operator: FakePostalOperator,
) -> AsyncIterator[NotifierHarness]:
    settings = notifier_settings(
        tmp_path,
        fake_sms_gateway,
        fake_postal_operator,
        sms_gateway_url=fake_esms.url,
        sms_provider="esms",
        sms_api_key=API_KEY,
        sms_secret_key=SECRET_KEY,
        sms_sender=BRANDNAME,
        sms_timeout_seconds=1,
    )
    service = NotifierService(
        settings,
        clock=tracker.clock,
        engine=create_engine(database_url.format(service="notifier")),
        run_dispatcher=False,
        run_scheduler=False,
    )
    service.dispatcher.jitter = lambda: 0.0
    await service.start()
    transport = httpx.ASGITransport(app=build_app([service]), raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://notifier.test", params=CALLBACK
    ) as client:
        yield NotifierHarness(
            tracker.intake, tracker, service, client, fake_sms_gateway, fake_postal_operator
        )
    await service.stop()


async def received(n: NotifierHarness) -> dict[str, object]:
    await n.intake.procedure()
    dossier = await n.intake.dossier()
    await n.feed()
    return dossier


async def call_back(n: NotifierHarness, url: str) -> httpx.Response:
    """eSMS's GET to the URL it was given, made to the notifier in-process."""
    parts = urlsplit(url)
    return await n.client.get(parts.path, params=dict(parse_qsl(parts.query)))


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
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOTCUA_")}
    env.update(
        MOTCUA_DATA_DIR=str(tmp_path),
        MOTCUA_SMS_PROVIDER="esms",
        MOTCUA_SMS_GATEWAY_URL=fake_esms.url,
        MOTCUA_SMS_API_KEY=API_KEY,
        MOTCUA_SMS_SECRET_KEY=SECRET_KEY,
    )
    command = [sys.executable, "-m", "services.cli", "gateways", "check"]
    good = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "sms (esms): ok: balance 36693" in good.stdout
    assert SECRET_KEY not in good.stdout + good.stderr
    env["MOTCUA_SMS_SECRET_KEY"] = "wrong"
    bad = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "NOT OK: refused: esms 101" in bad.stdout
    assert fake_esms.requests == []  # nothing was sent
