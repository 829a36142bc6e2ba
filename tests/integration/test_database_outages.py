"""A database that drops its connections is an outage to wait out, not a bad record or a bug:
consumers retry the record instead of dead-lettering it, and the HTTP API answers 503 with
Retry-After instead of 500; so does an intake whose connection pool is exhausted by load.
Errors are made by a real PostgreSQL terminating real sessions."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from services.core.runtime.consumer import is_transient
from services.core.runtime.database import create_engine, is_transient_database_error
from services.core.runtime.http_errors import install_common_handlers

pytestmark = pytest.mark.postgres


async def terminate(conn: AsyncConnection, url: str) -> None:
    pid = (await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
    admin = create_engine(url)
    try:
        async with admin.connect() as other:
            await other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await admin.dispose()


async def error_after_termination(url: str, in_transaction: bool) -> DBAPIError:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            if in_transaction:
                await conn.execute(sa.text("SELECT 1"))
            await terminate(conn, url)
            with pytest.raises(DBAPIError) as caught:
                await conn.execute(sa.text("SELECT 1"))
            return caught.value
    finally:
        await engine.dispose()


@pytest.mark.parametrize("in_transaction", [False, True])
async def test_a_terminated_connection_is_transient(
    postgres_url: str, in_transaction: bool
) -> None:
    error = await error_after_termination(postgres_url, in_transaction)
    assert is_transient_database_error(error)
    assert is_transient(error)


async def test_a_bad_statement_is_not_transient(postgres_url: str) -> None:
    error = await _broken_statement(postgres_url)
    assert not is_transient_database_error(error)
    assert not is_transient(error)


async def test_errors_never_quote_the_values_of_a_statement(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    try:
        async with engine.connect() as conn:
            with pytest.raises(DBAPIError) as caught:
                await conn.execute(sa.text("SELECT CAST(:phone AS text), 1 / 0"),
                                   {"phone": "0912345678"})  # fmt: skip
    finally:
        await engine.dispose()
    assert "0912345678" not in str(caught.value)


async def test_the_api_answers_503_with_retry_after_while_the_database_is_gone(
    postgres_url: str,
) -> None:
    outage = await error_after_termination(postgres_url, in_transaction=True)
    broken = await _broken_statement(postgres_url)
    app = FastAPI()
    install_common_handlers(app)

    @app.get("/outage")
    async def during_outage() -> None:
        raise outage

    @app.get("/bug")
    async def with_a_bug() -> None:
        raise broken

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        r = await client.get("/outage")
        assert r.status_code == 503
        assert r.headers["retry-after"] == "1"
        assert r.json()["error"]["code"] == "unavailable"
        r = await client.get("/bug")
        assert r.status_code == 500
        assert "no_such_table" not in r.text


async def test_an_exhausted_pool_is_an_overload_answered_503(postgres_url: str) -> None:
    engine = create_async_engine(postgres_url, pool_size=1, max_overflow=0, pool_timeout=0.1)
    app = FastAPI()
    install_common_handlers(app)

    @app.get("/busy")
    async def busy() -> None:
        async with engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with (
            engine.connect(),
            httpx.AsyncClient(transport=transport, base_url="http://t") as client,
        ):  # the one connection is held: the request waits, then gives up
            r = await client.get("/busy")
    finally:
        await engine.dispose()
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "unavailable"
    assert is_transient(PoolTimeout())


async def _broken_statement(url: str) -> DBAPIError:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            with pytest.raises(DBAPIError) as caught:
                await conn.execute(sa.text("SELECT * FROM no_such_table"))
            return caught.value
    finally:
        await engine.dispose()
