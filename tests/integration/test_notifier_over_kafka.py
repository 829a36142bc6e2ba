"""Intake, tracker and notifier over a real Kafka-protocol broker, sending to a fake SMS
gateway that counts requests: one SMS per notice whatever is delivered twice, supervisors
alerted through the directory topic, poison records dead-lettered with the partition moving;
and the metrics of the three services in one process following that work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer

from services.core.domain.calendar import VN_TZ
from services.core.runtime.database import create_engine
from services.core.runtime.embedded_broker import EmbeddedBroker
from services.core.runtime.host import build_app
from services.core.runtime.kafka import DEADLINE_TOPIC, DOSSIER_TOPIC, dlq
from services.intake.app import IntakeService
from services.notifier.adapters import tables as nt
from services.notifier.app import CONSUMER_GROUP, NotifierService
from services.tracker.app import TrackerService
from tests.fixtures.broker import caught_up, consume, start_embedded_broker, wait_for
from tests.fixtures.gateways import FakePostalOperator, FakeSmsGateway
from tests.fixtures.intake import FakeClock, IntakeHarness, monday_morning
from tests.fixtures.metrics import Scrape, scrape
from tests.fixtures.notifier import CALLBACK, notifier_settings

CONSUMED = "motcua_events_consumed_total"


@dataclass
class Stack:
    broker: EmbeddedBroker
    clock: FakeClock
    intake: IntakeHarness
    tracker: TrackerService
    notifier: NotifierService
    sms: FakeSmsGateway

    async def notice_count(self, **where: str) -> int:
        query = sa.select(sa.func.count()).select_from(nt.notices)
        for column, value in where.items():
            query = query.where(nt.notices.c[column] == value)
        async with self.notifier.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())


async def release_flags(stack: Stack, count: int) -> None:
    """Wait until the notifier holds `count` overdue flags (each waits for its dossier's news
    to settle), then move the clock past the wait: the dispatcher tells them."""

    async def held() -> bool:
        async with stack.notifier.engine.connect() as conn:
            return await conn.scalar(sa.select(sa.func.count()).select_from(nt.alerts)) == count

    await wait_for(held, timeout=60, message=f"the notifier holds {count} overdue flags")
    stack.clock.now += timedelta(seconds=stack.notifier.settings.alert_settle_seconds)


@pytest.fixture
async def stack(
    database_url: str,
    tmp_path: Path,
    fake_sms_gateway: FakeSmsGateway,
    fake_postal_operator: FakePostalOperator,
) -> AsyncIterator[Stack]:
    broker = await start_embedded_broker(tmp_path / "broker")
    clock = FakeClock(monday_morning())
    settings = notifier_settings(
        tmp_path,
        fake_sms_gateway,
        fake_postal_operator,
        outbox_poll_seconds=0.1,
        dispatch_poll_seconds=0.1,
        scan_interval_seconds=3600,
    )

    def engine(service: str):  # type: ignore[no-untyped-def]
        return create_engine(database_url.format(service=service))

    bootstrap = broker.bootstrap
    intake = IntakeService(
        settings, clock=clock, engine=engine("intake"), kafka_bootstrap=bootstrap
    )
    tracker = TrackerService(
        settings,
        clock=clock,
        engine=engine("tracker"),
        kafka_bootstrap=bootstrap,
        run_scheduler=False,
    )
    notifier = NotifierService(
        settings,
        clock=clock,
        engine=engine("notifier"),
        kafka_bootstrap=bootstrap,
        run_scheduler=False,
    )
    services = [intake, tracker, notifier]
    app = build_app(services)
    started = []
    try:
        for service in services:
            await service.start()
            started.append(service)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://motcua") as client:
            h = IntakeHarness(client, intake, clock, {}, {}, {})
            h.admin = await h.token("admin", None)
            h.clerk = await h.token("clerk", "UBND-Q1")
            yield Stack(broker, clock, h, tracker, notifier, fake_sms_gateway)
    finally:
        for service in reversed(started):
            await service.stop()
        await broker.stop()


async def test_one_sms_per_notice_through_duplicates_poison_and_overdue(stack: Stack) -> None:
    h = stack.intake
    r = await h.client.post(
        "/agencies/UBND-Q1/supervisors",
        json={"name": "Lãnh đạo", "phone": "0901000001"},
        headers=h.admin,
    )
    assert r.status_code == 201
    await h.procedure(time_limit={"value": 1, "unit": "working_days"})
    dossiers = [await h.dossier() for _ in range(3)]
    await stack.sms.wait_for_async(lambda g: g.accepted_count() == 3, within=90)

    records = await consume(stack.broker.bootstrap, DOSSIER_TOPIC, until=lambda rs: len(rs) >= 3)
    producer = AIOKafkaProducer(bootstrap_servers=stack.broker.bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        for record in records:  # every event delivered a second time
            await producer.send_and_wait(DOSSIER_TOPIC, record.value, key=record.key)
        await producer.send_and_wait(DOSSIER_TOPIC, b"{not json", key=records[0].key)
    finally:
        await producer.stop()

    dead = await consume(
        stack.broker.bootstrap,
        dlq(DOSSIER_TOPIC),
        until=lambda rs: any(dict(r.headers)["consumer_group"] == b"motcua-notifier" for r in rs),
        timeout=60,
    )
    assert {r.value for r in dead} == {b"{not json"}

    async def notifier_caught_up() -> bool:
        return await caught_up(stack.broker.bootstrap, CONSUMER_GROUP, DOSSIER_TOPIC)

    await wait_for(notifier_caught_up, timeout=60, message="the notifier handled every record")

    # The partition kept moving: a result after the poison record is texted.
    r = await h.client.post(f"/dossiers/{dossiers[0]['code']}/complete", json={}, headers=h.clerk)
    assert r.status_code == 200
    await stack.sms.wait_for_async(lambda g: g.accepted_count() == 4, within=60)

    # Overdue: the tracker's flag reaches the supervisor, once per dossier. The clock jumps a
    # day: first let every send in flight commit, or its lease would look long expired.
    async def settled() -> bool:
        return await stack.notice_count(status="sending") == 0

    await wait_for(settled, timeout=30, message="no notice is being sent")
    stack.clock.now = datetime(2026, 11, 17, 10, tzinfo=VN_TZ)
    assert (await stack.tracker.scan()).flags >= 2
    await release_flags(stack, 2)
    assert stack.sms.accepted_count() == 6 - 2
    await stack.sms.wait_for_async(lambda g: g.accepted_count() == 6, within=60)
    assert (await stack.tracker.scan()).flags == 0

    assert len(stack.sms.requests) == 6  # not one request more than notices
    assert {m["to"] for m in stack.sms.messages.values()} == {"+84912345678", "+84901000001"}
    assert await stack.notice_count() == 6
    assert await stack.notice_count(template="overdue_alert") == 2


async def test_postal_return_end_to_end_the_delivery_returns_the_dossier(
    stack: Stack, fake_postal_operator: FakePostalOperator
) -> None:
    h = stack.intake
    r = await h.client.post(
        "/agencies/UBND-Q1/supervisors",
        json={"name": "Lãnh đạo", "phone": "0901000001"},
        headers=h.admin,
    )
    assert r.status_code == 201
    await h.procedure()
    address = {"street": "1 Lê Duẩn", "ward": "Bến Nghé", "district": "Quận 1", "province": "HCM"}
    first = await h.dossier(return_method="postal", return_address=address)
    second = await h.dossier(return_method="postal", return_address=address)
    for dossier in (first, second):
        r = await h.client.post(f"/dossiers/{dossier['code']}/complete", json={}, headers=h.clerk)
        assert r.status_code == 200
    await fake_postal_operator.wait_for_async(lambda p: len(p.orders) == 2, within=90)
    tracking = {o["reference"]: o["tracking_code"] for o in fake_postal_operator.orders.values()}

    async def dossier(code: str) -> dict:
        return (await h.client.get(f"/dossiers/{code}", headers=h.clerk)).json()

    async def tracking_shown() -> bool:
        return (await dossier(first["code"]))["postal"] is not None

    await wait_for(tracking_shown, timeout=60, message="the tracking code reaches the dossier")
    assert (await dossier(first["code"]))["postal"]["tracking_code"] == tracking[first["code"]]

    for code, status in ((first["code"], "delivered"), (second["code"], "returned")):
        r = await h.client.post(
            "/postal/callbacks",
            json={"tracking_code": tracking[code], "status": status},
            params=CALLBACK,
        )
        assert r.status_code == 202

    async def returned() -> bool:
        got = await dossier(first["code"])
        return got["status"] == "returned" and got["postal"]["status"] == "delivered"

    await wait_for(returned, timeout=60, message="the delivered result returns the dossier")

    async def bounced_shown() -> bool:
        got = await dossier(second["code"])
        return (got["postal"] or {}).get("status") == "returned"

    await wait_for(bounced_shown, timeout=60, message="the returned parcel shows on the dossier")
    assert (await dossier(second["code"]))["status"] == "result_ready"
    # Texted: 2 receipts, 2 tracking codes, the return of the first; the supervisor: 1 alert.
    await stack.sms.wait_for_async(lambda g: g.accepted_count() == 6, within=60)
    assert await stack.notice_count(template="returned") == 1
    assert await stack.notice_count(template="postal_problem") == 1


async def redeliver_with_poison(bootstrap: str) -> None:
    """The first dossier record once more, then a record that is no event at all."""
    records = await consume(bootstrap, DOSSIER_TOPIC, until=lambda rs: len(rs) >= 1)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait(DOSSIER_TOPIC, records[0].value, key=records[0].key)
        await producer.send_and_wait(DOSSIER_TOPIC, b"{not json", key=records[0].key)
    finally:
        await producer.stop()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_metrics_follow_the_work_of_the_three_services(stack: Stack) -> None:
    h = stack.intake
    r = await h.client.post(
        "/agencies/UBND-Q1/supervisors",
        json={"name": "Lãnh đạo", "phone": "0901000001"},
        headers=h.admin,
    )
    assert r.status_code == 201
    await h.procedure(time_limit={"value": 1, "unit": "working_days"})
    for _ in range(2):
        await h.dossier()
    await stack.sms.wait_for_async(lambda g: g.accepted_count() == 2, within=90)
    await redeliver_with_poison(stack.broker.bootstrap)

    async def poison_handled() -> bool:
        got = await scrape(h.client)
        return all(
            got.value(CONSUMED, service=s, topic=DOSSIER_TOPIC, outcome="dead_lettered") == 1
            for s in ("tracker", "notifier")
        )

    await wait_for(poison_handled, timeout=60, message="both consumers dead-letter the poison")

    async def settled() -> bool:
        return await stack.notice_count(status="sending") == 0

    await wait_for(settled, timeout=30, message="no notice is being sent")
    stack.clock.now = datetime(2026, 11, 17, 10, tzinfo=VN_TZ)
    assert (await stack.tracker.scan()).flags == 2
    await release_flags(stack, 2)
    await stack.sms.wait_for_async(lambda g: g.accepted_count() == 4, within=60)

    last: list[Scrape] = []

    async def drained_and_caught_up() -> bool:
        got = await scrape(h.client)
        last[:] = [got]
        lag = got.matching("motcua_consumer_lag_records")
        return (
            got.value("motcua_outbox_backlog_rows") == 0
            and got.value(CONSUMED, service="intake", topic=DEADLINE_TOPIC) == 4
            and got.value("motcua_notices", status="accepted") == 4
            and {s.labels["service"] for s in lag} == {"intake", "tracker", "notifier"}
            and all(s.value == 0 for s in lag)
        )

    await wait_for(drained_and_caught_up, timeout=60, message="all sent, published, consumed")
    got = last[0]
    for service in ("intake", "tracker", "notifier"):
        assert got.has("motcua_outbox_backlog_rows", service=service)
    assert all(s.value == 1 for s in got.matching("motcua_scrape_source_up"))
    assert got.has("motcua_consumer_lag_records", service="tracker", topic=DOSSIER_TOPIC)
    posted = {"service": "intake", "method": "POST", "route": "/dossiers", "status": "201"}
    assert got.value("motcua_http_request_duration_seconds_count", **posted) == 2
    tracker = {"service": "tracker", "topic": DOSSIER_TOPIC}
    assert got.value(CONSUMED, **tracker, outcome="handled") == 2
    assert got.value(CONSUMED, **tracker, outcome="duplicate") == 1
    assert got.value(CONSUMED, service="notifier", topic=DEADLINE_TOPIC, outcome="handled") == 4
    assert got.value("motcua_flags_raised_total", service="tracker", flag="overdue") == 2
    assert got.value("motcua_flags_raised_total", service="tracker", flag="due_soon") == 0
    assert got.value("motcua_scan_duration_seconds_count", service="tracker") == 1
    assert got.value("motcua_notices", service="notifier", status="accepted") == 4
    assert got.value("motcua_notices", service="notifier", status="failed") == 0
    assert got.value("motcua_sms_attempts_total", service="notifier", outcome="accepted") == 4
