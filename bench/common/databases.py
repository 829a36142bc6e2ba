"""The benchmarks' databases: a PostgreSQL database of their own (created, migrated, emptied,
dropped) or SQLite files in a folder, and the rows counted in them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from services.core.runtime.database import create_engine, sqlite_file
from services.core.runtime.migrations import upgrade_async
from services.core.runtime.settings import ServiceName
from services.notifier.adapters import tables as nt

DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/motcua_bench"


CONNECT_TIMEOUT = 10  # seconds


def asyncpg_dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def without_password(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


def bench_database_name(url: str) -> str:
    """The URL's database, which must be one of its own: the benchmarks empty tables."""
    name = make_url(url).database
    if not name or "bench" not in name:
        raise ValueError(f"refusing to empty {name!r}: give the benchmarks a bench database")
    return name


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def ensure_database(url: str) -> None:
    """Create the URL's database (from the server's `postgres` database) if missing."""
    name = bench_database_name(url)
    conn = await asyncpg.connect(asyncpg_dsn(url, "postgres"), timeout=CONNECT_TIMEOUT)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await conn.execute(f"CREATE DATABASE {_quoted(name)}")
    finally:
        await conn.close()


async def drop_database(url: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url, "postgres"), timeout=CONNECT_TIMEOUT)
    try:
        name = _quoted(bench_database_name(url))
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()


async def fresh_postgres(url: str, services: Sequence[ServiceName]) -> None:
    """The bench database with the services' tables migrated and empty."""
    await ensure_database(url)
    for service in services:
        await upgrade_async(service, url)
    conn = await asyncpg.connect(asyncpg_dsn(url), timeout=CONNECT_TIMEOUT)
    try:
        names = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        own = [r["tablename"] for r in names if r["tablename"].startswith(tuple(services))]
        if own:
            await conn.execute(f"TRUNCATE {', '.join(map(_quoted, own))} RESTART IDENTITY")
    finally:
        await conn.close()


def sqlite_url(folder: Path, service: ServiceName) -> str:
    return f"sqlite+aiosqlite:///{(folder / f'{service}.db').resolve()}"


async def fresh_sqlite(folder: Path, services: Sequence[ServiceName]) -> dict[str, str]:
    """A SQLite file per service in a new folder, migrated; their URLs."""
    await asyncio.to_thread(_empty_folder, folder, services)
    urls: dict[str, str] = {}
    for service in services:
        url = sqlite_url(folder, service)
        await upgrade_async(service, url)
        urls[service] = url
    return urls


def _empty_folder(folder: Path, services: Sequence[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for service in services:
        for leftover in folder.glob(f"{service}.db*"):
            leftover.unlink()


def reader_engine(url: str) -> AsyncEngine:
    """An engine to read a running service's database with. A SQLite file is opened read-only
    and without the services' BEGIN IMMEDIATE (core.runtime.database): a benchmark's count
    must not take the file's write lock, which the service's own statements would then wait
    for on its event loop."""
    path = sqlite_file(url)
    if path is None:
        return create_engine(url)
    return create_async_engine(
        f"sqlite+aiosqlite:///file:{path.resolve()}?mode=ro&uri=true", poolclass=NullPool
    )


async def count_rows(url: str, table: sa.Table, *where: Any) -> int:
    engine = reader_engine(url)
    try:
        async with engine.connect() as conn:
            query = sa.select(sa.func.count()).select_from(table).where(*where)
            return int((await conn.execute(query)).scalar_one())
    finally:
        await engine.dispose()


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def notice_statuses(url: str) -> Counter[str]:
    """The notifier's notices by status."""
    engine = reader_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                sa.select(nt.notices.c.status, sa.func.count()).group_by(nt.notices.c.status)
            )
            return Counter({status: int(count) for status, count in rows})
    finally:
        await engine.dispose()
