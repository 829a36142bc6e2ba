"""Bảng điều khiển (GET /bang-dieu-khien): the supervisors' dashboard.

Signed in with a supervisor's or an admin's token (web.signin), for a period (this month by
default): the on-time rate per procedure as a bar chart drawn here in SVG, the same figures as
GET /reports/on-time (api.reports.on_time_figures); the citizens' satisfaction, the figures
of GET /reports/satisfaction (api.reports.satisfaction_figures); the overdue dossiers with how
late in working time and those due soon (the tracker's flags in the read model); the notices
that failed (asked of the notifier, notifier_client). A supervisor sees their agency, an
admin every agency or one (domain.access, through the reports' own period and scope rule,
api.reports.asked_of).

The page is whole in one response, as the lookup page (web.pages): no script, no CDN.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.core.domain.calendar import WorkingCalendar
from services.core.domain.codes import AGENCY_CODE_MAX_LENGTH, AGENCY_CODE_PATTERN
from services.core.domain.vn_time import minute_text
from services.core.runtime.http_errors import ApiError
from services.core.text import forbidden_character
from services.intake.adapters import read_model
from services.intake.adapters.tokens import Principal
from services.intake.api.deps import Ctx, principal_of_token
from services.intake.api.reports import (
    MAX_PERIOD_DAYS,
    asked_of,
    on_time_figures,
    satisfaction_figures,
)
from services.intake.commands import agency_calendar
from services.intake.context import IntakeContext
from services.intake.notifier_client import NotifierClient, NotifierUnavailable
from services.intake.web import dashboard_view as view
from services.intake.web import signin
from services.intake.web.pages import (
    NOT_A_FORM,
    NOT_A_FORM_PROBLEM,
    form_body,
    form_fields,
    is_form,
    page_responses,
    render,
)

router = APIRouter(tags=["pages"])
DASHBOARD_ROLES = ("supervisor", "admin")
LIST_LIMIT = 50
FAILED_LIMIT = 30
ROLE_WORDS = {"supervisor": "Lãnh đạo", "admin": "Quản trị"}
FIELD_WORDS = {"from": "Từ ngày", "to": "Đến ngày", "agency": "Cơ quan"}
WRONG_TOKEN = "Mã truy cập không đúng hoặc đã bị thu hồi."
NOT_A_SUPERVISOR = "Chỉ lãnh đạo hoặc quản trị viên được xem bảng điều khiển."
STALE_FORM = "Biểu mẫu đã hết hạn. Vui lòng thử lại."
NOTIFIER_DOWN = "Chưa lấy được danh sách tin nhắn lỗi: dịch vụ gửi tin không trả lời. Tải lại sau."

_RESPONSES = page_responses(
    (303, "signed in or out: to the dashboard"),
    (401, "a token that is unknown or revoked"),
    (403, "a clerk's token, another agency, or a form without its CSRF token"),
    NOT_A_FORM,
    (422, "a date or a field that cannot be read: the page names it"),
)


def _form_body(*fields: str) -> dict[str, Any]:
    properties = {name: {"type": "string", "maxLength": signin.TOKEN_MAX} for name in fields}
    return form_body(properties, list(fields))


async def _signed_in(request: Request, ctx: IntakeContext) -> Principal | None:
    token = signin.session_token(request)
    if token is None:
        return None
    found = await principal_of_token(ctx, token)
    return found if found is not None and found.role in DASHBOARD_ROLES else None


@router.get(signin.DASHBOARD_PATH, response_class=HTMLResponse, responses=_RESPONSES)
async def dashboard(
    request: Request,
    ctx: Ctx,
    from_: Annotated[str | None, Query(alias="from", max_length=10)] = None,
    to: Annotated[str | None, Query(max_length=10)] = None,
    agency: Annotated[str | None, Query(max_length=AGENCY_CODE_MAX_LENGTH)] = None,
) -> Response:
    """The dashboard for the period `from`–`to` (dates, Vietnam time; this month by
    default) and, for an admin, one `agency` or all; the sign-in form without a session."""
    caller = await _signed_in(request, ctx)
    if caller is None:
        # A cookie that no longer signs anyone in (the token revoked) goes.
        expired = signin.session_token(request) is not None
        problem = "Phiên đăng nhập đã hết hạn. Vui lòng đăng nhập lại." if expired else None
        page = _sign_in_page(request, ctx, 200, problem)
        if expired:
            signin.sign_out(page, request, ctx)
        return page
    try:
        start, end = _day("from", from_), _day("to", to)
        chosen = _agency(agency) if caller.is_admin else None
        asked = asked_of(ctx, caller, chosen, start, end)
    except ApiError as bad:
        field = FIELD_WORDS.get(bad.field or "", bad.field or "")
        problem = f"{field}: {_problem_words(bad)}"
        return _page(request, ctx, bad.status, caller, problem=problem, period=(from_, to, agency))
    on_time = await on_time_figures(ctx, asked)
    satisfaction = await satisfaction_figures(ctx, asked)
    now = ctx.clock()
    async with ctx.engine.connect() as conn:
        overdue, overdue_total = await read_model.flagged_dossiers(
            conn, visible_to_agency=asked.agency, flag="overdue", limit=LIST_LIMIT
        )
        due_soon, due_soon_total = await read_model.flagged_dossiers(
            conn, visible_to_agency=asked.agency, flag="due_soon", limit=LIST_LIMIT
        )
        calendars: dict[str, WorkingCalendar] = {}
        for code in {d.agency_code for d in (*overdue, *due_soon)}:
            calendars[code], _ = await agency_calendar(conn, ctx.calendars, code)
    period = asked.period
    failed, failed_total, failed_problem = [], 0, None
    notifier: NotifierClient = request.app.state.notifier_client
    try:
        answer = await notifier.failed_notices(asked.agency, period.start, period.end, FAILED_LIMIT)
        failed, failed_total = view.failed_rows(answer.notices), answer.total
    except NotifierUnavailable:
        failed_problem = NOTIFIER_DOWN
    return _page(
        request,
        ctx,
        200,
        caller,
        period=(asked.start.isoformat(), asked.end.isoformat(), asked.agency or ""),
        scope=asked.agency,
        chart=view.on_time_chart(on_time),
        totals=on_time.totals,
        overdue=view.overdue_rows(overdue, calendars, now),
        overdue_total=overdue_total,
        due_soon=view.due_soon_rows(due_soon, calendars, now),
        due_soon_total=due_soon_total,
        failed=failed,
        failed_total=failed_total,
        failed_problem=failed_problem,
        satisfaction=view.satisfaction_table(satisfaction),
        as_of=minute_text(now),
    )


@router.post(
    signin.SIGN_IN_PATH,
    response_class=HTMLResponse,
    responses=_RESPONSES,
    openapi_extra=_form_body("token", signin.CSRF_FIELD),
)
async def sign_in(request: Request, ctx: Ctx) -> Response:
    """Sign in with a supervisor's or an admin's token: kept in an HttpOnly, SameSite=Strict
    cookie, then to the dashboard (303)."""
    form, problem = await _posted(request)
    if problem is not None:
        return _sign_in_page(request, ctx, *problem)
    token = form.get("token", "").strip()
    if not token:
        return _sign_in_page(request, ctx, 422, "Mã truy cập: chưa nhập.")
    if len(token) > signin.TOKEN_MAX or forbidden_character(token) or "\ufffd" in token:
        return _sign_in_page(request, ctx, 401, WRONG_TOKEN)
    found = await principal_of_token(ctx, token)
    if found is None:
        return _sign_in_page(request, ctx, 401, WRONG_TOKEN)
    if found.role not in DASHBOARD_ROLES:
        return _sign_in_page(request, ctx, 403, NOT_A_SUPERVISOR)
    done = RedirectResponse(signin.DASHBOARD_PATH, status_code=303)
    signin.sign_in(done, request, ctx, token)
    return done


@router.post(
    signin.SIGN_OUT_PATH,
    response_class=HTMLResponse,
    responses=_RESPONSES,
    openapi_extra=_form_body(signin.CSRF_FIELD),
)
async def sign_out(request: Request, ctx: Ctx) -> Response:
    """Sign out: the cookie is forgotten, then to the sign-in form (303)."""
    _form, problem = await _posted(request)
    if problem is not None:
        caller = await _signed_in(request, ctx)
        if caller is None:
            return _sign_in_page(request, ctx, *problem)
        return _page(request, ctx, problem[0], caller, problem=problem[1])
    done = RedirectResponse(signin.DASHBOARD_PATH, status_code=303)
    signin.sign_out(done, request, ctx)
    return done


async def _posted(request: Request) -> tuple[dict[str, str], tuple[int, str] | None]:
    """The form, or the status and words of why it is refused (not a form, no CSRF token)."""
    if not is_form(request):
        return {}, (415, NOT_A_FORM_PROBLEM)
    form = await form_fields(request)
    if not signin.csrf_ok(request, form.get(signin.CSRF_FIELD)):
        return form, (403, STALE_FORM)
    return form, None


def _day(field: str, value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ApiError(422, "validation_error", f"{field}: not a date", field) from None


def _agency(value: str | None) -> str | None:
    value = (value or "").strip()
    if value and not re.fullmatch(AGENCY_CODE_PATTERN, value):
        raise ApiError(422, "validation_error", "agency: not an agency code", "agency")
    return value or None


def _problem_words(bad: ApiError) -> str:
    """The report's refusals, in the page's language."""
    message = bad.message.split(": ", 1)[-1]
    return {
        "not a date": "không phải ngày (năm-tháng-ngày).",
        "not an agency code": "không phải mã cơ quan.",
        "must not be after to": "không được sau ngày kết thúc.",
        "must be between 2000-01-01 and 2099-12-31": "phải trong khoảng 2000–2099.",
        "you may see only your own agency's report": "chỉ được xem cơ quan của mình.",
    }.get(
        message, f"kỳ báo cáo dài nhất {MAX_PERIOD_DAYS} ngày." if "at most" in message else message
    )


def _common(request: Request, ctx: IntakeContext) -> dict[str, Any]:
    return {
        "office": ctx.settings.office_name,
        "dashboard_path": signin.DASHBOARD_PATH,
        "sign_in_path": signin.SIGN_IN_PATH,
        "sign_out_path": signin.SIGN_OUT_PATH,
        "csrf_field": signin.CSRF_FIELD,
        "csrf": signin.csrf_token(request),
        "token_max": signin.TOKEN_MAX,
    }


def _sign_in_page(
    request: Request, ctx: IntakeContext, status: int, problem: str | None = None
) -> HTMLResponse:
    common = _common(request, ctx)
    page = render("dashboard.html", status, caller=None, problem=problem, **common)
    signin.set_csrf(page, request, ctx, common["csrf"])
    return page


def _page(
    request: Request,
    ctx: IntakeContext,
    status: int,
    caller: Principal,
    *,
    problem: str | None = None,
    period: tuple[str | None, str | None, str | None] = (None, None, None),
    **shown: Any,
) -> HTMLResponse:
    common = _common(request, ctx)
    who = ROLE_WORDS[caller.role] + (f" {caller.agency_code}" if caller.agency_code else "")
    values: dict[str, Any] = {
        "scope": None,
        "chart": None,
        "totals": None,
        "overdue": [],
        "overdue_total": 0,
        "due_soon": [],
        "due_soon_total": 0,
        "failed": [],
        "failed_total": 0,
        "failed_problem": None,
        "satisfaction": None,
        "as_of": minute_text(ctx.clock()),
        **shown,
    }
    start, end, agency = period
    page = render(
        "dashboard.html",
        status,
        caller=caller,
        who=who,
        problem=problem,
        period_from=start or "",
        period_to=end or "",
        period_agency=agency or "",
        list_limit=LIST_LIMIT,
        **values,
        **common,
    )
    signin.set_csrf(page, request, ctx, common["csrf"])
    return page
