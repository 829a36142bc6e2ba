"""The tracker's entry points: a dossier event, a calendar change, a scan.

Each takes its ports as arguments (engine, calendars, settings of the threshold, `now`) and
does its work in transactions that write the state and the outgoing flags together.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.events import DOSSIER_EVENTS, CalendarEnvelope, Envelope, parse_payload
from services.core.calendars import CalendarBook
from services.core.domain.calendar import CalendarOverride, DayKind
from services.core.runtime.consumer import decode_envelope, typed_payload
from services.core.runtime.kafka import DOSSIER_TOPIC
from services.tracker.adapters import repository as repo
from services.tracker.domain import (
    DeadlineEvent,
    DossierRef,
    EventOutcome,
    TrackedDossier,
    apply,
    recompute,
    scan,
    schedule_of,
    touched_by,
)

log = structlog.get_logger("motcua.tracker")


@dataclass(frozen=True)
class ScanReport:
    examined: int = 0
    raised: Mapping[str, int] = field(default_factory=dict)  # event type → flags raised

    @property
    def flags(self) -> int:
        return sum(self.raised.values())


def decode_dossier_event(body: bytes) -> Envelope:
    return decode_envelope(body, DOSSIER_EVENTS, DOSSIER_TOPIC)


async def handle_dossier_event(
    engine: AsyncEngine,
    envelope: Envelope,
    calendars: CalendarBook,
    threshold_minutes: int,
    now: datetime,
) -> EventOutcome | None:
    """Apply one dossier event once: None when its `event_id` was applied before."""
    [decision] = await handle_dossier_events(engine, [envelope], calendars, threshold_minutes, now)
    return decision


async def handle_dossier_events(
    engine: AsyncEngine,
    envelopes: Sequence[Envelope],
    calendars: CalendarBook,
    threshold_minutes: int,
    now: datetime,
) -> list[EventOutcome | None]:
    """Apply a run of dossier events in one transaction, each once, in the order given (each
    partition's, hence each dossier's): one decision per event, None for an event whose
    `event_id` was applied before, or earlier in the run.

    One statement claims the run's event ids, one loads the dossiers concerned; the events
    are applied in memory, so several of one dossier chain (each sees the state the one
    before left), and the final states and the flags are written in bulk. The decisions are
    those of applying the events one by one. All or nothing: an invalid payload raises
    PoisonEvent before the transaction, any failure in it writes nothing."""
    payloads = [typed_payload(envelope, parse_payload) for envelope in envelopes]
    decisions: list[EventOutcome | None] = []
    async with engine.begin() as conn:
        fresh = await repo.claim_events(conn, [e.event_id for e in envelopes], now)
        stored = await repo.load_many(
            conn, {e.dossier_id for e in envelopes if e.event_id in fresh}
        )
        current: dict[str, TrackedDossier] = dict(stored)
        flags: list[tuple[TrackedDossier, DeadlineEvent]] = []
        for envelope, payload in zip(envelopes, payloads, strict=True):
            if envelope.event_id not in fresh:
                decisions.append(None)
                continue
            fresh.discard(envelope.event_id)  # the same id again later in the run: a duplicate
            tracked = current.get(envelope.dossier_id)
            calendar = calendars.for_schedule_dict(schedule_of(tracked, payload))
            decision = apply(
                tracked,
                envelope.type,
                payload,
                calendar,
                threshold_minutes,
                ref=DossierRef.of(envelope),
                event_id=envelope.event_id,
            )
            if decision.tracked is not None:
                if decision.changed:
                    current[envelope.dossier_id] = decision.tracked
                flags.extend((decision.tracked, e) for e in decision.events)
            decisions.append(decision)
        changed = [d for i, d in current.items() if d is not stored.get(i)]
        await repo.insert_many(conn, [d for d in changed if d.dossier_id not in stored], now)
        await repo.update_many(conn, [d for d in changed if d.dossier_id in stored], now)
        await repo.write_events(conn, flags, now)
    for envelope, done in zip(envelopes, decisions, strict=True):
        if done is None:
            log.info("event_duplicate", event_id=envelope.event_id, dossier_id=envelope.dossier_id)
        else:
            _log_decision(envelope, done)
    return decisions


def _log_decision(envelope: Envelope, decision: EventOutcome) -> None:
    if decision.ignored:
        log.warning(
            "event_ignored",
            event_id=envelope.event_id,
            type=envelope.type,
            dossier_id=envelope.dossier_id,
            reason=decision.ignored,
        )
        return
    log.info(
        "event_applied",
        event_id=envelope.event_id,
        type=envelope.type,
        dossier_id=envelope.dossier_id,
        deadline_version=decision.tracked.version if decision.tracked else None,
        events=[e.type for e in decision.events],
    )


async def scan_due(
    engine: AsyncEngine,
    calendars: CalendarBook,
    threshold_minutes: int,
    now: datetime,
    *,
    batch_size: int = 1000,
) -> ScanReport:
    """Raise every flag due at `now`, a batch per transaction, until none is left."""
    examined = 0
    raised_by_type: Counter[str] = Counter()
    seen: set[str] = set()
    while True:
        async with engine.begin() as conn:
            batch = await repo.due_for_scan(conn, now, batch_size)
            changed: list[TrackedDossier] = []
            raised = []
            for tracked in batch:
                calendar = calendars.for_schedule_dict(tracked.schedule)
                result = scan(tracked, now, calendar, threshold_minutes)
                if result.changed:
                    changed.append(result.tracked)
                raised.extend((result.tracked, e) for e in result.events)
            await repo.update_many(conn, changed, now)
            await repo.write_events(conn, raised, now)
        examined += len(batch)
        raised_by_type.update(event.type for _, event in raised)
        ids = {t.dossier_id for t in batch}
        if len(batch) < batch_size or ids <= seen:
            # A full batch of dossiers seen before would mean next_check_at did not move:
            # a bug, but one that must not turn into an endless loop.
            if batch and ids <= seen:
                log.error("scan_made_no_progress", dossiers=len(batch))
            break
        seen |= ids
    report = ScanReport(examined, dict(raised_by_type))
    if examined:
        log.info("scan_done", examined=examined, flags=report.flags)
    return report


async def handle_calendar_event(
    engine: AsyncEngine,
    envelope: CalendarEnvelope,
    calendars: CalendarBook,
    threshold_minutes: int,
    now: datetime,
    *,
    batch_size: int = 500,
) -> int:
    """Install the announced overrides and recompute the open deadlines the changed day
    touches. Idempotent, so it needs no event-id check: a redelivery installs the same
    overrides and finds no deadline left to move. Returns how many deadlines moved."""
    overrides = [
        CalendarOverride(d.day, DayKind(d.kind), d.note) for d in envelope.payload.overrides
    ]
    async with engine.begin() as conn:
        await repo.replace_overrides(conn, overrides)
    calendars.replace_overrides(overrides)
    day = envelope.payload.day
    moved = 0
    after = ""
    while True:
        async with engine.begin() as conn:
            batch = await repo.open_received_by(conn, day, after, batch_size)
            changed: list[TrackedDossier] = []
            events = []
            for tracked in batch:
                if not touched_by(tracked, day):
                    continue
                calendar = calendars.for_schedule_dict(tracked.schedule)
                decision = recompute(tracked, calendar, threshold_minutes, envelope.occurred_at)
                if decision.changed and decision.tracked is not None:
                    changed.append(decision.tracked)
                    events.extend((decision.tracked, e) for e in decision.events)
            await repo.update_many(conn, changed, now)
            await repo.write_events(conn, events, now)
        moved += len(events)
        if len(batch) < batch_size:
            break
        after = batch[-1].dossier_id
    log.info("calendar_applied", day=day.isoformat(), deadlines_moved=moved)
    return moved
