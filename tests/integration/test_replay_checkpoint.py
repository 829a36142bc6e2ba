"""The consumed checkpoint of an outbox (services/core/runtime/replay.py), on real SQLite:
it moves only as far as every reader group committed, and a start rewinds exactly the rows
after it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiokafka import TopicPartition
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.runtime.database import create_engine
from services.core.runtime.outbox import outbox_row, outbox_table, purge_published
from services.core.runtime.replay import (
    ConsumptionLedger,
    checkpoint_table,
    read_checkpoint,
    rewind_unconsumed,
)

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
metadata = sa.MetaData()
outbox = outbox_table(metadata, "demo")
checkpoints = checkpoint_table(metadata, "demo")
READERS = {"dossiers": {"tracker", "notifier"}, "calendar": {"tracker"}, "unread": set()}


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


class Offsets:
    """Committed offsets as a test sets them: group → (topic, partition) → offset."""

    def __init__(self) -> None:
        self.by_group: dict[str, dict[TopicPartition, int]] = {}

    def commit(self, group: str, topic: str, partition: int, offset: int) -> None:
        self.by_group.setdefault(group, {})[TopicPartition(topic, partition)] = offset

    async def committed(
        self, group: str, partitions: Sequence[TopicPartition]
    ) -> Mapping[TopicPartition, int]:
        known = self.by_group.get(group, {})
        return {tp: known.get(tp, 0) for tp in partitions}


async def add_rows(engine: AsyncEngine, topics: Sequence[str]) -> list[int]:
    async with engine.begin() as conn:
        for n, topic in enumerate(topics):
            await conn.execute(
                outbox.insert(), outbox_row(f"e{n}-{topic}", topic, f"k{n}", "{}", NOW)
            )
        ids = (await conn.execute(sa.select(outbox.c.id).order_by(outbox.c.id))).scalars()
        return list(ids)


async def publish(engine: AsyncEngine, ledger: ConsumptionLedger, landed: list[tuple]) -> None:  # type: ignore[type-arg]
    """What the relay does: note where each row landed, then mark it published."""
    for row_id, topic, partition, offset in landed:
        ledger.landed(row_id, topic, partition, offset)
    async with engine.begin() as conn:
        ids = [row[0] for row in landed]
        await conn.execute(sa.update(outbox).where(outbox.c.id.in_(ids)).values(published_at=NOW))


def ledger_for(engine: AsyncEngine, offsets: Offsets) -> ConsumptionLedger:
    return ConsumptionLedger(
        engine, outbox, checkpoints, READERS, offsets.committed, clock=lambda: NOW, interval=0
    )


async def test_the_checkpoint_waits_for_every_reader_group(engine: AsyncEngine) -> None:
    offsets = Offsets()
    ledger = ledger_for(engine, offsets)
    a, b, c = await add_rows(engine, ["dossiers", "dossiers", "calendar"])
    landed = [(a, "dossiers", 0, 0), (b, "dossiers", 1, 0), (c, "calendar", 0, 0)]
    await publish(engine, ledger, landed)
    assert await ledger.advance() == 0  # nobody committed anything

    offsets.commit("tracker", "dossiers", 0, 1)  # the tracker applied row a, the notifier not
    assert await ledger.advance() == 0
    offsets.commit("notifier", "dossiers", 0, 1)
    assert await ledger.advance() == a
    offsets.commit("tracker", "calendar", 0, 1)  # c is consumed, but b is not yet
    assert await ledger.advance() == a
    offsets.commit("tracker", "dossiers", 1, 1)
    offsets.commit("notifier", "dossiers", 1, 1)
    assert await ledger.advance() == c
    assert await read_checkpoint(engine, checkpoints, outbox) == c  # it is durable


async def test_an_unpublished_row_holds_the_checkpoint(engine: AsyncEngine) -> None:
    offsets = Offsets()
    ledger = ledger_for(engine, offsets)
    a, b, c = await add_rows(engine, ["unread", "unread", "unread"])
    await publish(engine, ledger, [(a, "unread", 0, 0), (c, "unread", 0, 1)])  # b failed
    assert await ledger.advance() == a  # a topic nobody reads is consumed once acknowledged
    await publish(engine, ledger, [(b, "unread", 1, 0)])
    assert await ledger.advance() == c


async def test_a_start_rewinds_what_was_published_after_the_checkpoint(
    engine: AsyncEngine,
) -> None:
    offsets = Offsets()
    ledger = ledger_for(engine, offsets)
    ids = await add_rows(engine, ["calendar"] * 5)
    await publish(engine, ledger, [(i, "calendar", 0, n) for n, i in enumerate(ids[:4])])
    offsets.commit("tracker", "calendar", 0, 2)  # rows 0 and 1 applied; 2, 3 lost; 4 never sent
    assert await ledger.advance() == ids[1]

    assert await rewind_unconsumed(engine, checkpoints, outbox) == 2
    async with engine.connect() as conn:
        unpublished = await conn.execute(
            sa.select(outbox.c.id).where(outbox.c.published_at.is_(None)).order_by(outbox.c.id)
        )
        assert list(unpublished.scalars()) == ids[2:]


async def test_a_table_with_no_checkpoint_replays_everything_it_kept(
    engine: AsyncEngine,
) -> None:
    ids = await add_rows(engine, ["calendar"] * 3)
    async with engine.begin() as conn:
        await conn.execute(sa.update(outbox).values(published_at=NOW))
    assert await rewind_unconsumed(engine, checkpoints, outbox) == len(ids)


async def test_housekeeping_keeps_rows_that_may_have_to_be_published_again(
    engine: AsyncEngine,
) -> None:
    ids = await add_rows(engine, ["calendar"] * 4)
    async with engine.begin() as conn:
        await conn.execute(sa.update(outbox).values(published_at=NOW))
    later = NOW + timedelta(days=30)
    purged = await purge_published(
        engine, outbox, timedelta(days=7), now=later, consumed_through=ids[1]
    )
    assert purged == 2
    async with engine.connect() as conn:
        kept = await conn.execute(sa.select(outbox.c.id).order_by(outbox.c.id))
        assert list(kept.scalars()) == ids[2:]
