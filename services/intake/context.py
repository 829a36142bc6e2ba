"""What the intake's entry points share: engine, calendars, clock, relay. Built by app.py."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.calendars import CalendarBook
from services.core.runtime.settings import Settings
from services.intake.adapters.tokens import Principal

Clock = Callable[[], datetime]


class PrincipalCache:
    """Known tokens for a short while, so a request costs one transaction, not two.

    A revoked token keeps working for at most `ttl_seconds` in each process.
    """

    def __init__(self, ttl_seconds: float = 60.0, max_entries: int = 10_000) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Principal]] = {}

    def get(self, token: str) -> Principal | None:
        entry = self._entries.get(token)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, token: str, principal: Principal) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[token] = (time.monotonic() + self.ttl, principal)


@dataclass
class IntakeContext:
    settings: Settings
    engine: AsyncEngine
    clock: Clock
    calendars: CalendarBook = field(default_factory=CalendarBook)
    principals: PrincipalCache = field(default_factory=PrincipalCache)
    wake_relay: Callable[[], None] = lambda: None
