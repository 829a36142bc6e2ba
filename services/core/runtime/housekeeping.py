"""Housekeeping, written once: each service forgets on a schedule what can no longer be needed
(published outbox rows, remembered event ids, idempotency keys), so its tables stay bounded.

A service registers named jobs; each gets `now` from the injected clock and returns how many
rows it removed. A job that fails is logged (without its error's values, which may quote
personal data) and tried again on the next round; the others still run.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime

import structlog

from services.core.runtime.clock import Clock
from services.core.runtime.waiting import wait_event

log = structlog.get_logger(__name__)

Job = Callable[[datetime], Awaitable[int]]


class Housekeeping:
    def __init__(self, service: str, clock: Clock, every_seconds: float = 3600.0) -> None:
        self.service = service
        self._clock = clock
        self._every = every_seconds
        self._jobs: dict[str, Job] = {}
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def add(self, name: str, job: Job) -> None:
        self._jobs[name] = job

    async def run_once(self) -> dict[str, int]:
        """Every job once, now; returns rows removed by job (a failed job is left out)."""
        now = self._clock()
        removed: dict[str, int] = {}
        for name, job in self._jobs.items():
            try:
                removed[name] = await job(now)
            except Exception as exc:  # the next round tries again
                log.error(
                    "housekeeping_failed",
                    service=self.service,
                    job=name,
                    error_class=type(exc).__name__,
                )
        log.info("housekeeping_done", service=self.service, **removed)
        return removed

    def start(self) -> None:
        if self._jobs:
            self._task = asyncio.create_task(self._loop(), name=f"{self.service}-housekeeping")

    async def _loop(self) -> None:
        # The first round after one interval, not at start: a start must stay quick.
        while True:
            await wait_event(self._stopping, self._every)
            if self._stopping.is_set():
                return
            await self.run_once()

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
