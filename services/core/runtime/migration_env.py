"""The body of every service's Alembic env.py: async engine, per-service version table."""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa
from alembic import context
from sqlalchemy.engine import Connection

from services.core.runtime.database import create_engine, is_sqlite
from services.core.runtime.migrations import version_table


def run(target_metadata: sa.MetaData) -> None:
    config = context.config
    service = config.attributes.get("service") or config.get_main_option("service")
    url = config.get_main_option("sqlalchemy.url")
    assert service and url, "service and sqlalchemy.url must be set"
    options: dict[str, Any] = {
        "target_metadata": target_metadata,
        "version_table": version_table(service),
        "render_as_batch": is_sqlite(url),
        "include_name": _only_own_tables(service),
    }
    if context.is_offline_mode():
        context.configure(url=url, literal_binds=True, **options)
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_run_online(url, options))


def _only_own_tables(service: str) -> Any:
    def include(name: str | None, type_: str, _parent: Any) -> bool:
        return type_ != "table" or bool(name and name.startswith(f"{service}_"))

    return include


async def _run_online(url: str, options: dict[str, Any]) -> None:
    engine = create_engine(url)
    async with engine.connect() as conn:
        await conn.run_sync(_migrate, options)
        await conn.commit()
    await engine.dispose()


def _migrate(connection: Connection, options: dict[str, Any]) -> None:
    context.configure(connection=connection, **options)
    with context.begin_transaction():
        context.run_migrations()
