"""Tra cứu hồ sơ, the page (GET and POST /tra-cuu): the citizen types her dossier's code and
her phone, or arrives from the receipt slip's QR code or the SMS with the code filled in
(services.intake.web.urls), and reads where her dossier stands (web.lookup_view).

The phone goes in a POST body, never in the address: addresses end up in proxies' logs, the
browser's history and the next site's Referer. So the QR code and the SMS carry only the code,
and a GET shows the form. The rule is the JSON lookup's (services.intake.public_lookup): one
rate limit for both, and one answer, the same 404 page, for a wrong code or a wrong phone.
A malformed field is told as such (422, naming it): that says nothing of any dossier.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from services.core.phones import InvalidPhone, normalise_phone
from services.core.text import forbidden_character
from services.intake import public_lookup as rule
from services.intake.api.deps import Ctx
from services.intake.context import IntakeContext
from services.intake.web.lookup_view import citizen_view
from services.intake.web.pages import (
    NOT_A_FORM,
    NOT_A_FORM_PROBLEM,
    form_body,
    form_fields,
    is_form,
    page_responses,
    render,
)
from services.intake.web.urls import LOOKUP_PATH

CODE_MAX = 64  # as the JSON lookup's path parameter and the dossiers' column
PHONE_MAX = 32
LABELS = {"code": "Mã hồ sơ", "phone": "Số điện thoại"}
NOT_FOUND = (
    "Không tìm thấy hồ sơ có mã hồ sơ và số điện thoại này. Vui lòng kiểm tra lại mã hồ sơ "
    "trên giấy hẹn và số điện thoại đã khai khi nộp hồ sơ."
)

router = APIRouter(tags=["pages"])

_RESPONSES = page_responses(
    (404, "no dossier with this code and phone (the same page for either wrong)"),
    NOT_A_FORM,
    (422, "a field is missing, too long or malformed: the page names it"),
    (429, "too many lookups from this client; Retry-After says when to try again"),
)
_FORM_BODY = form_body(
    {
        "code": {"type": "string", "maxLength": CODE_MAX},
        "phone": {"type": "string", "maxLength": PHONE_MAX},
    },
    ["code", "phone"],
)


class BadField(ValueError):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{LABELS[field]}: {problem}")
        self.field = field


@router.get(LOOKUP_PATH, response_class=HTMLResponse, responses=_RESPONSES)
async def lookup_page(
    ctx: Ctx,
    code: Annotated[
        str | None, Query(description="the dossier's code, filled into the form (QR, SMS)")
    ] = None,
) -> HTMLResponse:
    """The lookup form, with the code filled in when given."""
    try:
        shown = _field("code", code, CODE_MAX, required=False)
    except BadField as bad:
        return _form(ctx, 422, problem=str(bad))
    return _form(ctx, 200, code=shown)


@router.post(
    LOOKUP_PATH,
    response_class=HTMLResponse,
    responses=_RESPONSES,
    openapi_extra=_FORM_BODY,
)
async def lookup_result(request: Request, ctx: Ctx) -> HTMLResponse:
    """Where the dossier stands: status, appointment, steps, what is missing, the parcel."""
    if not is_form(request):
        return _form(ctx, 415, problem=NOT_A_FORM_PROBLEM)
    form = await form_fields(request)
    typed = form.get("code", "")
    try:
        code = _field("code", form.get("code"), CODE_MAX)
        phone = _field("phone", form.get("phone"), PHONE_MAX)
        _phone_number(phone)
    except BadField as bad:
        shown = typed if bad.field != "code" else ""
        return _form(ctx, 422, code=shown, problem=str(bad))
    wait = rule.wait_before_lookup(request, ctx)
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        problem = f"Ông/bà đã tra cứu quá nhiều lần. Vui lòng thử lại sau {seconds} giây."
        return _form(ctx, 429, code=code, problem=problem, headers={"Retry-After": str(seconds)})
    found = await rule.find(ctx, code, phone)
    if found is None:
        return _form(ctx, 404, code=code, problem=NOT_FOUND)
    view = citizen_view(found.dossier, found.due_at, found.postal)
    return render("lookup.html", 200, view=view, **_common(ctx))


def _form(
    ctx: IntakeContext,
    status: int,
    *,
    code: str = "",
    problem: str | None = None,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    # The phone is never written back into the page: on a shared phone, the next person
    # would find it there.
    return render(
        "lookup.html", status, headers, view=None, code=code, problem=problem, **_common(ctx)
    )


def _common(ctx: IntakeContext) -> dict[str, Any]:
    return {
        "office": ctx.settings.office_name,
        "lookup_path": LOOKUP_PATH,
        "code_max": CODE_MAX,
        "phone_max": PHONE_MAX,
    }


def _field(name: str, value: str | None, max_length: int, *, required: bool = True) -> str:
    value = (value or "").strip()
    if not value:
        if required:
            raise BadField(name, "chưa nhập.")
        return ""
    if len(value) > max_length:
        raise BadField(name, f"dài quá {max_length} ký tự.")
    if forbidden_character(value) or "\ufffd" in value:
        raise BadField(name, "có ký tự không hợp lệ.")
    return value


def _phone_number(phone: str) -> None:
    try:
        normalise_phone(phone)
    except InvalidPhone:
        raise BadField("phone", "không phải số điện thoại Việt Nam hợp lệ.") from None
