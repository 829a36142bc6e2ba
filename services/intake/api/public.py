"""Tra cứu hồ sơ: a citizen looks up a dossier by its code and the phone given at receipt."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from services.core.phones import InvalidPhone, normalise_phone
from services.core.runtime.http_errors import rate_limited
from services.intake.adapters import repository as repo
from services.intake.api import models as m
from services.intake.api.deps import Ctx
from services.intake.api.dossiers import ERRORS
from services.intake.api.errors import ApiError

router = APIRouter(tags=["public"])
NOT_FOUND = ApiError(404, "not_found", "no dossier with this code and phone")


class SlidingWindowLimiter:
    """At most `limit` calls per client in any `window_seconds`, in this process.

    Clients are remembered least recently seen first out: past `max_clients` the one quiet
    the longest is forgotten, so a flood of new addresses costs bounded memory and cannot
    wipe the count of a client that is busy right now (forgetting everyone at once did).
    """

    def __init__(
        self,
        limit: int,
        window_seconds: float = 60.0,
        max_clients: int = 100_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window_seconds
        self.max_clients = max_clients
        self.monotonic = monotonic
        self._calls: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._calls)

    def wait_for(self, client: str) -> float:
        """Count a call: 0.0 when it is allowed, else the seconds until one will be (the
        refused call is not counted)."""
        now = self.monotonic()
        calls = self._calls.get(client)
        if calls is None:
            calls = self._calls[client] = deque()
            while len(self._calls) > self.max_clients:
                self._calls.popitem(last=False)
        else:
            self._calls.move_to_end(client)
        while calls and calls[0] <= now - self.window:
            calls.popleft()
        if len(calls) >= self.limit:
            return calls[0] + self.window - now
        calls.append(now)
        return 0.0


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
    peer = request.client.host if request.client else None
    client = ctx.proxies.client_of(peer, request.headers.getlist("x-forwarded-for"))
    wait = limiter.wait_for(client)
    if wait > 0:
        raise rate_limited("too many lookups; try again later", wait)
    try:
        normalised = normalise_phone(phone)
    except InvalidPhone:
        raise NOT_FOUND from None
    async with ctx.engine.connect() as conn:
        found = await repo.get_dossier(conn, code)
    # An erased phone (None) matches none: the same 404 as a wrong phone.
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
