"""What the providers call back: SMS delivery receipts and postal status changes.

The callback URLs the notifier hands the gateways carry `MOTCUA_CALLBACK_TOKEN` as `?token=`,
and a call without it, or with another, is refused before it is read: anyone could otherwise
mark a notice delivered, or a parcel delivered (which returns the dossier and texts the
citizen). A notifier without a token acts on no callback at all (`motcua up` and a notifier
on loopback make one; see services/notifier/callback_token.py).
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BeforeValidator, ConfigDict, Field

from services.core.domain.codes import TRACKING_CODE_MAX_LENGTH
from services.core.runtime.http_errors import ApiError
from services.core.runtime.request_models import FREE_TEXT, RequestModel
from services.notifier import handlers
from services.notifier.adapters import viettelpost
from services.notifier.adapters.esms import (
    REQUEST_ID_PREFIX,
    ZALO_TYPE_IDS,
    receipt_of,
    request_of,
    zalo_error,
)

log = structlog.get_logger("motcua.notifier")
router = APIRouter(tags=["callbacks"])


class Receipt(RequestModel):
    """Báo cáo trạng thái tin nhắn from the SMS gateway."""

    model_config = ConfigDict(extra="ignore")

    message_id: str = Field(min_length=1, max_length=100)
    status: Literal["delivered", "failed"]
    error: Annotated[str, FREE_TEXT] | None = Field(default=None, max_length=500)


class PostalStatus(RequestModel):
    """Trạng thái bưu gửi from the postal operator."""

    model_config = ConfigDict(extra="ignore")

    tracking_code: str = Field(min_length=1, max_length=TRACKING_CODE_MAX_LENGTH)
    status: Literal["picked_up", "in_transit", "delivered", "failed", "returned"]


def _digits_as_text(value: Any) -> Any:
    # Viettel Post's numbers are digits, and JSON from some of its systems carries them as
    # numbers: the same order either way.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


OrderCode = Annotated[str, BeforeValidator(_digits_as_text)]


class ViettelPostOrder(RequestModel):
    """DATA of Viettel Post's webhook (notifier.adapters.viettelpost); the rest is ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    number: OrderCode = Field(
        alias="ORDER_NUMBER", min_length=1, max_length=TRACKING_CODE_MAX_LENGTH
    )
    reference: OrderCode | None = Field(default=None, alias="ORDER_REFERENCE", max_length=64)
    status: int = Field(alias="ORDER_STATUS")
    status_name: Annotated[str, FREE_TEXT] | None = Field(
        default=None, alias="STATUS_NAME", max_length=200
    )
    status_date: str | None = Field(default=None, alias="ORDER_STATUSDATE", max_length=40)


class ViettelPostWebhook(RequestModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    data: ViettelPostOrder = Field(alias="DATA")
    token: str | None = Field(default=None, alias="TOKEN", max_length=500)


def _notifier(request: Request) -> Any:
    return request.app.state.notifier


def _checked(request: Request, token: Annotated[str | None, Query(max_length=200)] = None) -> Any:
    return _with_token(request, token)


def _checked_in_path(request: Request, token: Annotated[str, Path(max_length=200)]) -> Any:
    """For a provider that appends its own query string to the URL it was given (eSMS)."""
    return _with_token(request, token)


def _with_token(request: Request, token: str | None) -> Any:
    notifier = _notifier(request)
    expected = notifier.settings.callback_token
    if not expected:
        message = "callbacks are refused: the notifier has no MOTCUA_CALLBACK_TOKEN"
        raise ApiError(403, "forbidden", message, "token")
    if not token:
        raise ApiError(401, "unauthorized", "missing callback token", "token")
    # Bytes: compare_digest refuses str with non-ASCII characters (a 500 for a forged token).
    if not hmac.compare_digest(token.encode(), expected.encode()):
        raise ApiError(403, "forbidden", "wrong callback token", "token")
    return notifier


Notifier = Annotated[Any, Depends(_checked)]
NotifierByPath = Annotated[Any, Depends(_checked_in_path)]


@router.post("/sms/receipts", status_code=202)
async def sms_receipt(body: Receipt, notifier: Notifier) -> dict[str, str]:
    """Delivery receipt: the notice moves from accepted to delivered or failed. A receipt that
    arrives before the gateway's answer was recorded is kept and applied when it is (the
    newest MOTCUA_EARLY_RECEIPTS_MAX are kept, each MOTCUA_EARLY_RECEIPT_MAX_AGE_HOURS)."""
    notice = await handlers.record_receipt(
        notifier.engine,
        body.message_id,
        body.status,
        _short(body.error),
        notifier.clock(),
        notifier.early_receipts,
    )
    return {"status": "recorded" if notice else "kept"}


@router.get("/sms/esms/{token}")
async def esms_receipt(
    notifier: NotifierByPath,
    sms_id: Annotated[str, Query(alias="SMSID", min_length=1, max_length=100)],
    send_status: Annotated[str, Query(alias="SendStatus", max_length=4)] = "",
    sent_ok: Annotated[int, Query(alias="SendSuccess", ge=0)] = 0,
    sent_failed: Annotated[int, Query(alias="SendFailed", ge=0)] = 0,
    request_id: Annotated[str, Query(alias="RequestId", max_length=100)] = "",
    type_id: Annotated[str, Query(alias="TypeId", max_length=4)] = "",
    error_info: Annotated[str, Query(max_length=2000)] = "",
) -> dict[str, str]:
    """eSMS's delivery callback (an HTTP GET; notifier.adapters.esms), of an SMS or a ZNS
    (TypeId 24, 25). A status on the way (pending, waiting, sent to the carrier) is
    acknowledged and changes nothing; a final one moves the notice, found by eSMS's SMSID or,
    for a resend eSMS recognised, by our request id (the notice's id). Before the send's
    answer is recorded, it is kept, like /sms/receipts. A ZNS failed sends the SMS instead; a
    ZNS report after the SMS was chosen is recorded in the notice's history, nothing else."""
    receipt = receipt_of(send_status, sent_ok, sent_failed)
    if receipt is None:
        return {"status": "ignored"}
    notice_id, zalo = request_of(request_id)
    zalo = zalo or type_id in ZALO_TYPE_IDS
    error = receipt.error
    if zalo and receipt.status == "failed":
        error = f"{error} ({zalo_error(error_info) or 'zalo'})"
    notice = await handlers.record_receipt(
        notifier.engine,
        sms_id,
        receipt.status,
        error,
        notifier.clock(),
        notifier.early_receipts,
        notice_id=notice_id or None,
        zalo=zalo,
        also_as=REQUEST_ID_PREFIX + request_id if request_id else None,
    )
    if notice and zalo and receipt.status == "failed":
        notifier.wake_dispatcher()  # the SMS may be due now
    return {"status": "recorded" if notice else "kept"}


@router.post("/postal/callbacks", status_code=202)
async def postal_status(body: PostalStatus, notifier: Notifier) -> dict[str, str]:
    """Postal status: recorded, published on motcua.notification.v1 (delivered → the intake
    marks the dossier returned); failed or returned alerts the agency's supervisors. A status
    that does not move the parcel forward (told twice, late, or after delivered, failed or
    returned) is acknowledged as "ignored" and changes nothing."""
    outcome = await handlers.record_postal_status(
        notifier.engine, notifier.composer, body.tracking_code, body.status, notifier.clock()
    )
    if outcome is None:
        raise ApiError(404, "not_found", "no order with this tracking code", "tracking_code")
    if outcome == "recorded":
        notifier.wake_dispatcher()
    return {"status": outcome}


@router.post("/postal/viettelpost/{token}")
async def viettelpost_status(body: ViettelPostWebhook, notifier: NotifierByPath) -> dict[str, str]:
    """Viettel Post's webhook. Its ORDER_REFERENCE (our dossier code) places an order whose
    createOrder answer has not come (or never will: a repeat refused as a duplicate) with its
    ORDER_NUMBER. Its ORDER_STATUS, mapped onto ours (adapters.viettelpost.STATUSES), is then
    taken as at /postal/callbacks. Always 200 unless refused: Viettel Post sends again what
    was not, and a code that moves nothing, or an order that is not ours, never will."""
    data, now = body.data, notifier.clock()
    told = bool(data.reference) and await handlers.record_order_number(
        notifier.engine, notifier.composer, str(data.reference), data.number, now
    )
    if told:
        notifier.wake_dispatcher()
    status = viettelpost.status_of(data.status)
    if status is None:
        log.info("viettelpost_status_ignored", code=data.status)
        return {"status": "placed" if told else "ignored"}
    outcome = await handlers.record_postal_status(
        notifier.engine, notifier.composer, data.number, status, now
    )
    if outcome is None:
        log.info("viettelpost_order_unknown", code=data.status)
        return {"status": "unknown"}
    if outcome == "recorded":
        notifier.wake_dispatcher()
    return {"status": outcome}


def _short(error: str | None) -> str | None:
    return error[:200] if error else None
