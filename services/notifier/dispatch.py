"""Sending what was decided: SMS to the gateway, orders to the postal operator.

Notices are claimed a batch at a time for one attempt each, with a lease (status `sending`);
the batch is sent concurrently (at most `concurrency` requests in flight, each gateway's token
bucket keeping its rate), and the outcomes of the whole batch are committed together, in one
transaction of a few statements rather than one transaction an SMS. A sender killed between
the gateway's answer and that commit leaves the batch's notices `sending`; when the lease
runs out they are sent again with the same `request_id`, and the gateway answers with the
first message instead of sending a second one (docs/domain.md, "SMS practice").

Failover: after an answer that says the gateway did not take the message (429, 5xx, a
refused connection) the next attempt goes to the other gateway. After a timeout it stays on
the same one: the first may have taken the message, and only it can recognise the
request_id, so switching could text the citizen twice.

Zalo first (notifier.domain.channels): a notice whose kind has a ZNS template goes to Zalo,
and to the SMS gateway only once the ZNS is known to have failed: refused, reported failed
(api/callbacks.py), or not reported within `zalo_report_wait` (checked in the transaction
that claims a batch, one statement for all).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.core.runtime.clock import Clock
from services.core.runtime.metrics import ServiceMetrics
from services.core.runtime.waiting import wait_event
from services.notifier import handlers
from services.notifier.adapters import repository as repo
from services.notifier.adapters.esms import EsmsZalo, ZnsRequest
from services.notifier.adapters.postal import OrderResult, PostalOperator, PostalOrderRequest
from services.notifier.adapters.sms_gateway import SendResult, SmsGateway, SmsRequest
from services.notifier.composer import Composer
from services.notifier.domain import channels
from services.notifier.domain.retry import RetryPolicy

log = structlog.get_logger("motcua.notifier")

# How long a pass woken by a consumer run waits for the next runs to join it.
DISPATCH_LINGER_SECONDS = 0.02
ALERTS_EVERY = timedelta(seconds=1)  # how often a pass looks for alerts whose wait is over


@dataclass(frozen=True)
class DispatchSettings:
    sender: str
    sms_callback_url: str | None
    postal_callback_url: str | None
    retry: RetryPolicy
    lease: timedelta = timedelta(seconds=60)
    early_receipts: repo.EarlyReceipts = repo.EarlyReceipts()
    batch_size: int = 100  # SMS claimed at a time
    concurrency: int = 8
    postal_batch_size: int = 100  # postal orders claimed at a time
    zalo_report_wait: timedelta = timedelta(minutes=10)  # a ZNS's report, then the SMS


def claim_size(rate_per_second: float, lease: timedelta, most: int = 100) -> int:
    """How many to claim at once so that the batch is sent within half its lease at `rate`
    (0: no limit): outcomes are committed when the whole batch is done, and a lease that ran
    out before would let another sender claim the tail again."""
    if rate_per_second <= 0:
        return most
    return max(1, min(most, int(rate_per_second * lease.total_seconds() / 2)))


class Dispatcher:
    """Sends due SMS and places due postal orders; `run_once` for tests, `run` for service."""

    def __init__(
        self,
        engine: AsyncEngine,
        gateways: Sequence[SmsGateway],
        postal: PostalOperator,
        composer: Composer,
        settings: DispatchSettings,
        clock: Clock,
        jitter: Callable[[], float] = random.random,
        metrics: ServiceMetrics | None = None,
        zalo: EsmsZalo | None = None,
    ) -> None:
        if not gateways:
            raise ValueError("at least one SMS gateway is needed")
        self.engine = engine
        self.gateways = list(gateways)
        self.postal = postal
        self.zalo = zalo
        self.composer = composer
        self.settings = settings
        self.clock = clock
        self.jitter = jitter
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._alerts_decided_at: datetime | None = None
        self._limit = asyncio.Semaphore(settings.concurrency)
        metrics = metrics or ServiceMetrics()
        self._sms_attempts = metrics.counter(
            "motcua_sms_attempts_total",
            "SMS send attempts by gateway and its answer: accepted, retry, failed",
            ["gateway", "outcome"],
        )
        self._postal_attempts = metrics.counter(
            "motcua_postal_attempts_total",
            "Postal order attempts by the operator's answer: accepted, retry, failed",
            ["outcome"],
        )

    def wake(self) -> None:
        self._wake.set()

    # -- loop ---------------------------------------------------------------------------------

    def start(self, poll_seconds: float = 1.0) -> None:
        self._task = asyncio.create_task(self._run(poll_seconds), name="notifier-dispatcher")

    async def shutdown(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self, poll_seconds: float) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be away: the next pass retries
                log.error("dispatch_failed", error_class=type(exc).__name__)
            if await wait_event(self._wake, poll_seconds):
                # Woken by a consumer run: the runs of the next moment join this pass
                # (a claim, a send, a record of outcomes) instead of each paying for one.
                await asyncio.sleep(DISPATCH_LINGER_SECONDS)
            self._wake.clear()

    async def run_once(self) -> int:
        """Every notice and order due now, until none is left; returns attempts made. The
        overdue alerts whose wait is over are decided first (handlers.decide_alerts): this
        loop is the notifier's heartbeat, and an alert decided goes out in the same pass."""
        now = self.clock()
        last = self._alerts_decided_at
        # An alert waits minutes to settle: looking once a second is soon enough, and spares
        # the passes a consumer run wakes (hundreds a second under load) a query each.
        if last is None or not last <= now < last + ALERTS_EVERY:
            await handlers.decide_alerts(self.engine, self.composer, now)
            self._alerts_decided_at = now
        attempts = 0
        while True:
            sent = await self.send_due_sms()
            placed = await self.place_due_orders()
            attempts += sent + placed
            # A batch sent may let the next notice of a dossier go (claim_due_notices keeps
            # them in line), so the pass ends only when nothing more is claimed.
            if sent == 0 and placed < self.settings.postal_batch_size:
                return attempts

    # -- SMS ----------------------------------------------------------------------------------

    async def send_due_sms(self) -> int:
        now = self.clock()
        quiet = self.composer.quiet  # the hours notices were held by
        if quiet and quiet.contains(now):
            return 0  # held until the window ends, citizens and supervisors alike
        async with self.engine.begin() as conn:
            await repo.fall_back_unreported(conn, now, self.settings.zalo_report_wait)
            due = await repo.claim_due_notices(
                conn, now, self.settings.batch_size, self.settings.lease
            )
        if not due:
            return 0
        # All at once, within the rate limit: the claim gives at most one notice per dossier
        # and recipient (repo.claim_due_notices), so no two in a batch must keep an order.
        results = await asyncio.gather(*(self._send(notice) for notice in due))
        await self._record_sms(list(zip(due, results, strict=True)))
        return len(due)

    async def _send(self, notice: repo.Outgoing) -> SendResult:
        async with self._limit:
            sending: Awaitable[SendResult]
            if notice.channel == channels.ZALO:
                if self.zalo is None or not notice.zns:  # Zalo taken out of the settings
                    return SendResult("failed", channels.ZALO, error="not configured")
                name, sending = self.zalo.name, self.zalo.send(self._zns(notice))
            else:
                gateway = self.gateways[notice.gateway_index % len(self.gateways)]
                name, sending = gateway.name, gateway.send(self._sms(notice))
            try:
                return await sending
            except Exception as exc:  # a client bug must not lose the notice
                taken = isinstance(exc, TimeoutError)
                return SendResult("retry", name, error=type(exc).__name__, maybe_taken=taken)

    def _sms(self, notice: repo.Outgoing) -> SmsRequest:
        return SmsRequest(
            to=notice.recipient,
            text=notice.text,
            unicode=notice.unicode,
            request_id=notice.id,
            sender=self.settings.sender,
            callback_url=self.settings.sms_callback_url,
        )

    def _zns(self, notice: repo.Outgoing) -> ZnsRequest:
        zns = notice.zns or {}
        return ZnsRequest(
            to=notice.recipient,
            template_id=str(zns["template"]),
            params=dict(zns["params"]),
            request_id=notice.id,
            callback_url=self.settings.sms_callback_url,
        )

    async def _record_sms(self, sent: Sequence[tuple[repo.Outgoing, SendResult]]) -> None:
        """The batch's outcomes in one transaction. Until it commits the notices stay
        `sending` under their lease: a crash before it has them sent again, same request_id."""
        for _, result in sent:  # made, whether or not their outcome gets committed
            self._sms_attempts.labels(result.gateway, result.outcome).inc()
        now = self.clock()
        attempts = [self._attempt(notice, result, now) for notice, result in sent]
        async with self.engine.begin() as conn:
            await repo.record_attempts(conn, attempts, now, self.settings.early_receipts.max_age)
        for notice, result in sent:
            log.info(
                "sms_attempt",
                notice_id=notice.id,
                dossier_id=notice.dossier_id,
                gateway=result.gateway,
                outcome=result.outcome,
                error=result.error,
                attempt=notice.attempts + 1,
            )

    def _attempt(self, notice: repo.Outgoing, result: SendResult, now: datetime) -> repo.Attempt:
        """What the gateway's answer makes of the notice: accepted, failed for good, or
        pending again (on the other gateway after a refusal, on the same after a timeout,
        failed once the retry horizon is spent). A ZNS's: channels.after_zalo_answer."""
        gateway = result.gateway
        if notice.channel == channels.ZALO:
            retry_at = None
            if result.outcome == "retry" and result.maybe_taken:
                retry_at = self._next_attempt(
                    notice.attempts, notice.first_attempt_at, now, result.retry_after_seconds
                )
            move = channels.after_zalo_answer(
                result.outcome,
                result.error,
                result.maybe_taken,
                now,
                self.settings.zalo_report_wait,
                retry_at,
                notice.first_attempt_at,
            )
            return repo.Attempt.of_move(notice, move, gateway, result.message_id)
        if result.outcome == "accepted" and result.message_id:
            return repo.Attempt(notice, "accepted", gateway, message_id=result.message_id)
        if result.outcome == "failed":
            return repo.Attempt(notice, "failed", gateway, error=result.error or "")
        error = result.error or "no message id"
        at = self._next_attempt(
            notice.attempts, notice.first_attempt_at, now, result.retry_after_seconds
        )
        if at is None:
            gave_up = f"gave up after {notice.attempts + 1} attempts: {error}"
            return repo.Attempt(notice, "failed", gateway, error=gave_up)
        index = notice.gateway_index
        if len(self.gateways) > 1 and not result.maybe_taken:
            index += 1
        return repo.Attempt(
            notice, "pending", gateway, error=error, next_attempt_at=at, gateway_index=index
        )

    def _next_attempt(
        self,
        attempts: int,
        first_attempt_at: datetime | None,
        now: datetime,
        retry_after: float | None,
    ) -> datetime | None:
        """When to try again after attempt number `attempts + 1` failed; None: give up."""
        first = first_attempt_at or now
        return self.settings.retry.next_attempt(
            attempts + 1, first, now, self.jitter(), retry_after
        )

    # -- postal orders ------------------------------------------------------------------------

    async def place_due_orders(self) -> int:
        now = self.clock()
        async with self.engine.begin() as conn:
            due = await repo.claim_due_orders(
                conn, now, self.settings.postal_batch_size, self.settings.lease
            )
        if not due:
            return 0
        results = await asyncio.gather(*(self._place(o) for o in due))
        await self._record_orders(list(zip(due, results, strict=True)))
        return len(due)

    async def _place(self, order: repo.PendingOrder) -> OrderResult:
        async with self._limit:
            receiver = order.receiver
            request = PostalOrderRequest(
                reference=order.reference,
                receiver_name=str(receiver["name"]),
                receiver_phone=str(receiver["phone"]),
                address=dict(receiver["address"]),
                content=order.content,
                callback_url=self.settings.postal_callback_url,
                agency_code=order.agency_code,
            )
            try:
                return await self.postal.place(request)
            except Exception as exc:
                return OrderResult("retry", error=type(exc).__name__)

    async def _record_orders(self, placed: Sequence[tuple[repo.PendingOrder, OrderResult]]) -> None:
        """The batch's outcomes in one transaction, as for SMS (the operator deduplicates
        on the order's reference)."""
        for _, result in placed:
            self._postal_attempts.labels(result.outcome).inc()
        now = self.clock()
        async with self.engine.begin() as conn:
            for order, result in placed:
                await self._record_order(conn, order, result, now)
        for order, result in placed:
            log.info(
                "postal_attempt",
                dossier_id=order.dossier_id,
                outcome=result.outcome,
                error=result.error,
                attempt=order.attempts + 1,
            )

    async def _record_order(
        self, conn: AsyncConnection, order: repo.PendingOrder, result: OrderResult, now: datetime
    ) -> None:
        if result.outcome == "accepted" and result.tracking_code:
            await handlers.record_order_placed(
                conn, order, result.tracking_code, self.composer, now
            )
            return
        error = result.error or "no tracking code"
        at = None
        if result.outcome != "failed":
            at = self._next_attempt(
                order.attempts, order.first_attempt_at, now, result.retry_after_seconds
            )
        status = "pending" if at else "failed"
        if not await repo.update_order(
            conn, order, now, status=status, next_attempt_at=at, error=error[:200]
        ):
            return  # placed meanwhile, by the operator's webhook
        await repo.add_postal_history(conn, order.dossier_id, status, now, error)
        if status == "failed":
            await handlers.record_order_refused(conn, order, self.composer, now)
