"""Wiring of the notifier: consumers, the dispatcher, the daily digest, callbacks, the relay."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from urllib.parse import quote, urlencode

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from fastapi import APIRouter, FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.calendars import CalendarBook
from services.core.runtime.checks import service_readiness
from services.core.runtime.clock import Clock, system_clock
from services.core.runtime.consumer import (
    BATCH_MAX_RECORDS,
    Handler,
    TopicHandler,
    decode_calendar_envelope,
    decode_directory_envelope,
)
from services.core.runtime.database import create_engine
from services.core.runtime.housekeeping import Housekeeping
from services.core.runtime.http_errors import install_common_handlers
from services.core.runtime.kafka import (
    CALENDAR_TOPIC,
    DEADLINE_TOPIC,
    DIRECTORY_TOPIC,
    DOSSIER_TOPIC,
)
from services.core.runtime.messaging import Messaging
from services.core.runtime.metrics import ServiceMetrics
from services.core.runtime.outbox import expose_backlog
from services.core.runtime.replay import Replay
from services.core.runtime.settings import Settings
from services.notifier import handlers
from services.notifier.adapters import repository as repo
from services.notifier.adapters import tables as t
from services.notifier.adapters.esms import EsmsGateway, EsmsZalo
from services.notifier.adapters.postal import (
    HttpPostalOperator,
    JsonlPostalOperator,
    PostalOperator,
)
from services.notifier.adapters.sms_gateway import HttpSmsGateway, JsonlSmsGateway, SmsGateway
from services.notifier.adapters.viettelpost import ViettelPostOperator
from services.notifier.api import callbacks, internal
from services.notifier.composer import Composer
from services.notifier.dispatch import Dispatcher, DispatchSettings, claim_size
from services.notifier.domain.channels import ZaloSetup, zalo_setup
from services.notifier.domain.decisions import NoticePolicy
from services.notifier.domain.quiet_hours import QuietHours
from services.notifier.domain.retry import RetryPolicy
from services.notifier.domain.templates import (
    DEFAULT_TEXTS,
    TemplateError,
    TemplateSet,
    default_templates,
)
from services.notifier.lookup_link import NATIONAL_PORTAL, LookupLink
from services.notifier.metrics import expose_statuses
from services.notifier.rating_link import RatingLink

log = structlog.get_logger("motcua.notifier")

CONSUMER_GROUP = "motcua-notifier"


def templates_from(settings: Settings) -> TemplateSet:
    """The default texts, with an admin's file (JSON: template key → text) over them.
    A text that is unknown, malformed or can render past the cap stops the start, naming
    the template (TemplateError); ``{lookup}`` and ``{rating}`` count at their longest
    (LookupLink, RatingLink)."""
    overrides = None
    if settings.sms_templates_file is not None:
        overrides = json.loads(settings.sms_templates_file.read_text(encoding="utf-8"))
        if not isinstance(overrides, dict):
            raise ValueError(f"{settings.sms_templates_file}: expected a JSON object of texts")
    link, rating = LookupLink.of(settings), RatingLink.of(settings)
    limits = {**link.limits(), **rating.limits()}
    try:
        return default_templates(
            unicode=settings.sms_unicode,
            max_segments=settings.sms_max_segments,
            overrides=overrides,
            limits=limits,
        )
    except TemplateError as exc:
        text = str({**DEFAULT_TEXTS, **(overrides or {})}.get(exc.key, ""))
        pages = [
            f"its {{{name}}} is the {name} page on MOTCUA_PUBLIC_URL with the longest code, "
            f"{limits[name]} characters"
            for name, on in (("lookup", link.is_page), ("rating", rating.is_on))
            if on and "{" + name + "}" in text
        ]
        if not pages:
            raise
        # The admin changed no text: say which setting made the link too long.
        fix = " or set MOTCUA_LOOKUP_URL" if link.is_page and "{lookup}" in text else ""
        raise TemplateError(
            exc.key, f"{exc.problem}; {'; '.join(pages)}: shorten MOTCUA_PUBLIC_URL{fix}"
        ) from None


def composer_from(settings: Settings) -> Composer:
    link = LookupLink.of(settings)
    if link(None) == NATIONAL_PORTAL:
        # Said at start: the texts' link leads to a portal that knows none of these codes.
        log.info("texts_link_to_the_national_portal", set_to_fix="MOTCUA_PUBLIC_URL")
    rating = RatingLink.of(settings)
    if not rating.is_on:
        # Said at start too: the "returned" texts will carry no rating link.
        missing = "MOTCUA_PUBLIC_URL" if settings.public_url is None else "MOTCUA_LINK_SECRET"
        log.info("texts_carry_no_rating_link", set_to_fix=missing)
    policy = NoticePolicy(
        office=settings.office_name,
        lookup=link,
        rating=rating,
        collection_place=settings.collection_place,
        stale_after=timedelta(hours=settings.citizen_notice_max_age_hours),
        alert_settle=timedelta(seconds=settings.alert_settle_seconds),
    )
    quiet = QuietHours.parse(settings.quiet_hours)
    return Composer(templates_from(settings), policy, quiet, zalo_from(settings))


def zalo_from(settings: Settings) -> ZaloSetup | None:
    """The kinds told by Zalo first, or None (off) without MOTCUA_ZALO_OA_ID; a template
    setting that names an unknown kind or placeholder stops the start, saying which."""
    if not settings.zalo_oa_id:
        return None
    wait = timedelta(seconds=settings.zalo_report_wait_seconds)
    return zalo_setup(settings.zalo_oa_id, settings.zalo_templates, wait)


class NotifierService:
    """Thông báo: SMS to citizens, alerts and digests to supervisors, postal return orders."""

    name = "notifier"
    consumer_group = CONSUMER_GROUP
    consumer_batch = BATCH_MAX_RECORDS
    consumes = (DOSSIER_TOPIC, DEADLINE_TOPIC, DIRECTORY_TOPIC, CALENDAR_TOPIC)

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = system_clock,
        engine: AsyncEngine | None = None,
        kafka_bootstrap: str | None = None,
        run_dispatcher: bool = True,
        run_scheduler: bool = True,
        replay: Replay | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.replay = replay
        self.housekeeping = Housekeeping(self.name, clock, settings.housekeeping_interval_seconds)
        self.engine = engine or create_engine(
            settings.database_url_for("notifier"), settings.db_pool_size
        )
        self.kafka_bootstrap = kafka_bootstrap or settings.kafka_bootstrap
        self.composer = composer_from(settings)
        self.early_receipts = repo.EarlyReceipts(
            settings.early_receipts_max, timedelta(hours=settings.early_receipt_max_age_hours)
        )
        self.housekeeping.add("early_receipts_forgotten", self._forget_early_receipts)
        self.housekeeping.add("notices_forgotten", self._forget_notices)
        self.housekeeping.add("alerts_forgotten", self._forget_alerts)
        self.calendars = CalendarBook()
        self.metrics = ServiceMetrics()
        expose_backlog(self.metrics, self.engine, t.outbox)
        expose_statuses(self.metrics, self.engine)
        self.dispatcher = Dispatcher(
            self.engine,
            self._gateways(),
            self._postal(),
            self.composer,
            self._dispatch_settings(),
            clock,
            metrics=self.metrics,
            zalo=EsmsZalo.from_settings(settings),
        )
        self.run_dispatcher = run_dispatcher
        self.run_scheduler = run_scheduler
        self.messaging: Messaging | None = None
        self.scheduler: AsyncIOScheduler | None = None

    # -- construction -------------------------------------------------------------------------

    def _gateways(self) -> list[SmsGateway]:
        s = self.settings
        urls = [u for u in (s.sms_gateway_url, s.sms_gateway_fallback_url) if u]
        if not urls:
            return [JsonlSmsGateway(s.outbox_dir / "sms.jsonl", self.clock)]
        if s.sms_provider == "esms":
            names = zip(("primary", "fallback"), urls, strict=False)
            return [EsmsGateway.from_settings(name, url, s) for name, url in names]
        return [
            HttpSmsGateway(
                name,
                url,
                rate_per_second=s.sms_rate_per_second,
                burst=max(1, int(s.sms_rate_per_second)),
                timeout_seconds=s.sms_timeout_seconds,
            )
            for name, url in zip(("primary", "fallback"), urls, strict=False)
        ]

    def _postal(self) -> PostalOperator:
        s = self.settings
        if not s.postal_api_url:
            return JsonlPostalOperator(s.outbox_dir / "postal.jsonl", self.clock)
        if s.postal_provider == "viettelpost":
            return ViettelPostOperator.from_settings("postal", s, self.clock)
        return HttpPostalOperator(
            "postal",
            s.postal_api_url,
            rate_per_second=s.postal_rate_per_second,
            burst=max(1, int(s.postal_rate_per_second)),
            timeout_seconds=s.sms_timeout_seconds,
        )

    def _callback(self, path: str) -> str | None:
        base = self.settings.callback_base_url
        if not base:
            return None
        token = self.settings.callback_token
        query = f"?{urlencode({'token': token})}" if token else ""
        return f"{base.rstrip('/')}{path}{query}"

    def _sms_callback(self) -> str | None:
        """Where the gateway reports delivery. eSMS calls back with a GET and appends its own
        query string, so its URL carries the token in the path (api/callbacks.py)."""
        if self.settings.sms_provider != "esms":
            return self._callback("/sms/receipts")
        base, token = self.settings.callback_base_url, self.settings.callback_token
        if not base or not token:
            return None
        return f"{base.rstrip('/')}/sms/esms/{quote(token, safe='')}"

    def _dispatch_settings(self) -> DispatchSettings:
        s = self.settings
        lease = timedelta(seconds=s.send_lease_seconds)
        return DispatchSettings(
            sender=s.sms_sender,
            sms_callback_url=self._sms_callback(),
            postal_callback_url=self._callback("/postal/callbacks"),
            retry=RetryPolicy(horizon=timedelta(hours=s.sms_retry_horizon_hours)),
            lease=lease,
            early_receipts=self.early_receipts,
            batch_size=claim_size(s.sms_rate_per_second, lease),
            postal_batch_size=claim_size(s.postal_rate_per_second, lease),
            zalo_report_wait=timedelta(seconds=s.zalo_report_wait_seconds),
        )

    # -- Service ------------------------------------------------------------------------------

    def routers(self) -> Sequence[APIRouter]:
        return [callbacks.router, internal.router]

    def install(self, app: FastAPI) -> None:
        app.state.notifier = self
        install_common_handlers(app)

    async def start(self) -> None:
        await self.reload_overrides()
        self.messaging = Messaging.of(self, t.outbox, t.outbox_checkpoint)
        if self.messaging:
            await self.messaging.start()
        if self.run_dispatcher:
            self.dispatcher.start(self.settings.dispatch_poll_seconds)
        if self.run_scheduler:
            hour, minute = (int(p) for p in self.settings.digest_time.split(":"))
            self.scheduler = AsyncIOScheduler(timezone="Asia/Ho_Chi_Minh")
            self.scheduler.add_job(
                self.send_digests,
                "cron",
                hour=hour,
                minute=minute,
                id="daily-digest",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=3600,
            )
            self.scheduler.start()
        self.housekeeping.start()
        log.info("notifier_started", kafka=bool(self.kafka_bootstrap))

    async def stop(self) -> None:
        await self.housekeeping.stop()
        if self.scheduler:
            self.scheduler.shutdown(wait=False)
        await self.dispatcher.shutdown()
        if self.messaging:
            await self.messaging.stop()
        for gateway in self.dispatcher.gateways:
            await gateway.aclose()
        if self.dispatcher.zalo:
            await self.dispatcher.zalo.aclose()
        await self.dispatcher.postal.aclose()
        await self.engine.dispose()

    async def readiness(self) -> dict[str, bool]:
        return await service_readiness(self.name, self.engine, self.messaging)

    # -- entry points -------------------------------------------------------------------------

    def handlers(self) -> dict[str, Handler | TopicHandler]:
        return {
            DOSSIER_TOPIC: TopicHandler(self.on_dossier_event, self.on_dossier_events),
            DEADLINE_TOPIC: TopicHandler(self.on_deadline_event, self.on_deadline_events),
            DIRECTORY_TOPIC: self.on_directory_event,
            CALENDAR_TOPIC: self.on_calendar_event,
        }

    async def on_dossier_event(self, body: bytes) -> str | None:
        (outcome,) = await self.on_dossier_events([body])
        return outcome

    async def on_dossier_events(self, bodies: Sequence[bytes]) -> Sequence[str | None]:
        """A run of motcua.dossier.v1 in one transaction; the dispatcher woken once."""
        envelopes = [handlers.decode_dossier_event(body) for body in bodies]
        applied = await handlers.handle_dossier_events(
            self.engine, envelopes, self.composer, self.clock()
        )
        if applied.added:
            self.wake_dispatcher()
        return applied.outcomes

    async def on_deadline_event(self, body: bytes) -> str | None:
        (outcome,) = await self.on_deadline_events([body])
        return outcome

    async def on_deadline_events(self, bodies: Sequence[bytes]) -> Sequence[str | None]:
        """A run of motcua.deadline.v1 in one transaction; the dispatcher woken once."""
        envelopes = [handlers.decode_deadline_event(body) for body in bodies]
        applied = await handlers.handle_deadline_events(
            self.engine, envelopes, self.composer, self.clock()
        )
        if applied.added:
            self.wake_dispatcher()
        return applied.outcomes

    async def on_directory_event(self, body: bytes) -> None:
        envelope = decode_directory_envelope(body)
        await handlers.handle_directory_event(self.engine, envelope, self.clock())

    async def on_calendar_event(self, body: bytes) -> None:
        envelope = decode_calendar_envelope(body)
        await handlers.handle_calendar_event(self.engine, envelope, self.calendars, self.clock())

    async def send_digests(self) -> int:
        """The daily digest (the scheduler's job; also for tests)."""
        calendar = self.calendars.for_schedule_dict(None)
        try:
            added = await handlers.send_digests(self.engine, self.composer, calendar, self.clock())
        except Exception as exc:  # the scheduler must not die; the next day runs again
            log.error("digest_failed", error_class=type(exc).__name__)
            return 0
        if added:
            self.wake_dispatcher()
        return added

    async def reload_overrides(self) -> None:
        async with self.engine.connect() as conn:
            self.calendars.replace_overrides(await repo.load_overrides(conn))

    # -- housekeeping -------------------------------------------------------------------------

    async def _forget_early_receipts(self, now: datetime) -> int:
        async with self.engine.begin() as conn:
            return await repo.forget_early_receipts_before(conn, now - self.early_receipts.max_age)

    async def _forget_notices(self, now: datetime, batch: int = 5000) -> int:
        """In batches, a transaction each: a first sweep of a large table must not hold one
        long transaction (and SQLite's write lock) while the dispatcher waits."""
        cutoff = now - timedelta(days=self.settings.notices_keep_days)
        removed = 0
        while True:
            async with self.engine.begin() as conn:
                done = await repo.forget_notices_before(conn, cutoff, batch)
            removed += done
            if done < batch:
                return removed

    async def _forget_alerts(self, now: datetime) -> int:
        cutoff = now - timedelta(days=self.settings.notices_keep_days)
        async with self.engine.begin() as conn:
            return await repo.forget_alerts_before(conn, cutoff)

    def wake_dispatcher(self) -> None:
        self.dispatcher.wake()
        if self.messaging:
            self.messaging.wake()
