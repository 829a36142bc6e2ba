"""What the providers call back: SMS delivery receipts and postal status changes.

When `MOTCUA_CALLBACK_TOKEN` is set, the callback URLs the notifier hands out carry it as
`?token=`, and a call without it is refused: anyone could otherwise mark a notice delivered.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import ConfigDict, Field

from services.core.runtime.http_errors import ApiError
from services.core.runtime.request_models import FREE_TEXT, RequestModel
from services.notifier import handlers

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

    tracking_code: str = Field(min_length=1, max_length=40)
    status: Literal["picked_up", "in_transit", "delivered", "failed", "returned"]


def _notifier(request: Request) -> Any:
    return request.app.state.notifier


def _checked(request: Request, token: Annotated[str | None, Query()] = None) -> Any:
    notifier = _notifier(request)
    expected = notifier.settings.callback_token
    if expected and not (token and hmac.compare_digest(token, expected)):
        raise ApiError(403, "forbidden", "missing or wrong callback token", "token")
    return notifier


Notifier = Annotated[Any, Depends(_checked)]


@router.post("/sms/receipts", status_code=202)
async def sms_receipt(body: Receipt, notifier: Notifier) -> dict[str, str]:
    """Delivery receipt: the notice moves from accepted to delivered or failed. A receipt that
    arrives before the gateway's answer was recorded is kept and applied when it is."""
    notice = await handlers.record_receipt(
        notifier.engine, body.message_id, body.status, _short(body.error), notifier.clock()
    )
    return {"status": "recorded" if notice else "kept"}


@router.post("/postal/callbacks", status_code=202)
async def postal_status(body: PostalStatus, notifier: Notifier) -> dict[str, str]:
    """Postal status: recorded, published on motcua.notification.v1 (delivered → the intake
    marks the dossier returned); failed or returned alerts the agency's supervisors."""
    found = await handlers.record_postal_status(
        notifier.engine, notifier.composer, body.tracking_code, body.status, notifier.clock()
    )
    if not found:
        raise ApiError(404, "not_found", "no order with this tracking code", "tracking_code")
    notifier.wake_dispatcher()
    return {"status": "recorded"}


def _short(error: str | None) -> str | None:
    return error[:200] if error else None
