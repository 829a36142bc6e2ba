"""GET /metrics of a service hosted alone (the container shape), on a real database: requests
counted under their route template and never their path, the outbox backlog read from the
table, and a database that does not answer costing the scrape a bounded time.

The three services in one process over a real broker (events, lag, flags, notices) are in
test_notifier_over_kafka.py, which has that stack already.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from services.core.runtime.database import create_engine
from services.core.runtime.host import build_app
from services.core.runtime.metrics import READ_SECONDS
from services.core.runtime.outbox import backlog
from services.core.runtime.settings import Settings
from services.intake.adapters import tables as intake_tables
from services.notifier.app import NotifierService
from tests.fixtures.intake import IntakeHarness
from tests.fixtures.metrics import scrape

HTTP_COUNT = "motcua_http_request_duration_seconds_count"


async def test_requests_are_counted_under_their_route_template_never_their_path(
    intake: IntakeHarness,
) -> None:
    await intake.procedure()
    dossier = await intake.dossier()
    phone = "0912345678"  # the applicant's, as the intake fixture records it
    r = await intake.client.get(f"/public/dossiers/{dossier['code']}", params={"phone": phone})
    assert r.status_code == 200
    r = await intake.client.get(f"/no-such-page/{phone}")
    assert r.status_code == 404

    got = await scrape(intake.client)

    def requests(**labels: str) -> float:
        return got.value(HTTP_COUNT, service="intake", **labels)

    assert requests(method="POST", route="/dossiers", status="201") == 1
    assert requests(method="GET", route="/public/dossiers/{code}", status="200") == 1
    assert got.value(HTTP_COUNT, service="host", route="unmatched", status="404") == 1
    assert phone not in got.text and dossier["code"] not in got.text
    # No broker here: the events wait in the outbox, and the gauge says how many.
    waiting = await backlog(intake.service.engine, intake_tables.outbox)
    assert waiting >= 1
    assert got.value("motcua_outbox_backlog_rows", service="intake") == waiting
    assert got.value("motcua_scrape_source_up", service="intake", source="outbox") == 1


@pytest.fixture
async def silent_database() -> AsyncIterator[str]:
    """A PostgreSQL URL whose server accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/motcua"
    finally:
        for writer in held:
            writer.close()
        server.close()
        with contextlib.suppress(Exception):
            await server.wait_closed()


async def test_a_database_that_does_not_answer_leaves_its_series_out_in_bounded_time(
    silent_database: str, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path)
    service = NotifierService(
        settings,
        engine=create_engine(silent_database),
        run_dispatcher=False,
        run_scheduler=False,
    )
    app = build_app([service])
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://notifier") as client:
            started = time.monotonic()
            got = await scrape(client)
            elapsed = time.monotonic() - started
    finally:
        await service.engine.dispose()

    assert elapsed < READ_SECONDS + 3, f"the scrape took {elapsed:.1f} s"
    for source in ("outbox", "notices", "postal_orders"):
        assert got.value("motcua_scrape_source_up", service="notifier", source=source) == 0
    assert not got.has("motcua_outbox_backlog_rows")
    assert not got.has("motcua_notices")
