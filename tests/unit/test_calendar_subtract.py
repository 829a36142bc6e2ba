"""WorkingCalendar.subtract_working_minutes: the backward walk through the office blocks.

2026 reference: Mon 2 Mar and Tue 3 Mar are working days; Tết is Mon 16 – Fri 20 Feb;
Sat 22 Aug is a make-up working Saturday; Mon 9 Mar follows a plain weekend.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.core.domain.calendar import (
    VN_TZ,
    CalendarOverride,
    DayKind,
    OfficeSchedule,
    WorkingCalendar,
)
from services.core.holidays_vn import vietnam_calendar

VN = vietnam_calendar()


def vn(*args: int) -> datetime:
    return datetime(*args, tzinfo=VN_TZ)  # type: ignore[misc,arg-type]


@pytest.mark.parametrize(
    ("end", "minutes", "expected"),
    [
        (vn(2026, 3, 3, 10, 30), 60, vn(2026, 3, 3, 9, 30)),  # inside one block
        (vn(2026, 3, 3, 17), 60, vn(2026, 3, 3, 16)),  # from a block end
        (vn(2026, 3, 3, 14, 30), 91, vn(2026, 3, 3, 11, 59)),  # across lunch
        (vn(2026, 3, 3, 18, 30), 30, vn(2026, 3, 3, 16, 30)),  # from after closing
        (vn(2026, 3, 9, 9), 120, vn(2026, 3, 6, 16)),  # Monday → Friday
        (vn(2026, 2, 23, 10), 480, vn(2026, 2, 13, 10)),  # back over Tết
        (vn(2026, 8, 24, 8, 30), 60, vn(2026, 8, 22, 16, 30)),  # make-up Saturday
        (vn(2026, 3, 3, 10, 30, 45), 60, vn(2026, 3, 3, 9, 30)),  # seconds floored
        (vn(2026, 3, 10, 10), 3 * 480, vn(2026, 3, 5, 10)),  # three working days
    ],
)
def test_subtract(end: datetime, minutes: int, expected: datetime) -> None:
    assert VN.subtract_working_minutes(end, minutes) == expected
    assert VN.working_minutes_between(expected, end) == minutes


@pytest.mark.parametrize(
    ("end", "minutes", "expected"),
    [
        # Used up exactly at a block start: back to the previous block's end (the earliest t).
        (vn(2026, 3, 3, 9), 60, vn(2026, 3, 2, 17)),
        (vn(2026, 3, 3, 14, 30), 90, vn(2026, 3, 3, 12)),
        (vn(2026, 3, 3, 17), 480, vn(2026, 3, 2, 17)),
        (vn(2026, 3, 9, 12), 240, vn(2026, 3, 6, 17)),
    ],
)
def test_subtract_ending_at_a_block_start_goes_back_to_the_previous_block_end(
    end: datetime, minutes: int, expected: datetime
) -> None:
    assert VN.subtract_working_minutes(end, minutes) == expected
    assert VN.working_minutes_between(expected, end) == minutes
    assert VN.working_minutes_between(expected - timedelta(minutes=1), end) == minutes + 1


@pytest.mark.parametrize(
    ("end", "expected"),
    [
        (vn(2026, 3, 3, 10, 30), vn(2026, 3, 3, 10, 30)),  # inside a block: end itself
        (vn(2026, 3, 3, 12), vn(2026, 3, 3, 12)),  # at a block end
        (vn(2026, 3, 3, 12, 30), vn(2026, 3, 3, 12)),  # at lunch
        (vn(2026, 3, 3, 13), vn(2026, 3, 3, 12)),  # at a block start
        (vn(2026, 3, 3, 8), vn(2026, 3, 2, 17)),  # at opening
        (vn(2026, 3, 7, 12), vn(2026, 3, 6, 17)),  # Saturday
    ],
)
def test_subtract_zero(end: datetime, expected: datetime) -> None:
    assert VN.subtract_working_minutes(end, 0) == expected


def test_subtract_respects_overrides() -> None:
    with_day_off = vietnam_calendar(overrides=[CalendarOverride(date(2026, 3, 6), DayKind.DAY_OFF)])
    assert with_day_off.subtract_working_minutes(vn(2026, 3, 9, 9), 120) == vn(2026, 3, 5, 16)
    with_workday = vietnam_calendar(overrides=[CalendarOverride(date(2026, 3, 7), DayKind.WORKDAY)])
    assert with_workday.subtract_working_minutes(vn(2026, 3, 9, 9), 120) == vn(2026, 3, 7, 16)


def test_subtract_returns_vietnam_time() -> None:
    result = VN.subtract_working_minutes(datetime(2026, 3, 3, 3, 30, tzinfo=UTC), 60)
    assert result == vn(2026, 3, 3, 9, 30)
    assert result.tzinfo is VN_TZ


def test_subtract_validates() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        VN.subtract_working_minutes(vn(2026, 3, 3, 10), -1)
    with pytest.raises(ValueError, match="timezone-aware"):
        VN.subtract_working_minutes(datetime(2026, 3, 3, 10), 10)
    never = WorkingCalendar(OfficeSchedule(week={}), public_days_off=(), makeup_workdays=())
    with pytest.raises(ValueError, match="no working day"):
        never.subtract_working_minutes(vn(2026, 3, 3, 10), 10)


def test_subtract_far_back_is_not_limited_by_the_search_horizon() -> None:
    minutes = 1000 * 480  # about four years of working days
    start = VN.subtract_working_minutes(vn(2026, 3, 3, 17), minutes)
    assert VN.working_minutes_between(start, vn(2026, 3, 3, 17)) == minutes


@settings(max_examples=300, deadline=None)
@given(
    end=st.datetimes(
        min_value=datetime(2025, 12, 1), max_value=datetime(2027, 1, 31), timezones=st.just(VN_TZ)
    ),
    minutes=st.integers(min_value=0, max_value=20 * 480),
)
def test_subtract_is_the_earliest_instant_with_that_much_working_time(
    end: datetime, minutes: int
) -> None:
    t = VN.subtract_working_minutes(end, minutes)
    assert t.second == 0 and t.microsecond == 0
    assert VN.working_minutes_between(t, end) == minutes
    assert VN.working_minutes_between(t - timedelta(seconds=1), end) == minutes + 1


@settings(max_examples=200, deadline=None)
@given(
    start=st.datetimes(
        min_value=datetime(2025, 12, 1), max_value=datetime(2027, 1, 31), timezones=st.just(VN_TZ)
    ),
    minutes=st.integers(min_value=1, max_value=20 * 480),
)
def test_subtract_undoes_add(start: datetime, minutes: int) -> None:
    end = VN.add_working_minutes(start, minutes)
    back = VN.subtract_working_minutes(end, minutes)
    assert back <= start.replace(second=0, microsecond=0)
    assert VN.add_working_minutes(back, minutes) == end
