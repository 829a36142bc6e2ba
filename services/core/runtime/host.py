"""Runs one or more services in one process behind one HTTP port.

A service contributes routers and a start/stop pair; the host starts them in order inside
FastAPI's lifespan and stops them in reverse, so `motcua up` and `motcua intake` share code.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Protocol

import structlog
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse

from services.core.runtime.clock import Clock, system_clock

log = structlog.get_logger("motcua.http")


class Service(Protocol):
    name: str

    def routers(self) -> Sequence[APIRouter]: ...

    def install(self, app: FastAPI) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def readiness(self) -> dict[str, bool]: ...


def build_app(services: Sequence[Service], title: str = "motcua") -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        started: list[Service] = []
        try:
            for service in services:
                await service.start()
                started.append(service)
            yield
        finally:
            for service in reversed(started):
                await service.stop()

    app = FastAPI(
        title=title,
        version="0.1.0",
        lifespan=lifespan,
        description="motcua: dossiers, legal deadlines, notices for one-stop offices",
    )
    for service in services:
        service.install(app)
        for router in service.routers():
            app.include_router(router)
    app.include_router(_health_router(services))
    app.middleware("http")(_log_request)
    return app


async def _log_request(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """One log line per request: the route template, never the raw path or query string,
    which may carry a citizen's phone (the public lookup)."""
    started = time.perf_counter()
    response = await call_next(request)
    route = request.scope.get("route")
    log.info(
        "http_request",
        method=request.method,
        route=getattr(route, "path", "unmatched"),
        status=response.status_code,
        duration_ms=round((time.perf_counter() - started) * 1000, 2),
    )
    return response


def _health_router(services: Sequence[Service]) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        """Every service's database and broker are reachable."""
        checks: dict[str, bool] = {}
        for service in services:
            checks.update(await service.readiness())
        ready = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not_ready", "checks": checks},
            status_code=200 if ready else 503,
        )

    return router


__all__ = ["Clock", "Service", "build_app", "system_clock"]
