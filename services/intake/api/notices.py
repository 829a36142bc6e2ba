"""What was sent (GET /dossiers/{code}/notices): every SMS and postal order about a dossier,
for the clerk asked "did the citizen get the SMS?". The intake decides who may see the
dossier (domain.access, as GET /dossiers/{code}); the notifier, which keeps the notices, is
asked for them (notifier_client)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field

from schemas.internal_api import SentNotice
from services.intake.adapters import repository as repo
from services.intake.api import models as m
from services.intake.api.deps import Caller, Ctx
from services.intake.api.dossiers import ERRORS
from services.intake.api.errors import ApiError, not_found
from services.intake.domain import access
from services.intake.notifier_client import NotifierClient, NotifierUnavailable

router = APIRouter(tags=["dossiers"])
# The notifier could not be asked: not the client's fault, and soon over.
UNAVAILABLE_RETRY_SECONDS = 5


class DossierNoticesOut(BaseModel):
    code: str = Field(description="the dossier's code")
    notices: list[SentNotice] = Field(description="in the order they were decided")


def notifier_of(request: Request) -> NotifierClient:
    client: NotifierClient = request.app.state.notifier_client
    return client


def notifier_unavailable(exc: NotifierUnavailable) -> ApiError:
    return ApiError(
        503,
        "notifier_unavailable",
        f"what was sent is kept by the notifier, which cannot be asked now: {exc}",
        retry_after=UNAVAILABLE_RETRY_SECONDS,
    )


@router.get(
    "/dossiers/{code}/notices",
    response_model=DossierNoticesOut,
    responses={**ERRORS, 503: {"model": m.ErrorOut, "description": "the notifier is down"}},
)
async def dossier_notices(
    code: Annotated[str, Path(max_length=64)], request: Request, ctx: Ctx, caller: Caller
) -> Any:
    """Every SMS and postal order about the dossier, in the order they were decided: who it
    was for (`role`: citizen or supervisor), the phone masked (`+8491*****78`), the text, its
    status now and its history (held in quiet hours, accepted by the gateway, retried,
    delivered, failed with the reason) with times. Who may read the dossier may read this;
    404 as GET /dossiers/{code}. 503 (`notifier_unavailable`, with Retry-After) when the
    notifier does not answer within 2 s."""
    async with ctx.engine.connect() as conn:
        found = await repo.load_dossier(conn, code)
    if found is None or not access.may_see(caller, found.dossier):
        raise not_found()
    dossier = found.dossier
    try:
        sent = await notifier_of(request).dossier_notices(dossier.id)
    except NotifierUnavailable as exc:
        raise notifier_unavailable(exc) from None
    return DossierNoticesOut(code=dossier.code, notices=sent.notices)
