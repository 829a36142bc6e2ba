"""The public lookup's rate limit cannot be walked around with X-Forwarded-For: the intake
behind no proxy (the default), behind a trusted one, and served by uvicorn as `motcua` serves
it (a real server on loopback, where uvicorn's own proxy handling trusted any local peer)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.core.runtime.database import create_engine
from services.core.runtime.host import build_app
from services.core.runtime.settings import Settings
from services.intake.app import IntakeService
from tests.fixtures.serving import serving

LOOKUP = "/public/dossiers/UBND-Q1-20261116-0001?phone=0912345678"


@pytest.fixture
def folder(tmp_path: Path, sqlite_template: Path) -> Path:
    """A migrated SQLite intake database of its own."""
    shutil.copy(sqlite_template / "intake.db", tmp_path / "intake.db")
    return tmp_path


@asynccontextmanager
async def intake(folder: Path, **settings: Any) -> AsyncIterator[IntakeService]:
    """The intake, started, with a limit of 2 lookups a minute."""
    values = {"data_dir": folder, "public_lookup_per_minute": 2, **settings}
    engine = create_engine(f"sqlite+aiosqlite:///{folder}/intake.db")
    service = IntakeService(Settings(**values), engine=engine)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


def client(service: IntakeService, peer: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=build_app([service]), client=(peer, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://intake.test")


def assert_limited(r: httpx.Response) -> None:
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(r.headers["Retry-After"]) <= 60


async def test_without_trusted_proxies_forwarded_for_is_ignored(folder: Path) -> None:
    async with intake(folder) as service, client(service, "203.0.113.9") as c:
        for n in range(2):
            r = await c.get(LOOKUP, headers={"X-Forwarded-For": f"198.51.100.{n}"})
            assert r.status_code == 404
        assert_limited(await c.get(LOOKUP, headers={"X-Forwarded-For": "198.51.100.77"}))
        assert_limited(await c.get(LOOKUP))
    # The loopback peer too: no proxy is trusted unless configured.
    async with intake(folder) as service, client(service, "127.0.0.1") as c:
        statuses = [
            (await c.get(LOOKUP, headers={"X-Forwarded-For": f"198.51.100.{n}"})).status_code
            for n in range(3)
        ]
        assert statuses == [404, 404, 429]


async def test_behind_a_trusted_proxy_each_client_has_its_own_count(folder: Path) -> None:
    async with (
        intake(folder, trusted_proxies="10.0.0.0/8") as service,
        client(service, "10.0.0.5") as proxy,
    ):
        for n in range(4):  # four citizens behind the balancer
            r = await proxy.get(LOOKUP, headers={"X-Forwarded-For": f"198.51.100.{n}"})
            assert r.status_code == 404
        # One citizen writing other addresses in front of its own is still itself.
        for n in range(2):
            forged = {"X-Forwarded-For": f"6.6.6.{n}, 203.0.113.50"}
            assert (await proxy.get(LOOKUP, headers=forged)).status_code == 404
        assert_limited(
            await proxy.get(LOOKUP, headers={"X-Forwarded-For": "6.6.6.9, 203.0.113.50"})
        )
        assert_limited(await proxy.get(LOOKUP, headers={"X-Forwarded-For": "203.0.113.50"}))
    # An untrusted peer's X-Forwarded-For is not believed even with proxies configured.
    async with (
        intake(folder, trusted_proxies="10.0.0.0/8") as service,
        client(service, "203.0.113.9") as direct,
    ):
        for n in range(2):
            await direct.get(LOOKUP, headers={"X-Forwarded-For": f"198.51.100.{n}"})
        assert_limited(await direct.get(LOOKUP, headers={"X-Forwarded-For": "198.51.100.99"}))


async def test_served_by_uvicorn_a_local_peer_cannot_rotate_forwarded_for(folder: Path) -> None:
    async with (
        intake(folder) as service,
        serving(build_app([service])) as url,
        httpx.AsyncClient(base_url=url) as c,
    ):
        statuses = []
        for n in range(3):
            r = await c.get(LOOKUP, headers={"X-Forwarded-For": f"198.51.100.{n}"})
            statuses.append(r.status_code)
        assert statuses == [404, 404, 429]
        assert int(r.headers["Retry-After"]) >= 1
