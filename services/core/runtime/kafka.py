"""Kafka topics and the faststream broker factory shared by the three services.

Dossier, deadline and notification topics are keyed by dossier id, so one dossier's events
stay in order on one partition; the calendar topic has one key; the directory topic (who
supervises each agency) is keyed by agency code, so one agency's changes stay in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import aiokafka
import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code
from faststream._internal.parser import DefaultCodec
from faststream.kafka import KafkaBroker

DOSSIER_TOPIC = "motcua.dossier.v1"
DEADLINE_TOPIC = "motcua.deadline.v1"
NOTIFICATION_TOPIC = "motcua.notification.v1"
CALENDAR_TOPIC = "motcua.calendar.v1"
CALENDAR_KEY = "calendar"  # one key: every calendar change on one partition, in order
DIRECTORY_TOPIC = "motcua.directory.v1"  # key = agency code


def dlq(topic: str) -> str:
    """The dead-letter twin of a topic."""
    return f"{topic}.dlq"


MAIN_TOPICS: tuple[str, ...] = (
    DOSSIER_TOPIC,
    DEADLINE_TOPIC,
    NOTIFICATION_TOPIC,
    CALENDAR_TOPIC,
    DIRECTORY_TOPIC,
)
ALL_TOPICS: tuple[str, ...] = MAIN_TOPICS + tuple(dlq(t) for t in MAIN_TOPICS)

DEFAULT_CLIENT_ID = "motcua"

log = structlog.get_logger(__name__)


class TopicCreationError(RuntimeError):
    """The cluster refused to create a topic (other than: it already exists)."""


async def ensure_topics(
    bootstrap: str,
    topics: Iterable[str],
    partitions: int = 3,
    *,
    replication_factor: int = 1,
    request_timeout_ms: int = 10_000,
    client_id: str = DEFAULT_CLIENT_ID,
) -> None:
    """Create the topics that do not exist yet. Idempotent: an existing topic is fine.

    An existing topic is left as it is, even with another partition count. Create topics
    before any client touches them: Tansu (and Kafka with auto-creation on) creates a topic
    on the first Metadata request for it, with the broker's default partition count.
    """
    names = list(dict.fromkeys(topics))
    if not names:
        return
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id=f"{client_id}-admin",
        request_timeout_ms=request_timeout_ms,
    )
    await admin.start()
    try:
        response = await admin.create_topics(
            [NewTopic(name, partitions, replication_factor) for name in names],
            timeout_ms=request_timeout_ms,
        )
    finally:
        await admin.close()
    _check_created(response.to_object()["topic_errors"])


def _check_created(topic_errors: list[dict[str, Any]]) -> None:
    failures = []
    for entry in topic_errors:
        code = entry["error_code"]
        if code == 0:
            log.info("topic_created", topic=entry["topic"])
        elif for_code(code) is not TopicAlreadyExistsError:
            failures.append(f"{entry['topic']}: {entry.get('error_message') or code}")
    if failures:
        raise TopicCreationError("; ".join(failures))


def _faststream_logs_like_ours() -> None:
    """faststream gives its logger a colour handler of its own when imported and stops it
    propagating, so its lines ("Consumer … assigned to partitions") bypassed the structlog
    formatter and mixed colour codes into the JSON logs. Handed back to the root handler,
    they come out in motcua's format."""
    for name in ("faststream", "faststream.access.kafka"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        # And as chatty as configure_logging allows it: faststream's import set it to INFO.
        logger.setLevel(max(logging.WARNING, logging.getLogger().level))


_faststream_logs_like_ours()


def make_broker(
    bootstrap: str,
    *,
    client_id: str = DEFAULT_CLIENT_ID,
    **overrides: Any,
) -> KafkaBroker:
    """A faststream KafkaBroker set up for motcua.

    - `enable_idempotence=False`: Tansu has no idempotent producer (sends fail with
      `UnknownError [Error -1]`);
    - `acks="all"`: a record counts as published once every in-sync replica has it;
    - request timeouts of 10 s: a dead broker fails a publish in ~10 s rather than 40 s;
    - faststream's per-message log lines go to the stdlib logger "faststream" at DEBUG
      (errors stay at ERROR), so they follow the structlog set-up instead of printing.

    Any keyword argument of `faststream.kafka.KafkaBroker` overrides these defaults.
    """
    options: dict[str, Any] = {
        "client_id": client_id,
        "enable_idempotence": False,
        "acks": "all",
        "request_timeout_ms": 10_000,
        "retry_backoff_ms": 200,
        "metadata_max_age_ms": 60_000,
        "logger": logging.getLogger("faststream"),
        "log_level": logging.DEBUG,
    }
    options.update(overrides)
    return KafkaBroker(bootstrap, **options)


async def cluster_reachable(bootstrap: str | Sequence[str], *, timeout_ms: int = 2000) -> bool:
    """Whether a bootstrap server accepts TCP and answers a Kafka Metadata request."""
    servers = [bootstrap] if isinstance(bootstrap, str) else list(bootstrap)
    if not any([await _accepts_tcp(server, timeout_ms / 1000) for server in servers]):
        return False  # checked first: aiokafka logs every refused bootstrap at ERROR
    client = AIOKafkaClient(
        bootstrap_servers=servers, client_id="motcua-probe", request_timeout_ms=timeout_ms
    )
    try:
        await asyncio.wait_for(client.bootstrap(), timeout_ms / 1000 + 1)
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        await client.close()
    return True


async def _accepts_tcp(server: str, seconds: float) -> bool:
    host, _, port = server.rpartition(":")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), seconds)
    except (OSError, TimeoutError, ValueError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def producer_connected(broker: KafkaBroker) -> bool:
    """Whether the broker currently holds a started aiokafka producer."""
    return bool(broker.config.producer)


async def reconnect_producer(broker: KafkaBroker, *, wait_seconds: float = 30.0) -> bool:
    """Replace the broker's aiokafka producer by a fresh one; subscribers are not touched.

    Does nothing and returns False while the cluster is unreachable (the old producer is
    kept: it reconnects by itself once the cluster is back). Otherwise pending records of
    the old producer are flushed or expire first (bounded by `wait_seconds`), so records of
    one partition never interleave between the two producers, and True is returned.
    Raises if the new producer cannot start; the broker then has no producer until the next
    successful call (publishing raises meanwhile).

    This reaches into faststream 0.7 internals (`config.producer`, `_connection_kwargs`):
    faststream has no public way to renew only the producer.
    """
    if not await cluster_reachable(broker._connection_kwargs["bootstrap_servers"]):
        return False
    config: Any = broker.config
    try:
        await asyncio.wait_for(config.producer.disconnect(), wait_seconds)
    except (TimeoutError, KafkaError, OSError) as exc:
        log.warning("kafka_producer_close_failed", error=type(exc).__name__)
    producer = aiokafka.AIOKafkaProducer(**broker._connection_kwargs)
    try:
        await asyncio.wait_for(
            config.producer.connect(
                producer,
                serializer=config.fd_config._serializer,
                codec=config.broker_codec or DefaultCodec(),
            ),
            wait_seconds,
        )
    except BaseException:
        await producer.stop()
        raise
    return True
