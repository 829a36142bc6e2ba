"""The outbox relay against real databases (SQLite file, PostgreSQL) and a real broker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
import sqlalchemy as sa
from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.runtime.database import create_engine
from services.core.runtime.kafka import ensure_topics, make_broker
from services.core.runtime.outbox import (
    OutboxRelay,
    add_to_outbox,
    backlog,
    outbox_row,
    outbox_table,
    purge_published,
)
from tests.fixtures.broker import (
    IN_CI,
    Condition,
    KafkaEndpoint,
    Records,
    consume,
    event_ids,
    start_embedded_broker,
    wait_for,
)

pytestmark = pytest.mark.broker

PG_URL = os.environ.get(
    "MOTCUA_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
T0 = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)


@dataclass
class Outbox:
    engine: AsyncEngine
    table: sa.Table
    metadata: sa.MetaData


@dataclass(frozen=True)
class Sent:
    event_id: str
    key: str


# -- fixtures -------------------------------------------------------------------------------


@pytest_asyncio.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def outbox(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Outbox]:
    """A fresh outbox table with a unique name on SQLite or PostgreSQL, dropped afterwards."""
    async with _outbox_on(request.param, tmp_path) as made:
        yield made


@pytest_asyncio.fixture
async def pg_outbox(tmp_path: Path) -> AsyncIterator[Outbox]:
    async with _outbox_on("postgresql", tmp_path) as made:
        yield made


@contextlib.asynccontextmanager
async def _outbox_on(kind: str, tmp_path: Path) -> AsyncIterator[Outbox]:
    if kind == "sqlite":
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}")
    else:
        engine = create_engine(PG_URL, pool_size=4)
        await _require_postgres(engine)
    metadata = sa.MetaData()
    table = outbox_table(metadata, f"relaytest_{uuid.uuid4().hex[:8]}")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    try:
        yield Outbox(engine, table, metadata)
    finally:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.drop_all)
        await engine.dispose()


async def _require_postgres(engine: AsyncEngine) -> None:
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        await engine.dispose()
        reason = f"PostgreSQL at {PG_URL} is not reachable: {exc}"
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: a missing service fails the run)", pytrace=False)
        pytest.skip(reason)


@pytest_asyncio.fixture
async def topic(kafka_broker: KafkaEndpoint) -> str:
    name = f"motcua.test.{uuid.uuid4().hex[:8]}.v1"
    await ensure_topics(kafka_broker.bootstrap, [name])
    return name


@pytest_asyncio.fixture
async def publisher(kafka_broker: KafkaEndpoint) -> AsyncIterator[KafkaBroker]:
    broker = make_broker(kafka_broker.bootstrap, client_id="relay-test")
    await broker.connect()
    try:
        yield broker
    finally:
        await broker.stop()


# -- helpers --------------------------------------------------------------------------------


def _envelope(event_id: str, key: str, n: int) -> str:
    return json.dumps(
        {"event_id": event_id, "type": "test", "version": 1, "dossier_id": key, "payload": {"n": n}}
    )


async def insert_events(
    outbox: Outbox, topic: str, keys: Sequence[str], count: int, per_txn: int = 5
) -> list[Sent]:
    """`count` events spread round-robin over `keys`, committed `per_txn` at a time."""
    sent: list[Sent] = []
    for start in range(0, count, per_txn):
        rows = []
        for n in range(start, min(count, start + per_txn)):
            event = Sent(str(uuid.uuid4()), keys[n % len(keys)])
            sent.append(event)
            rows.append(
                outbox_row(
                    event.event_id, topic, event.key, _envelope(event.event_id, event.key, n), T0
                )
            )
        async with outbox.engine.begin() as conn:
            await add_to_outbox(conn, outbox.table, rows)
    return sent


async def drain(relay: OutboxRelay, limit: int = 50) -> int:
    total = 0
    for _ in range(limit):
        count = await relay.publish_pending()
        if count == 0:
            return total
        total += count
    raise AssertionError("the outbox did not drain")


def by_key(records: Records) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for record, event_id in zip(records, event_ids(records), strict=True):
        assert record.key is not None
        out[record.key.decode()].append(event_id)
    return dict(out)


def expected_by_key(sent: Sequence[Sent]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for event in sent:
        out[event.key].append(event.event_id)
    return dict(out)


def all_seen(sent: Sequence[Sent]) -> Condition:
    wanted = {e.event_id for e in sent}
    return lambda records: wanted <= set(event_ids(records))


def assert_exactly_once_in_order(records: Records, sent: Sequence[Sent]) -> None:
    ids = event_ids(records)
    duplicates = len(ids) - len(set(ids))
    assert duplicates == 0, f"{duplicates} duplicate records"
    assert by_key(records) == expected_by_key(sent)
    partitions: dict[bytes | None, set[int]] = defaultdict(set)
    for record in records:
        partitions[record.key].add(record.partition)
    assert all(len(p) == 1 for p in partitions.values()), "one key, one partition"


# -- cases ----------------------------------------------------------------------------------


async def test_rows_are_published_once_in_order_per_key(
    outbox: Outbox, topic: str, publisher: KafkaBroker, kafka_broker: KafkaEndpoint
) -> None:
    sent = await insert_events(outbox, topic, ["d1", "d2", "d3", "d4"], 40)
    relay = OutboxRelay(outbox.engine, outbox.table, publisher, batch_size=15)
    assert await backlog(outbox.engine, outbox.table) == 40

    assert await drain(relay) == 40

    assert await backlog(outbox.engine, outbox.table) == 0
    assert await relay.publish_pending() == 0
    records = await consume(kafka_broker.bootstrap, topic, until=all_seen(sent), timeout=30)
    assert_exactly_once_in_order(records, sent)
    first = records[0]
    headers = dict(first.headers)
    assert headers["content-type"] == b"application/json"
    assert json.loads(first.value or b"")["event_id"] == headers["event_id"].decode()


async def test_a_rolled_back_transaction_publishes_nothing(
    outbox: Outbox, topic: str, publisher: KafkaBroker, kafka_broker: KafkaEndpoint
) -> None:
    doomed = outbox_row(str(uuid.uuid4()), topic, "d1", _envelope("x", "d1", 0), T0)
    with pytest.raises(RuntimeError, match="state change failed"):
        async with outbox.engine.begin() as conn:
            await add_to_outbox(conn, outbox.table, [doomed])
            raise RuntimeError("state change failed")
    sentinel = await insert_events(outbox, topic, ["d1"], 1)
    relay = OutboxRelay(outbox.engine, outbox.table, publisher)

    assert await drain(relay) == 1

    records = await consume(kafka_broker.bootstrap, topic, until=all_seen(sentinel), timeout=30)
    assert event_ids(records) == [sentinel[0].event_id]


async def test_wake_publishes_without_waiting_for_the_poll(
    outbox: Outbox, topic: str, publisher: KafkaBroker, kafka_broker: KafkaEndpoint
) -> None:
    relay = OutboxRelay(outbox.engine, outbox.table, publisher, poll_interval=3600)
    task = asyncio.create_task(relay.run())
    try:
        sent = await insert_events(outbox, topic, ["d1", "d2"], 4)
        relay.wake()
        records = await consume(kafka_broker.bootstrap, topic, until=all_seen(sent), timeout=20)
        assert_exactly_once_in_order(records, sent)
    finally:
        relay.stop()
        await asyncio.wait_for(task, 30)


async def test_the_relay_outlives_database_errors(
    outbox: Outbox, topic: str, publisher: KafkaBroker, kafka_broker: KafkaEndpoint
) -> None:
    async with outbox.engine.begin() as conn:
        await conn.run_sync(outbox.metadata.drop_all)  # every pass now fails in the database
    relay = OutboxRelay(outbox.engine, outbox.table, publisher, poll_interval=0.2, max_backoff=0.5)
    task = asyncio.create_task(relay.run())
    try:
        await wait_for(_at_least(relay, 2), timeout=30, message="two failed passes")
        assert not task.done()
        async with outbox.engine.begin() as conn:
            await conn.run_sync(outbox.metadata.create_all)
        sent = await insert_events(outbox, topic, ["d1", "d2"], 6)
        records = await consume(kafka_broker.bootstrap, topic, until=all_seen(sent), timeout=30)
        assert_exactly_once_in_order(records, sent)
        # The records reach a consumer as soon as the broker has them; the pass that sent them
        # marks them and counts its success a moment later.
        await wait_for(_recovered(relay), timeout=30, message="the relay counts its success")
    finally:
        relay.stop()
        await asyncio.wait_for(task, 30)


@pytest.mark.postgres
async def test_replicas_never_publish_the_same_rows(
    pg_outbox: Outbox, topic: str, kafka_broker: KafkaEndpoint
) -> None:
    """Replicas share PostgreSQL (the embedded SQLite set-up runs a single relay)."""
    outbox = pg_outbox
    brokers = [make_broker(kafka_broker.bootstrap, client_id=f"replica-{i}") for i in range(3)]
    for broker in brokers:
        await broker.connect()
    relays = [OutboxRelay(outbox.engine, outbox.table, b, batch_size=7) for b in brokers]
    try:
        sent = await insert_events(outbox, topic, [f"d{i}" for i in range(5)], 100, per_txn=10)
        counts = await asyncio.gather(*(drain(r) for r in relays))
        counts = [c + await drain(r) for c, r in zip(counts, relays, strict=True)]
        assert sum(counts) == 100
        records = await consume(kafka_broker.bootstrap, topic, until=all_seen(sent), timeout=30)
        assert_exactly_once_in_order(records, sent)
    finally:
        for broker in brokers:
            await broker.stop()


async def test_backlog_and_purge(
    outbox: Outbox, topic: str, publisher: KafkaBroker, kafka_broker: KafkaEndpoint
) -> None:
    await insert_events(outbox, topic, ["d1"], 5)
    relay = OutboxRelay(outbox.engine, outbox.table, publisher, clock=lambda: T0)
    assert await drain(relay) == 5
    await insert_events(outbox, topic, ["d1"], 2)  # not published: never purged
    assert await backlog(outbox.engine, outbox.table) == 2

    week = timedelta(days=7)
    assert await purge_published(outbox.engine, outbox.table, week, now=T0 + timedelta(days=6)) == 0
    assert await purge_published(outbox.engine, outbox.table, week, now=T0 + timedelta(days=8)) == 5

    async with outbox.engine.connect() as conn:
        left = await conn.scalar(sa.select(sa.func.count()).select_from(outbox.table))
    assert left == 2
    assert await backlog(outbox.engine, outbox.table) == 2


async def test_a_broker_outage_loses_nothing_and_keeps_key_order(
    outbox: Outbox, tmp_path: Path
) -> None:
    """Stop the broker under a running relay, write 50 events for 5 keys, restart it.

    Expected: every event exactly once, in order per key. Duplicates could only come from a
    record the broker stored but never acknowledged; with the broker fully down nothing is
    stored, and the relay waits longer than the producer's request timeout, so aiokafka (not
    the relay) decides each record's fate and nothing is left queued to be sent twice.
    """
    broker = await start_embedded_broker(tmp_path / "broker")
    publisher = make_broker(broker.bootstrap, client_id="outage-test", request_timeout_ms=2000)
    relay = OutboxRelay(
        outbox.engine,
        outbox.table,
        publisher,
        batch_size=20,
        poll_interval=0.5,
        publish_timeout=10,
        max_backoff=1.0,
    )
    task: asyncio.Task[None] | None = None
    try:
        topic = f"motcua.test.{uuid.uuid4().hex[:8]}.v1"
        await ensure_topics(broker.bootstrap, [topic])
        await publisher.connect()
        task = asyncio.create_task(relay.run())
        await insert_events(outbox, topic, ["warm-up"], 2)  # the producer knows the topic
        relay.wake()
        await wait_for(_backlog_is(outbox, 0), timeout=30, message="warm-up published")

        await broker.stop()
        sent = await insert_events(outbox, topic, [f"d{i}" for i in range(5)], 50, per_txn=5)
        relay.wake()
        await wait_for(_at_least(relay, 3), timeout=60, message="three failed passes")
        assert await backlog(outbox.engine, outbox.table) == 50

        await broker.restart()  # same port, empty: the topic is gone
        await ensure_topics(broker.bootstrap, [topic])
        await wait_for(_backlog_is(outbox, 0), timeout=90, message="backlog drained")

        records = await consume(broker.bootstrap, topic, until=all_seen(sent), timeout=30)
        assert_exactly_once_in_order(records, sent)
        assert not task.done()
    finally:
        relay.stop()
        if task is not None:
            await asyncio.wait_for(task, 30)
        await publisher.stop()
        await broker.stop()


async def test_the_relay_renews_a_closed_producer(
    outbox: Outbox, topic: str, publisher: KafkaBroker, kafka_broker: KafkaEndpoint
) -> None:
    relay = OutboxRelay(outbox.engine, outbox.table, publisher, poll_interval=0.2, max_backoff=0.5)
    await publisher.config.producer.disconnect()  # publishing now raises IncorrectState
    task = asyncio.create_task(relay.run())
    try:
        sent = await insert_events(outbox, topic, ["d1", "d2"], 6)
        relay.wake()
        records = await consume(kafka_broker.bootstrap, topic, until=all_seen(sent), timeout=30)
        assert_exactly_once_in_order(records, sent)
        assert relay.failed_passes >= 1
        assert relay.reconnects == 1
    finally:
        relay.stop()
        await asyncio.wait_for(task, 30)


async def test_the_relay_renews_a_stuck_producer(
    outbox: Outbox, topic: str, publisher: KafkaBroker, kafka_broker: KafkaEndpoint
) -> None:
    """A producer that accepts records but never sends them (its sender task is dead)."""
    producer = publisher.config.producer._producer.producer  # aiokafka internals, on purpose
    producer._sender.sender_task.cancel()
    relay = OutboxRelay(
        outbox.engine,
        outbox.table,
        publisher,
        poll_interval=0.2,
        publish_timeout=1.0,
        max_backoff=0.3,
        reconnect_after_failures=2,
    )
    task = asyncio.create_task(relay.run())
    try:
        sent = await insert_events(outbox, topic, ["d1", "d2", "d3"], 9)
        relay.wake()
        records = await consume(kafka_broker.bootstrap, topic, until=all_seen(sent), timeout=30)
        assert_exactly_once_in_order(records, sent)
        assert relay.failed_passes == 2
        assert relay.reconnects == 1
    finally:
        relay.stop()
        await asyncio.wait_for(task, 30)


def _at_least(relay: OutboxRelay, failed_passes: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return relay.failed_passes >= failed_passes

    return check


def _recovered(relay: OutboxRelay) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return relay.consecutive_failures == 0

    return check


def _backlog_is(outbox: Outbox, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await backlog(outbox.engine, outbox.table) == count

    return check
