"""Readiness probes shared by the services."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from services.core.runtime.messaging import Messaging


async def database_reachable(engine: AsyncEngine) -> bool:
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
    except Exception:  # any failure is the answer "not reachable"
        return False
    return True


async def service_readiness(
    name: str, engine: AsyncEngine, messaging: Messaging | None
) -> dict[str, bool]:
    """`{name}.database`, and for a service that uses Kafka `{name}.broker` and
    `{name}.consumers` (its consumer group is joined)."""
    checks = {f"{name}.database": await database_reachable(engine)}
    if messaging is not None:
        checks.update(await messaging.readiness())
    return checks
