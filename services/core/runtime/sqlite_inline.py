"""SQLite for SQLAlchemy's async engine without a thread hop per statement.

Why. aiosqlite runs each statement on a thread of its own and hands the result back through
the event loop: per statement a queue put, a thread wake-up, the GIL handed over and back
and a loop iteration, for statements that take microseconds on a local file. Under load that
was about 30 % of the intake's samples on SQLite (bench/README.md, "Intake throughput"),
and it is paid per statement, whatever the batching above it. Here the statements run in
place, on the loop's thread: the connection object below quacks like aiosqlite's, and its
coroutines finish without suspending, so SQLAlchemy's adapter gets each result at once.

What it costs, and how it is bounded. A statement holds the loop while it runs:
- the write lock is taken up front (BEGIN IMMEDIATE, core.runtime.database) and each
  process has one connection per file, so inside a process nothing waits for it; another
  process (`motcua token create`, a second replica) may hold it for a moment, and this
  connection waits at most `BUSY_TIMEOUT_MS` for it before the statement fails as "database
  is locked", a transient error (the API answers 503 with Retry-After, a consumer retries);
- a commit in WAL mode with synchronous=NORMAL appends to the WAL without waiting for the
  disk; only the commit that crosses SQLite's checkpoint threshold (1,000 pages) copies the
  WAL back and waits for the disk. Measured in `motcua up` at 32-64 clerks on 2026-12-03:
  6-8 such commits a second in the intake, 10-20 ms each. So the connection leaves that work
  to a thread of its own (core.runtime.wal_checkpoint), which copies the WAL back while the
  loop goes on, and checkpoints in place only past a much larger WAL, as a backstop.
"""

from __future__ import annotations

import sqlite3
import weakref
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from services.core.runtime.wal_checkpoint import BACKSTOP_PAGES, WalCheckpointer

BUSY_TIMEOUT_MS = 200  # longest a statement holds the loop waiting for another process's lock
# Prepared statements a connection keeps (sqlite3's default is 128). A batch's `IN (...)` and
# multi-row VALUES have as many parameters as the batch has records, so each size is a
# statement text of its own, kept prepared (about 60 KiB for one of 250 ids): with
# 128 kept, under sustained load the tracker's and the notifier's SQLite memory climbed in
# steps to 37 MiB as larger batches came (bench/README.md, "Intake throughput", memory).
# A service's fixed statements, used at every batch, are a few dozen and stay among the
# recently used; the batch-sized ones are cheap to prepare again.
CACHED_STATEMENTS = 32


class InlineCursor:
    """An aiosqlite-like cursor over a sqlite3 cursor: its coroutines never suspend."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Any = None) -> InlineCursor:
        if parameters is None:
            self._cursor.execute(sql)
        else:
            self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> InlineCursor:
        self._cursor.executemany(sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size if size is not None else self._cursor.arraysize)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    async def setinputsizes(self, *_sizes: Any) -> None:
        return None


class _InPlace:
    """aiosqlite's queue of calls for its thread (`_tx`), which SQLAlchemy's adapter uses
    to set `isolation_level`: here the call is made at once and its future resolved."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._conn = connection

    def put_nowait(self, item: tuple[Any, Any]) -> None:
        future, function = item
        try:
            result = function()
        except Exception as exc:
            if future is not None:
                future.set_exception(exc)
            return
        if future is not None:
            future.set_result(result)


class InlineConnection:
    """An aiosqlite-like connection whose statements run on the caller's thread."""

    def __init__(self, connection: sqlite3.Connection, checkpointer: WalCheckpointer) -> None:
        self._conn = connection
        self._connection: sqlite3.Connection | None = connection  # aiosqlite's "open" flag
        self._tx = _InPlace(connection)
        self.checkpointer = checkpointer
        self._changes = connection.total_changes
        # A connection dropped without being closed does not leave its thread behind.
        weakref.finalize(self, checkpointer.stop)

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> InlineCursor:
        return InlineCursor(self._conn.cursor())

    async def execute(self, sql: str, parameters: Any = None) -> InlineCursor:
        return await self.cursor().execute(sql, parameters)

    async def commit(self) -> None:
        self._conn.commit()
        changes = self._conn.total_changes
        if changes != self._changes:
            self._changes = changes  # a transaction that only read leaves the WAL as it was
            self.checkpointer.committed()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:  # what SQLAlchemy calls to drop a connection without waiting
        if self._connection is not None:
            self._connection = None
            self._conn.close()
            self.checkpointer.stop()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)


def inline_creator(path: Path) -> Any:
    """An `async_creator` for `create_async_engine`: a new InlineConnection on `path`, its
    WAL checkpointed by a thread of its own."""

    async def connect() -> InlineConnection:
        connection = sqlite3.connect(
            str(path),
            timeout=BUSY_TIMEOUT_MS / 1000,
            check_same_thread=False,
            cached_statements=CACHED_STATEMENTS,
        )
        # The thread checkpoints; a commit only past the backstop (core.runtime.wal_checkpoint).
        connection.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
        checkpointer = WalCheckpointer(path)
        checkpointer.start()
        return InlineConnection(connection, checkpointer)

    return connect


__all__: Sequence[str] = ["BUSY_TIMEOUT_MS", "InlineConnection", "inline_creator"]
