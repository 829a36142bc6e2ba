"""The consumer loop over a real Kafka-protocol broker, in batches: every record of a batch is
handled in order, the batch's offsets are committed once after it, a poison record in the
middle goes to the `.dlq` while the rest of the batch is applied, and a transient failure in
the middle rewinds to that record, so nothing is lost and nothing is applied twice. A topic
with a `many` handler has its batch applied in one call; a poison record there is isolated
by applying the batch again one record at a time."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.core.runtime.consumer import (
    BATCH_MAX_RECORDS,
    Handler,
    PoisonEvent,
    TopicHandler,
    subscribe,
)
from services.core.runtime.kafka import dlq, ensure_topics, make_broker
from services.core.runtime.messaging import Messaging
from services.core.runtime.metrics import ServiceMetrics
from services.core.runtime.settings import Settings
from services.intake.adapters import tables as intake_tables
from services.intake.app import CONSUMER_BATCH as INTAKE_CONSUMER_BATCH
from services.intake.app import IntakeService
from services.notifier.app import NotifierService
from services.tracker.app import TrackerService
from tests.fixtures.broker import KafkaEndpoint, caught_up, consume, wait_for

CONSUMED = "motcua_events_consumed_total"
RECORDS = 20
MIDDLE = 10


@dataclass
class Run:
    bootstrap: str
    topic: str
    group: str
    metrics: ServiceMetrics = field(default_factory=ServiceMetrics)
    commits: list[dict[TopicPartition, int]] = field(default_factory=list)

    def consumed(self, outcome: str) -> float:
        value = self.metrics.registry.get_sample_value(
            CONSUMED, {"topic": self.topic, "outcome": outcome}
        )
        return value or 0.0

    async def caught_up(self) -> bool:
        return await caught_up(self.bootstrap, self.group, self.topic)


@pytest.fixture
async def run(
    kafka_broker: KafkaEndpoint, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[..., Awaitable[Run]]]:
    """`await run(handler, partitions=..., values=...)`: the values produced to a fresh topic
    (the i-th keyed by i), then a consumer group started on it with `subscribe`."""
    brokers = []
    commits: list[dict[TopicPartition, int]] = []
    commit = AIOKafkaConsumer.commit

    async def counted_commit(self: AIOKafkaConsumer, offsets: Any = None) -> None:
        if offsets is not None and self._group_id and self._group_id.startswith("test-batch"):
            commits.append(dict(offsets))
        await commit(self, offsets)

    monkeypatch.setattr(AIOKafkaConsumer, "commit", counted_commit)

    async def start(
        handler: Handler | TopicHandler, *, partitions: int, values: list[bytes]
    ) -> Run:
        bootstrap = kafka_broker.bootstrap
        topic = f"test.batch.{uuid.uuid4().hex[:8]}"
        await ensure_topics(bootstrap, [topic], partitions=partitions)
        await ensure_topics(bootstrap, [dlq(topic)], partitions=1)
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
        await producer.start()
        try:
            for i, value in enumerate(values):  # one record a request, as the outbox relay
                # sends (Tansu's end offset counts a multi-record batch as one record)
                await producer.send_and_wait(topic, value, key=str(i % 7).encode())
        finally:
            await producer.stop()
        result = Run(bootstrap, topic, f"test-batch-{uuid.uuid4().hex[:8]}", commits=commits)
        broker = make_broker(bootstrap, client_id="motcua-test-batches")
        subscribe(broker, result.group, {topic: handler}, metrics=result.metrics)
        await broker.start()  # returns once the group is joined: every record is waiting
        brokers.append(broker)
        return result

    yield start
    for broker in brokers:
        await broker.stop()


def numbered(n: int, poison_at: int | None = None) -> list[bytes]:
    return [b"poison" if i == poison_at else f"record-{i}".encode() for i in range(n)]


async def test_a_poison_record_mid_batch_is_dead_lettered_and_the_rest_applied_once(
    run: Callable[..., Awaitable[Run]],
) -> None:
    applied: list[bytes] = []

    async def handler(body: bytes) -> None:
        if body == b"poison":
            raise PoisonEvent("not a record of this test")
        applied.append(body)

    r = await run(handler, partitions=1, values=numbered(RECORDS, poison_at=MIDDLE))
    await wait_for(r.caught_up, timeout=60, message="the group committed the whole topic")

    assert applied == [v for v in numbered(RECORDS, MIDDLE) if v != b"poison"]  # in order
    dead = await consume(r.bootstrap, dlq(r.topic), until=lambda rs: len(rs) >= 1)
    assert [d.value for d in dead] == [b"poison"]
    headers = {k: v.decode() for k, v in dead[0].headers}
    assert headers["error_class"] == "PoisonEvent"
    assert headers["original_topic"] == r.topic
    assert headers["original_offset"] == str(MIDDLE)
    assert headers["consumer_group"] == r.group
    assert headers["attempts"] == "1"
    assert r.consumed("handled") == RECORDS - 1
    assert r.consumed("dead_lettered") == 1
    assert r.consumed("retried") == 0
    # The records were all waiting when the group joined: one batch, one commit after it.
    assert r.commits == [{TopicPartition(r.topic, 0): RECORDS}]


async def test_a_transient_failure_mid_batch_redelivers_from_that_record(
    run: Callable[..., Awaitable[Run]],
) -> None:
    attempts: list[bytes] = []
    failing = f"record-{MIDDLE}".encode()

    async def handler(body: bytes) -> None:
        attempts.append(body)
        if body == failing and attempts.count(body) == 1:
            raise ConnectionError("the database went away")

    r = await run(handler, partitions=1, values=numbered(RECORDS))
    await wait_for(r.caught_up, timeout=60, message="the group committed the whole topic")

    values = numbered(RECORDS)
    # Records before the failure applied once and committed; the failing one tried again,
    # then the rest of the batch: none lost, none applied twice.
    assert attempts == values[:MIDDLE] + [failing] + values[MIDDLE:]
    tp = TopicPartition(r.topic, 0)
    assert r.commits == [{tp: MIDDLE}, {tp: RECORDS}]
    assert r.consumed("retried") == 1
    assert r.consumed("handled") == RECORDS
    assert r.consumed("dead_lettered") == 0


async def test_a_transient_failure_rewinds_every_partition_of_the_batch(
    run: Callable[..., Awaitable[Run]],
) -> None:
    failures: list[bytes] = []
    applied: list[bytes] = []
    failing = f"record-{MIDDLE}".encode()

    async def handler(body: bytes) -> None:
        if body == failing and len(failures) < 2:  # two retries, with a growing pause
            failures.append(body)
            raise OSError("connection refused")
        applied.append(body)

    r = await run(handler, partitions=3, values=numbered(RECORDS * 3))
    await wait_for(r.caught_up, timeout=60, message="the group committed the whole topic")

    values = numbered(RECORDS * 3)
    assert sorted(applied) == sorted(values)  # every record applied once: none skipped
    assert r.consumed("retried") == 2
    assert r.consumed("handled") == RECORDS * 3
    for key in range(7):  # the order of each key, hence of each partition, is kept
        of_key = [v for v in values if int(v.split(b"-")[1]) % 7 == key]
        assert [a for a in applied if a in of_key] == of_key


class Together:
    """A `many` handler that applies all or nothing, as a transaction does: it stores a
    batch only when every record in it is good."""

    def __init__(self, transient_failures: int = 0) -> None:
        self.applied: list[bytes] = []
        self.calls: list[int] = []  # the size of each batch it was given
        self.transient_failures = transient_failures

    async def many(self, bodies: Sequence[bytes]) -> list[str | None]:
        self.calls.append(len(bodies))
        if self.transient_failures:
            self.transient_failures -= 1
            raise ConnectionError("the database went away")
        if b"poison" in bodies:
            raise PoisonEvent("not a record of this test")
        self.applied.extend(bodies)
        return [None] * len(bodies)

    async def one(self, body: bytes) -> None:
        if body == b"poison":
            raise PoisonEvent("not a record of this test")
        self.applied.append(body)


async def test_a_many_handler_applies_the_batch_in_one_call(
    run: Callable[..., Awaitable[Run]],
) -> None:
    together = Together()
    r = await run(TopicHandler(together.one, together.many), partitions=1, values=numbered(RECORDS))
    await wait_for(r.caught_up, timeout=60, message="the group committed the whole topic")

    assert together.applied == numbered(RECORDS)
    assert together.calls == [RECORDS]  # every record was waiting: one batch, one call
    assert r.consumed("handled") == RECORDS
    assert r.commits == [{TopicPartition(r.topic, 0): RECORDS}]


async def test_a_poison_record_in_a_many_batch_is_isolated_and_the_rest_applied_once(
    run: Callable[..., Awaitable[Run]],
) -> None:
    together = Together()
    values = numbered(RECORDS, poison_at=MIDDLE)
    r = await run(TopicHandler(together.one, together.many), partitions=1, values=values)
    await wait_for(r.caught_up, timeout=60, message="the group committed the whole topic")

    # The batch's transaction applied nothing; applied again one by one, every good record
    # is applied once, in order, and only the poison one is dead-lettered.
    assert together.applied == [v for v in values if v != b"poison"]
    dead = await consume(r.bootstrap, dlq(r.topic), until=lambda rs: len(rs) >= 1)
    assert [d.value for d in dead] == [b"poison"]
    assert {k: v.decode() for k, v in dead[0].headers}["original_offset"] == str(MIDDLE)
    assert r.consumed("handled") == RECORDS - 1
    assert r.consumed("dead_lettered") == 1
    assert r.commits == [{TopicPartition(r.topic, 0): RECORDS}]


async def test_a_transient_failure_of_a_many_batch_reads_the_batch_again(
    run: Callable[..., Awaitable[Run]],
) -> None:
    together = Together(transient_failures=1)
    r = await run(
        TopicHandler(together.one, together.many), partitions=3, values=numbered(RECORDS * 3)
    )
    await wait_for(r.caught_up, timeout=60, message="the group committed the whole topic")

    values = numbered(RECORDS * 3)
    assert sorted(together.applied) == sorted(values)  # each once, after the failure
    assert r.consumed("retried") == 1
    assert r.consumed("handled") == RECORDS * 3
    for key in range(7):  # each key's order kept across the rewind
        of_key = [v for v in values if int(v.split(b"-")[1]) % 7 == key]
        assert [a for a in together.applied if a in of_key] == of_key


def test_the_intake_applies_few_records_at_once_where_the_others_take_many(
    tmp_path: Path,
) -> None:
    """The intake's consumer shares its event loop with the clerks' requests: its batches
    are small, so that one does not hold the loop for tens of milliseconds."""
    settings = Settings(data_dir=tmp_path)
    services = (
        IntakeService(settings, kafka_bootstrap="127.0.0.1:1"),
        TrackerService(settings, kafka_bootstrap="127.0.0.1:1"),
        NotifierService(settings, kafka_bootstrap="127.0.0.1:1"),
    )
    taken = {}
    for service in services:
        messaging = Messaging.of(service, intake_tables.outbox, intake_tables.outbox_checkpoint)
        assert messaging is not None
        taken[service.name] = [s.max_records for s in messaging.broker.subscribers]
    assert taken == {
        "intake": [INTAKE_CONSUMER_BATCH],
        "tracker": [BATCH_MAX_RECORDS],
        "notifier": [BATCH_MAX_RECORDS],
    }
    assert INTAKE_CONSUMER_BATCH < BATCH_MAX_RECORDS
