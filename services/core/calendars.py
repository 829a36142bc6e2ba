"""Working calendars per office schedule, built once and rebuilt when the overrides change."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pydantic_core

from services.core.domain.calendar import CalendarOverride, OfficeSchedule, WorkingCalendar
from services.core.holidays_vn import vietnam_calendar


class CalendarBook:
    """The Vietnamese calendar (holidays VN + admin overrides) under each agency's schedule."""

    def __init__(self, overrides: Iterable[CalendarOverride] = ()) -> None:
        self._overrides: tuple[CalendarOverride, ...] = tuple(overrides)
        self._calendars: dict[OfficeSchedule, WorkingCalendar] = {}
        self._schedules: dict[bytes, OfficeSchedule] = {}

    @property
    def overrides(self) -> tuple[CalendarOverride, ...]:
        return self._overrides

    def replace_overrides(self, overrides: Iterable[CalendarOverride]) -> None:
        fresh = tuple(overrides)
        if fresh != self._overrides:
            self._overrides = fresh
            self._calendars.clear()

    def for_schedule(self, schedule: OfficeSchedule | None = None) -> WorkingCalendar:
        key = schedule or OfficeSchedule.default()
        calendar = self._calendars.get(key)
        if calendar is None:
            calendar = vietnam_calendar(key, self._overrides)
            self._calendars[key] = calendar
        return calendar

    def for_schedule_dict(self, schedule: dict[str, Any] | None) -> WorkingCalendar:
        if not schedule:
            return self.for_schedule(None)
        # Every tracked dossier carries its schedule as a dict; parsing it once per shape,
        # not once per dossier, is a sixth of a scan's time.
        # The key is the dict's JSON by pydantic (1 µs; json.dumps with sorted keys took 7):
        # a schedule sent with its keys in another order only makes a second entry.
        key = pydantic_core.to_json(schedule)
        parsed = self._schedules.get(key)
        if parsed is None:
            if len(self._schedules) > 1000:
                self._schedules.clear()
            parsed = self._schedules[key] = OfficeSchedule.from_dict(schedule)
        return self.for_schedule(parsed)
