"""Readiness probes shared by the services."""

from __future__ import annotations

import sqlalchemy as sa
from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import AsyncEngine


async def database_reachable(engine: AsyncEngine) -> bool:
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
    except Exception:  # any failure is the answer "not reachable"
        return False
    return True


async def service_readiness(
    name: str, engine: AsyncEngine, broker: KafkaBroker | None, uses_kafka: bool
) -> dict[str, bool]:
    """`{name}.database`, and `{name}.broker` for a service that uses Kafka."""
    checks = {f"{name}.database": await database_reachable(engine)}
    if uses_kafka:
        checks[f"{name}.broker"] = broker is not None and await broker.ping(timeout=2.0)
    return checks
