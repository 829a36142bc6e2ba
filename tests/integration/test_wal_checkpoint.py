"""A service's SQLite file has its WAL copied back by a thread of its own
(core.runtime.wal_checkpoint), not by the commit that runs on the event loop."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from services.core.runtime.database import create_engine
from services.core.runtime.sqlite_inline import InlineConnection
from services.core.runtime.wal_checkpoint import BACKSTOP_PAGES, WalCheckpointer
from tests.fixtures.broker import wait_for

metadata = sa.MetaData()
notes = sa.Table(
    "notes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("text", sa.Text, nullable=False),
)


async def inline_of(engine: AsyncEngine) -> InlineConnection:
    async with engine.connect() as conn:
        inline = (await conn.get_raw_connection()).driver_connection
    assert isinstance(inline, InlineConnection)
    return inline


def rows_in_the_file_alone(path: Path) -> int:
    """The rows the database file holds by itself, its WAL left unread."""
    reader = sqlite3.connect(f"{path.resolve().as_uri()}?immutable=1", uri=True)
    try:
        return int(reader.execute("SELECT count(*) FROM notes").fetchone()[0])
    finally:
        reader.close()


async def first_row_checkpointed(engine: AsyncEngine) -> WalCheckpointer:
    """The table made and a row written; returns the engine's checkpointer once it has
    checkpointed them."""
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        await conn.execute(notes.insert(), {"text": "first"})
    checkpointer = (await inline_of(engine)).checkpointer
    await wait_for(
        lambda: _async(checkpointer.passes >= 1 and not checkpointer.pending),
        timeout=10,
        message="the first writes checkpointed",
    )
    return checkpointer


async def test_the_thread_copies_committed_pages_into_the_file(tmp_path: Path) -> None:
    path = tmp_path / "service.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        checkpointer = await first_row_checkpointed(engine)
        assert rows_in_the_file_alone(path) == 1
        passes = checkpointer.passes

        async with engine.begin() as conn:
            await conn.execute(notes.insert(), [{"text": "x" * 500} for _ in range(200)])

        async def copied() -> bool:
            last = checkpointer.last
            return checkpointer.passes > passes and last is not None and last[1] == last[2]

        await wait_for(copied, timeout=10, message="the WAL copied back")
        assert rows_in_the_file_alone(path) == 201
        # The writing connection checkpoints by itself only past the backstop.
        async with engine.connect() as conn:
            pages = (await conn.exec_driver_sql("PRAGMA wal_autocheckpoint")).scalar_one()
        assert pages == BACKSTOP_PAGES
    finally:
        await engine.dispose()


async def test_a_transaction_that_only_read_does_not_wake_the_thread(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'service.db'}")
    try:
        checkpointer = await first_row_checkpointed(engine)
        async with engine.begin() as conn:
            assert (await conn.execute(sa.select(sa.func.count()).select_from(notes))).scalar() == 1
        assert not checkpointer.pending
    finally:
        await engine.dispose()


async def test_the_thread_ends_with_its_connection(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'service.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    checkpointer = (await inline_of(engine)).checkpointer
    assert checkpointer.alive
    await engine.dispose()
    await wait_for(lambda: _async(not checkpointer.alive), timeout=10, message="thread ended")


async def test_a_failing_checkpoint_is_told_once_and_tried_again(tmp_path: Path) -> None:
    path = tmp_path / "later.db"  # not there yet: the checkpoint cannot open it
    checkpointer = WalCheckpointer(path, every=0.01)
    checkpointer.start()
    try:
        with capture_logs() as logs:
            checkpointer.committed()
            await wait_for(lambda: _async(not checkpointer.pending), timeout=10)
            checkpointer.committed()
            await wait_for(lambda: _async(not checkpointer.pending), timeout=10)
            assert checkpointer.passes == 0
            assert not path.exists()  # not made, empty, by the checkpointer

            writer = sqlite3.connect(path)
            writer.execute("PRAGMA journal_mode=WAL")
            writer.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
            writer.commit()
            checkpointer.committed()
            await wait_for(lambda: _async(checkpointer.passes == 1), timeout=10)
            writer.close()
        events = [line["event"] for line in logs]
        assert events == ["wal_checkpoint_failed", "wal_checkpoint_recovered"]
        assert logs[0]["file"] == "later.db" and logs[0]["error"] == "OperationalError"
    finally:
        checkpointer.stop()


async def _async(value: bool) -> bool:
    return value
