"""Nothing lost on a broker that forgets: replaying the outbox from a consumed checkpoint.

The embedded broker of `motcua up` keeps its log in memory, so a stop (graceful or
`kill -9`) loses every record that was published but not yet consumed, and the consumer
groups' offsets with them. The databases are the durable truth: every event is still an
outbox row. So, for a broker that forgets:

- while running, the relay notes where each published row landed (partition and offset);
  every second or so it reads the committed offsets of every consumer group that reads the
  row's topic, and moves the table's checkpoint, `consumed_through`, to the highest id up to
  which every row has been applied by every one of those groups (a committed offset means
  the handler returned: `consumer.py` commits only then);
- on start, before the relay runs, every row after the checkpoint that was marked published
  is marked unpublished again, so the relay publishes it to the fresh broker; the consumers
  de-duplicate on `event_id`, which absorbs the rows that had in fact been applied.

The checkpoint only ever lags behind the truth (a row counts as consumed only once every
group committed past it), so a stop at any moment replays too much, never too little. What
a start costs is one UPDATE and the re-publication of the rows since the last checkpoint:
in a quiet office nothing, under load about a second's worth of events.

A durable Kafka keeps its records and offsets, so the production shape does not use this.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy.ext.asyncio import AsyncEngine

log = structlog.get_logger(__name__)

Subscriptions = Mapping[str, Collection[str]]  # topic → the consumer groups that read it
Committed = Callable[[str, Sequence[TopicPartition]], Awaitable[Mapping[TopicPartition, int]]]


def checkpoint_table(metadata: sa.MetaData, prefix: str) -> sa.Table:
    """`{prefix}_outbox_checkpoint`: the id up to which every outbox row was consumed."""
    return sa.Table(
        f"{prefix}_outbox_checkpoint",
        metadata,
        sa.Column("outbox", sa.String(64), primary_key=True),
        sa.Column(
            "consumed_through",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            nullable=False,
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


async def read_checkpoint(engine: AsyncEngine, checkpoints: sa.Table, outbox: sa.Table) -> int:
    """The table's checkpoint; 0 (replay everything still kept) when none was written."""
    query = sa.select(checkpoints.c.consumed_through).where(checkpoints.c.outbox == outbox.name)
    async with engine.connect() as conn:
        value = await conn.scalar(query)
    return int(value or 0)


async def rewind_unconsumed(engine: AsyncEngine, checkpoints: sa.Table, outbox: sa.Table) -> int:
    """Mark every row after the checkpoint unpublished again, so that the relay publishes it
    to a broker that forgot it; returns how many. Call before the relay starts."""
    through = await read_checkpoint(engine, checkpoints, outbox)
    query = (
        sa.update(outbox)
        .where(outbox.c.id > through, outbox.c.published_at.is_not(None))
        .values(published_at=None)
    )
    async with engine.begin() as conn:
        rewound = int((await conn.execute(query)).rowcount or 0)
    log.info("outbox_rewound", outbox=outbox.name, consumed_through=through, rows=rewound)
    return rewound


@dataclass(frozen=True, slots=True)
class _Landed:
    topic: str
    partition: int
    offset: int


@dataclass(slots=True)
class ConsumptionLedger:
    """Where this process published each outbox row, until every reader has consumed it.

    Fed by the relay (`landed`), advanced by `advance()`. Rows published before this process
    started are not here; `rewind_unconsumed` made them unpublished, so they pass through
    `landed` again.
    """

    engine: AsyncEngine
    outbox: sa.Table
    checkpoints: sa.Table
    readers: Subscriptions
    committed: Committed
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    interval: float = 1.0
    _landed: dict[int, _Landed] = field(default_factory=dict)
    _through: int | None = None
    _next_at: float = 0.0

    def landed(self, row_id: int, topic: str, partition: int, offset: int) -> None:
        """The broker acknowledged row `row_id` at this partition and offset. Called before
        the row is marked published, so a published row is always either here or behind
        the checkpoint."""
        self._landed[row_id] = _Landed(topic, partition, offset)

    def due(self) -> bool:
        return time.monotonic() >= self._next_at

    async def advance(self) -> int:
        """Move the checkpoint as far as every reader has consumed; returns it."""
        self._next_at = time.monotonic() + self.interval
        if self._through is None:
            self._through = await read_checkpoint(self.engine, self.checkpoints, self.outbox)
        # The order of the reads matters: the table first (a row marked published after it
        # counts as unpublished here), the ledger next (it holds every row marked before),
        # the offsets last (they only grow).
        first_unpublished, last_id = await self._table_bounds()
        landed = dict(self._landed)
        consumed = await self._consumed_ids(landed)
        pending = [row_id for row_id in landed if row_id not in consumed]
        if first_unpublished is not None:
            pending.append(first_unpublished)
        through = min(pending) - 1 if pending else last_id
        for row_id in [r for r in self._landed if r <= through]:
            del self._landed[row_id]
        if through > self._through:
            await self._write(through)
            self._through = through
        return self._through

    async def _table_bounds(self) -> tuple[int | None, int]:
        t = self.outbox
        after = self._through or 0
        query = sa.select(
            sa.select(sa.func.min(t.c.id))
            .where(t.c.id > after, t.c.published_at.is_(None))
            .scalar_subquery(),
            sa.select(sa.func.max(t.c.id)).scalar_subquery(),
        )
        async with self.engine.connect() as conn:
            first_unpublished, last_id = (await conn.execute(query)).one()
        return first_unpublished, int(last_id or 0)

    async def _consumed_ids(self, landed: Mapping[int, _Landed]) -> set[int]:
        by_group: dict[str, list[TopicPartition]] = {}
        for tp in {TopicPartition(r.topic, r.partition) for r in landed.values()}:
            for group in self.readers.get(tp.topic, ()):
                by_group.setdefault(group, []).append(tp)
        # A partition's floor: the lowest offset committed by the groups that read it. A
        # partition nobody reads has none: its rows count as consumed once acknowledged.
        floor: dict[TopicPartition, int] = {}
        for group, tps in by_group.items():
            offsets = await self.committed(group, tps)
            for tp in tps:
                floor[tp] = min(floor.get(tp, offsets.get(tp, 0)), offsets.get(tp, 0))
        return {
            row_id
            for row_id, r in landed.items()
            if r.offset < floor.get(TopicPartition(r.topic, r.partition), r.offset + 1)
        }

    async def _write(self, through: int) -> None:
        c = self.checkpoints
        now = self.clock().astimezone(UTC)
        async with self.engine.begin() as conn:
            updated = await conn.execute(
                sa.update(c)
                .where(c.c.outbox == self.outbox.name)
                .values(consumed_through=through, updated_at=now)
            )
            if not updated.rowcount:
                await conn.execute(
                    sa.insert(c).values(
                        outbox=self.outbox.name, consumed_through=through, updated_at=now
                    )
                )


class GroupOffsets:
    """Reads consumer groups' committed offsets: one idle client per group, none of which
    joins its group (aiokafka's admin client cannot read them from Tansu)."""

    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap
        self._clients: dict[str, AIOKafkaConsumer] = {}
        self._lock = asyncio.Lock()

    async def committed(
        self, group: str, partitions: Sequence[TopicPartition]
    ) -> Mapping[TopicPartition, int]:
        client = await self._client(group)
        offsets: dict[TopicPartition, int] = {}
        for tp in partitions:
            value = await client.committed(tp)
            offsets[tp] = int(value) if value is not None else 0
        return offsets

    async def _client(self, group: str) -> AIOKafkaConsumer:
        async with self._lock:
            client = self._clients.get(group)
            if client is None:
                client = AIOKafkaConsumer(
                    bootstrap_servers=self._bootstrap,
                    group_id=group,
                    client_id=f"motcua-offsets-{group}",
                    enable_auto_commit=False,
                )
                await client.start()
                self._clients[group] = client
            return client

    async def close(self) -> None:
        async with self._lock:
            for client in self._clients.values():
                with contextlib.suppress(Exception):
                    await client.stop()
            self._clients.clear()


@dataclass(frozen=True)
class Replay:
    """What a service needs to survive a broker that forgets: who reads each topic, and
    where to read the groups' offsets. Handed to the services by `motcua up`."""

    readers: Subscriptions
    offsets: GroupOffsets

    def ledger(
        self, engine: AsyncEngine, outbox: sa.Table, checkpoints: sa.Table, **options: Any
    ) -> ConsumptionLedger:
        return ConsumptionLedger(
            engine, outbox, checkpoints, self.readers, self.offsets.committed, **options
        )
