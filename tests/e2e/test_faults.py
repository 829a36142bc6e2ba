"""Faults during a load, on the production shape (three processes, PostgreSQL, the broker).

Every test ends with the same ledger: dossiers sent = dossiers in the intake = events
published = dossiers tracked = receipt notices = SMS the gateway accepted, and no citizen
texted twice. The figures of each run are printed at the end of the test session.

The gateway's outage runs once with each SMS provider (the generic gateway, eSMS): it is the
fault the provider's adapter answers. The others (the broker, the database, the processes,
redelivered events) are the same whoever the provider is, and run with the generic one; the
notifier killed mid-send, where the provider's de-duplication matters, runs with each in
test_notifier_killed_mid_send.py, on one process.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from services.core.runtime.kafka import DEADLINE_TOPIC, DOSSIER_TOPIC
from services.intake.app import CONSUMER_GROUP as INTAKE_GROUP
from services.notifier.app import CONSUMER_GROUP as NOTIFIER_GROUP
from services.tracker.app import CONSUMER_GROUP as TRACKER_GROUP
from tests.fixtures.broker import caught_up, consume, wait_for
from tests.fixtures.esms import FakeEsms
from tests.fixtures.faults import (
    Ledger,
    Load,
    one_sms_per_citizen,
    open_office,
    settle_and_count,
    until,
)
from tests.fixtures.gateways import FakePostalOperator, FakeSmsGateway
from tests.fixtures.processes import ProcessStack, process_stack
from tests.fixtures.providers import esms_env

pytestmark = pytest.mark.faults


@pytest.fixture
async def stack(
    tmp_path: Path, fake_sms_gateway: FakeSmsGateway, fake_postal_operator: FakePostalOperator
) -> AsyncIterator[ProcessStack]:
    async with process_stack(
        tmp_path, fake_sms_gateway, fake_postal_operator, MOTCUA_SMS_RATE_PER_SECOND="500"
    ) as stack:
        yield stack


def assert_nothing_lost_nothing_twice(stack: ProcessStack, ledger: Ledger) -> None:
    assert ledger.holds(), ledger.line()
    assert not one_sms_per_citizen(stack), "a citizen was texted twice"
    for service in stack.services:
        assert service.running, f"{service.service} died:\n{service.log_tail()}"


# (provider, its name in the figures, dossiers, seconds of outage): eSMS's run is the shorter;
# the figures of both are in docs/operations.md, "Resilience".
OUTAGES = [("generic", "SMS gateway", 300, 30), ("esms", "eSMS", 150, 15)]


@pytest.fixture(params=OUTAGES, ids=[o[0] for o in OUTAGES])
async def outage(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    fake_sms_gateway: FakeSmsGateway,
    fake_esms: FakeEsms,
    fake_postal_operator: FakePostalOperator,
) -> AsyncIterator[tuple[ProcessStack, str, int, int]]:
    """A stack texting through the provider, its name, how many dossiers, how long the outage."""
    provider, name, count, seconds = request.param
    sms, env = (fake_esms, esms_env()) if provider == "esms" else (fake_sms_gateway, {})
    async with process_stack(
        tmp_path, sms, fake_postal_operator, MOTCUA_SMS_RATE_PER_SECOND="500", **env
    ) as stack:  # type: ignore[arg-type]  # the eSMS fake counts what went out alike
        yield stack, name, count, seconds


async def test_sms_gateway_answering_500_for_a_while(
    outage: tuple[ProcessStack, str, int, int],
) -> None:
    stack, name, count, seconds = outage
    load = Load(stack, await open_office(stack), count=count, rate=10, run="gw500")
    stack.sms.fail_for(500, seconds=seconds)
    await load.go()
    ledger = await settle_and_count(stack, load, f"{name} 500 for {seconds} s")
    assert ledger.gateway_requests > ledger.sms_sent  # the refused sends were retried
    assert_nothing_lost_nothing_twice(stack, ledger)


async def test_broker_stopped_for_60_seconds_during_a_load(stack: ProcessStack) -> None:
    """SIGSTOP freezes the broker: connections hang and nothing answers, as when a durable
    Kafka is down. (The bundled broker keeps its log in memory, so a real stop would lose
    records that a real Kafka keeps; freezing tests our side of the outage.)"""
    load = Load(stack, await open_office(stack), count=800, rate=10, run="broker")
    loading = asyncio.create_task(load.go())
    await asyncio.sleep(10)  # the outage begins ten seconds into the load
    pid = stack.broker.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(60)  # the outage itself: what is tested is its length
    finally:
        os.kill(pid, signal.SIGCONT)
    await loading
    ledger = await settle_and_count(stack, load, "broker stopped 60 s", within=240)
    assert_nothing_lost_nothing_twice(stack, ledger)


async def test_each_service_killed_at_a_random_moment_during_a_load(
    stack: ProcessStack,
) -> None:
    seed = int(os.environ.get("MOTCUA_FAULT_SEED", time.time_ns() % 1_000_000))
    chance = random.Random(seed)
    print(f"MOTCUA_FAULT_SEED={seed}")  # shown with a failure: the same kills again
    load = Load(stack, await open_office(stack), count=600, rate=10, run="kill")
    loading = asyncio.create_task(load.go())
    window = 60 / 3  # one kill in each third of the load, the moment within it random
    for third, service in enumerate(chance.sample(stack.services, k=3)):
        await until(load.started_at + window * third + chance.uniform(1, window - 5))
        service.kill()
        await service.start()  # as `restart: unless-stopped` would
    await loading
    ledger = await settle_and_count(stack, load, f"SIGKILL of each service (seed {seed})")
    assert_nothing_lost_nothing_twice(stack, ledger)
    assert all(s.starts == 2 for s in stack.services)


async def test_postgresql_connections_dropped_during_a_load(stack: ProcessStack) -> None:
    load = Load(stack, await open_office(stack), count=300, rate=10, run="pgdrop")
    loading = asyncio.create_task(load.go())
    dropped = 0
    for _ in range(5):  # every three seconds, every connection of every service is cut
        await asyncio.sleep(3)  # the schedule of the fault
        dropped += await _terminate_connections(stack)
    await loading
    ledger = await settle_and_count(stack, load, "PostgreSQL connections dropped")
    assert dropped > 0
    assert_nothing_lost_nothing_twice(stack, ledger)


async def test_every_event_delivered_twice(stack: ProcessStack) -> None:
    load = Load(stack, await open_office(stack), count=200, rate=20, run="dup")
    await load.go()
    first = await settle_and_count(stack, load, "before redelivery")
    before = (first.sms_sent, first.tracked)
    deadline_events = await _redeliver(stack, DOSSIER_TOPIC, DEADLINE_TOPIC)

    async def everyone_caught_up() -> bool:
        groups = ((TRACKER_GROUP, DOSSIER_TOPIC), (NOTIFIER_GROUP, DOSSIER_TOPIC),
                  (NOTIFIER_GROUP, DEADLINE_TOPIC), (INTAKE_GROUP, DEADLINE_TOPIC))  # fmt: skip
        return all([await caught_up(stack.broker.bootstrap, g, t) for g, t in groups])

    await wait_for(everyone_caught_up, timeout=120, interval=0.5, message="redelivered")
    ledger = await settle_and_count(stack, load, "every event delivered twice")
    assert (ledger.sms_sent, ledger.tracked) == before
    assert ledger.event_records == 2 * ledger.events_published
    after = await consume(stack.broker.bootstrap, DEADLINE_TOPIC,
                          until=lambda rs: len(rs) >= 2 * deadline_events)  # fmt: skip
    assert len(after) == 2 * deadline_events  # the tracker raised nothing new
    assert_nothing_lost_nothing_twice(stack, ledger)


async def _redeliver(stack: ProcessStack, *topics: str) -> int:
    """Publish every record of the topics again, same key and value: a producer's retry
    after a lost acknowledgement does exactly this. Returns the deadline topic's count."""
    producer = AIOKafkaProducer(bootstrap_servers=stack.broker.bootstrap,
                                enable_idempotence=False)  # fmt: skip
    counts = {}
    await producer.start()
    try:
        for topic in topics:
            records = await consume(stack.broker.bootstrap, topic, until=bool)
            counts[topic] = len(records)
            for r in records:
                await producer.send(topic, r.value, key=r.key, headers=list(r.headers))
            await producer.flush()
    finally:
        await producer.stop()
    return counts[DEADLINE_TOPIC]


async def _terminate_connections(stack: ProcessStack) -> int:
    database = stack.database_url.rsplit("/", 1)[1]
    engine = stack.engine()
    try:
        async with engine.connect() as conn:
            result = await conn.exec_driver_sql(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()",
                (database,),
            )
            return int(result.scalar_one())
    finally:
        await engine.dispose()
