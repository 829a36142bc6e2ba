"""`motcua notifier` killed with SIGKILL after the gateway took an SMS and before the notifier
committed it: the restarted process sends it again with the same request_id, and the
gateway, which deduplicates on it, has still sent one SMS. Then a delivery receipt over real
HTTP moves the notice to delivered.

Once with each provider (tests/fixtures/providers.py): the generic gateway, eSMS (which
answers the resend 124), and eSMS with Zalo first (the ZNS is what is resent, and no SMS
follows a ZNS that went out). The cheapest of the fault tests: one process, SQLite."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from functools import partial
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from sqlalchemy.exc import OperationalError

from schemas.events import (
    Address,
    Applicant,
    DossierEvent,
    DossierReceived,
    DossierStatus,
    Envelope,
    ResultReady,
    TimeLimitPayload,
)
from services.core.domain.calendar import VN_TZ
from services.core.runtime.database import create_engine
from services.core.runtime.embedded_broker import EmbeddedBroker, free_port
from services.core.runtime.kafka import DOSSIER_TOPIC
from services.core.runtime.migrations import upgrade_async
from services.notifier.adapters import tables as nt
from tests.fixtures.broker import start_embedded_broker, wait_for
from tests.fixtures.esms import FakeEsms
from tests.fixtures.gateways import FakePostalOperator, FakeSmsGateway, Hold
from tests.fixtures.processes import ServiceProcess, clean_env
from tests.fixtures.providers import (
    POSTAL_PROVIDERS,
    PROVIDERS,
    PostalSide,
    SmsSide,
    postal_side,
    sms_side,
)
from tests.fixtures.viettelpost import FakeViettelPost

CODE = "UBND-P1-20261121-0001"
ADDRESS = Address(street="12 Lê Lợi", ward="Bến Nghé", district="Quận 1", province="TP Hồ Chí Minh")


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[EmbeddedBroker]:
    broker = await start_embedded_broker(tmp_path / "broker")
    try:
        yield broker
    finally:
        await broker.stop()


def envelope(kind: str, payload: DossierEvent, dossier_id: str) -> bytes:
    return (
        Envelope(
            event_id=str(uuid.uuid4()),
            type=kind,
            occurred_at=payload.at,
            dossier_id=dossier_id,
            dossier_code=CODE,
            agency_code="UBND-P1",
            payload=payload.model_dump(mode="json"),
        )
        .model_dump_json()
        .encode()
    )


def received_envelope(dossier_id: str | None = None, postal: bool = False) -> bytes:
    now = datetime.now(VN_TZ).replace(microsecond=0)  # the process reads the real clock
    payload = DossierReceived(
        at=now,
        status=DossierStatus.RECEIVED,
        due_at=now,
        procedure_code="P1",
        procedure_name="Đăng ký khai sinh",
        channel="counter",
        return_method="postal" if postal else "counter",
        return_address=ADDRESS if postal else None,
        applicant=Applicant(full_name="Trần Thị Bình", phone="+84912345678"),
        received_at=now,
        clock_started_at=now,
        time_limit=TimeLimitPayload(value=3, unit="working_days"),
        office_schedule={},
    )
    return envelope("dossier.received", payload, dossier_id or str(uuid.uuid4()))


def result_ready_envelope(dossier_id: str) -> bytes:
    now = datetime.now(VN_TZ).replace(microsecond=0)
    payload = ResultReady(
        at=now,
        status=DossierStatus.RESULT_READY,
        due_at=now,
        return_method="postal",
        original_due_at=now,
        outcome="on_time",
    )
    return envelope("dossier.result_ready", payload, dossier_id)


async def publish(bootstrap: str, *values: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(DOSSIER_TOPIC, value, key=b"k")
    finally:
        await producer.stop()


async def statuses(url: str, table: sa.Table) -> list[str]:
    """The status of each row of the notifier's notices or postal orders."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(sa.select(table.c.status))).scalars())
    finally:
        await engine.dispose()


async def until_statuses(url: str, table: sa.Table, wanted: list[str], what: str) -> None:
    """Wait for the rows to be ``wanted``. A read may find SQLite's write lock held by the
    running notifier (its dispatcher's pass) past the busy timeout: it reads again."""

    async def there() -> bool:
        try:
            return await statuses(url, table) == wanted
        except OperationalError:
            return False

    await wait_for(there, timeout=30, message=what)


@asynccontextmanager
async def notifier_process(
    tmp_path: Path, broker: EmbeddedBroker, **settings: str
) -> AsyncIterator[tuple[ServiceProcess, str]]:
    """`motcua notifier` on a migrated SQLite file (its URL given too), not started yet;
    stopped with SIGTERM at the end if it runs."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'notifier.db'}"
    await upgrade_async("notifier", url)
    port = free_port()
    env = clean_env(
        **settings,
        MOTCUA_DATA_DIR=str(tmp_path / "var"),
        MOTCUA_KAFKA_BOOTSTRAP=broker.bootstrap,
        MOTCUA_NOTIFIER_DATABASE_URL=url,
        MOTCUA_CALLBACK_BASE_URL=f"http://127.0.0.1:{port}",
        MOTCUA_QUIET_HOURS="",  # whatever the hour the test runs at
        MOTCUA_SEND_LEASE_SECONDS="1",
        MOTCUA_DISPATCH_POLL_SECONDS="0.2",
    )
    notifier = ServiceProcess("notifier", env, tmp_path / "notifier.log", port)
    try:
        yield notifier, url
    finally:
        if notifier.running:
            assert notifier.stop() == 0


async def killed_once_taken(
    notifier: ServiceProcess,
    hold: Hold,
    left: Callable[[], Awaitable[list[str]]],
    calls: Callable[[], list[str]],
) -> list[str]:
    """SIGKILL once the provider took the call (its answer held back), the row left
    `sending`; restarted, the notifier calls again: the keys of both calls."""
    await asyncio.to_thread(hold.wait_arrived, 90)
    notifier.kill()  # the provider has it; its answer never reaches the notifier
    hold.release()
    assert await left() == ["sending"]
    await notifier.start()

    async def called_again() -> bool:
        return len(calls()) == 2

    await wait_for(called_again, timeout=60, message="called again after the restart")
    return calls()


@pytest.fixture(params=PROVIDERS)
def provider(
    request: pytest.FixtureRequest, fake_sms_gateway: FakeSmsGateway, fake_esms: FakeEsms
) -> SmsSide:
    return sms_side(request.param, fake_sms_gateway, fake_esms)


async def test_a_notifier_killed_between_the_gateway_and_its_commit_sends_one_sms(
    tmp_path: Path, broker: EmbeddedBroker, provider: SmsSide
) -> None:
    async with notifier_process(tmp_path, broker, **provider.env) as (notifier, url):
        hold = provider.hold_next()
        await notifier.start()
        await publish(broker.bootstrap, received_envelope())
        notices = partial(statuses, url, nt.notices)
        first, second = await killed_once_taken(notifier, hold, notices, provider.request_ids)
        assert first == second
        assert provider.went_out() == 1

        await until_statuses(url, nt.notices, ["accepted"], "the resent notice is accepted")
        assert await asyncio.to_thread(provider.delivered) in (200, 202)
        await until_statuses(url, nt.notices, ["delivered"], "the notice is delivered")
        assert provider.went_out() == 1  # with Zalo: the ZNS, and no SMS after it


@pytest.fixture(params=POSTAL_PROVIDERS)
def operator(
    request: pytest.FixtureRequest,
    fake_postal_operator: FakePostalOperator,
    fake_viettelpost: FakeViettelPost,
) -> PostalSide:
    return postal_side(request.param, fake_postal_operator, fake_viettelpost)


async def test_a_notifier_killed_between_the_operator_and_its_commit_places_one_order(
    tmp_path: Path, broker: EmbeddedBroker, fake_sms_gateway: FakeSmsGateway, operator: PostalSide
) -> None:
    """The result sent by post: the operator took the order, the notifier died before it
    committed it. The order is placed again with the same reference (the dossier code), and
    the operator makes no second one (Viettel Post refuses it, then tells its number by its
    webhook)."""
    sms = {"MOTCUA_SMS_GATEWAY_URL": fake_sms_gateway.url}
    async with notifier_process(tmp_path, broker, **operator.env, **sms) as (notifier, url):
        hold = operator.hold_next()
        await notifier.start()
        dossier = str(uuid.uuid4())
        await publish(
            broker.bootstrap,
            received_envelope(dossier, postal=True),
            result_ready_envelope(dossier),
        )
        orders = partial(statuses, url, nt.postal_orders)
        first, second = await killed_once_taken(notifier, hold, orders, operator.references)
        assert first == second == CODE
        token = (tmp_path / "var" / "callback_token").read_text().strip()
        assert await asyncio.to_thread(operator.settle, notifier.url, token) in (None, 200)

        await until_statuses(url, nt.postal_orders, ["placed"], "the order is placed")
        assert operator.orders_made() == 1
