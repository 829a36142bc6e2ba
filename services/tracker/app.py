"""Wiring of the tracker: consumers, the scheduled scan, the outbox relay of its flags."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from fastapi import APIRouter, FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.calendars import CalendarBook
from services.core.runtime.checks import service_readiness
from services.core.runtime.clock import Clock, system_clock
from services.core.runtime.consumer import (
    BATCH_MAX_RECORDS,
    DUPLICATE,
    Handlers,
    TopicHandler,
    decode_calendar_envelope,
)
from services.core.runtime.database import create_engine
from services.core.runtime.housekeeping import Housekeeping
from services.core.runtime.kafka import CALENDAR_TOPIC, DOSSIER_TOPIC
from services.core.runtime.messaging import Messaging
from services.core.runtime.metrics import ServiceMetrics
from services.core.runtime.outbox import expose_backlog
from services.core.runtime.replay import Replay
from services.core.runtime.settings import Settings
from services.tracker import handlers
from services.tracker.adapters import repository as repo
from services.tracker.adapters import tables as t

log = structlog.get_logger("motcua.tracker")

CONSUMER_GROUP = "motcua-tracker"
SCAN_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class TrackerService:
    """Theo dõi thời hạn: keeps every dossier's legal clock and raises due-soon / overdue."""

    name = "tracker"
    consumer_group = CONSUMER_GROUP
    consumer_batch = BATCH_MAX_RECORDS
    consumes = (DOSSIER_TOPIC, CALENDAR_TOPIC)

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = system_clock,
        engine: AsyncEngine | None = None,
        kafka_bootstrap: str | None = None,
        run_scheduler: bool = True,
        replay: Replay | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.engine = engine or create_engine(
            settings.database_url_for("tracker"), settings.db_pool_size
        )
        self.replay = replay
        self.housekeeping = Housekeeping(self.name, clock, settings.housekeeping_interval_seconds)
        self.housekeeping.add("event_ids_forgotten", self._forget_event_ids)
        self.kafka_bootstrap = kafka_bootstrap or settings.kafka_bootstrap
        self.threshold_minutes = settings.due_soon_working_hours * 60
        self.calendars = CalendarBook()
        self.run_scheduler = run_scheduler
        self.messaging: Messaging | None = None
        self.scheduler: AsyncIOScheduler | None = None
        self._scan_lock = asyncio.Lock()
        self.metrics = ServiceMetrics()
        expose_backlog(self.metrics, self.engine, t.outbox)
        self._flags_raised = self.metrics.counter(
            "motcua_flags_raised_total", "Deadline flags raised by the scan, by flag", ["flag"]
        )
        self._scan_seconds = self.metrics.histogram(
            "motcua_scan_duration_seconds", "Time one deadline scan took", buckets=SCAN_BUCKETS
        )

    def routers(self) -> Sequence[APIRouter]:
        return []

    def install(self, app: FastAPI) -> None:
        app.state.tracker = self

    async def start(self) -> None:
        await self.reload_overrides()
        self.messaging = Messaging.of(self, t.outbox, t.outbox_checkpoint)
        if self.messaging:
            await self.messaging.start()
        if self.run_scheduler:
            self.scheduler = AsyncIOScheduler(timezone="Asia/Ho_Chi_Minh")
            self.scheduler.add_job(
                self._scheduled_scan,
                "interval",
                seconds=self.settings.scan_interval_seconds,
                id="deadline-scan",
                max_instances=1,
                coalesce=True,
                # The scheduler keeps wall-clock time whatever clock the scans read: a first
                # run at an injected instant in the past would make APScheduler step through
                # every interval missed since then before it runs (minutes, blocking).
                next_run_time=datetime.now(UTC),
            )
            self.scheduler.start()
        self.housekeeping.start()
        log.info("tracker_started", kafka=bool(self.kafka_bootstrap))

    async def stop(self) -> None:
        await self.housekeeping.stop()
        if self.scheduler:
            self.scheduler.shutdown(wait=False)
        async with self._scan_lock:  # let a running scan finish its transaction
            pass
        if self.messaging:
            await self.messaging.stop()
        await self.engine.dispose()

    async def readiness(self) -> dict[str, bool]:
        return await service_readiness(self.name, self.engine, self.messaging)

    # -- entry points ------------------------------------------------------------------------

    def handlers(self) -> Handlers:
        return {
            DOSSIER_TOPIC: TopicHandler(self.on_dossier_event, self.on_dossier_events),
            CALENDAR_TOPIC: self.on_calendar_event,
        }

    async def on_dossier_event(self, body: bytes) -> str | None:
        [outcome] = await self.on_dossier_events([body])
        return outcome

    async def on_dossier_events(self, bodies: Sequence[bytes]) -> list[str | None]:
        """A run of the topic's records in one transaction (core.runtime.consumer)."""
        envelopes = [handlers.decode_dossier_event(body) for body in bodies]
        decisions = await handlers.handle_dossier_events(
            self.engine, envelopes, self.calendars, self.threshold_minutes, self.clock()
        )
        if any(decision is not None and decision.events for decision in decisions):
            self._wake_relay()  # once for the run: the relay sends every flag it finds
        return [DUPLICATE if decision is None else None for decision in decisions]

    async def on_calendar_event(self, body: bytes) -> None:
        envelope = decode_calendar_envelope(body)
        moved = await handlers.handle_calendar_event(
            self.engine, envelope, self.calendars, self.threshold_minutes, self.clock()
        )
        if moved:
            self._wake_relay()

    async def scan(self) -> handlers.ScanReport:
        """One deadline scan at the current time (the scheduler's job; also for tests)."""
        async with self._scan_lock:
            # Another replica may have handled a calendar change: its overrides are in the
            # shared table, so each scan starts from them.
            with self._scan_seconds.time():
                await self.reload_overrides()
                report = await handlers.scan_due(
                    self.engine, self.calendars, self.threshold_minutes, self.clock()
                )
        for event_type, count in report.raised.items():
            self._flags_raised.labels(event_type.removeprefix("deadline.")).inc(count)
        if report.flags:
            self._wake_relay()
        return report

    async def _scheduled_scan(self) -> None:
        try:
            await self.scan()
        except Exception as exc:  # the next run retries; the scan is idempotent
            log.error("scan_failed", error_class=type(exc).__name__)

    async def _forget_event_ids(self, now: datetime) -> int:
        """Kafka keeps records for days, not months: an older event id cannot come back."""
        keep = timedelta(days=self.settings.processed_events_keep_days)
        return await repo.forget_processed_before(self.engine, now - keep)

    async def reload_overrides(self) -> None:
        async with self.engine.connect() as conn:
            self.calendars.replace_overrides(await repo.load_overrides(conn))

    def _wake_relay(self) -> None:
        if self.messaging:
            self.messaging.wake()
