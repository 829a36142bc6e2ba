"""The notifier's entry points: an event from a topic, a digest run, a gateway's callback.

Each takes its ports as arguments (engine, composer, `now`) and writes in one transaction the
state, the notices it decided and the events it publishes. Sending happens later
(`dispatch`), from the notices table, so a crash never loses a decided notice.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from schemas.events import (
    DEADLINE_EVENTS,
    DOSSIER_EVENTS,
    CalendarEnvelope,
    DirectoryEnvelope,
    DossierEvent,
    Envelope,
    PersonalDataErased,
    PostalOrdered,
    PostalStatusChanged,
    parse_deadline_payload,
    parse_payload,
)
from services.core.calendars import CalendarBook
from services.core.domain import postal_status
from services.core.domain.calendar import VN_TZ, CalendarOverride, DayKind, WorkingCalendar
from services.core.domain.deadline_projection import mark_of
from services.core.runtime.consumer import DUPLICATE, decode_envelope, typed_payload
from services.core.runtime.database import dialect_insert
from services.core.runtime.kafka import DEADLINE_TOPIC, DOSSIER_TOPIC, NOTIFICATION_TOPIC
from services.core.runtime.outbox import outbox_row
from services.notifier.adapters import repository as repo
from services.notifier.adapters import tables as t
from services.notifier.composer import Composer
from services.notifier.domain.decisions import (
    Contact,
    DossierCard,
    DossierRef,
    NoticeDraft,
    PendingAlert,
    PostalOrderDraft,
    decide_alert,
    digest_notices,
    follow_flag,
    on_dossier_event,
    on_postal_order_placed,
    on_postal_problem,
)

log = structlog.get_logger("motcua.notifier")

EVENT_ID_NAMESPACE = uuid.UUID("0c5e1f7a-8d2b-4c3e-a1f9-6d6f74637561")
POSTAL_PROBLEMS = frozenset({"failed", "returned"})


async def store_notices(
    conn: AsyncConnection, composer: Composer, drafts: Iterable[NoticeDraft], now: datetime
) -> int:
    """Insert the drafts not told before; returns how many are new."""
    return len(await _store(conn, [composer.row(d, now) for d in drafts], now))


async def _store(conn: AsyncConnection, rows: Sequence[dict[str, Any]], now: datetime) -> set[str]:
    """Insert the rendered notices not told before, in bulk; returns the ids of those new."""
    new = await repo.add_notices(conn, rows, now)
    logged: set[str] = set()
    for row in rows:
        if row["id"] in new and row["id"] not in logged:
            logged.add(row["id"])
            log.info(
                "notice_decided",
                notice_id=row["id"],
                template=row["template"],
                audience=row["audience"],
                status=row["status"],
                dossier_id=row["dossier_id"],
            )
    return new


# -- motcua.dossier.v1 ----------------------------------------------------------------------


def decode_dossier_event(body: bytes) -> Envelope:
    return decode_envelope(body, DOSSIER_EVENTS, DOSSIER_TOPIC)


async def handle_dossier_event(
    engine: AsyncEngine, envelope: Envelope, composer: Composer, now: datetime
) -> int:
    """Remember the dossier and decide the citizen's notice; returns notices + orders added."""
    return (await handle_dossier_events(engine, [envelope], composer, now)).added


@dataclass(frozen=True)
class Applied:
    """What a run of events came to: one outcome per event (DUPLICATE when the event had
    been told before: all it decides was stored already), and how many notices and postal
    orders are new (the dispatcher has work when there are)."""

    outcomes: list[str | None]
    added: int


async def handle_dossier_events(
    engine: AsyncEngine, envelopes: Sequence[Envelope], composer: Composer, now: datetime
) -> Applied:
    """A run of dossier events in one transaction, deciding as one by one would: the cards
    concerned are read in one query and each event decides on the card the events before it
    left (a received then a rejection of one dossier chain in memory); then the changed cards,
    the notices and their history are written in bulk. A notice's identity comes from its
    event, so the notices' INSERT ... ON CONFLICT DO NOTHING RETURNING is the de-duplication
    of the run's events: one told before, or twice in the run, adds nothing.

    All or nothing: a poison event (PoisonEvent, raised before anything is written) or a
    failure rolls the whole run back."""
    refs = [DossierRef(e.dossier_id, e.dossier_code, e.agency_code) for e in envelopes]
    payloads = [typed_payload(e, parse_payload) for e in envelopes]
    async with engine.begin() as conn:
        cards = await repo.load_cards(conn, {e.dossier_id for e in envelopes})
        changed: dict[str, DossierCard] = {}
        decisions = []
        for envelope, ref, payload in zip(envelopes, refs, payloads, strict=True):
            card = cards.get(envelope.dossier_id)
            decision = on_dossier_event(card, ref, envelope.event_id, payload, now, composer.policy)
            if decision.card is not None:
                cards[envelope.dossier_id] = changed[envelope.dossier_id] = repo.as_stored(
                    decision.card
                )
            decisions.append(decision)
        await repo.save_cards(conn, changed.values(), now)
        await repo.erase_personal_data(
            conn, [r.dossier_id for r, p in zip(refs, payloads, strict=True) if erases(p)], now
        )
        # News of a dossier: an overdue flag about it waits until the news has settled.
        await repo.postpone_alerts(conn, cards.keys(), now + composer.policy.alert_settle)
        rows = [[composer.row(draft, now) for draft in d.notices] for d in decisions]
        new = await _store(conn, [row for told in rows for row in told], now)
        placed = []  # postal orders are few (a result sent by post): one statement each
        for decision in decisions:
            order = decision.postal_order
            placed.append(order is not None and await _add_order(conn, order, now))
    outcomes: list[str | None] = []
    claimed: set[str] = set()  # a notice drafted twice in the run is new for the first only
    for envelope, decision, told, order_new in zip(envelopes, decisions, rows, placed, strict=True):
        fresh = ({row["id"] for row in told} & new) - claimed
        claimed |= fresh
        tells = bool(told) or decision.postal_order is not None
        outcomes.append(DUPLICATE if tells and not fresh and not order_new else None)
        if decision.skipped:
            log.info(
                "event_not_told",
                event_id=envelope.event_id,
                dossier_id=envelope.dossier_id,
                reason=decision.skipped,
            )
    return Applied(outcomes, len(new) + sum(placed))


def erases(payload: DossierEvent) -> bool:
    """The intake erased the applicant's data: so does the notifier, in the same transaction
    as the card (whether it knows the card or not: its notices and order may outlive it)."""
    return isinstance(payload, PersonalDataErased)


async def _add_order(conn: AsyncConnection, order: PostalOrderDraft, now: datetime) -> bool:
    if not await repo.add_postal_order(conn, order, now):
        return False
    log.info("postal_order_decided", dossier_id=order.dossier_id)
    return True


# -- motcua.deadline.v1 ---------------------------------------------------------------------


def decode_deadline_event(body: bytes) -> Envelope:
    return decode_envelope(body, DEADLINE_EVENTS, DEADLINE_TOPIC)


async def handle_deadline_event(
    engine: AsyncEngine, envelope: Envelope, composer: Composer, now: datetime
) -> int:
    """Follow the flag (for digests); alert supervisors of an overdue dossier, once."""
    return (await handle_deadline_events(engine, [envelope], composer, now)).added


async def handle_deadline_events(
    engine: AsyncEngine, envelopes: Sequence[Envelope], composer: Composer, now: datetime
) -> Applied:
    """A run of deadline events in one transaction: every mark applied in the run's order
    (one executemany of the conditional UPDATE, so each sees the row as the one before left
    it), then the dossiers' pending overdue alerts followed through the run (read in one
    query, written in one or two). An alert is not decided here but when it is true of the
    dossier as known (``decide_alerts``). Marks only move forward and a flag told twice
    sets the same alert, so a run told twice changes nothing; all or nothing, like the
    dossier events'. ``added`` counts the alerts set, for the dispatcher to look."""
    payloads = [typed_payload(e, parse_deadline_payload) for e in envelopes]
    marks = [mark_of(p) for p in payloads]
    async with engine.begin() as conn:
        await repo.apply_marks(
            conn,
            [(e.dossier_id, m) for e, m in zip(envelopes, marks, strict=True) if m is not None],
            now,
        )
        before = await repo.load_alerts(conn, {e.dossier_id for e in envelopes})
        pending: dict[str, dict[str, PendingAlert]] = {}
        for (dossier_id, kind), alert in before.items():
            pending.setdefault(dossier_id, {})[kind] = alert
        for e, payload in zip(envelopes, payloads, strict=True):
            ref = DossierRef(e.dossier_id, e.dossier_code, e.agency_code)
            known = pending.get(e.dossier_id, {})
            pending[e.dossier_id] = follow_flag(known, ref, payload, now, composer.policy)
        after = {(d, kind): a for d, alerts in pending.items() for kind, a in alerts.items()}
        await repo.save_alerts(conn, before, after)
    set_ = sum(1 for key, a in after.items() if a != before.get(key))
    return Applied([None] * len(envelopes), set_)


async def decide_alerts(
    engine: AsyncEngine, composer: Composer, now: datetime, *, batch_size: int = 500
) -> int:
    """Tell the supervisors concerned of every flag whose wait is over (decisions.PendingAlert)
    if it is still true of the dossier as known, else drop it; returns the notices added.
    A batch per transaction: the alerts are taken and their notices stored together."""
    added = 0
    while True:
        async with engine.begin() as conn:
            due = await repo.alerts_due(conn, now, batch_size)
            agencies = {d.alert.agency_code for d in due}
            supervisors = await repo.supervisors_of_agencies(conn, agencies)
            names = await repo.agency_names(conn, agencies)
            drafts: list[NoticeDraft] = []
            for d in due:
                people = supervisors.get(d.alert.agency_code, [])
                name = names.get(d.alert.agency_code)
                decided = decide_alert(d.alert, d.card, d.mark, people, now, composer.policy, name)
                if isinstance(decided, str):
                    log.info(
                        "alert_dropped",
                        kind=d.alert.kind,
                        dossier_id=d.card.dossier_id,
                        reason=decided,
                    )
                    continue
                if not decided:
                    log.warning(
                        "alert_without_supervisors",
                        kind=d.alert.kind,
                        dossier_id=d.card.dossier_id,
                        agency=d.alert.agency_code,
                    )
                drafts.extend(decided)
            added += len(await _store(conn, [composer.row(x, now) for x in drafts], now))
            await repo.delete_alerts(conn, [(d.alert.dossier_id, d.alert.kind) for d in due])
        if len(due) < batch_size:
            return added


# -- motcua.directory.v1 and motcua.calendar.v1 ---------------------------------------------


async def handle_directory_event(
    engine: AsyncEngine, envelope: DirectoryEnvelope, now: datetime
) -> None:
    """The agency's whole supervisor list replaces the one held, and its name the one held:
    idempotent. A record without a name (published before names were) leaves the name held."""
    payload = envelope.payload
    people = [(s.id, Contact(s.name, s.phone)) for s in payload.supervisors]
    async with engine.begin() as conn:
        await repo.replace_supervisors(conn, payload.agency_code, people)
        if payload.agency_name is not None:
            await repo.save_agency_name(conn, payload.agency_code, payload.agency_name)
    log.info("supervisors_replaced", agency=payload.agency_code, count=len(people))


async def handle_calendar_event(
    engine: AsyncEngine, envelope: CalendarEnvelope, calendars: CalendarBook, now: datetime
) -> None:
    overrides = [
        CalendarOverride(d.day, DayKind(d.kind), d.note) for d in envelope.payload.overrides
    ]
    async with engine.begin() as conn:
        await repo.save_overrides(conn, overrides, now)
    calendars.replace_overrides(overrides)


# -- daily digest ---------------------------------------------------------------------------


async def send_digests(
    engine: AsyncEngine, composer: Composer, calendar: WorkingCalendar, now: datetime
) -> int:
    """Tổng hợp hằng ngày: on a working day, one message per supervisor of each agency with
    dossiers due soon or overdue. Run twice (two replicas, a restart) it adds nothing."""
    day = now.astimezone(VN_TZ).date()
    if not calendar.is_working_day(day):
        return 0
    added = 0
    async with engine.begin() as conn:
        digests = await repo.digests(conn)
        names = await repo.agency_names(conn, {d.agency_code for d in digests})
        for digest in digests:
            supervisors = await repo.supervisors_of(conn, digest.agency_code)
            name = names.get(digest.agency_code)
            drafts = digest_notices(digest, day, supervisors, composer.policy, name)
            added += await store_notices(conn, composer, drafts, now)
    log.info("digests_decided", day=day.isoformat(), notices=added)
    return added


# -- gateway callbacks ----------------------------------------------------------------------


async def record_receipt(
    engine: AsyncEngine,
    message_id: str,
    status: str,
    error: str | None,
    now: datetime,
    early: repo.EarlyReceipts | None = None,
    notice_id: str | None = None,
    *,
    zalo: bool = False,
    also_as: str | None = None,
) -> str | None:
    """A delivery report (repository.apply_receipt): the notice's id, None when kept."""
    async with engine.begin() as conn:
        notice = await repo.apply_receipt(
            conn, message_id, status, error, now, early, notice_id, zalo=zalo, also_as=also_as
        )
    log.info("receipt_recorded", notice_id=notice, status=status, zalo=zalo)
    return notice


async def record_order_placed(
    conn: AsyncConnection,
    order: repo.PendingOrder,
    tracking_code: str,
    composer: Composer,
    now: datetime,
) -> bool:
    """The operator took the order: keep its tracking code, text it, tell the intake. False
    when it was placed already (told by the webhook, then by the answer): nothing again."""
    if not await repo.update_order(
        conn, order, now, status="placed", tracking_code=tracking_code, error=None
    ):
        return False
    await repo.add_postal_history(conn, order.dossier_id, "placed", now, tracking_code)
    card = await repo.load_card(conn, order.dossier_id)
    if card is None:
        return True
    await store_notices(
        conn, composer, [on_postal_order_placed(card, tracking_code, composer.policy)], now
    )
    event = PostalOrdered(reference=order.reference, tracking_code=tracking_code, at=now)
    await _publish(conn, card, "postal.ordered", event.model_dump(mode="json"), "ordered", now)
    return True


async def record_order_number(
    engine: AsyncEngine, composer: Composer, reference: str, tracking_code: str, now: datetime
) -> bool:
    """The operator told its number for our reference before its answer to the order came,
    or instead of it (an operator that refuses a repeated reference without the first
    order's number: Viettel Post): the order is placed with it, as if the answer had come.
    False when no order of this reference waits for one."""
    async with engine.begin() as conn:
        order = await repo.unplaced_order(conn, reference)
        placed = order is not None and await record_order_placed(
            conn, order, tracking_code, composer, now
        )
    if placed:
        log.info("postal_order_number_told", dossier_id=order.dossier_id if order else None)
    return placed


async def record_order_refused(
    conn: AsyncConnection, order: repo.PendingOrder, composer: Composer, now: datetime
) -> None:
    """No order could be placed: the result stays at the agency, whose supervisors must know."""
    card = await repo.load_card(conn, order.dossier_id)
    if card is None:
        return
    supervisors = await repo.supervisors_of(conn, card.agency_code)
    drafts = on_postal_problem(card, "-", "not_placed", supervisors, composer.policy)
    await store_notices(conn, composer, drafts, now)
    log.warning("postal_order_failed", dossier_id=order.dossier_id)


async def record_postal_status(
    engine: AsyncEngine, composer: Composer, tracking_code: str, status: str, now: datetime
) -> str | None:
    """A status callback of the postal operator: "recorded", "ignored" (not a move forward:
    told twice, late, or after the parcel's end; see core.domain.postal_status), or None when
    the tracking code is unknown."""
    async with engine.begin() as conn:
        order = await repo.order_by_tracking(conn, tracking_code)
        if order is None:
            return None
        known = order.carrier_status
        # Compare-and-set: of two callbacks racing from the same status, one moves the parcel.
        if not (
            postal_status.moves_forward(known, status)
            and await repo.advance_carrier_status(conn, order.dossier_id, known, status, now)
        ):
            # Acknowledged, so the operator stops telling it, and nothing changes.
            log.info(
                "postal_status_ignored", dossier_id=order.dossier_id, status=status, known=known
            )
            return "ignored"
        await repo.add_postal_history(conn, order.dossier_id, status, now)
        card = await repo.load_card(conn, order.dossier_id)
        if card is None:
            return "recorded"
        event = PostalStatusChanged(tracking_code=tracking_code, status=status, at=now)  # type: ignore[arg-type]
        await _publish(
            conn, card, "postal.status_changed", event.model_dump(mode="json"), status, now
        )
        if status in POSTAL_PROBLEMS:
            supervisors = await repo.supervisors_of(conn, card.agency_code)
            drafts = on_postal_problem(card, tracking_code, status, supervisors, composer.policy)
            await store_notices(conn, composer, drafts, now)
    log.info("postal_status_recorded", dossier_id=order.dossier_id, status=status)
    return "recorded"


async def _publish(
    conn: AsyncConnection,
    card: DossierCard,
    event_type: str,
    payload: dict[str, Any],
    fact: str,
    now: datetime,
) -> None:
    """An event on motcua.notification.v1, its id derived from the fact: told twice, it is
    one row (ON CONFLICT DO NOTHING)."""
    event_id = str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{card.dossier_id}|{event_type}|{fact}"))
    envelope = Envelope(
        event_id=event_id,
        type=event_type,
        occurred_at=now,
        dossier_id=card.dossier_id,
        dossier_code=card.code,
        agency_code=card.agency_code,
        payload=payload,
    )
    row = outbox_row(event_id, NOTIFICATION_TOPIC, card.dossier_id, envelope.model_dump_json(), now)
    await conn.execute(dialect_insert(conn, t.outbox).values(**row).on_conflict_do_nothing())


__all__: Sequence[str] = [
    "Applied",
    "decide_alerts",
    "decode_deadline_event",
    "decode_dossier_event",
    "handle_calendar_event",
    "handle_deadline_event",
    "handle_deadline_events",
    "handle_directory_event",
    "handle_dossier_event",
    "handle_dossier_events",
    "record_order_number",
    "record_order_placed",
    "record_postal_status",
    "record_receipt",
    "send_digests",
]
