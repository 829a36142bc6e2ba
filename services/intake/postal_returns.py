"""The intake follows the notifier's postal returns (bưu gửi) from `motcua.notification.v1`.

`postal.ordered` shows the tracking code (mã bưu gửi) on the dossier; `postal.status_changed`
shows the operator's last status. Delivered (phát thành công) means the result reached the
citizen: the intake returns the dossier itself, through the same domain path as
`POST /dossiers/{code}/return`, so `dossier.returned` leaves through the outbox in the same
transaction. Failed and chuyển hoàn (returned to the agency) only show on the dossier: the
notifier alerts the supervisors.

Records may be redelivered and statuses reported late, and a parcel's end (delivered, failed,
returned) is its last word; see `domain.postal` for why none of that changes anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from schemas.events import (
    NOTIFICATION_EVENTS,
    Envelope,
    PostalOrdered,
    PostalStatusChanged,
    parse_notification_payload,
)
from services.core.calendars import CalendarBook
from services.core.runtime.consumer import PoisonEvent, decode_envelope, typed_payload
from services.core.runtime.kafka import NOTIFICATION_TOPIC
from services.intake import commands
from services.intake.adapters import repository as repo
from services.intake.domain import actions, postal
from services.intake.domain.model import Dossier
from services.intake.domain.postal import Postal

log = structlog.get_logger("motcua.intake")

RETURN = actions.decide(actions.ReturnResult())


def decode(body: bytes) -> Envelope:
    """The envelope of a notification record; PoisonEvent if it is undecodable, of an unknown
    type or with an invalid payload (checked here, before any transaction)."""
    envelope = decode_envelope(body, NOTIFICATION_EVENTS, NOTIFICATION_TOPIC)
    payload_of(envelope)
    return envelope


def payload_of(envelope: Envelope) -> postal.PostalEvent:
    try:
        payload = typed_payload(envelope, parse_notification_payload)
    except KeyError:
        raise PoisonEvent(f"not an event type of {NOTIFICATION_TOPIC}: {envelope.type!r}") from None
    if not isinstance(payload, PostalOrdered | PostalStatusChanged):
        raise PoisonEvent(f"no handling for {envelope.type!r}")  # a type added to the contract
    return payload


async def apply_notification_event(
    engine: AsyncEngine, envelope: Envelope, calendars: CalendarBook, now: datetime
) -> bool:
    """Apply one postal event; True when the dossier changed (its postal return or status)."""
    [changed] = await apply_notification_events(engine, [envelope], calendars, now)
    return changed


async def apply_notification_events(
    engine: AsyncEngine, envelopes: Sequence[Envelope], calendars: CalendarBook, now: datetime
) -> list[bool]:
    """Apply a run of postal events (each dossier's in order) in one transaction: one query
    reads and locks the dossiers concerned, the events follow one another in memory (an
    event sees the postal return and the status the one before left), one executemany
    writes the postal returns that changed. True for each event that changed its dossier."""
    events = [payload_of(envelope) for envelope in envelopes]
    outcomes: list[Followed | None] = []  # None: an unknown dossier
    async with engine.begin() as conn:
        found = await repo.lock_dossiers(conn, {e.dossier_id for e in envelopes})
        dossiers = {dossier_id: s.dossier for dossier_id, s in found.items()}
        stored = {dossier_id: s.postal for dossier_id, s in found.items()}
        postals = dict(stored)
        for envelope, event in zip(envelopes, events, strict=True):
            dossier = dossiers.get(envelope.dossier_id)
            if dossier is None:
                outcomes.append(None)
                continue
            before = postals[dossier.id]
            after = postals[dossier.id] = postal.follow(before, event)
            returned = postal.hands_over_result(before, event, dossier.status)
            if returned:
                dossier = dossiers[dossier.id] = await _return_result(
                    conn, dossier, event.at, calendars, now
                )
            outcomes.append(Followed(dossier, after, after != before or returned, returned))
        await repo.save_postals(conn, {i: p for i, p in postals.items() if p != stored[i]})
    for envelope, outcome in zip(envelopes, outcomes, strict=True):
        _log_outcome(envelope, outcome)
    return [outcome is not None and outcome.changed for outcome in outcomes]


@dataclass(frozen=True)
class Followed:
    """What one postal event did to its dossier."""

    dossier: Dossier  # as the event left it
    postal: Postal | None
    changed: bool  # its postal return, or its status
    returned: bool  # the event returned the dossier


def _log_outcome(envelope: Envelope, outcome: Followed | None) -> None:
    if outcome is None:
        # Not ours (or not yet: the notifier only hears of dossiers the intake published).
        log.warning(
            "notification_for_unknown_dossier",
            event_id=envelope.event_id,
            type=envelope.type,
            dossier_id=envelope.dossier_id,
        )
        return
    log.info(
        "notification_applied" if outcome.changed else "notification_not_newer",
        event_id=envelope.event_id,
        type=envelope.type,
        dossier_id=envelope.dossier_id,
        dossier_code=outcome.dossier.code,
        postal_status=outcome.postal.status if outcome.postal else None,
        returned=outcome.returned,
    )


async def _return_result(
    conn: AsyncConnection,
    dossier: Dossier,
    delivered_at: datetime,
    calendars: CalendarBook,
    now: datetime,
) -> Dossier:
    """Đã trả kết quả qua bưu chính: the intake's own `return`, at the delivery time. Returns
    the dossier as returned."""
    at = postal.return_time(delivered_at, dossier.last_action_at, now)
    if at != delivered_at:
        log.info(
            "postal_delivery_time_adjusted",
            dossier_id=dossier.id,
            delivered_at=delivered_at.isoformat(),
            recorded_at=at.isoformat(),
        )
    acted = await commands.act_on_dossier(conn, dossier.code, RETURN, at, calendars, now, _anyone)
    if acted is None:  # a bug: the dossier is locked by this very transaction
        raise LookupError(f"dossier {dossier.id} vanished while locked")
    return acted.dossier


def _anyone(_dossier: Dossier) -> bool:
    return True  # the notifier speaks for the postal operator, not for an agency's clerk
