"""The one place that reads the wall clock. Everything else is handed `now`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from services.core.domain.calendar import VN_TZ

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(VN_TZ)
