"""Tra cứu hồ sơ as JSON: a citizen looks up a dossier by its code and the phone given at
receipt. The rule (rate limit, matching) is services.intake.public_lookup's, shared with the
lookup page (services.intake.web.lookup)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from services.core.runtime.http_errors import rate_limited
from services.intake import public_lookup as rule
from services.intake.api import models as m
from services.intake.api.deps import Ctx
from services.intake.api.dossiers import ERRORS
from services.intake.api.errors import ApiError

router = APIRouter(tags=["public"])
NOT_FOUND = ApiError(404, "not_found", "no dossier with this code and phone")


@router.get(
    "/public/dossiers/{code}",
    response_model=m.PublicDossierOut,
    responses={**ERRORS, 429: {"model": m.ErrorOut}},
)
async def public_lookup(
    code: Annotated[str, Path(max_length=64)],
    request: Request,
    ctx: Ctx,
    phone: Annotated[str, Query(max_length=32)],
) -> Any:
    """Status and appointment only; the same 404 whether the code or the phone is wrong."""
    wait = rule.wait_before_lookup(request, ctx)
    if wait > 0:
        raise rate_limited("too many lookups; try again later", wait)
    found = await rule.find(ctx, code, phone)
    if found is None:
        raise NOT_FOUND
    return m.PublicDossierOut(
        code=found.dossier.code,
        status=found.dossier.status.value,
        procedure_name=found.dossier.procedure.name,
        received_at=found.dossier.received_at,
        due_at=found.due_at,
    )
