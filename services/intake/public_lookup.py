"""Tra cứu hồ sơ, a citizen's lookup by the dossier's code and the phone given at receipt: the
one rule of the JSON route (api/public.py) and of the lookup page (web/lookup.py).

Both count against one limiter per client (a client cannot double its lookups by using
both), and both find nothing alike for a wrong code, a wrong phone, a phone that is no phone
at all and an erased one: no answer tells which dossiers exist.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from fastapi import Request

from services.core.phones import InvalidPhone, normalise_phone
from services.intake.adapters import repository as repo
from services.intake.context import IntakeContext
from services.intake.domain.model import Dossier
from services.intake.domain.postal import Postal


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


def wait_before_lookup(request: Request, ctx: IntakeContext) -> float:
    """Count one lookup of the request's client (core.runtime.proxies says who that is): 0.0
    when it may go on, else the seconds until it may (refused, it is not counted)."""
    limiter: SlidingWindowLimiter = request.app.state.public_limiter
    peer = request.client.host if request.client else None
    return limiter.wait_for(ctx.proxies.client_of(peer, request.headers.getlist("x-forwarded-for")))


@dataclass(frozen=True)
class Found:
    """A dossier its applicant looked up, with what the read model adds to it."""

    dossier: Dossier
    due_at: datetime | None  # the tracker's appointment, as the clerks' lists show it
    postal: Postal | None  # the postal return, once ordered


async def find(ctx: IntakeContext, code: str, phone: str) -> Found | None:
    """The dossier with this code whose applicant gave this phone; None otherwise."""
    try:
        normalised = normalise_phone(phone)
    except InvalidPhone:
        return None
    async with ctx.engine.connect() as conn:
        found = await repo.load_dossier(conn, code)
    # An erased phone (None) matches none: the same None as a wrong phone.
    applicant = found.dossier.applicant if found else None
    if found is None or applicant is None or applicant.phone != normalised:
        return None
    return Found(found.dossier, found.deadline.due_at, found.postal)
