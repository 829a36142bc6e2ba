"""A service's link to Kafka, written once for the three services: its consumer group, the
relay of its outbox, and the replay of that outbox after the embedded broker forgot it.

`start()` returns at once: joining a consumer group takes seconds (about 5 s on Tansu), and
nothing waits for it. Clerks can record dossiers meanwhile (the outbox holds their events);
the relay starts when the producer is connected, and `/readyz` reports `{service}.consumers`
false until the group is joined. A broker that cannot be reached at start is tried again
with a growing pause, without stopping the service.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from typing import Protocol

import sqlalchemy as sa
import structlog
from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.runtime.consumer import (
    BATCH_MAX_RECORDS,
    SESSION_TIMEOUT_SECONDS,
    Handlers,
    subscribe,
)
from services.core.runtime.housekeeping import Housekeeping
from services.core.runtime.kafka import make_broker
from services.core.runtime.metrics import ServiceMetrics
from services.core.runtime.outbox import OutboxRelay, purge_published
from services.core.runtime.replay import Replay, read_checkpoint, rewind_unconsumed
from services.core.runtime.settings import Settings

log = structlog.get_logger(__name__)

MAX_CONNECT_BACKOFF = 10.0
# A relay woken after an idle moment waits this long before its pass: at 200 receipts a
# second, four or five share a pass instead of one each, for 20 ms more on the way to the
# citizen's SMS (bench/README.md, "Receipt to SMS").
RELAY_LINGER_SECONDS = 0.02


class MessagingService(Protocol):
    """What a service hands the runtime: its name, database, broker address, consumer group,
    the most records its consumer applies at once, and topic → handler map, metrics,
    settings, and the replay and housekeeping it runs."""

    name: str
    engine: AsyncEngine
    kafka_bootstrap: str | None
    consumer_group: str
    consumer_batch: int
    metrics: ServiceMetrics
    settings: Settings
    replay: Replay | None
    housekeeping: Housekeeping

    def handlers(self) -> Handlers: ...


class Messaging:
    @classmethod
    def of(
        cls, service: MessagingService, outbox: sa.Table, checkpoints: sa.Table
    ) -> Messaging | None:
        """The service's link to Kafka, or None for a service run without a broker."""
        if not service.kafka_bootstrap:
            return None
        return cls(
            service.name,
            service.engine,
            bootstrap=service.kafka_bootstrap,
            group=service.consumer_group,
            handlers=service.handlers(),
            max_records=service.consumer_batch,
            outbox=outbox,
            checkpoints=checkpoints,
            metrics=service.metrics,
            poll_interval=service.settings.outbox_poll_seconds,
            replay=service.replay,
            housekeeping=service.housekeeping,
            outbox_keep=timedelta(days=service.settings.outbox_keep_days),
            session_timeout=service.settings.kafka_session_timeout_seconds,
        )

    def __init__(
        self,
        service: str,
        engine: AsyncEngine,
        *,
        bootstrap: str,
        group: str,
        handlers: Handlers,
        outbox: sa.Table,
        checkpoints: sa.Table,
        metrics: ServiceMetrics,
        poll_interval: float,
        replay: Replay | None = None,
        housekeeping: Housekeeping | None = None,
        outbox_keep: timedelta = timedelta(days=7),
        session_timeout: float = SESSION_TIMEOUT_SECONDS,
        max_records: int = BATCH_MAX_RECORDS,
    ) -> None:
        self.service = service
        self._engine = engine
        self._outbox = outbox
        self._checkpoints = checkpoints
        self._replay = replay
        self.broker: KafkaBroker = make_broker(bootstrap, client_id=f"motcua-{service}")
        if handlers:
            subscribe(
                self.broker,
                group,
                handlers,
                metrics=metrics,
                session_timeout=session_timeout,
                max_records=max_records,
            )
        ledger = replay.ledger(engine, outbox, checkpoints) if replay else None
        self.relay = OutboxRelay(
            engine,
            outbox,
            self.broker,
            poll_interval=poll_interval,
            ledger=ledger,
            linger=RELAY_LINGER_SECONDS,
        )
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        if housekeeping is not None:

            async def purge(now: datetime) -> int:
                return await self.purge_outbox(now, outbox_keep)

            housekeeping.add("outbox_rows_purged", purge)

    def wake(self) -> None:
        """Ask the relay for a pass (after committing outbox rows)."""
        self.relay.wake()

    async def start(self) -> None:
        if self._replay is not None:  # before the relay runs: it must see the rewound rows
            await rewind_unconsumed(self._engine, self._checkpoints, self._outbox)
        self._task = asyncio.create_task(self._connect(), name=f"{self.service}-kafka-connect")

    async def _connect(self) -> None:
        attempt = 0
        while True:
            try:
                await self.broker.connect()  # the producer: the relay can publish from now
                if not self.relay.running:
                    self.relay.start(name=f"{self.service}-outbox-relay")
                await self.broker.start()  # the subscriber: returns once the group is joined
                break
            except Exception as exc:  # the broker may come later: readiness says so meanwhile
                attempt += 1
                delay = min(MAX_CONNECT_BACKOFF, 0.5 * 2**attempt)
                log.warning(
                    "kafka_connect_failed",
                    service=self.service,
                    error_class=type(exc).__name__,
                    attempt=attempt,
                    retry_in=delay,
                )
                await asyncio.sleep(delay)
        self.connected.set()
        log.info("kafka_consumers_joined", service=self.service)

    async def purge_outbox(self, now: datetime, keep: timedelta) -> int:
        """Housekeeping: forget rows published longer than `keep` ago (never one that a
        broker that forgets may still need, see `replay.py`)."""
        through = None
        if self._replay is not None:
            through = await read_checkpoint(self._engine, self._checkpoints, self._outbox)
        return await purge_published(
            self._engine, self._outbox, keep, now=now, consumed_through=through
        )

    async def stop(self, join_wait: float = 10.0) -> None:
        if self._task is not None and not self._task.done():
            # A join cut off halfway leaves a member the broker waits for: the next member
            # of the group then hangs in its own join for tens of seconds (seen on Tansu).
            # So a join under way may finish first (a few seconds), and then leave cleanly.
            await asyncio.wait({self._task}, timeout=join_wait)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.relay.shutdown()
        await self.broker.stop()

    async def readiness(self) -> dict[str, bool]:
        """`{service}.broker` (the broker answers) and `{service}.consumers` (joined)."""
        joined = self.connected.is_set()
        broker = joined and await self.broker.ping(timeout=2.0)
        return {f"{self.service}.broker": broker, f"{self.service}.consumers": joined}
