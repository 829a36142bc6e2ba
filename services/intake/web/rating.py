"""Đánh giá mức độ hài lòng, the page (GET and POST /danh-gia/{code}/{mac}): the citizen
taps the link of the SMS that told her the result was returned (services.notifier.rating_link)
and answers four questions on a 1-5 scale, with a comment if she likes.

No login and no session: the link is the key (services.intake.link_mac), checked on the form
and again on its answer, so a forged link shows the page an unknown code shows. The rules are
services.intake.satisfaction's: once per dossier (a second answer is told it was rated
already, 409), a returned dossier only (409), bad answers named (422).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse

from services.intake import satisfaction as rule
from services.intake.api.deps import Ctx
from services.intake.context import IntakeContext
from services.intake.link_mac import MAC_LENGTH
from services.intake.web.pages import (
    NOT_A_FORM,
    NOT_A_FORM_PROBLEM,
    form_body,
    form_fields,
    is_form,
    page_responses,
    render,
)
from services.intake.web.urls import RATING_PATH

CODE_MAX = 64  # as the dossiers' column
PAGE = RATING_PATH + "/{code}/{mac}"
NOT_FOUND = (
    "Không tìm thấy hồ sơ cần đánh giá. Vui lòng mở đúng đường liên kết trong tin nhắn "
    "báo trả kết quả."
)
NOT_RETURNED = (
    "Hồ sơ chưa được trả kết quả. Ông/bà có thể đánh giá sau khi nhận kết quả giải quyết."
)
LABELS = {q.name: q.text for q in rule.QUESTIONS} | {"comment": "Góp ý thêm"}

router = APIRouter(tags=["pages"])

_RESPONSES = page_responses(
    (404, "no dossier for this link: an unknown code or a wrong MAC (the same page)"),
    (409, "rated already (one answer per dossier), or not returned yet"),
    NOT_A_FORM,
    (422, "an answer is missing or out of 1-5, or the comment is too long or malformed"),
)
_FORM_BODY = form_body(
    {
        **{q.name: {"type": "integer", "minimum": 1, "maximum": 5} for q in rule.QUESTIONS},
        "comment": {"type": "string", "maxLength": rule.COMMENT_MAX},
    },
    [q.name for q in rule.QUESTIONS],
)
Code = Annotated[str, Path(description="the dossier's code, as in the SMS")]
Mac = Annotated[str, Path(description="the link's MAC, as in the SMS")]


@router.get(PAGE, response_class=HTMLResponse, responses=_RESPONSES)
async def rating_form(ctx: Ctx, code: Code, mac: Mac) -> HTMLResponse:
    """The four questions for a returned dossier; what became of it otherwise."""
    target = await _find(ctx, code, mac)
    if target is None or target.standing is not rule.Standing.OPEN:
        return _standing(ctx, target, rated_status=200)
    return _page(ctx, 200, "form", target)


@router.post(
    PAGE,
    response_class=HTMLResponse,
    responses=_RESPONSES,
    openapi_extra=_FORM_BODY,
)
async def rating_answer(request: Request, ctx: Ctx, code: Code, mac: Mac) -> HTMLResponse:
    """Save the answers, once per dossier; thanks."""
    target = await _find(ctx, code, mac)
    if target is None or target.standing is not rule.Standing.OPEN:
        return _standing(ctx, target, rated_status=409)
    if not is_form(request):
        problem = NOT_A_FORM_PROBLEM
        return _page(ctx, 415, "form", target, problem=problem)
    form = await form_fields(request)
    try:
        answers = rule.answers_of(form)
    except rule.BadAnswer as bad:
        problem = f"{LABELS[bad.field]}: {bad}"
        return _page(ctx, 422, "form", target, problem=problem, form=form)
    target, saved = await rule.rate(
        ctx.engine, ctx.settings.link_key, code, mac, answers, ctx.clock()
    )
    if not saved:  # another answer came first, a moment ago
        return _standing(ctx, target, rated_status=409)
    return _page(ctx, 200, "thanks", target)


async def _find(ctx: IntakeContext, code: str, mac: str) -> rule.Target | None:
    if len(code) > CODE_MAX or len(mac) != MAC_LENGTH:
        return None
    async with ctx.engine.connect() as conn:
        return await rule.find(conn, ctx.settings.link_key, code, mac)


def _standing(ctx: IntakeContext, target: rule.Target | None, *, rated_status: int) -> HTMLResponse:
    if target is None:
        return _page(ctx, 404, "not_found", None, problem=NOT_FOUND)
    if target.standing is rule.Standing.NOT_RETURNED:
        return _page(ctx, 409, "not_returned", target, problem=NOT_RETURNED)
    return _page(ctx, rated_status, "rated", target)


def _page(
    ctx: IntakeContext,
    status: int,
    view: str,
    target: rule.Target | None,
    *,
    problem: str | None = None,
    form: dict[str, str] | None = None,
) -> HTMLResponse:
    given = form or {}
    return render(
        "rating.html",
        status,
        office=ctx.settings.office_name,
        view=view,
        target=target,
        problem=problem,
        questions=rule.QUESTIONS,
        scale=rule.SCALE,
        chosen={q.name: given.get(q.name, "") for q in rule.QUESTIONS},
        comment=given.get("comment", ""),
        comment_max=rule.COMMENT_MAX,
    )
