"""Runs one or more services in one process behind one HTTP port.

A service contributes routers and a start/stop pair; the host starts them in order inside
FastAPI's lifespan and stops them in reverse, so `motcua up` and `motcua intake` share code.
The host serves /healthz, /readyz and /metrics (every hosted service's metrics, and the
HTTP request durations by route template), /docs from the package (api_docs), and refuses
oversized bodies for every service.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

import structlog
from fastapi import APIRouter, Depends, FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.core.runtime.api_docs import DOCS_PATH, docs_router
from services.core.runtime.body_limit import BodyLimit
from services.core.runtime.clock import Clock, system_clock
from services.core.runtime.metrics import CONTENT_TYPE_LATEST, ServiceMetrics, exposition
from services.core.runtime.request_checks import check_request
from services.core.runtime.settings import Settings
from services.core.runtime.version import motcua_version
from services.intake.web.urls import DASHBOARD_PATH, LOOKUP_PATH

log = structlog.get_logger("motcua.http")


HOST = "host"  # the `service` label of the host's own routes and of unmatched paths
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Service(Protocol):
    name: str
    metrics: ServiceMetrics
    settings: Settings

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
        version=motcua_version(),
        lifespan=lifespan,
        description="motcua: dossiers, legal deadlines, notices for one-stop offices",
        dependencies=[Depends(check_request)],  # every service's routes, before their own
        # FastAPI's OpenTelemetry bridge looks for configured providers on every request;
        # motcua exports its own metrics (/metrics) and logs, and configures no tracing.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        # FastAPI's own pages load Swagger UI and ReDoc from a CDN: api_docs serves /docs.
        docs_url=None,
        redoc_url=None,
    )
    for service in services:
        service.install(app)
        for router in service.routers():
            app.include_router(router)
    http = HttpMetrics(services)
    app.include_router(_index_router(services))
    app.include_router(docs_router(title))
    app.include_router(_health_router(services))
    app.include_router(_metrics_router(services, http))
    # Added before the metrics middleware, so it runs inside it: a 413 is logged and counted.
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes(services))
    app.add_middleware(ObserveRequests, http=http)
    return app


def max_body_bytes(services: Sequence[Service]) -> int:
    """The strictest cap of the services sharing the port (`motcua up` gives them one
    Settings, so in practice the one MOTCUA_MAX_BODY_BYTES)."""
    default: int = Settings.model_fields["max_body_bytes"].default
    return min((service.settings.max_body_bytes for service in services), default=default)


class HttpMetrics:
    """Request durations by the service that declared the route, method, route template and
    status. The template, never the raw path: the public lookup's query carries a phone."""

    def __init__(self, services: Sequence[Service]) -> None:
        self.registry = CollectorRegistry()
        self._duration = Histogram(
            "motcua_http_request_duration_seconds",
            "Time to answer an HTTP request, by service, method, route template and status",
            ["service", "method", "route", "status"],
            registry=self.registry,
        )
        self._owners = {
            getattr(route, "path", ""): service.name
            for service in services
            for router in service.routers()
            for route in router.routes
        }

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        service = self._owners.get(route, HOST)
        method = method if method in METHODS else "other"
        self._duration.labels(service, method, route, str(status)).observe(seconds)


class ObserveRequests:
    """One log line and one observation per request, under the route template.

    A plain ASGI middleware: Starlette's `BaseHTTPMiddleware` (`app.middleware("http")`)
    ran each request in an extra task with a memory stream, 12 % of the intake's samples
    under load (bench/README.md, "Intake throughput")."""

    def __init__(self, app: ASGIApp, http: HttpMetrics) -> None:
        self.app = app
        self.http = http

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when the app raises before it starts one

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        except Exception:
            _record(self.http, scope, 500, started)
            raise
        _record(self.http, scope, status, started)


def _record(http: HttpMetrics, scope: Scope, status: int, started: float) -> None:
    seconds = time.perf_counter() - started
    route = getattr(scope.get("route"), "path", "unmatched")
    method = scope["method"]
    http.observe(method, route, status, seconds)
    log.info(
        "http_request",
        method=method,
        route=route,
        status=status,
        duration_ms=round(seconds * 1000, 2),
    )


def _index_router(services: Sequence[Service]) -> APIRouter:
    router = APIRouter(tags=["health"])
    # A person who opens the bare address (or `curl localhost:8000`) learns where to go.
    links = {
        "api_docs": DOCS_PATH,
        "openapi": "/openapi.json",
        "ready": "/readyz",
        "metrics": "/metrics",
    }
    if any(service.name == "intake" for service in services):
        links["public_lookup"] = "/public/dossiers/{code}?phone=..."
        links["lookup_page"] = LOOKUP_PATH
        links["dashboard"] = DASHBOARD_PATH
    index = {
        "name": "motcua",
        "version": motcua_version(),
        "services": [service.name for service in services],
        "links": links,
    }

    @router.get("/")
    async def root() -> dict[str, Any]:
        """What runs here, its version, and where to go next."""
        return index

    return router


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


def _metrics_router(services: Sequence[Service], http: HttpMetrics) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        """Prometheus text format: every hosted service's series, labelled by service."""
        await asyncio.gather(*(service.metrics.refresh() for service in services))
        registries = {service.name: service.metrics.registry for service in services}
        return Response(exposition(http.registry, registries), media_type=CONTENT_TYPE_LATEST)

    return router


__all__ = ["Clock", "Service", "build_app", "system_clock"]
