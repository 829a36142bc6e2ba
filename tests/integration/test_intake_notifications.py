"""The intake follows the notifier's postal returns (motcua.notification.v1), on SQLite and
PostgreSQL: tracking code and status on the dossier, delivered → returned, redelivered and
late records harmless, poison refused; and once over a real Kafka-protocol broker."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer

from schemas.events import Envelope
from services.core.domain.calendar import VN_TZ
from services.core.runtime.consumer import PoisonEvent
from services.core.runtime.database import create_engine
from services.core.runtime.host import build_app
from services.core.runtime.kafka import DOSSIER_TOPIC, NOTIFICATION_TOPIC, dlq
from services.core.runtime.settings import Settings
from services.intake.adapters import tables as t
from services.intake.app import CONSUMER_GROUP, IntakeService
from services.intake.postal_returns import apply_notification_event, decode
from tests.fixtures.broker import KafkaEndpoint, consume, wait_for
from tests.fixtures.intake import FakeClock, IntakeHarness, monday_morning

TRACKING = "EL123456789VN"
ADDRESS = {
    "street": "12 Lê Lợi",
    "ward": "Phường Sài Gòn",
    "district": "Quận 1",
    "province": "Thành phố Hồ Chí Minh",
}


def ict(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=VN_TZ)


def record(
    dossier: dict[str, Any], event_type: str, payload: dict[str, Any], **envelope: Any
) -> bytes:
    """A notification record as the notifier publishes it (standard envelope)."""
    return (
        Envelope(
            event_id=str(uuid.uuid4()),
            type=event_type,
            occurred_at=ict(16, 10),
            dossier_id=dossier["id"],
            dossier_code=dossier["code"],
            agency_code="UBND-Q1",
            payload=payload,
            **envelope,
        )
        .model_dump_json()
        .encode()
    )


def ordered(dossier: dict[str, Any], code: str = TRACKING) -> bytes:
    payload = {
        "reference": dossier["code"],
        "tracking_code": code,
        "at": ict(16, 10, 5).isoformat(),
    }
    return record(dossier, "postal.ordered", payload)


def status(dossier: dict[str, Any], value: str, at: datetime, code: str = TRACKING) -> bytes:
    payload = {"tracking_code": code, "status": value, "at": at.isoformat()}
    return record(dossier, "postal.status_changed", payload)


async def apply(intake: IntakeHarness, body: bytes) -> bool:
    service = intake.service
    return await apply_notification_event(
        service.engine, decode(body), service.context.calendars, intake.clock()
    )


async def result_ready(intake: IntakeHarness) -> dict[str, Any]:
    """A dossier to be returned by post, its result ready on Monday 10:00; now Tuesday 10:00."""
    await intake.procedure()
    d = await intake.dossier(return_method="postal", return_address=ADDRESS)
    intake.clock.now = ict(16, 10)
    r = await intake.client.post(f"/dossiers/{d['code']}/complete", json={}, headers=intake.clerk)
    assert r.status_code == 200, r.text
    intake.clock.now = ict(17, 10)
    return d


async def shown(intake: IntakeHarness, d: dict[str, Any]) -> dict[str, Any]:
    r = await intake.client.get(f"/dossiers/{d['code']}", headers=intake.clerk)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def returned_events(intake: IntakeHarness) -> list[dict[str, Any]]:
    async with intake.service.engine.connect() as conn:
        rows = await conn.execute(sa.select(t.outbox.c.value).order_by(t.outbox.c.id))
        envelopes = [json.loads(value) for value in rows.scalars()]
    return [e for e in envelopes if e["type"] == "dossier.returned"]


async def test_a_new_dossier_has_no_postal_return(intake: IntakeHarness) -> None:
    await intake.procedure()
    d = await intake.dossier()
    assert d["postal"] is None
    assert (await shown(intake, d))["postal"] is None


async def test_the_tracking_code_shows_on_the_dossier(intake: IntakeHarness) -> None:
    d = await result_ready(intake)
    assert await apply(intake, ordered(d))

    expected = {"tracking_code": TRACKING, "status": None, "status_at": None}
    assert (await shown(intake, d))["postal"] == expected
    listed = await intake.client.get("/dossiers", headers=intake.clerk)
    assert [item["postal"] for item in listed.json()["items"]] == [expected]
    assert not await apply(intake, ordered(d))  # redelivered: nothing changes


async def test_delivered_returns_the_dossier_at_the_delivery_time(intake: IntakeHarness) -> None:
    d = await result_ready(intake)
    await apply(intake, ordered(d))
    assert await apply(intake, status(d, "in_transit", ict(16, 14)))
    in_transit = (await shown(intake, d))["postal"]
    assert in_transit == {
        "tracking_code": TRACKING,
        "status": "in_transit",
        "status_at": "2026-11-16T14:00:00+07:00",
    }

    assert await apply(intake, status(d, "delivered", ict(17, 9, 30)))
    got = await shown(intake, d)
    assert got["status"] == "returned"
    assert got["postal"]["status"] == "delivered"
    assert got["postal"]["status_at"] == "2026-11-17T09:30:00+07:00"
    assert got["history"][-1]["action"] == "return"
    assert got["history"][-1]["at"] == "2026-11-17T09:30:00+07:00"
    (event,) = await returned_events(intake)
    assert event["dossier_id"] == d["id"]
    assert datetime.fromisoformat(event["payload"]["at"]) == ict(17, 9, 30)
    assert event["payload"]["status"] == "returned"


async def test_a_redelivered_delivery_returns_once(intake: IntakeHarness) -> None:
    d = await result_ready(intake)
    await apply(intake, ordered(d))
    delivered = status(d, "delivered", ict(17, 9, 30))
    assert await apply(intake, delivered)
    assert not await apply(intake, delivered)
    assert len(await returned_events(intake)) == 1
    assert len((await shown(intake, d))["history"]) == 3  # receive, complete, return


async def test_a_late_status_does_not_move_the_postal_status_back(intake: IntakeHarness) -> None:
    d = await result_ready(intake)
    await apply(intake, ordered(d))
    await apply(intake, status(d, "delivered", ict(17, 9, 30)))
    assert not await apply(intake, status(d, "in_transit", ict(17, 8)))
    postal = (await shown(intake, d))["postal"]
    assert (postal["status"], postal["status_at"]) == ("delivered", "2026-11-17T09:30:00+07:00")


@pytest.mark.parametrize("outcome", ["failed", "returned"])
async def test_failed_or_sent_back_only_shows_on_the_dossier(
    intake: IntakeHarness, outcome: str
) -> None:
    d = await result_ready(intake)
    await apply(intake, ordered(d))
    assert await apply(intake, status(d, outcome, ict(17, 9)))
    got = await shown(intake, d)
    assert got["status"] == "result_ready"
    assert got["postal"]["status"] == outcome
    assert await returned_events(intake) == []

    # The citizen collects the result at the counter: the clerk's response shows the post too.
    r = await intake.client.post(f"/dossiers/{d['code']}/return", json={}, headers=intake.clerk)
    assert r.status_code == 200, r.text
    assert r.json()["postal"]["status"] == outcome


@pytest.mark.parametrize("end", ["failed", "returned"])
async def test_a_delivery_told_after_the_parcels_end_changes_nothing(
    intake: IntakeHarness, end: str
) -> None:
    d = await result_ready(intake)
    await apply(intake, ordered(d))
    assert await apply(intake, status(d, end, ict(17, 9)))
    before = await shown(intake, d)
    assert not await apply(intake, status(d, "delivered", ict(17, 9, 30)))
    assert not await apply(intake, status(d, "in_transit", ict(17, 9, 45)))
    assert await shown(intake, d) == before
    assert before["status"] == "result_ready" and before["postal"]["status"] == end
    assert await returned_events(intake) == []


async def test_a_new_order_after_a_send_back_starts_afresh(intake: IntakeHarness) -> None:
    d = await result_ready(intake)
    await apply(intake, ordered(d))
    await apply(intake, status(d, "returned", ict(16, 15)))
    assert await apply(intake, ordered(d, "EL000000002VN"))
    assert (await shown(intake, d))["postal"] == {
        "tracking_code": "EL000000002VN",
        "status": None,
        "status_at": None,
    }
    # News of the first order, reported late, does not show on the second.
    assert not await apply(intake, status(d, "failed", ict(17, 8)))
    assert await apply(intake, status(d, "delivered", ict(17, 9), "EL000000002VN"))
    assert (await shown(intake, d))["status"] == "returned"


async def test_a_delivery_reported_ahead_of_our_clock_is_recorded_now(
    intake: IntakeHarness,
) -> None:
    d = await result_ready(intake)
    await apply(intake, ordered(d))
    await apply(intake, status(d, "delivered", ict(17, 10, 2)))  # 2 minutes in our future
    got = await shown(intake, d)
    assert got["status"] == "returned"
    assert got["history"][-1]["at"] == "2026-11-17T10:00:00+07:00"
    assert got["postal"]["status_at"] == "2026-11-17T10:02:00+07:00"  # as the operator said


async def test_a_dossier_returned_at_the_counter_stays_as_it_is(intake: IntakeHarness) -> None:
    d = await result_ready(intake)
    await apply(intake, ordered(d))
    r = await intake.client.post(f"/dossiers/{d['code']}/return", json={}, headers=intake.clerk)
    assert r.status_code == 200, r.text
    assert await apply(intake, status(d, "delivered", ict(17, 9, 30)))  # the status shows
    assert len(await returned_events(intake)) == 1
    assert (await shown(intake, d))["history"][-1]["at"] == "2026-11-17T10:00:00+07:00"


async def test_an_unknown_dossier_is_skipped(intake: IntakeHarness) -> None:
    ghost = {"id": str(uuid.uuid4()), "code": "UBND-Q1-20261116-9999"}
    assert not await apply(intake, ordered(ghost))
    assert not await apply(intake, status(ghost, "delivered", ict(17, 9)))
    assert await returned_events(intake) == []


POISON = [
    pytest.param(b"{not json", id="undecodable"),
    pytest.param(b'{"event_id": "x"}', id="not-an-envelope"),
    pytest.param(
        record({"id": "d", "code": "c"}, "postal.lost", {"tracking_code": TRACKING}),
        id="unknown-type",
    ),
    pytest.param(
        record({"id": "d", "code": "c"}, "dossier.returned", {"at": "2026-11-17T09:00:00+07:00"}),
        id="type-of-another-topic",
    ),
    pytest.param(
        status({"id": "d", "code": "c"}, "delivered", ict(17, 9)).replace(
            b'"delivered"', b'"lost"'
        ),
        id="not-a-status",
    ),
    pytest.param(
        record({"id": "d", "code": "c"}, "postal.ordered", {"tracking_code": TRACKING}),
        id="missing-fields",
    ),
]


@pytest.mark.parametrize("body", POISON)
def test_poison_records_are_refused(body: bytes) -> None:
    with pytest.raises(PoisonEvent):
        decode(body)


async def test_an_invalid_payload_is_poison_even_past_decode(intake: IntakeHarness) -> None:
    d = await result_ready(intake)
    envelope = Envelope.model_validate_json(status(d, "delivered", ict(17, 9)))
    bad = envelope.model_copy(update={"payload": {**envelope.payload, "status": "lost"}})
    with pytest.raises(PoisonEvent):
        await apply_notification_event(
            intake.service.engine, bad, intake.service.context.calendars, intake.clock()
        )
    assert (await shown(intake, d))["postal"] is None


# -- over a real broker -----------------------------------------------------------------------


@pytest.mark.broker
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_postal_events_over_kafka_return_the_dossier_and_dead_letter_poison(
    database_url: str, tmp_path: Path, kafka_broker: KafkaEndpoint
) -> None:
    """One consumer-group join (~5 s), so one test: the wiring, not the rules."""
    clock = FakeClock(monday_morning())
    service = IntakeService(
        Settings(data_dir=tmp_path, outbox_poll_seconds=0.1),
        clock=clock,
        engine=create_engine(database_url.format(service="intake")),
        kafka_bootstrap=kafka_broker.bootstrap,
    )
    app = build_app([service])
    await service.start()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
            h = IntakeHarness(client, service, clock, {}, {}, {})
            h.admin = await h.token("admin", None)
            h.clerk = await h.token("clerk", "UBND-Q1")
            d = await result_ready(h)
            poison = b'{"poison": "' + uuid.uuid4().hex.encode() + b'"}'
            producer = AIOKafkaProducer(
                bootstrap_servers=kafka_broker.bootstrap, enable_idempotence=False
            )
            await producer.start()
            try:
                key = d["id"].encode()
                for value in (ordered(d), poison, status(d, "delivered", ict(17, 9, 30))):
                    await producer.send_and_wait(NOTIFICATION_TOPIC, value, key=key)
            finally:
                await producer.stop()

            async def returned() -> bool:
                got = await client.get(f"/dossiers/{d['code']}", headers=h.clerk)
                return bool(got.json()["status"] == "returned")

            await wait_for(returned, timeout=60, message="the delivery returns the dossier")
            published = await consume(
                kafka_broker.bootstrap,
                DOSSIER_TOPIC,
                until=lambda rs: any(_returned_of(r.value, d["id"]) for r in rs),
                timeout=60,
            )
            dead = await consume(
                kafka_broker.bootstrap,
                dlq(NOTIFICATION_TOPIC),
                until=lambda rs: any(r.value == poison for r in rs),
                timeout=60,
            )
    finally:
        await service.stop()

    assert sum(_returned_of(r.value, d["id"]) for r in published) == 1
    (letter,) = [r for r in dead if r.value == poison]
    headers = {k: v.decode() for k, v in letter.headers}
    assert headers["consumer_group"] == CONSUMER_GROUP == "motcua-intake"
    assert headers["error_class"] == "PoisonEvent"
    assert letter.key == d["id"].encode()


def _returned_of(value: bytes, dossier_id: str) -> bool:
    envelope = json.loads(value)
    return bool(envelope["type"] == "dossier.returned" and envelope["dossier_id"] == dossier_id)
