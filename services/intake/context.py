"""What the intake's entry points share: engine, calendars, clock, relay. Built by app.py."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.calendars import CalendarBook
from services.core.runtime.proxies import TrustedProxies
from services.core.runtime.settings import Settings
from services.intake.adapters.tokens import Principal

Clock = Callable[[], datetime]


# How long a process takes a token it has looked up as still valid: `motcua token revoke`
# takes effect within this on every replica. A lookup costs a transaction (1.4-1.7 ms of CPU
# on SQLite and PostgreSQL, measured, against 0.3 us for a hit: about a fifth of a POST
# /dossiers), so a client sending many requests a second pays it once a second, not each time.
TOKEN_CACHE_SECONDS = 1.0


class PrincipalCache:
    """Known tokens for at most `ttl_seconds` (≤ 1 s: revocation must reach every replica
    within a second), so a burst of requests costs one token lookup, not one each."""

    def __init__(
        self,
        ttl_seconds: float = TOKEN_CACHE_SECONDS,
        max_entries: int = 10_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self.monotonic = monotonic
        self._entries: dict[str, tuple[float, Principal]] = {}

    def get(self, token: str) -> Principal | None:
        entry = self._entries.get(token)
        if entry is None or entry[0] <= self.monotonic():
            return None
        return entry[1]

    def put(self, token: str, principal: Principal) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.clear()  # a second's worth of tokens: all are looked up again soon
        self._entries[token] = (self.monotonic() + self.ttl, principal)


@dataclass
class IntakeContext:
    settings: Settings
    engine: AsyncEngine
    clock: Clock
    calendars: CalendarBook = field(default_factory=CalendarBook)
    principals: PrincipalCache = field(default_factory=PrincipalCache)
    # Parsed once from the settings (core.runtime.proxies): the public lookup asks each request.
    proxies: TrustedProxies = field(init=False)
    wake_relay: Callable[[], None] = lambda: None

    def __post_init__(self) -> None:
        self.proxies = self.settings.proxies
