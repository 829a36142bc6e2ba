"""Bưu gửi: the postal return of a dossier's result, as the notifier reports it. Pure.

The notifier orders the return with the postal operator (``postal.ordered``: mã bưu gửi) and
relays each status the operator reports (``postal.status_changed``). Records of one dossier
arrive in order but may be redelivered, and a status may be reported late, so a status only
replaces one that is not newer, and only moves the parcel forward (core.domain.postal_status:
nothing after delivered, failed or returned). Phát thành công (delivered) means the result
reached the citizen: the intake then returns the dossier (đã trả kết quả qua bưu chính) itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from schemas.events import DossierStatus, PostalOrdered, PostalStatusChanged
from services.core.domain.postal_status import PostalStatus, moves_forward

PostalEvent = PostalOrdered | PostalStatusChanged


@dataclass(frozen=True)
class Postal:
    """The dossier's bưu gửi: its tracking code, and the operator's last status with its time
    (None until the operator reports one)."""

    tracking_code: str
    status: PostalStatus | None = None
    status_at: datetime | None = None


def follow(postal: Postal | None, event: PostalEvent) -> Postal | None:
    """The postal return after the event; equal to ``postal`` when the event is stale or
    redelivered (a status at the same time as the stored one is taken: records of one dossier
    arrive in order, so it is the later report)."""
    match event:
        case PostalOrdered():
            if postal is not None and postal.tracking_code == event.tracking_code:
                return postal  # redelivered
            # A new order (e.g. sent again after a chuyển hoàn) starts with no status.
            return Postal(event.tracking_code)
        case PostalStatusChanged():
            if postal is not None and postal.tracking_code != event.tracking_code:
                return postal  # news of an earlier order, replaced since
            if postal is not None and postal.status_at is not None and event.at < postal.status_at:
                return postal  # late: a newer status is known
            if not moves_forward(postal.status if postal else None, event.status):
                return postal  # told again, behind the known one, or after the parcel's end
            return Postal(event.tracking_code, event.status, event.at)
    raise AssertionError(f"not a postal event: {type(event).__name__}")


def hands_over_result(postal: Postal | None, event: PostalEvent, status: DossierStatus) -> bool:
    """Whether the event returns the dossier: a delivery the parcel ``postal`` takes (see
    ``follow``) while the result waits for the citizen. A dossier already returned stays as it
    is, so a redelivered record changes nothing, and a delivery told after the parcel failed
    or came back is not one."""
    return (
        isinstance(event, PostalStatusChanged)
        and event.status == "delivered"
        and status is DossierStatus.RESULT_READY
        and follow(postal, event) != postal
    )


def return_time(delivered_at: datetime, last_action_at: datetime, now: datetime) -> datetime:
    """When the return is recorded: the delivery time, kept within [last action, now].

    The operator's (and the notifier's) clock may run a little ahead of ours, or behind the
    clerk's "result ready"; the dossier's history must stay in order and never in the future.
    """
    return max(min(delivered_at, now), last_action_at)
