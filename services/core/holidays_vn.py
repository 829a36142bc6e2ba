"""Vietnamese public days off (ngày nghỉ lễ, Tết) and make-up Saturdays (ngày làm bù).

The only module allowed to import the third-party ``holidays`` package; the domain layer sees
plain dates through ``WorkingCalendar``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from functools import lru_cache

import holidays

from services.core.domain.calendar import CalendarOverride, OfficeSchedule, WorkingCalendar

DEFAULT_YEARS: tuple[int, ...] = tuple(range(2015, 2041))


@lru_cache(maxsize=16)
def holiday_sets(years: tuple[int, ...]) -> tuple[frozenset[date], frozenset[date]]:
    """``(days_off, makeup_workdays)`` for ``years``; cached because building them is slow.

    Days off include observed (substitute) days. ``weekend_workdays`` on the holidays object
    may hold dates from other years; only the requested years are kept.
    """
    vn = holidays.country_holidays("VN", years=years)
    days_off = frozenset(vn.keys())
    wanted = set(years)
    makeup = frozenset(d for d in getattr(vn, "weekend_workdays", ()) if d.year in wanted)
    return days_off, makeup


def vietnam_calendar(
    schedule: OfficeSchedule | None = None,
    overrides: Iterable[CalendarOverride] = (),
    years: Iterable[int] | None = None,
) -> WorkingCalendar:
    """A working calendar with Vietnam's public days off, make-up Saturdays and ``overrides``."""
    key = DEFAULT_YEARS if years is None else tuple(sorted(set(years)))
    days_off, makeup = holiday_sets(key)
    return WorkingCalendar(
        schedule or OfficeSchedule.default(),
        public_days_off=days_off,
        makeup_workdays=makeup,
        overrides=overrides,
    )
