"""Zalo ZNS through eSMS, the SMS when Zalo cannot (issue 15 item 2): the adapter against the
fake eSMS's ZNS API, then the notifier choosing the channel, on SQLite and PostgreSQL. One
notice, one effect: whatever the ZNS's fate, the citizen is told once. No test reaches the
internet."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from services.core.runtime.settings import Settings
from services.notifier.adapters import repository as repo
from services.notifier.adapters import tables as t
from services.notifier.adapters.esms import REQUEST_ID_PREFIX, EsmsZalo, ZnsRequest
from services.notifier.app import composer_from
from tests.fixtures.esms import API_KEY, OA_ID, SECRET_KEY, FakeEsms, gateways_check
from tests.fixtures.gateways import FakePostalOperator, FakeSmsGateway
from tests.fixtures.notifier import NotifierHarness, call_back, notifier_settings

TEMPLATES = {
    "received": {"template": "200607", "params": {"code": "ma_ho_so", "appointment": "ngay_hen"}},
    "returned": {"template": "200608", "params": {"code": "ma_ho_so"}},
}
WAIT = 60  # MOTCUA_ZALO_REPORT_WAIT_SECONDS of these tests
CITIZEN = "0912345678"  # the intake harness's applicant, in eSMS's national form


def zns(request_id: str = "n-1", template: str = "200607") -> ZnsRequest:
    params = {"ma_ho_so": "UBND-Q1-20261123-0001", "ngay_hen": "15:00 27/11/2026"}
    if template == "200608":
        params.pop("ngay_hen")
    return ZnsRequest("+84912345678", template, params, request_id, "http://n.test/sms/esms/s")


def zalo(fake: FakeEsms, *, oa_id: str = OA_ID, secret: str = SECRET_KEY) -> EsmsZalo:
    return EsmsZalo(
        fake.url,
        api_key=API_KEY,
        secret_key=secret,
        oa_id=oa_id,
        sandbox=True,
        rate_per_second=0,
        timeout_seconds=0.5,
    )


async def test_a_zns_speaks_esms_zalo_api(fake_esms: FakeEsms) -> None:
    client = zalo(fake_esms)
    try:
        result = await client.send(zns())
    finally:
        await client.aclose()
    (body,) = fake_esms.zns_requests
    assert result.outcome == "accepted"
    assert result.message_id == fake_esms.zns_sent["zalo-n-1"]["SMSID"]
    assert (body["OAID"], body["TempID"], body["Phone"]) == (OA_ID, "200607", CITIZEN)
    assert body["TempData"] == {"ma_ho_so": "UBND-Q1-20261123-0001", "ngay_hen": "15:00 27/11/2026"}
    # Not the SMS's request id: eSMS would refuse the SMS that follows a failed ZNS (124).
    assert (body["RequestId"], body["Sandbox"]) == ("zalo-n-1", "1")
    assert body["CallbackUrl"] == "http://n.test/sms/esms/s"
    assert fake_esms.requests == []  # no SMS


@pytest.mark.parametrize(
    ("script", "outcome", "error"),
    [
        ("wrong-oa", "failed", "esms 799: OA not active, or not on this account"),
        ("template", "failed", "esms 789: template not configured for this OA"),
        ("params", "failed", "esms 790: parameters do not match the ZNS template"),
        ("keys", "retry", "esms 101: wrong ApiKey or SecretKey"),
        ("503", "retry", "esms HTTP 503"),
        ("103", "retry", "esms 103: balance too low"),
    ],
)
async def test_esms_zns_answers_become_our_outcomes(
    fake_esms: FakeEsms, script: str, outcome: str, error: str
) -> None:
    request = zns()
    client = zalo(
        fake_esms,
        oa_id="1" if script == "wrong-oa" else OA_ID,
        secret="wrong" if script == "keys" else SECRET_KEY,
    )
    if script == "template":
        request = ZnsRequest(request.to, "999", request.params, "n-1", None)
    if script == "params":
        request = zns(template="200608")
        request = ZnsRequest(request.to, "200607", request.params, "n-1", None)
    if script == "503":
        fake_esms.fail_next(503)
    if script == "103":
        fake_esms.code_next("103")
    try:
        result = await client.send(request)
    finally:
        await client.aclose()
    assert (result.outcome, result.error, result.maybe_taken) == (outcome, error, False)


async def test_a_zns_resent_after_a_slow_answer_is_the_same_message(fake_esms: FakeEsms) -> None:
    client = zalo(fake_esms)
    try:
        fake_esms.slow_next(2)
        first = await client.send(zns())
        again = await client.send(zns())
    finally:
        await client.aclose()
    assert (first.outcome, first.maybe_taken) == ("retry", True)
    assert (again.outcome, again.message_id) == ("accepted", REQUEST_ID_PREFIX + "zalo-n-1")
    assert len(fake_esms.zns_requests) == 2 and len(fake_esms.zns_sent) == 1


async def test_the_check_asks_for_the_official_account_and_sends_nothing(
    fake_esms: FakeEsms,
) -> None:
    clients = [zalo(fake_esms), zalo(fake_esms, oa_id="42"), zalo(fake_esms, secret="x")]
    try:
        said = [await c.check() for c in clients]
    finally:
        for c in clients:
            await c.aclose()
    assert said == [
        (True, f"official account {OA_ID} (UBND Quận 1)"),
        (False, "official account 42 is not on this eSMS account"),
        (False, "refused: esms 101"),
    ]
    assert fake_esms.zns_requests == [] and fake_esms.requests == []


@pytest.mark.parametrize(
    ("settings", "refused"),
    [
        ({"zalo_oa_id": OA_ID}, "Zalo needs both MOTCUA_ZALO_OA_ID and MOTCUA_ZALO_TEMPLATES"),
        ({"zalo_templates": TEMPLATES}, "Zalo needs both"),
        ({"zalo_oa_id": OA_ID, "zalo_templates": TEMPLATES}, "Zalo goes through eSMS"),
    ],
)
def test_zalo_half_configured_does_not_start(
    tmp_path: Path, settings: dict[str, Any], refused: str
) -> None:
    with pytest.raises(ValueError, match=refused):
        Settings(data_dir=tmp_path, **settings)


# -- the notifier: Zalo first ----------------------------------------------------------------


ZALO = {"zalo_oa_id": OA_ID, "zalo_templates": TEMPLATES, "zalo_report_wait_seconds": WAIT}


@pytest.fixture
def esms_overrides() -> dict[str, Any]:
    return ZALO


@pytest.fixture
def n(esms_notifier: NotifierHarness) -> NotifierHarness:
    return esms_notifier


async def received(n: NotifierHarness) -> dict[str, Any]:
    await n.intake.procedure()
    dossier = await n.intake.dossier()
    await n.feed()
    return dossier


async def told(n: NotifierHarness, url: str) -> str:
    """eSMS's GET to the URL it was given, made to the notifier in-process: its answer."""
    r = await call_back(n, url)
    assert r.status_code == 200, r.text
    return str(r.json()["status"])


async def the_notice(n: NotifierHarness) -> dict[str, Any]:
    (notice,) = await n.notices()
    return notice


async def history(n: NotifierHarness, notice_id: str) -> list[tuple[str, str | None]]:
    h = t.notice_history.c
    query = sa.select(h.status, h.detail).where(h.notice_id == notice_id).order_by(h.id)
    async with n.engine.connect() as conn:
        return [(r.status, r.detail) for r in await conn.execute(query)]


async def test_a_notice_goes_by_zalo_and_its_report_ends_it(
    n: NotifierHarness, fake_esms: FakeEsms
) -> None:
    dossier = await received(n)
    assert await n.dispatch() == 1
    notice = await the_notice(n)
    sent = fake_esms.zns_sent[f"zalo-{notice['id']}"]
    assert sent["TempData"]["ma_ho_so"] == dossier["code"] and sent["Phone"] == CITIZEN
    assert (notice["status"], notice["channel"]) == ("accepted", "zalo")
    assert notice["zns_message_id"] == sent["SMSID"] and notice["message_id"] is None

    assert await told(n, fake_esms.zns_callback_url(f"zalo-{notice['id']}")) == "recorded"
    assert await told(n, fake_esms.zns_callback_url(f"zalo-{notice['id']}")) == "recorded"
    notice = await the_notice(n)
    assert (notice["status"], notice["channel"]) == ("delivered", "zalo")
    n.intake.clock.advance(seconds=WAIT * 10)  # the bound is long past: nothing more goes
    assert await n.dispatch() == 0
    assert fake_esms.requests == []  # no SMS, ever
    assert await history(n, notice["id"]) == [
        ("pending", None),
        ("accepted", "zalo"),
        ("delivered", "zalo"),  # which channel delivered it; told twice, recorded once
    ]


async def test_a_citizen_without_zalo_gets_the_sms_once(
    n: NotifierHarness, fake_esms: FakeEsms
) -> None:
    fake_esms.no_zalo.add(CITIZEN)
    await received(n)
    await n.dispatch()
    notice = await the_notice(n)
    zalo_url = fake_esms.zns_callback_url(f"zalo-{notice['id']}")
    assert fake_esms.requests == []  # the SMS waits for the ZNS's fate

    assert await told(n, zalo_url) == "recorded"
    notice = await the_notice(n)
    assert (notice["status"], notice["channel"]) == ("pending", "sms")
    assert await n.dispatch() == 1
    (sms,) = fake_esms.requests
    assert sms["RequestId"] == notice["id"] and sms["Phone"] == CITIZEN
    assert await told(n, fake_esms.callback_url(notice["id"])) == "recorded"
    # The ZNS's report told again, late: recorded, and nothing else.
    assert await told(n, fake_esms.zns_callback_url(f"zalo-{notice['id']}", delivered=True))
    await n.dispatch()
    notice = await the_notice(n)
    assert (notice["status"], notice["channel"]) == ("delivered", "sms")
    assert len(fake_esms.requests) == 1 and len(fake_esms.zns_requests) == 1
    assert await history(n, notice["id"]) == [
        ("pending", None),
        ("accepted", "zalo"),
        ("sms_fallback", "esms: not delivered to the phone (zalo -118)"),
        ("accepted", "primary"),
        ("delivered", "sms"),
        ("zalo_late", "zalo delivered"),
    ]


async def test_a_zns_refused_sends_the_sms_in_the_same_pass(
    n: NotifierHarness, fake_esms: FakeEsms
) -> None:
    await received(n)
    fake_esms.code_next("790")
    await n.dispatch()
    notice = await the_notice(n)
    assert (notice["status"], notice["channel"]) == ("accepted", "sms")
    assert len(fake_esms.zns_requests) == 1 and len(fake_esms.sent) == 1
    assert notice["attempts"] == 1  # the SMS's own, from the start
    assert ("sms_fallback", "zalo: esms 790: parameters do not match the ZNS template") in (
        await history(n, notice["id"])
    )


async def test_no_report_within_the_bound_sends_the_sms_and_a_late_one_changes_nothing(
    n: NotifierHarness, fake_esms: FakeEsms
) -> None:
    await received(n)
    await n.dispatch()
    n.intake.clock.advance(seconds=WAIT - 1)
    assert await n.dispatch() == 0  # still within the bound
    n.intake.clock.advance(seconds=2)
    assert await n.dispatch() == 1
    notice = await the_notice(n)
    assert (notice["status"], notice["channel"]) == ("accepted", "sms")
    assert len(fake_esms.sent) == 1

    late = fake_esms.zns_callback_url(f"zalo-{notice['id']}", delivered=True)
    assert await told(n, late) == "recorded"
    assert await n.dispatch() == 0
    assert (await the_notice(n))["status"] == "accepted"  # the SMS's, still awaited
    assert [s for s, _ in await history(n, notice["id"])] == [
        "pending",
        "accepted",
        "sms_fallback",
        "accepted",
        "zalo_late",
    ]


# The ZNS answer is held while the report is told, which took 1.2 s once on a loaded machine:
# the held call must not time out meanwhile (the harness's 1 s).
@pytest.mark.parametrize("esms_overrides", [{**ZALO, "sms_timeout_seconds": 30}])
async def test_a_zns_report_before_its_answer_is_kept_then_taken(
    n: NotifierHarness, fake_esms: FakeEsms
) -> None:
    fake_esms.no_zalo.add(CITIZEN)
    await received(n)
    hold = fake_esms.hold_next()
    sending = asyncio.create_task(n.dispatch())
    request_id = await asyncio.to_thread(hold.wait_arrived)
    assert await told(n, fake_esms.zns_callback_url(request_id)) == "kept"
    assert fake_esms.requests == []
    hold.release()
    await sending  # the answer recorded, the report applied, the SMS sent in the same pass
    notice = await the_notice(n)
    assert (notice["status"], notice["channel"]) == ("accepted", "sms")
    assert len(fake_esms.sent) == 1 and len(fake_esms.zns_sent) == 1


async def test_a_zns_that_timed_out_is_sent_again_and_no_sms_follows(
    n: NotifierHarness, fake_esms: FakeEsms
) -> None:
    await received(n)
    fake_esms.slow_next(3)
    await n.dispatch()
    notice = await the_notice(n)
    assert (notice["status"], notice["channel"]) == ("pending", "zalo")
    n.intake.clock.advance(minutes=5)
    await n.dispatch()
    notice = await the_notice(n)
    assert notice["zns_message_id"] == REQUEST_ID_PREFIX + f"zalo-{notice['id']}"
    # Its report carries the first send's SMSID, unknown here: found by the request id.
    assert await told(n, fake_esms.zns_callback_url(f"zalo-{notice['id']}")) == "recorded"
    notice = await the_notice(n)
    assert (notice["status"], notice["channel"]) == ("delivered", "zalo")
    assert len(fake_esms.zns_sent) == 1 and fake_esms.requests == []


async def test_a_kind_without_a_template_goes_by_sms_and_waits_its_turn(
    n: NotifierHarness, fake_esms: FakeEsms
) -> None:
    """A dossier's next notice waits while the ZNS before it may still be followed by its
    SMS: the citizen reads the facts in their order, whatever the channel."""
    dossier = await received(n)
    await n.dispatch()
    await n.act(
        str(dossier["code"]), "request-supplement", {"items": ["Bản sao CCCD"], "reason": "thiếu"}
    )
    await n.feed()
    assert await n.dispatch() == 0  # the receipt's ZNS has no report yet
    first, second = await n.notices()
    assert (second["channel"], second["zns"], second["status"]) == ("sms", None, "pending")
    await told(n, fake_esms.zns_callback_url(f"zalo-{first['id']}"))
    assert await n.dispatch() == 1
    (sms,) = fake_esms.requests
    assert sms["RequestId"] == second["id"]


def test_gateways_check_says_whether_the_official_account_is_there(
    fake_esms: FakeEsms, tmp_path: Path
) -> None:
    templates = '{"received": {"template": "200607"}}'
    good = gateways_check(
        fake_esms, tmp_path, MOTCUA_ZALO_OA_ID=OA_ID, MOTCUA_ZALO_TEMPLATES=templates
    )
    assert good.returncode == 0, good.stdout + good.stderr
    assert f"zalo (esms): ok: official account {OA_ID}" in good.stdout
    bad = gateways_check(
        fake_esms, tmp_path, MOTCUA_ZALO_OA_ID="42", MOTCUA_ZALO_TEMPLATES=templates
    )
    assert bad.returncode == 1 and "official account 42 is not on this eSMS" in bad.stdout
    assert fake_esms.requests == [] and fake_esms.zns_requests == []


def test_the_notifier_refuses_a_template_setting_naming_what_is_wrong(
    tmp_path: Path,
    fake_esms: FakeEsms,
    fake_sms_gateway: FakeSmsGateway,
    fake_postal_operator: FakePostalOperator,
) -> None:
    wrong = {"received": {"template": "200607", "params": {"reason": "ly_do"}}}
    settings = notifier_settings(
        tmp_path,
        fake_sms_gateway,
        fake_postal_operator,
        **{**ZALO, "zalo_templates": wrong},
        sms_provider="esms",
        sms_gateway_url=fake_esms.url,
        sms_api_key=API_KEY,
        sms_secret_key=SECRET_KEY,
    )
    with pytest.raises(ValueError, match=r"MOTCUA_ZALO_TEMPLATES\['received'\]: no placeholder"):
        composer_from(settings)


async def test_a_zns_waiting_for_its_report_is_not_followed_by_an_sms_once_erased(
    n: NotifierHarness, fake_esms: FakeEsms
) -> None:
    """The applicant's data erased while her ZNS awaits its report: no SMS may follow (its
    recipient is masked now), as for any notice still to be sent."""
    dossier = await received(n)
    await n.dispatch()
    async with n.engine.begin() as conn:
        await repo.erase_personal_data(conn, [str(dossier["id"])], n.intake.clock())
    n.intake.clock.advance(seconds=WAIT * 2)
    assert await n.dispatch() == 0
    notice = await the_notice(n)
    assert (notice["status"], notice["error"]) == ("skipped", repo.ERASED_DETAIL)
    assert fake_esms.requests == []
