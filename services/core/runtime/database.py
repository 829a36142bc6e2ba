"""Async SQLAlchemy engines: one per service, created once per process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pydantic_core
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from services.core.runtime.sqlite_inline import BUSY_TIMEOUT_MS, inline_creator

# SQLSTATE classes where the database failed, not the statement: connection exceptions (08),
# serialization failure and deadlock (40001, 40P01), insufficient resources (53), and the
# server shutting down or not yet accepting connections (57P01-57P03).
_TRANSIENT_SQLSTATES = ("08", "40001", "40P01", "53", "57P")


def is_transient_database_error(exc: BaseException) -> bool:
    """Whether the same statement may succeed if tried again later: a dropped or refused
    connection, a database restarting, a lost serialization race, every pooled connection
    busy (an overload); never a bad statement."""
    if isinstance(exc, PoolTimeout):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError):
        return True
    state = _sqlstate(exc)
    return state is not None and state.startswith(_TRANSIENT_SQLSTATES)


def describe_database_error(exc: DBAPIError) -> str:
    """The driver's error class and SQLSTATE, never the statement or its values."""
    state = _sqlstate(exc)
    return f"database error {type(exc.orig).__name__}" + (f" {state}" if state else "")


def _sqlstate(exc: DBAPIError) -> str | None:
    for candidate in (exc.orig, getattr(exc.orig, "__cause__", None)):
        state = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(state, str):
            return state
    return None


def _utc_offset(value: datetime) -> timedelta:
    """The instant's offset from UTC; a naive time is refused, it names no instant."""
    offset = value.utcoffset()
    if offset is None:
        raise ValueError("UtcDateTime needs a timezone-aware datetime")
    return offset


class UtcDateTime(sa.TypeDecorator[datetime]):
    """An instant, stored in UTC and read back timezone-aware (UTC).

    PostgreSQL keeps offsets anyway; SQLite drops them, so without this a +07:00 time and a
    UTC time would be compared as wall clocks and ranges and ``<= now`` would be wrong.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        # PostgreSQL's way in; SQLite's is `bind_processor`, which does not call this.
        if value is None:
            return None
        return (value - _utc_offset(value)).replace(tzinfo=UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def bind_processor(self, dialect: Any) -> Any:
        """On SQLite, the stored text in one step: the same text as `process_bind_param`
        followed by SQLAlchemy's SQLite DATETIME processor ("YYYY-MM-DD HH:MM:SS.ffffff"),
        which formats through a dict of eight fields. A consumer binds several instants a
        record: the two steps were 8 % of the tracker and notifier's samples under load."""
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            utc = value - _utc_offset(value)
            return utc.replace(tzinfo=None).isoformat(" ", "microseconds")

        return process


def dialect_insert(conn: AsyncConnection, table: sa.Table) -> Any:
    """INSERT with the dialect's ON CONFLICT clauses (PostgreSQL or SQLite)."""
    return dialect_insert_for(conn.dialect.name, table)


def dialect_insert_for(dialect_name: str, table: sa.Table) -> Any:
    """`dialect_insert` for a dialect named in advance (a statement built once)."""
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    return dialect.insert(table)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL; None for another database or SQLite in memory."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return None if parsed.database == ":memory:" else Path(parsed.database)


def create_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    """An engine whose errors never quote a statement's parameters: they are citizens'
    names, phones and addresses, and an error may end up in a log."""
    common: dict[str, Any] = {"hide_parameters": True, "json_serializer": json_text}
    if is_sqlite(url):
        path = sqlite_file(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        # One connection: SQLite has one writer, and every transaction here takes the write
        # lock up front (BEGIN IMMEDIATE). Requests queue for the connection in order instead
        # of polling the lock in SQLite's busy handler, whose growing sleeps made the p99 of
        # four clerks a second (bench/README.md, "Intake throughput").
        if path is not None:
            # Statements run in place, without aiosqlite's thread hop (core.runtime.sqlite_inline).
            engine = create_async_engine(
                url,
                async_creator=inline_creator(path),
                pool_size=1,
                max_overflow=0,
                **common,
            )
        else:
            engine = create_async_engine(url, connect_args={"timeout": 30}, **common)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin_immediate)
        return engine
    # No pool_pre_ping: it cost a round trip per transaction. A pooled connection that the
    # server dropped fails its statement with a transient error, which the API answers 503
    # (the client retries) and a consumer retries; the pool then discards that connection.
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, **common)


def json_text(value: Any) -> str:
    """A JSON column's value as text, by pydantic's encoder: the json module's took about
    20 µs for a tracked dossier's state, written at every event. Compact and UTF-8; read
    back by the json module like the rows written before."""
    return pydantic_core.to_json(value).decode()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer; the driver's own transaction handling is
    # switched off so that BEGIN IMMEDIATE below takes the write lock up front instead of
    # failing with "database is locked" halfway through a request.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # A lock another process holds (the CLI, another replica) is waited for this long at most:
    # the statement holds the event loop meanwhile (core.runtime.sqlite_inline).
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.close()


def _sqlite_begin_immediate(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


@asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.begin() as conn:
        yield conn


def moves_forward(version: sa.ColumnElement[Any], rank: sa.ColumnElement[Any], mark: Any) -> Any:
    """SQL for "the stored (version, rank) is not newer than ``mark``'s": a read model of the
    tracker's deadline events only moves forward (core.domain.deadline_projection's
    ``moves_forward``, the same order for rows read into memory)."""
    return sa.or_(version < mark.version, sa.and_(version == mark.version, rank <= mark.rank))
