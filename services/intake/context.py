"""What the intake's entry points share: engine, calendars, clock, relay. Built by app.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.calendars import CalendarBook
from services.core.runtime.settings import Settings

Clock = Callable[[], datetime]


@dataclass
class IntakeContext:
    settings: Settings
    engine: AsyncEngine
    clock: Clock
    calendars: CalendarBook = field(default_factory=CalendarBook)
    wake_relay: Callable[[], None] = lambda: None
    broker_ready: Callable[[], Awaitable[bool]] = field(default=lambda: _yes())


async def _yes() -> bool:
    return True
