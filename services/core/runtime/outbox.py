"""Transactional outbox: events are rows written in the same transaction as the state change;
a relay publishes them to Kafka and then marks them published.

Guarantees: a committed row is published at least once (the relay retries the same rows until
the broker acknowledges them; it never skips one). A row may be published twice (a crash
between publish and mark, a lost acknowledgement): consumers deduplicate on `event_id`.
Rows of one key are published in id order, and a row is only marked published when every
earlier row of its key in the same pass was acknowledged too, so a retry resends from the
first gap of each key onwards.

On PostgreSQL a transaction-level advisory lock per table makes replicas take turns, so two
relays never publish the same table at once. On SQLite (one process) it is not needed.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
import structlog
from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from services.core.runtime.clock import Clock, system_clock
from services.core.runtime.kafka import producer_connected, reconnect_producer
from services.core.runtime.metrics import ServiceMetrics, Values
from services.core.runtime.replay import ConsumptionLedger
from services.core.runtime.waiting import wait_event

_log = structlog.get_logger(__name__)


# -- table ----------------------------------------------------------------------------------


def outbox_table(metadata: sa.MetaData, prefix: str) -> sa.Table:
    """The outbox table `{prefix}_outbox` of one service."""
    name = f"{prefix}_outbox"
    return sa.Table(
        name,
        metadata,
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        # Serves both "unpublished rows in id order" (published_at IS NULL) and the purge
        # of old published rows, on PostgreSQL and SQLite alike.
        sa.Index(f"ix_{name}_published_at_id", "published_at", "id"),
    )


def outbox_row(
    event_id: str, topic: str, key: str, value: str | bytes, created_at: datetime
) -> dict[str, Any]:
    """One outbox row; `value` is the already serialized JSON envelope."""
    if created_at.tzinfo is None:
        raise ValueError("created_at must be timezone-aware")
    text = value.decode("utf-8") if isinstance(value, bytes) else value
    return {
        "event_id": str(event_id),
        "topic": topic,
        "key": key,
        "value": text,
        "created_at": created_at.astimezone(UTC),
    }


async def add_to_outbox(
    conn_or_session: AsyncConnection | AsyncSession,
    table: sa.Table,
    rows: Iterable[Mapping[str, Any]],
) -> None:
    """Insert rows within the caller's transaction; the caller commits (or rolls back)."""
    batch = [dict(row) for row in rows]
    if batch:
        await conn_or_session.execute(table.insert(), batch)


async def backlog(engine: AsyncEngine, table: sa.Table) -> int:
    """How many rows wait to be published (for metrics and readiness)."""
    query = sa.select(sa.func.count()).select_from(table).where(table.c.published_at.is_(None))
    async with engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


def expose_backlog(metrics: ServiceMetrics, engine: AsyncEngine, table: sa.Table) -> None:
    """`motcua_outbox_backlog_rows`, read at each scrape."""

    async def read() -> Values:
        return {(): float(await backlog(engine, table))}

    metrics.gauge_at_scrape(
        "outbox", "motcua_outbox_backlog_rows", "Outbox rows waiting to be published", [], read
    )


async def purge_published(
    engine: AsyncEngine,
    table: sa.Table,
    older_than: timedelta,
    *,
    now: datetime | None = None,
    consumed_through: int | None = None,
) -> int:
    """Delete rows published more than `older_than` ago; returns how many. With
    `consumed_through` (a broker that forgets, see `replay.py`), only rows up to that id:
    a later one may still have to be published again."""
    cutoff = (now or datetime.now(UTC)).astimezone(UTC) - older_than
    query = sa.delete(table).where(table.c.published_at.is_not(None), table.c.published_at < cutoff)
    if consumed_through is not None:
        query = query.where(table.c.id <= consumed_through)
    async with engine.begin() as conn:
        result = await conn.execute(query)
    return int(result.rowcount or 0)


def advisory_lock_key(table: sa.Table) -> int:
    """A stable signed 64-bit key for `pg_try_advisory_xact_lock`, derived from the name."""
    digest = hashlib.blake2b(f"motcua.outbox:{table.name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


# -- relay ----------------------------------------------------------------------------------


class OutboxPublishError(RuntimeError):
    """Some rows of a pass were not acknowledged by the broker; they stay unpublished."""

    def __init__(
        self,
        failed_ids: Sequence[int],
        topics: Iterable[str],
        total: int,
        cause: BaseException | None,
    ) -> None:
        super().__init__(f"{len(failed_ids)} of {total} outbox rows not published")
        self.failed_ids = list(failed_ids)
        self.topics = sorted(set(topics))
        self.total = total
        self.cause = cause


@dataclass(frozen=True, slots=True)
class _Row:
    id: int
    event_id: str
    topic: str
    key: str
    value: str


@dataclass(slots=True)
class _Outcome:
    published: list[int] = field(default_factory=list)
    failed: list[_Row] = field(default_factory=list)
    out_of_order: int = 0
    error: BaseException | None = None
    # (topic, row id, partition, offset) of each published row, for a replay ledger
    landed: list[tuple[str, int, int, int]] = field(default_factory=list)


class OutboxRelay:
    """Publishes a service's outbox rows to Kafka, in id order, until `stop()`."""

    def __init__(
        self,
        engine: AsyncEngine,
        table: sa.Table,
        broker: KafkaBroker,
        *,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        clock: Clock = system_clock,
        logger: Any = None,
        publish_timeout: float = 30.0,
        max_backoff: float = 5.0,
        reconnect_after_failures: int = 3,
        reconnect: Callable[[], Awaitable[bool]] | None = None,
        ledger: ConsumptionLedger | None = None,
        linger: float = 0.0,
    ) -> None:
        """
        `publish_timeout` bounds one pass's wait for acknowledgements; keep it above the
        producer's `request_timeout_ms` so that aiokafka, not the relay, decides a record's
        fate (a record given up on by the relay but still queued would be sent twice).
        After every `reconnect_after_failures` failed passes in a row (0: never), and after
        any failed pass while the broker has no producer, the relay renews the producer
        (`reconnect`, default `kafka.reconnect_producer`: only when the cluster answers,
        so an outage keeps the old producer, which reconnects by itself).
        With a `ledger` (a broker that forgets, see `replay.py`), the relay tells it where
        each row landed and, between passes, lets it move the consumed checkpoint.
        Woken after an idle moment, the relay waits `linger` seconds before its pass, so that
        rows committed a moment apart share one pass (a transaction to read, one to mark, one
        wait for the broker's acknowledgements) instead of paying one each.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._engine = engine
        self._table = table
        self._broker = broker
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._clock = clock
        self._log = logger if logger is not None else _log.bind(outbox=table.name)
        self._publish_timeout = publish_timeout
        self._max_backoff = max_backoff
        self._reconnect_after = reconnect_after_failures
        self._reconnect = reconnect or (lambda: reconnect_producer(broker))
        self._ledger = ledger
        self._linger = linger
        self._is_postgres = engine.dialect.name == "postgresql"
        # Built once: a pass at a few rows costs less to run than to build its statements.
        t = table
        self._fetch_query = (
            sa.select(t.c.id, t.c.event_id, t.c.topic, t.c.key, t.c.value)
            .where(t.c.published_at.is_(None))
            .order_by(t.c.id)
            .limit(batch_size)
        )
        self._mark_query = (
            sa.update(t)
            .where(t.c.id.in_(sa.bindparam("ids", expanding=True)))
            .values(published_at=sa.bindparam("now"))
        )
        self._lock_key = advisory_lock_key(table)
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.consecutive_failures = 0
        self.failed_passes = 0
        self.published_total = 0
        self.reconnects = 0

    # -- control -----------------------------------------------------------------------------

    def wake(self) -> None:
        """Ask for a pass now (call after committing rows)."""
        self._wake.set()

    def stop(self) -> None:
        """Make `run()` return after the pass in progress."""
        self._stopping.set()
        self._wake.set()

    def start(self, name: str) -> None:
        """Run in a background task until `shutdown()` (what a service does)."""
        self._task = asyncio.create_task(self.run(), name=name)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def shutdown(self, wait_seconds: float = 10.0) -> None:
        """Stop, and wait up to `wait_seconds` for the pass in progress to end; then cancel
        it (its rows stay unpublished and are sent by the next relay)."""
        self.stop()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, wait_seconds)
            except asyncio.CancelledError:
                pass
            except TimeoutError:
                self._log.warning("outbox_relay_cancelled", after_seconds=wait_seconds)
            self._task = None

    async def run(self) -> None:
        self._stopping.clear()
        self._log.info("outbox_relay_started")
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                count = await self.publish_pending()
            except Exception as exc:  # the relay must outlive any failure
                await self._after_failure(exc)
                continue
            self._after_success()
            await self._advance_ledger()
            if count < self._batch_size:
                await self._idle()
                if self._linger > 0:
                    await wait_event(self._stopping, self._linger)
        self._log.info("outbox_relay_stopped", published_total=self.published_total)

    # -- one pass ----------------------------------------------------------------------------

    async def publish_pending(self) -> int:
        """Publish up to `batch_size` unpublished rows; returns how many were marked published.

        Raises `OutboxPublishError` when some rows were not acknowledged (the acknowledged
        prefix of each key is still marked published), and database errors as they are.
        """
        if self._is_postgres:
            outcome, total = await self._pass_locked()
        else:
            outcome, total = await self._pass_unlocked()
        self.published_total += len(outcome.published)
        if outcome.out_of_order:
            self._log.error("outbox_key_order_at_risk", rows=outcome.out_of_order)
        if outcome.failed:
            raise OutboxPublishError(
                [r.id for r in outcome.failed],
                (r.topic for r in outcome.failed),
                total,
                outcome.error,
            )
        return len(outcome.published)

    async def _pass_locked(self) -> tuple[_Outcome, int]:
        # One transaction: lock, read, publish, mark. The lock is released on commit.
        async with self._engine.begin() as conn:
            locked = await conn.scalar(sa.select(sa.func.pg_try_advisory_xact_lock(self._lock_key)))
            if not locked:
                return _Outcome(), 0
            rows = await self._fetch(conn)
            outcome = await self._publish(rows)
            await self._mark(conn, outcome.published)
        return outcome, len(rows)

    async def _pass_unlocked(self) -> tuple[_Outcome, int]:
        # SQLite: never hold the (single) write lock while waiting on the broker.
        async with self._engine.begin() as conn:
            rows = await self._fetch(conn)
        outcome = await self._publish(rows)
        if outcome.published:
            async with self._engine.begin() as conn:
                await self._mark(conn, outcome.published)
        return outcome, len(rows)

    async def _fetch(self, conn: AsyncConnection) -> list[_Row]:
        result = await conn.execute(self._fetch_query)
        return [_Row(*r) for r in result.all()]

    async def _mark(self, conn: AsyncConnection, ids: Sequence[int]) -> None:
        if ids:
            now = self._clock().astimezone(UTC)
            await conn.execute(self._mark_query, {"ids": list(ids), "now": now})

    # -- publishing --------------------------------------------------------------------------

    async def _publish(self, rows: list[_Row]) -> _Outcome:
        if not rows:
            return _Outcome()
        futures: list[asyncio.Future[Any]] = []
        error: BaseException | None = None
        try:
            async with asyncio.timeout(self._publish_timeout):
                error = await self._enqueue(rows, futures)
                if futures:
                    await asyncio.wait(futures)
        except TimeoutError as exc:
            error = error or exc
        outcome = _settle(rows, futures)
        outcome.error = outcome.error or error
        if self._ledger is not None:
            for topic, row_id, partition, offset in outcome.landed:
                self._ledger.landed(row_id, topic, partition, offset)
        return outcome

    async def _enqueue(
        self, rows: list[_Row], futures: list[asyncio.Future[Any]]
    ) -> Exception | None:
        # Hand every record to the producer without waiting: one partition's records go out
        # in order, several partitions in parallel. Stop at the first refusal so that no
        # later record of a key can overtake an earlier one.
        for row in rows:
            try:
                future = await self._broker.publish(
                    row.value.encode("utf-8"),
                    row.topic,
                    key=row.key.encode("utf-8"),
                    headers={"event_id": row.event_id, "content-type": "application/json"},
                    correlation_id=row.event_id,
                    no_confirm=True,
                )
            except Exception as exc:  # reported as a failed pass
                return exc
            future.add_done_callback(_swallow_exception)
            futures.append(future)
        return None

    async def _advance_ledger(self) -> None:
        if self._ledger is None or not self._ledger.due():
            return
        try:
            await self._ledger.advance()
        except Exception as exc:  # the checkpoint only lags: the next try moves it further
            self._log.warning("outbox_checkpoint_failed", error=_describe(exc))

    # -- failure handling --------------------------------------------------------------------

    async def _after_failure(self, exc: Exception) -> None:
        self.consecutive_failures += 1
        self.failed_passes += 1
        delay = self._backoff()
        self._log.warning(
            "outbox_publish_failed",
            error=_describe(exc),
            attempt=self.consecutive_failures,
            retry_in=round(delay, 2),
            **_counts(exc),
        )
        if isinstance(exc, OutboxPublishError):
            await self._maybe_reconnect()
        await self._sleep(delay)

    def _after_success(self) -> None:
        if self.consecutive_failures:
            self._log.info("outbox_publish_recovered", after_failures=self.consecutive_failures)
        self.consecutive_failures = 0

    async def _maybe_reconnect(self) -> None:
        if self._reconnect_after <= 0:
            return
        due = self.consecutive_failures % self._reconnect_after == 0
        if not due and producer_connected(self._broker):
            return
        try:
            renewed = await self._reconnect()
        except Exception as exc:  # retried after the next failed pass
            self._log.warning("kafka_producer_reconnect_failed", error=_describe(exc))
            return
        if not renewed:
            return  # cluster unreachable: the current producer is kept
        self.reconnects += 1
        self._log.info("kafka_producer_reconnected", reconnects=self.reconnects)

    def _backoff(self) -> float:
        base = min(self._max_backoff, 0.2 * 2.0 ** (self.consecutive_failures - 1))
        return base * random.uniform(0.8, 1.0)  # jitter, not cryptography

    async def _sleep(self, seconds: float) -> None:
        # Backoff ignores wake(): new rows must not turn a broker outage into a busy loop.
        await wait_event(self._stopping, seconds)

    async def _idle(self) -> None:
        await wait_event(self._wake, self._poll_interval)


def _settle(rows: list[_Row], futures: list[asyncio.Future[Any]]) -> _Outcome:
    """Which rows count as published: acknowledged, and no earlier row of the key failed."""
    outcome = _Outcome()
    blocked: set[str] = set()
    for index, row in enumerate(rows):
        future = futures[index] if index < len(futures) else None
        acked = _succeeded(future)
        if acked and row.key not in blocked:
            outcome.published.append(row.id)
            metadata = future.result() if future is not None else None
            if metadata is not None and getattr(metadata, "offset", None) is not None:
                outcome.landed.append((row.topic, row.id, metadata.partition, metadata.offset))
            continue
        if acked:
            outcome.out_of_order += 1  # a later record of the key overtook a failed one
        else:
            outcome.error = outcome.error or _future_error(future)
        blocked.add(row.key)
        outcome.failed.append(row)
    return outcome


def _succeeded(future: asyncio.Future[Any] | None) -> bool:
    if future is None or not future.done() or future.cancelled():
        return False
    return future.exception() is None


def _future_error(future: asyncio.Future[Any] | None) -> BaseException | None:
    if future is None or not future.done() or future.cancelled():
        return None
    return future.exception()


def _swallow_exception(future: asyncio.Future[Any]) -> None:
    # Mark the exception as retrieved: a failed record is handled by the next pass.
    if not future.cancelled():
        future.exception()


def _describe(exc: BaseException) -> str:
    """Error class and, for Kafka errors only, the message (SQL errors may carry payloads)."""
    if isinstance(exc, OutboxPublishError):
        return f"{exc}: {_describe(exc.cause)}" if exc.cause else str(exc)
    if isinstance(exc, KafkaError):
        name, text = type(exc).__name__, str(exc)
        return (text if text.startswith(name) else f"{name}: {text}")[:300]
    if isinstance(exc, SQLAlchemyError):
        orig = getattr(exc, "orig", None)
        return f"{type(exc).__name__}({type(orig).__name__})" if orig else type(exc).__name__
    return type(exc).__name__


def _counts(exc: BaseException) -> dict[str, int | str]:
    if isinstance(exc, OutboxPublishError):
        return {
            "failed": len(exc.failed_ids),
            "rows": exc.total,
            "first_failed_id": exc.failed_ids[0],
            "last_failed_id": exc.failed_ids[-1],
            "topics": ",".join(exc.topics),
        }
    return {}
