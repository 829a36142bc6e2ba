"""The dispatcher's claim (repository.claim_due_notices) is served by the waiting notices'
partial indexes in the claim's own order, on SQLite and PostgreSQL: its cost is a lookup a
notice claimed, not a read of the whole backlog, nor of every notice ever sent.

Asserted on the plans the databases give for the claim as the dispatcher sends it, because
a timing would be flaky and a plan is what went wrong: SQLite scanned the whole table (bound
states hid the partial index), PostgreSQL sorted every due notice for each claim (the index
was on next_attempt_at alone), and on a table without statistics scanned the due index once
a candidate (an OR of states in the NOT EXISTS).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.core.runtime.database import create_engine
from services.notifier.adapters import repository as repo

NOW = datetime(2026, 3, 2, 9, 30).astimezone()
LEASE = timedelta(seconds=60)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url.format(service="notifier"))
    yield engine
    await engine.dispose()


async def claim_sql(engine: AsyncEngine) -> tuple[str, Any]:
    """The claim's SELECT as the driver gets it (states written out), and its parameters."""
    seen: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    sa.event.listen(engine.sync_engine, "before_cursor_execute", keep)
    try:
        async with engine.begin() as conn:
            assert await repo.claim_due_notices(conn, NOW, 100, LEASE) == []
    finally:
        sa.event.remove(engine.sync_engine, "before_cursor_execute", keep)
    [select] = [s for s in seen if s[0].lstrip().upper().startswith("SELECT")]
    return select


async def plan(conn: AsyncConnection, explain: str, sql: str, parameters: Any) -> str:
    rows = await conn.exec_driver_sql(f"{explain} {sql}", parameters)
    return "\n".join(str(row[-1]) for row in rows)


async def test_the_claim_reads_the_waiting_notices_in_order(engine: AsyncEngine) -> None:
    sql, parameters = await claim_sql(engine)
    assert "'held'" in sql and "'sending'" in sql  # the states written out, not bound

    async with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            found = await plan(conn, "EXPLAIN QUERY PLAN", sql, parameters)
            assert "SEARCH notifier_notices USING INDEX ix_notifier_notices_due" in found
            assert "ix_notifier_notices_in_line" in found
            assert "SCAN notifier_notices" not in found
            assert "TEMP B-TREE" not in found  # no sort: the index's order is the claim's
        else:
            # An empty table would be read whole by any planner: what is asserted is that
            # the indexes serve the claim, in its order, when reading it whole is not cheaper.
            await conn.exec_driver_sql("SET enable_seqscan = off")
            await conn.exec_driver_sql("SET enable_sort = off")
            await conn.exec_driver_sql("SET enable_bitmapscan = off")
            found = await plan(conn, "EXPLAIN", sql, parameters)
            assert "Index Scan using ix_notifier_notices_due on notifier_notices" in found
            assert "ix_notifier_notices_in_line" in found
            assert "Sort" not in found
            await conn.rollback()
