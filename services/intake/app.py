"""Wiring of the intake service: database, calendars, routes, outbox relay to Kafka, and the
consumers of the tracker's deadlines and the notifier's postal returns."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import datetime, timedelta

import structlog
from fastapi import APIRouter, FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.runtime.checks import service_readiness
from services.core.runtime.clock import Clock, system_clock
from services.core.runtime.consumer import Handlers, TopicHandler
from services.core.runtime.database import create_engine
from services.core.runtime.housekeeping import Housekeeping
from services.core.runtime.kafka import DEADLINE_TOPIC, NOTIFICATION_TOPIC
from services.core.runtime.messaging import Messaging
from services.core.runtime.metrics import ServiceMetrics
from services.core.runtime.outbox import expose_backlog
from services.core.runtime.replay import Replay
from services.core.runtime.settings import Settings
from services.intake import commands, postal_returns, privacy
from services.intake.adapters import catalogue_store
from services.intake.adapters import tables as t
from services.intake.api import catalogue, dossiers, notices, public, reports
from services.intake.api.errors import install_error_handlers
from services.intake.api.fast_receipt import FastReceiptRoute
from services.intake.context import IntakeContext
from services.intake.deadline_read_model import apply_deadline_events, decode
from services.intake.notifier_client import NotifierClient
from services.intake.public_lookup import SlidingWindowLimiter
from services.intake.web import dashboard, lookup, rating

CONSUMER_GROUP = "motcua-intake"
# The records the intake's consumer applies at once (the tracker's deadline events, the
# notifier's postal ones). Its event loop also answers the clerks, and a batch runs on it
# without a pause: at 500 records, as the tracker and the notifier take them, a batch of
# deadline events held the loop for tens of milliseconds several times a second, and the
# receipts waiting behind it made the p99 of POST /dossiers (`motcua up` at 32 clerks: p99
# 45-69 ms against 37-48 ms with 50, at the same throughput; alternate runs on 2026-12-03,
# bench/README.md, "Intake throughput").
CONSUMER_BATCH = 50
OVERRIDES_RELOAD_SECONDS = 30.0

log = structlog.get_logger(__name__)


class IntakeService:
    """Bộ phận tiếp nhận: clerks record dossiers; their events leave through the outbox."""

    name = "intake"
    consumer_group = CONSUMER_GROUP
    consumer_batch = CONSUMER_BATCH
    consumes = (DEADLINE_TOPIC, NOTIFICATION_TOPIC)

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = system_clock,
        engine: AsyncEngine | None = None,
        kafka_bootstrap: str | None = None,
        replay: Replay | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine or create_engine(
            settings.database_url_for("intake"), settings.db_pool_size
        )
        self.kafka_bootstrap = kafka_bootstrap or settings.kafka_bootstrap
        self.context = IntakeContext(settings=settings, engine=self.engine, clock=clock)
        self.replay = replay
        self.housekeeping = Housekeeping(self.name, clock, settings.housekeeping_interval_seconds)
        self.housekeeping.add("idempotency_keys_forgotten", self._forget_idempotency_keys)
        self.housekeeping.add("personal_data_erased", self._erase_personal_data)
        self.messaging: Messaging | None = None
        self._reload_task: asyncio.Task[None] | None = None
        self.metrics = ServiceMetrics()
        expose_backlog(self.metrics, self.engine, t.outbox)
        self.notifier = NotifierClient(settings.notifier_url, settings.internal_token)

    def routers(self) -> Sequence[APIRouter]:
        return [
            dossiers.router,
            notices.router,
            catalogue.router,
            public.router,
            reports.router,
            lookup.router,
            dashboard.router,
            rating.router,
        ]

    def install(self, app: FastAPI) -> None:
        app.state.intake = self.context
        # First in the router, before the services' routers are included (host.build_app).
        self.fast_receipt = FastReceiptRoute(self.context)
        app.router.routes.insert(0, self.fast_receipt)
        app.state.notifier_client = self.notifier
        app.state.public_limiter = SlidingWindowLimiter(self.settings.public_lookup_per_minute)
        install_error_handlers(app)

    async def start(self) -> None:
        if self.settings.public_url and not self.settings.link_key:
            # Said at start: the notifier sends no rating link, and none would open here.
            log.info("rating_page_closed", set_to_fix="MOTCUA_LINK_SECRET")
        await self.reload_overrides()
        self._reload_task = asyncio.create_task(self._keep_overrides_fresh())
        self.messaging = Messaging.of(self, t.outbox, t.outbox_checkpoint)
        if self.messaging:
            self.context.wake_relay = self.messaging.wake
            await self.messaging.start()
        self.housekeeping.start()
        log.info("intake_started", kafka=bool(self.kafka_bootstrap))

    def handlers(self) -> Handlers:
        return {
            DEADLINE_TOPIC: TopicHandler(self.on_deadline_event, self.on_deadline_events),
            NOTIFICATION_TOPIC: TopicHandler(
                self.on_notification_event, self.on_notification_events
            ),
        }

    async def on_deadline_event(self, body: bytes) -> None:
        await self.on_deadline_events([body])

    async def on_deadline_events(self, bodies: Sequence[bytes]) -> list[str | None]:
        """A run of the topic's records in one transaction (core.runtime.consumer)."""
        await apply_deadline_events(self.engine, [decode(body) for body in bodies])
        return [None] * len(bodies)  # keyed on the deadline version, it keeps no event ids

    async def on_notification_event(self, body: bytes) -> None:
        await self.on_notification_events([body])

    async def on_notification_events(self, bodies: Sequence[bytes]) -> list[str | None]:
        """A run of the topic's records in one transaction (core.runtime.consumer)."""
        changed = await postal_returns.apply_notification_events(
            self.engine,
            [postal_returns.decode(body) for body in bodies],
            self.context.calendars,
            self.context.clock(),
        )
        if any(changed):  # a delivery may have returned a dossier: dossier.returned is queued
            self.context.wake_relay()
        return [None] * len(bodies)

    async def reload_overrides(self) -> None:
        async with self.engine.connect() as conn:
            self.context.calendars.replace_overrides(await catalogue_store.load_overrides(conn))

    async def _keep_overrides_fresh(self) -> None:
        # Another replica may have changed the calendar: its receipts must agree with ours.
        while True:
            await asyncio.sleep(OVERRIDES_RELOAD_SECONDS)
            try:
                await self.reload_overrides()
            except Exception as exc:
                log.warning("overrides_reload_failed", error_class=type(exc).__name__)

    async def _forget_idempotency_keys(self, now: datetime) -> int:
        keep = timedelta(hours=self.settings.idempotency_keys_keep_hours)
        async with self.engine.begin() as conn:
            return await commands.forget_idempotent_before(conn, now - keep)

    async def _erase_personal_data(self, now: datetime) -> int:
        keep = timedelta(days=self.settings.personal_data_retention_days)
        erased = await privacy.erase_closed_dossiers(self.engine, now, keep)
        if erased:  # their dossier.personal_data_erased events wait in the outbox
            self.context.wake_relay()
        return erased

    async def stop(self) -> None:
        await self.context.dossier_writes.close()
        await self.housekeeping.stop()
        if self._reload_task:
            self._reload_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reload_task
        if self.messaging:
            await self.messaging.stop()
        await self.notifier.aclose()
        await self.engine.dispose()

    async def readiness(self) -> dict[str, bool]:
        return await service_readiness(self.name, self.engine, self.messaging)
