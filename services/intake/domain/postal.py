"""Bưu gửi: the postal return of a dossier's result, as the notifier reports it. Pure.

The notifier orders the return with the postal operator (``postal.ordered``: mã bưu gửi) and
relays each status the operator reports (``postal.status_changed``). Records of one dossier
arrive in order but may be redelivered, and a status may be reported late, so a status only
replaces one that is not newer. Phát thành công (delivered) means the result reached the
citizen: the intake then returns the dossier (đã trả kết quả qua bưu chính) itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from schemas.events import DossierStatus, PostalOrdered, PostalStatusChanged

PostalStatus = Literal["picked_up", "in_transit", "delivered", "failed", "returned"]
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
            return Postal(event.tracking_code, event.status, event.at)
    raise AssertionError(f"not a postal event: {type(event).__name__}")


def hands_over_result(event: PostalEvent, status: DossierStatus) -> bool:
    """Whether the event returns the dossier: delivered while its result waits for the citizen
    (a dossier already returned stays as it is, so a redelivered record changes nothing)."""
    return (
        isinstance(event, PostalStatusChanged)
        and event.status == "delivered"
        and status is DossierStatus.RESULT_READY
    )


def return_time(delivered_at: datetime, last_action_at: datetime, now: datetime) -> datetime:
    """When the return is recorded: the delivery time, kept within [last action, now].

    The operator's (and the notifier's) clock may run a little ahead of ours, or behind the
    clerk's "result ready"; the dossier's history must stay in order and never in the future.
    """
    return max(min(delivered_at, now), last_action_at)
