"""The notifier's internal routes: what the intake asks it (schemas.internal_api).

Not for the public: every call carries MOTCUA_INTERNAL_TOKEN in X-Motcua-Internal-Token, and a
notifier without one answers none (403). Who may see which dossier or agency is the intake's
to decide before it asks; here the token is the whole check. `motcua up` serves these on the
notifier's own loopback port only (core.runtime.worker_process forwards the callbacks, not
these); in production the intake reaches the notifier's port inside the deployment.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from pydantic import AwareDatetime

from schemas.internal_api import (
    FAILED_LIMIT_MAX,
    INTERNAL_PREFIX,
    INTERNAL_TOKEN_HEADER,
    DossierNotices,
    FailedNotices,
)
from services.core.domain.codes import AGENCY_CODE_MAX_LENGTH, AGENCY_CODE_PATTERN
from services.core.runtime.http_errors import ApiError
from services.notifier.adapters import sent

router = APIRouter(prefix=INTERNAL_PREFIX, tags=["internal"])


def _checked(
    request: Request,
    token: Annotated[str | None, Header(alias=INTERNAL_TOKEN_HEADER, max_length=200)] = None,
) -> Any:
    notifier = request.app.state.notifier
    expected = notifier.settings.internal_token
    if expected is None:
        message = "internal routes are refused: the notifier has no MOTCUA_INTERNAL_TOKEN"
        raise ApiError(403, "forbidden", message, INTERNAL_TOKEN_HEADER)
    if not token:
        raise ApiError(401, "unauthorized", "missing internal token", INTERNAL_TOKEN_HEADER)
    # Bytes: compare_digest refuses str with non-ASCII characters (a 500 for a forged token).
    if not hmac.compare_digest(token.encode(), expected.get_secret_value().encode()):
        raise ApiError(403, "forbidden", "wrong internal token", INTERNAL_TOKEN_HEADER)
    return notifier


Notifier = Annotated[Any, Depends(_checked)]


@router.get("/dossiers/{dossier_id}/notices", response_model=DossierNotices)
async def dossier_notices(
    notifier: Notifier, dossier_id: Annotated[str, Path(min_length=1, max_length=36)]
) -> DossierNotices:
    """Every SMS and the postal order about a dossier, with their history; none: an empty
    list (the notifier may not have heard of the dossier yet)."""
    async with notifier.engine.connect() as conn:
        return DossierNotices(notices=await sent.dossier_notices(conn, dossier_id))


@router.get("/notices/failed", response_model=FailedNotices)
async def failed_notices(
    notifier: Notifier,
    from_: Annotated[AwareDatetime, Query(alias="from")],
    to: Annotated[AwareDatetime, Query()],
    agency: Annotated[
        str | None,
        Query(min_length=1, max_length=AGENCY_CODE_MAX_LENGTH, pattern=AGENCY_CODE_PATTERN),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=FAILED_LIMIT_MAX)] = 50,
) -> FailedNotices:
    """What failed for good in [from, to): SMS the gateways refused or never delivered, postal
    orders not placed, parcels not delivered or sent back; of one agency, or of all."""
    if from_ > to:
        raise ApiError(422, "validation_error", "from: must not be after to", "from")
    async with notifier.engine.connect() as conn:
        notices, total = await sent.failed_notices(conn, agency, from_, to, limit)
    return FailedNotices(notices=notices, total=total)
