"""The second process of `motcua up`: the tracker and the notifier on the other core.

Why. Python runs one core per process, and `motcua up` ran the three services in one: the
intake answered clerks with the CPU the tracker's and the notifier's consumers left it
(147 dossiers/s against 358/s for the intake alone on SQLite, bench/README.md, "Intake
throughput"). Here the process the operator started serves the intake and starts a second
one for the tracker and the notifier; each service keeps its own SQLite file and reaches
the others through the embedded broker, as the three-process production shape does.

What stays one: one command, one data folder, one port. The parent's port answers for the
second process too: the notifier's callback routes are forwarded to it, `/readyz` includes
its checks and `/metrics` its series. The second process listens on a loopback port of its
own, which nobody else needs to know.

Priority. The second process runs at the first's. Ten steps nicer (tried on 2026-12-03), the
intake of a full machine got its core back between two batches (`up` at 32 clerks: 1,133-1,159
dossiers a second at p99 47-53 ms against 843-963 at p99 71-77), but on a host busy with
anything else the tracker and the notifier got a few per cent of a core: their start took
over a minute, the `/readyz` of `up`, which asks this process, read "not ready" when it did
not answer within READ_SECONDS (both seen in the test suite), and the deadline flags, SMS and
forwarded gateway callbacks would have waited as long. A receipt's p99 25 ms shorter under a
synthetic full load is not worth alerts that come late and a health check that lies on a
busy server. The scheduler's batch policy for it instead (SCHED_BATCH: the same share of the
CPU, the intake not preempted when it wakes) was no better in alternate runs (2026-12-03
evening, docs/operations.md, "Performance").

Lifetime. The kernel stops the second process when the parent dies, even by SIGKILL
(PR_SET_PDEATHSIG, as for the broker); a second process that dies on its own is started
again after a growing pause (its consumers resume from their committed offsets, and its
outboxes replay what the broker may have lost); a stop of the parent stops it gracefully.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import structlog
from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from services.core.runtime.embedded_broker import die_with_parent, free_port
from services.core.runtime.settings import Settings

log = structlog.get_logger(__name__)

CHECKS = ("database", "broker", "consumers")  # the readiness keys of each service
STOP_SECONDS = 20.0  # a graceful stop: uvicorn's, then each service's (≤ 10 s for a join)
MAX_RESTART_PAUSE = 10.0
READ_SECONDS = 2.0


class RemoteMetrics:
    """The second process's metrics, read from its `/metrics` at each scrape of ours.

    Its series already carry their `service` label; the host's own series of that process
    (its HTTP requests, which are our forwards and our reads) are left out, ours count them."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.registry = CollectorRegistry()
        self._families: list[Metric] = []
        self.registry.register(self)

    def collect(self) -> Iterable[Metric]:
        return list(self._families)

    async def refresh(self) -> None:
        try:
            async with httpx.AsyncClient(timeout=READ_SECONDS) as client:
                answer = await client.get(self.url)
            answer.raise_for_status()
        except httpx.HTTPError as exc:
            self._families = []
            log.warning("worker_metrics_unread", error_class=type(exc).__name__)
            return
        families = []
        for family in text_string_to_metric_families(answer.text):
            family.samples = [s for s in family.samples if s.labels.get("service") != "host"]
            if family.samples:
                families.append(family)
        self._families = families


class WorkerProcess:
    """A host service (core.runtime.host) standing for the services of the second process."""

    name = "workers"

    def __init__(
        self,
        settings: Settings,
        services: Sequence[str],
        bootstrap: str,
        routers: Sequence[APIRouter],
    ) -> None:
        self.settings = settings
        self.services = list(services)
        self.bootstrap = bootstrap
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.metrics = RemoteMetrics(f"{self.base_url}/metrics")
        self._owned = list(routers)
        self._client: httpx.AsyncClient | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False

    # -- host service ------------------------------------------------------------------------

    def routers(self) -> Sequence[APIRouter]:
        # The second process's routes, answered there: a forward for each (first, so that it
        # is the one routed to), and the routes themselves for the OpenAPI document only.
        forward = APIRouter()
        for router in self._owned:
            for route in router.routes:
                path, methods = getattr(route, "path", None), getattr(route, "methods", None)
                if path and methods:
                    forward.add_api_route(
                        path, self._forward, methods=sorted(methods), include_in_schema=False
                    )
        return [forward, *self._owned]

    def install(self, app: FastAPI) -> None:
        app.state.worker_process = self

    async def start(self) -> None:
        self._client = httpx.AsyncClient(base_url=self.base_url, timeout=30.0)
        self._spawn()
        self._watch = asyncio.create_task(self._keep_running())

    async def stop(self) -> None:
        self._stopping = True
        if self._watch:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        if self._process and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self._process.wait, STOP_SECONDS)
            except subprocess.TimeoutExpired:
                log.error("worker_process_killed", seconds=STOP_SECONDS)
                self._process.kill()
                await asyncio.to_thread(self._process.wait)
        if self._client:
            await self._client.aclose()

    async def readiness(self) -> dict[str, bool]:
        """Its services' checks, all false while it cannot be asked."""
        checks = {f"{service}.{check}": False for service in self.services for check in CHECKS}
        if self._client is None:
            return checks
        try:
            answer = await self._client.get("/readyz", timeout=READ_SECONDS)
            theirs = answer.json()["checks"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return checks
        return checks | {str(k): bool(v) for k, v in theirs.items()}

    # -- the process -------------------------------------------------------------------------

    def _spawn(self) -> None:
        command = [
            sys.executable, "-m", "services.cli", "workers",
            "--host", "127.0.0.1", "--port", str(self.port), *self.services,
        ]  # fmt: skip
        self._process = subprocess.Popen(
            command,
            env=self._environment(),
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent(),
        )
        log.info("worker_process_started", pid=self._process.pid, services=self.services)

    def _environment(self) -> dict[str, str]:
        """Our environment, with what `motcua up` decided at start: the broker it started,
        the callback token and URL it hands the gateways, the internal token, the links'
        secret, the data folder."""
        env = dict(os.environ)
        env.update(
            {
                "MOTCUA_KAFKA_BOOTSTRAP": self.bootstrap,
                "MOTCUA_DATA_DIR": str(Path(self.settings.data_dir).resolve()),
            }
        )
        if self.settings.callback_token:
            env["MOTCUA_CALLBACK_TOKEN"] = self.settings.callback_token
        if self.settings.internal_token:  # the intake's questions to its notifier carry it
            env["MOTCUA_INTERNAL_TOKEN"] = self.settings.internal_token.get_secret_value()
        if self.settings.link_key:  # the notifier signs the rating links the intake checks
            env["MOTCUA_LINK_SECRET"] = self.settings.link_key
        if self.settings.callback_base_url:
            env["MOTCUA_CALLBACK_BASE_URL"] = self.settings.callback_base_url
        return env

    async def _keep_running(self) -> None:
        pause = 1.0
        while not self._stopping:
            assert self._process is not None
            status = await asyncio.to_thread(self._process.wait)
            if self._stopping:
                return
            log.error("worker_process_exited", status=status, restart_in_seconds=pause)
            await asyncio.sleep(pause)  # a pause before a restart, not a synchronisation
            pause = min(MAX_RESTART_PAUSE, pause * 2)
            self._spawn()

    async def _forward(self, request: Request) -> Response:
        assert self._client is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() in FORWARDED_HEADERS}
        try:
            answer = await self._client.request(
                request.method,
                request.url.path,
                params=request.query_params.multi_items(),
                content=await request.body(),
                headers=headers,
            )
        except httpx.HTTPError:
            return Response(
                b'{"error":{"code":"unavailable","message":"the notifier is starting"}}',
                status_code=503,
                media_type="application/json",
                headers={"Retry-After": "1"},
            )
        return Response(
            answer.content,
            status_code=answer.status_code,
            headers=_answer_headers(answer.headers),
        )


FORWARDED_HEADERS = frozenset({"content-type", "accept", "authorization", "user-agent"})


def _answer_headers(headers: Mapping[str, Any]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() in ("content-type", "retry-after")}
