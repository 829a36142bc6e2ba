"""The notifier's tables as gauges: notices and postal orders by status, read at each scrape.

Every known status is reported, 0 when no row has it, so an alert on `failed` has a series to
watch from the start.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.runtime.metrics import Read, ServiceMetrics, Values
from services.notifier.adapters import repository as repo
from services.notifier.adapters import tables as t


def expose_statuses(metrics: ServiceMetrics, engine: AsyncEngine) -> None:
    """`motcua_notices{status}` and `motcua_postal_orders{status}`."""
    for source, table, known, what in (
        ("notices", t.notices, t.NOTICE_STATUSES, "SMS notices"),
        ("postal_orders", t.postal_orders, t.ORDER_STATUSES, "Postal return orders"),
    ):
        metrics.gauge_at_scrape(
            source,
            f"motcua_{source}",
            f"{what} by status",
            ["status"],
            _reader(engine, table, known),
        )


def _reader(engine: AsyncEngine, table: sa.Table, known: Sequence[str]) -> Read:
    async def read() -> Values:
        async with engine.connect() as conn:
            counts = await repo.count_by_status(conn, table)
        return {(status,): float(counts.get(status, 0)) for status in sorted({*known, *counts})}

    return read
