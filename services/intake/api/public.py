"""Tra cứu hồ sơ: a citizen looks up a dossier by its code and the phone given at receipt."""

from __future__ import annotations

import time
from collections import deque
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from services.core.phones import InvalidPhone, normalise_phone
from services.intake.adapters import repository as repo
from services.intake.api import models as m
from services.intake.api.deps import Ctx
from services.intake.api.dossiers import ERRORS
from services.intake.api.errors import ApiError

router = APIRouter(tags=["public"])
NOT_FOUND = ApiError(404, "not_found", "no dossier with this code and phone")


class SlidingWindowLimiter:
    """At most `limit` calls per client per minute, in this process."""

    def __init__(self, limit: int, window_seconds: float = 60.0, max_clients: int = 100_000):
        self.limit = limit
        self.window = window_seconds
        self.max_clients = max_clients
        self._calls: dict[str, deque[float]] = {}

    def allow(self, client: str) -> bool:
        now = time.monotonic()
        calls = self._calls.get(client)
        if calls is None:
            if len(self._calls) >= self.max_clients:
                self._calls.clear()
            calls = self._calls[client] = deque()
        while calls and calls[0] <= now - self.window:
            calls.popleft()
        if len(calls) >= self.limit:
            return False
        calls.append(now)
        return True


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
    limiter: SlidingWindowLimiter = request.app.state.public_limiter
    if not limiter.allow(request.client.host if request.client else "unknown"):
        raise ApiError(429, "rate_limited", "too many lookups; try again in a minute")
    try:
        normalised = normalise_phone(phone)
    except InvalidPhone:
        raise NOT_FOUND from None
    async with ctx.engine.connect() as conn:
        found = await repo.get_dossier(conn, code)
    if found is None or found[1].applicant_phone != normalised:
        raise NOT_FOUND
    dossier = found[0]
    return m.PublicDossierOut(
        code=dossier.code,
        status=dossier.status.value,
        procedure_name=dossier.procedure.name,
        received_at=dossier.received_at,
        due_at=found[1].due_at,
    )
