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
from services.core.domain.lifecycle import Action
from services.core.runtime.consumer import PoisonEvent, decode_envelope, typed_payload
from services.core.runtime.kafka import NOTIFICATION_TOPIC
from services.intake import commands
from services.intake.adapters import repository as repo
from services.intake.api import models as m
from services.intake.domain import postal
from services.intake.domain.model import Dossier

log = structlog.get_logger("motcua.intake")

RETURN = commands.decision_for(Action.RETURN, m.ActionIn())


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
    event = payload_of(envelope)
    async with engine.begin() as conn:
        found = await repo.lock_dossier(conn, envelope.dossier_id)
        if found is None:
            # Not ours (or not yet: the notifier only hears of dossiers the intake published).
            log.warning(
                "notification_for_unknown_dossier",
                event_id=envelope.event_id,
                type=envelope.type,
                dossier_id=envelope.dossier_id,
            )
            return False
        dossier, row = found
        before = repo.postal_of(row)
        after = postal.follow(before, event)
        if after != before:
            await repo.save_postal(conn, dossier.id, after)
        returned = postal.hands_over_result(before, event, dossier.status)
        if returned:
            await _return_result(conn, dossier, event.at, calendars, now)
    log.info(
        "notification_applied" if after != before or returned else "notification_not_newer",
        event_id=envelope.event_id,
        type=envelope.type,
        dossier_id=envelope.dossier_id,
        dossier_code=dossier.code,
        postal_status=after.status if after else None,
        returned=returned,
    )
    return after != before or returned


async def _return_result(
    conn: AsyncConnection,
    dossier: Dossier,
    delivered_at: datetime,
    calendars: CalendarBook,
    now: datetime,
) -> None:
    """Đã trả kết quả qua bưu chính: the intake's own `return`, at the delivery time."""
    at = postal.return_time(delivered_at, dossier.last_action_at, now)
    if at != delivered_at:
        log.info(
            "postal_delivery_time_adjusted",
            dossier_id=dossier.id,
            delivered_at=delivered_at.isoformat(),
            recorded_at=at.isoformat(),
        )
    await commands.act_on_dossier(conn, dossier.code, RETURN, at, calendars, now, _anyone)


def _anyone(_dossier: Dossier) -> bool:
    return True  # the notifier speaks for the postal operator, not for an agency's clerk
