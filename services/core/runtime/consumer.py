"""Consuming a topic safely: at-least-once, transient errors retried, poison to the `.dlq`.

A record's offset is committed only after its handler returned (faststream's
`AckPolicy.NACK_ON_ERROR`), so a crash redelivers it; handlers deduplicate on `event_id`.

- A transient failure (database or broker unreachable, a lost race on a unique key) rewinds
  to the record and retries it after a growing pause: the partition waits, nothing is lost.
- Anything else (an undecodable value, an invalid envelope, a bug) sends the record to the
  topic's dead-letter twin with headers saying why, and the partition moves on.

Dead-letter headers: `error_class`, `error_message`, `original_topic`, `original_partition`,
`original_offset`, `consumer_group`, `failed_at`, `attempts`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog
from aiokafka.errors import KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import DBAPIError, IntegrityError

from schemas.events import CalendarEnvelope, DirectoryEnvelope, Envelope
from services.core.runtime.database import is_transient_database_error
from services.core.runtime.kafka import dlq

log = structlog.get_logger(__name__)

Handler = Callable[[bytes], Awaitable[None]]
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

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
        return f"database error {type(exc.orig).__name__}"
    return type(exc).__name__


def subscribe(
    broker: KafkaBroker,
    group_id: str,
    handlers: Mapping[str, Handler],
    *,
    max_backoff: float = 10.0,
) -> None:
    """Register `handlers[topic](value)` for every record of those topics, in one consumer
    group: one group join at start (a few seconds each on a small broker), one member per
    replica, partitions of every topic shared among the replicas."""
    attempts: dict[tuple[str, int, int], int] = {}

    async def decoder(message: Any) -> Any:
        return message.body  # raw bytes: decoding is the handler's job, so it can dead-letter

    @broker.subscriber(
        *handlers,
        group_id=group_id,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=decoder,
    )
    async def on_record(body: bytes, message: KafkaMessage) -> None:
        record = message.raw_message
        where = (record.topic, record.partition, record.offset)
        try:
            await handlers[record.topic](body)
        except Exception as exc:
            if not is_transient(exc):  # a poison record must not stop its partition
                await dead_letter(broker, record, exc, group_id, attempts.pop(where, 0) + 1)
                return
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
            raise
        attempts.pop(where, None)


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
