"""Consuming a topic safely: at-least-once, transient errors retried, poison to the `.dlq`.

Records come in batches (whatever the consumer has fetched, up to `BATCH_MAX_RECORDS`),
taken topic by topic, each topic's records in the order of their partitions. A topic whose
service gives a `many` handler has its records applied together, in one transaction with one
de-duplication query; otherwise, or when that fails on a poison record, one by one with its
`one` handler. The batch's offsets are committed once, after it: a crash redelivers the
records of a batch whose offsets were not committed yet, and handlers deduplicate on
`event_id`.

- A transient failure (database or broker unreachable, a lost race on a unique key) ends the
  batch at that record (for `many`, at the first record of its run, none of which was
  applied): the records before it are committed, every partition of the batch is
  rewound to its first record not applied, and they are read again after a growing pause:
  the partition waits, nothing is lost and nothing applied is applied again.
- Anything else (an undecodable value, an invalid envelope, a bug) sends the record to the
  topic's dead-letter twin with headers saying why, and the partition moves on. When `many`
  fails that way its transaction applied nothing, and the run is applied again one record at
  a time, so that only the poison record is dead-lettered and the others are applied once.

Dead-letter headers: `error_class`, `error_message`, `original_topic`, `original_partition`,
`original_offset`, `consumer_group`, `failed_at`, `attempts`.

Metrics: every attempt at a record is counted by topic and outcome (`handled`, `duplicate`
when the handler says it had the event before, `retried`, `dead_lettered`), and each scrape
reads how far this member's partitions are behind their high watermark (from the position,
which is past the batch being handled: its records are not counted).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import DBAPIError, IntegrityError

from schemas.events import CalendarEnvelope, DirectoryEnvelope, Envelope
from services.core.runtime.database import describe_database_error, is_transient_database_error
from services.core.runtime.kafka import dlq
from services.core.runtime.metrics import ServiceMetrics, Values

log = structlog.get_logger(__name__)

DUPLICATE = "duplicate"  # what a handler returns for an event it had applied before
Handler = Callable[[bytes], Awaitable[str | None]]
# Records of one topic, in partition order → one outcome per record (DUPLICATE or None).
BatchHandler = Callable[[Sequence[bytes]], Awaitable[Sequence[str | None]]]


@dataclass(frozen=True)
class TopicHandler:
    """How a service applies a topic's records.

    `one` applies a record in its own transaction. `many`, when given, applies a run of the
    topic's records (partition order kept) in one transaction and returns each one's outcome;
    it applies all or nothing, so that on a failure the runtime can read the run again or
    isolate a poison record with `one`."""

    one: Handler
    many: BatchHandler | None = None


Handlers = Mapping[str, Handler | TopicHandler]


def as_topic_handler(handler: Handler | TopicHandler) -> TopicHandler:
    return handler if isinstance(handler, TopicHandler) else TopicHandler(handler)


T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

BATCH_MAX_RECORDS = 500  # records handled between two commits, at most
BATCH_TIMEOUT_MS = 100  # how long a poll waits for a first record (an idle consumer's pace)
SESSION_TIMEOUT_SECONDS = 10.0  # aiokafka's default; Settings.kafka_session_timeout_seconds

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    IntegrityError,
    OSError,
    TimeoutError,
    KafkaError,
    ConnectionError,
)


def is_transient(exc: BaseException) -> bool:
    """A failure of what the handler depends on, which a later try may not meet."""
    return isinstance(exc, TRANSIENT_ERRORS) or is_transient_database_error(exc)


class PoisonEvent(Exception):
    """The record can never be handled as it is (undecodable, invalid, unknown type)."""


def decode_envelope(body: bytes, types: Collection[str], topic: str) -> Envelope:
    """The envelope of a record whose type is one of `types`, or PoisonEvent."""
    try:
        envelope = Envelope.model_validate_json(body)
    except ValidationError as exc:
        raise PoisonEvent(f"not a motcua envelope: {exc.error_count()} errors") from exc
    if envelope.type not in types:
        raise PoisonEvent(f"not an event type of {topic}: {envelope.type!r}")
    return envelope


def typed_payload(envelope: Envelope, parse: Callable[[Envelope], T]) -> T:
    """The envelope's payload as its type's model, or PoisonEvent naming the type (never the
    values, which may be personal data)."""
    try:
        return parse(envelope)
    except ValidationError as exc:
        raise PoisonEvent(f"invalid {envelope.type} payload") from exc


def _decode_own(body: bytes, model: type[M], what: str) -> M:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise PoisonEvent(f"not a {what} event: {exc.error_count()} errors") from exc


def decode_calendar_envelope(body: bytes) -> CalendarEnvelope:
    """A record of motcua.calendar.v1, or PoisonEvent."""
    return _decode_own(body, CalendarEnvelope, "calendar")


def decode_directory_envelope(body: bytes) -> DirectoryEnvelope:
    """A record of motcua.directory.v1, or PoisonEvent."""
    return _decode_own(body, DirectoryEnvelope, "directory")


def describe(exc: BaseException) -> str:
    """An error's description without the input values it may quote (personal data)."""
    if isinstance(exc, ValidationError):
        fields = ", ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['type']}" for e in exc.errors()
        )
        return f"{exc.error_count()} validation errors ({fields})"[:500]
    if isinstance(exc, PoisonEvent | KafkaError):
        return str(exc)[:500]
    if isinstance(exc, DBAPIError):
        return describe_database_error(exc)
    return type(exc).__name__


def subscribe(
    broker: KafkaBroker,
    group_id: str,
    handlers: Handlers,
    *,
    metrics: ServiceMetrics,
    max_backoff: float = 10.0,
    max_records: int = BATCH_MAX_RECORDS,
    batch_timeout_ms: int = BATCH_TIMEOUT_MS,
    session_timeout: float = SESSION_TIMEOUT_SECONDS,
) -> None:
    """Register `handlers[topic](value)` for every record of those topics, in one consumer
    group: one group join at start (a few seconds each on a small broker), one member per
    replica, partitions of every topic shared among the replicas.

    Records come in batches of up to `max_records` (whatever has been fetched, waiting at most
    `batch_timeout_ms` for a first one); they are applied topic by topic in the order of
    their partitions (together when the topic has a `many` handler), and the batch's offsets
    are committed once, after it.

    A member that sends no heartbeat for `session_timeout` seconds is out of the group; it
    sends one every third of that, at most every 3 s (aiokafka's defaults for 10 s: 3 s)."""
    attempts: dict[tuple[str, int, int], int] = {}
    by_topic = {topic: as_topic_handler(h) for topic, h in handlers.items()}
    consumed = metrics.counter(
        "motcua_events_consumed_total",
        "Attempts at a record by the service's consumer group, by topic and outcome",
        ["topic", "outcome"],
    )

    async def decoder(message: Any) -> Any:
        return message.body  # raw bytes: decoding is the handler's job, so it can dead-letter

    subscriber = broker.subscriber(
        *handlers,
        group_id=group_id,
        auto_offset_reset="earliest",
        batch=True,
        max_records=max_records,
        batch_timeout_ms=batch_timeout_ms,
        ack_policy=AckPolicy.MANUAL,  # offsets are committed and rewound below, per record
        decoder=decoder,
        session_timeout_ms=round(session_timeout * 1000),
        heartbeat_interval_ms=min(3000, round(session_timeout * 1000 / 3)),
    )
    metrics.gauge_at_scrape(
        "consumer_lag",
        "motcua_consumer_lag_records",
        "Records between this member's position and the high watermark, by topic and partition",
        ["topic", "partition"],
        lambda: consumer_lag(subscriber.consumer),
    )

    async def apply(record: ConsumerRecord[Any, Any]) -> None:
        """Handle a record, or dead-letter it; raise only when it must be tried again."""
        where = (record.topic, record.partition, record.offset)
        try:
            outcome = await by_topic[record.topic].one(record.value or b"")
        except Exception as exc:
            if is_transient(exc):
                raise
            # a poison record must not stop its partition (if the dead-letter topic cannot
            # be written, that raises, and the record is tried again)
            await dead_letter(broker, record, exc, group_id, attempts.get(where, 0) + 1)
            attempts.pop(where, None)
            consumed.labels(record.topic, "dead_lettered").inc()
            return
        attempts.pop(where, None)
        consumed.labels(record.topic, DUPLICATE if outcome == DUPLICATE else "handled").inc()

    async def apply_together(many: BatchHandler, run: Sequence[ConsumerRecord[Any, Any]]) -> bool:
        """Apply a topic's run in one transaction: True when done, False when it must be
        applied one by one (a poison record in it); raise when it must be read again."""
        try:
            outcomes = await many([record.value or b"" for record in run])
        except Exception as exc:
            if is_transient(exc):
                raise
            log.warning(
                "batch_isolating_records",
                topic=run[0].topic,
                records=len(run),
                error_class=type(exc).__name__,
            )
            return False
        for record, outcome in zip(run, outcomes, strict=True):
            attempts.pop((record.topic, record.partition, record.offset), None)
            consumed.labels(record.topic, DUPLICATE if outcome == DUPLICATE else "handled").inc()
        return True

    @subscriber
    async def on_batch(bodies: Any, message: KafkaMessage) -> None:
        records: Sequence[ConsumerRecord[Any, Any]] = message.raw_message
        consumer = subscriber.consumer
        applied: dict[TopicPartition, int] = {}  # the offset to commit: last applied + 1
        runs = runs_by_topic(records)
        for number, run in enumerate(runs):
            pending = list(run)  # the run's records not applied yet, in order
            many = by_topic[run[0].topic].many
            try:
                if many is not None and len(run) > 1 and await apply_together(many, run):
                    pending = []
                for record in list(pending):
                    await apply(record)
                    pending.remove(record)
            except Exception as exc:
                # The records not applied are read again: rewind each of their partitions
                # to its first record not applied (later runs are other topics', untouched).
                if consumer is not None:
                    later = [record for other in runs[number + 1 :] for record in other]
                    rewind(consumer, pending + later)
                    await commit(consumer, applied | last_offsets(run[: len(run) - len(pending)]))
                await pause(pending[0], exc)
                return
            applied |= last_offsets(run)
        if consumer is not None:
            await commit(consumer, applied)

    async def pause(record: ConsumerRecord[Any, Any], exc: BaseException) -> None:
        where = (record.topic, record.partition, record.offset)
        consumed.labels(record.topic, "retried").inc()
        attempt = attempts[where] = attempts.get(where, 0) + 1
        log.warning(
            "event_retry",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            attempt=attempt,
            error=describe(exc),
        )
        await asyncio.sleep(min(max_backoff, 0.1 * 2**attempt))

    async def commit(consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except KafkaError as exc:  # a rebalance took a partition: its new owner re-reads
            log.warning("offset_commit_failed", group=group_id, error=describe(exc))


def last_offsets(records: Sequence[ConsumerRecord[Any, Any]]) -> dict[TopicPartition, int]:
    """The offset to commit for each partition of `records`: its last record's, plus one."""
    return {TopicPartition(r.topic, r.partition): r.offset + 1 for r in records}


def runs_by_topic(
    records: Sequence[ConsumerRecord[Any, Any]],
) -> list[list[ConsumerRecord[Any, Any]]]:
    """The batch's records grouped by topic, in order of first appearance, each topic's in
    the order they came (which keeps each partition's order)."""
    runs: dict[str, list[ConsumerRecord[Any, Any]]] = {}
    for record in records:
        runs.setdefault(record.topic, []).append(record)
    return list(runs.values())


def rewind(consumer: AIOKafkaConsumer, unapplied: Sequence[ConsumerRecord[Any, Any]]) -> None:
    """Seek each partition of `unapplied` back to its first record there, so that none of
    them is skipped (records of a partition come in offset order)."""
    first: dict[TopicPartition, int] = {}
    for record in unapplied:
        first.setdefault(TopicPartition(record.topic, record.partition), record.offset)
    for tp, offset in first.items():
        try:
            consumer.seek(tp, offset)
        except IllegalStateError:  # no longer ours: its new owner reads from the commit
            continue


async def consumer_lag(consumer: AIOKafkaConsumer | None) -> Values:
    """(topic, partition) → records behind, for the partitions this member holds and has
    fetched from (a fetch is what tells it the high watermark)."""
    if consumer is None:
        return {}
    highwaters = [(tp, consumer.highwater(tp)) for tp in consumer.assignment()]
    lag: dict[tuple[str, ...], float] = {}
    for tp, highwater in highwaters:
        if highwater is None:
            continue
        try:
            position = await consumer.position(tp)
        except IllegalStateError:  # taken away by a rebalance meanwhile
            continue
        lag[(tp.topic, str(tp.partition))] = float(max(0, highwater - position))
    return lag


async def dead_letter(
    broker: KafkaBroker, record: Any, exc: BaseException, group_id: str, attempts: int
) -> None:
    log.error(
        "event_dead_lettered",
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        error_class=type(exc).__name__,
        error=describe(exc),
    )
    headers = {
        "error_class": type(exc).__name__,
        "error_message": describe(exc),
        "original_topic": record.topic,
        "original_partition": str(record.partition),
        "original_offset": str(record.offset),
        "consumer_group": group_id,
        "failed_at": datetime.now(UTC).isoformat(),
        "attempts": str(attempts),
    }
    key = record.key if isinstance(record.key, bytes) else None
    await broker.publish(record.value or b"", dlq(record.topic), key=key, headers=headers)
