"""Bearer tokens on SQLite and PostgreSQL: a revoked token is refused by every replica within
the cache's second, and a stored token that makes no sense is refused, never guessed at."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from services.core.runtime.database import create_engine
from services.core.runtime.host import build_app
from services.core.runtime.settings import Settings
from services.intake.adapters import tables as t
from services.intake.adapters.tokens import (
    TokenInfo,
    create_token,
    list_tokens,
    revoke_token,
    token_hash,
)
from services.intake.app import IntakeService
from services.intake.context import TOKEN_CACHE_SECONDS, PrincipalCache
from tests.fixtures.intake import IntakeHarness


class Monotonic:
    """The cache's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def replica(
    intake: IntakeHarness, database_url: str, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, Monotonic]]:
    """A second intake process on the same database (a replica behind the balancer)."""
    settings = Settings(data_dir=tmp_path / "replica", public_lookup_per_minute=1000)
    engine = create_engine(database_url.format(service="intake"))
    service = IntakeService(settings, clock=intake.clock, engine=engine)
    monotonic = Monotonic()
    service.context.principals = PrincipalCache(monotonic=monotonic)
    await service.start()
    transport = httpx.ASGITransport(app=build_app([service]), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://replica.test") as client:
        yield client, monotonic
    await service.stop()


async def test_a_revoked_token_is_refused_by_another_replica_within_a_second(
    intake: IntakeHarness, replica: tuple[httpx.AsyncClient, Monotonic]
) -> None:
    client, monotonic = replica
    async with intake.service.engine.begin() as conn:
        secret = await create_token(conn, "clerk", "UBND-Q1", "Chị Lan", intake.clock())
    clerk = {"Authorization": f"Bearer {secret}"}
    assert (await client.get("/dossiers", headers=clerk)).status_code == 200  # now cached
    (token_id,) = [i.id for i in await _tokens(intake) if i.name == "Chị Lan"]
    async with intake.service.engine.begin() as conn:  # `motcua token revoke`, elsewhere
        assert await revoke_token(conn, token_id, intake.clock()) is not None
    # The replica that never saw it refuses it at once; the one that did, once its second ends.
    assert (await intake.client.get("/dossiers", headers=clerk)).status_code == 401
    assert TOKEN_CACHE_SECONDS <= 1.0
    monotonic.now += TOKEN_CACHE_SECONDS
    r = await client.get("/dossiers", headers=clerk)
    assert r.status_code == 401, r.text
    assert r.json()["error"] == {
        "code": "unauthorized",
        "message": "unknown or revoked token",
        "field": "Authorization",
    }
    # The other tokens are untouched.
    assert (await client.get("/dossiers", headers=intake.clerk)).status_code == 200


async def _tokens(intake: IntakeHarness) -> list[TokenInfo]:
    async with intake.service.engine.connect() as conn:
        return await list_tokens(conn)


async def test_revoking_keeps_the_first_time_and_an_unknown_id_is_none(
    intake: IntakeHarness,
) -> None:
    first = intake.clock()
    (admin,) = [i for i in await _tokens(intake) if i.role == "admin"]
    async with intake.service.engine.begin() as conn:
        revoked = await revoke_token(conn, admin.id, first)
    assert revoked is not None and revoked.revoked_at is not None
    intake.clock.advance(hours=1)
    async with intake.service.engine.begin() as conn:
        again = await revoke_token(conn, admin.id, intake.clock())
        assert again == revoked
        assert await revoke_token(conn, str(uuid.uuid4()), intake.clock()) is None
    assert (await intake.client.get("/dossiers", headers=intake.admin)).status_code == 401


@pytest.mark.parametrize(
    ("role", "agency"),
    [
        pytest.param("superuser", None, id="unknown-role"),
        pytest.param("Admin", None, id="role-in-other-case"),
        pytest.param("clerk", None, id="clerk-without-agency"),
        pytest.param("supervisor", None, id="supervisor-without-agency"),
        pytest.param("clerk", "", id="clerk-with-empty-agency"),
    ],
)
async def test_a_token_that_makes_no_sense_is_refused(
    intake: IntakeHarness, role: str, agency: str | None
) -> None:
    """Rows `motcua token create` would not write, from an old version or a hand-made
    INSERT: refused at authentication, whatever route they are shown to."""
    secret = "mc_" + uuid.uuid4().hex
    async with intake.service.engine.begin() as conn:
        await conn.execute(
            t.tokens.insert().values(
                id=str(uuid.uuid4()),
                token_hash=token_hash(secret),
                role=role,
                agency_code=agency,
                name=None,
                created_at=intake.clock(),
            )
        )
    await intake.procedure()
    await intake.dossier()
    headers = {"Authorization": f"Bearer {secret}"}
    for method, path in [("GET", "/dossiers"), ("GET", "/procedures"), ("GET", "/reports/on-time")]:
        r = await intake.client.request(method, path, headers=headers)
        assert r.status_code == 401, (path, r.text)
        assert r.json()["error"]["field"] == "Authorization"


async def test_create_refuses_what_authentication_would_refuse(intake: IntakeHarness) -> None:
    async with intake.service.engine.begin() as conn:
        with pytest.raises(ValueError, match="role"):
            await create_token(conn, "superuser", None, None, intake.clock())  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="agency"):
            await create_token(conn, "clerk", None, None, intake.clock())
