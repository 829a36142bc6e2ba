"""Working calendar: schedules, days off, working-time arithmetic.

Dates checked against the real 2026 calendar: 1 Jan is a Thursday, 1 Feb a Sunday,
1 Mar a Sunday, 1 Apr a Wednesday, 1 Aug a Saturday.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.core.domain.calendar import (
    VN_TZ,
    Block,
    CalendarOverride,
    DayKind,
    OfficeSchedule,
    WorkingCalendar,
)
from services.core.holidays_vn import vietnam_calendar

VN = vietnam_calendar()
PLAIN = WorkingCalendar(OfficeSchedule.default(), public_days_off=(), makeup_workdays=())


def vn(*args: int) -> datetime:
    return datetime(*args, tzinfo=VN_TZ)  # type: ignore[misc]


# -- Block / OfficeSchedule -----------------------------------------------------------------


def test_block_rejects_empty_or_reversed() -> None:
    with pytest.raises(ValueError, match="before end"):
        Block(time(12), time(8))
    with pytest.raises(ValueError, match="before end"):
        Block(time(8), time(8))


def test_block_rejects_seconds() -> None:
    with pytest.raises(ValueError, match="whole minute"):
        Block(time(8, 0, 30), time(12))


def test_default_schedule_is_mon_to_fri_two_blocks() -> None:
    schedule = OfficeSchedule.default()
    assert sorted(schedule.week) == [0, 1, 2, 3, 4]
    assert schedule.week[0] == (Block(time(8), time(12)), Block(time(13), time(17)))
    assert schedule.makeup_blocks == schedule.week[0]
    assert sum(b.minutes for b in schedule.week[2]) == 480


def test_schedule_json_round_trip() -> None:
    schedule = OfficeSchedule.default()
    raw = schedule.to_dict()
    assert raw["week"]["0"] == [["08:00", "12:00"], ["13:00", "17:00"]]
    assert "5" not in raw["week"]
    assert raw["makeup_blocks"] == [["08:00", "12:00"], ["13:00", "17:00"]]
    assert OfficeSchedule.from_dict(raw) == schedule


def test_schedule_from_dict_makeup_defaults_to_monday() -> None:
    schedule = OfficeSchedule.from_dict({"week": {"0": [["07:30", "11:30"], ["13:30", "17:30"]]}})
    assert schedule.makeup_blocks == (
        Block(time(7, 30), time(11, 30)),
        Block(time(13, 30), time(17, 30)),
    )


def test_schedule_is_hashable_and_equal_by_value() -> None:
    a = OfficeSchedule.default()
    b = OfficeSchedule.from_dict(a.to_dict())
    assert hash(a) == hash(b)
    assert {a: 1}[b] == 1
    # An empty day is the same as an absent day.
    assert OfficeSchedule(week={**a.week, 6: ()}) == a


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"week": {"0": [["08:00", "12:00"], ["11:00", "17:00"]]}}, "overlap"),
        ({"week": {"0": [["13:00", "17:00"], ["08:00", "12:00"]]}}, "in order"),
        ({"week": {"0": [["8h", "12:00"]]}}, "HH:MM"),
        ({"week": {"0": [["08:00", "24:00"]]}}, "HH:MM"),
        ({"week": {"0": [["12:00", "08:00"]]}}, "before end"),
        ({"week": {"0": [["08:00"]]}}, "pair"),
        ({"week": {"7": [["08:00", "12:00"]]}}, "weekday"),
        ({"week": {"mon": [["08:00", "12:00"]]}}, "weekday"),
        ({"week": []}, "week"),
        ({}, "week"),
        ({"week": {}, "makeup_blocks": [["13:00", "17:00"], ["08:00", "12:00"]]}, "makeup"),
        ({"week": {}, "hours": 8}, "unknown"),
    ],
)
def test_schedule_from_dict_rejects_bad_input(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        OfficeSchedule.from_dict(raw)


# -- days off, make-up days, overrides ------------------------------------------------------


@pytest.mark.parametrize(
    "day",
    [
        date(2026, 1, 1),
        *(date(2026, 2, d) for d in range(16, 21)),  # Tết Bính Ngọ, Mon–Fri
        date(2026, 4, 27),  # Giỗ Tổ Hùng Vương (on a Sunday), observed Monday
        date(2026, 4, 30),
        date(2026, 5, 1),
        date(2026, 8, 31),  # day off made up on Saturday 22 Aug
        date(2026, 9, 1),
        date(2026, 9, 2),
        date(2026, 11, 24),  # Ngày Văn hóa Việt Nam
        date(2026, 2, 21),  # ordinary Saturday
        date(2026, 2, 22),  # ordinary Sunday
    ],
)
def test_vietnam_days_off_2026(day: date) -> None:
    assert not VN.is_working_day(day)
    assert VN.blocks_on(day) == []


@pytest.mark.parametrize(
    "day",
    [date(2026, 2, 13), date(2026, 2, 23), date(2026, 4, 28), date(2026, 9, 3), date(2026, 8, 22)],
)
def test_vietnam_working_days_2026(day: date) -> None:
    assert VN.is_working_day(day)


def test_makeup_saturday_has_full_day_blocks() -> None:
    assert VN.blocks_on(date(2026, 8, 22)) == [
        (vn(2026, 8, 22, 8), vn(2026, 8, 22, 12)),
        (vn(2026, 8, 22, 13), vn(2026, 8, 22, 17)),
    ]


def test_vietnam_calendar_years_limit_makeup_days() -> None:
    only_2026 = vietnam_calendar(years=[2026])
    assert only_2026.is_working_day(date(2026, 8, 22))
    assert not only_2026.is_working_day(date(2025, 4, 26))  # a 2025 make-up Saturday
    assert VN.is_working_day(date(2025, 4, 26))
    assert not VN.is_working_day(date(2025, 5, 2))


def test_override_day_off_and_workday() -> None:
    cal = vietnam_calendar(
        overrides=[
            CalendarOverride(date(2026, 3, 4), DayKind.DAY_OFF, "storm"),
            CalendarOverride(date(2026, 3, 7), DayKind.WORKDAY, "extra Saturday"),
        ]
    )
    assert not cal.is_working_day(date(2026, 3, 4))
    assert cal.is_working_day(date(2026, 3, 7))
    assert cal.blocks_on(date(2026, 3, 7))[0] == (vn(2026, 3, 7, 8), vn(2026, 3, 7, 12))


def test_override_beats_public_day_off_and_makeup_day() -> None:
    cal = WorkingCalendar(
        OfficeSchedule.default(),
        public_days_off={date(2026, 2, 20)},
        makeup_workdays={date(2026, 8, 22)},
        overrides=[
            CalendarOverride(date(2026, 2, 20), DayKind.WORKDAY),
            CalendarOverride(date(2026, 8, 22), DayKind.DAY_OFF),
        ],
    )
    assert cal.is_working_day(date(2026, 2, 20))
    assert not cal.is_working_day(date(2026, 8, 22))


def test_public_day_off_beats_makeup_day() -> None:
    day = date(2026, 8, 22)
    cal = WorkingCalendar(OfficeSchedule.default(), public_days_off={day}, makeup_workdays={day})
    assert not cal.is_working_day(day)


def test_saturday_morning_agency() -> None:
    schedule = OfficeSchedule(
        week={**OfficeSchedule.default().week, 5: (Block(time(8), time(12)),)}
    )
    cal = vietnam_calendar(schedule)
    assert cal.blocks_on(date(2026, 3, 7)) == [(vn(2026, 3, 7, 8), vn(2026, 3, 7, 12))]
    # A make-up Saturday stands in for a full weekday, so it uses the make-up blocks.
    assert len(cal.blocks_on(date(2026, 8, 22))) == 2
    # Fri 6 Mar 15:00 + 4 h: 2 h on Friday, then 2 h on Saturday morning.
    assert cal.add_working_minutes(vn(2026, 3, 6, 15), 240) == vn(2026, 3, 7, 10)
    # Sat 11:00 + 4 h: 1 h on Saturday, 3 h on Monday.
    assert cal.add_working_minutes(vn(2026, 3, 7, 11), 240) == vn(2026, 3, 9, 11)


# -- instants ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("t", "expected"),
    [
        (vn(2026, 3, 2, 7, 30), vn(2026, 3, 2, 8)),  # before opening
        (vn(2026, 3, 2, 8), vn(2026, 3, 2, 8)),  # block start is inside
        (vn(2026, 3, 2, 11, 59, 59), vn(2026, 3, 2, 11, 59, 59)),
        (vn(2026, 3, 2, 12), vn(2026, 3, 2, 13)),  # block end is outside
        (vn(2026, 3, 2, 12, 30), vn(2026, 3, 2, 13)),  # lunch
        (vn(2026, 3, 2, 17), vn(2026, 3, 3, 8)),  # closing time
        (vn(2026, 3, 6, 18), vn(2026, 3, 9, 8)),  # Friday evening → Monday
        (vn(2026, 3, 7, 10), vn(2026, 3, 9, 8)),  # Saturday
        (vn(2026, 2, 13, 17, 30), vn(2026, 2, 23, 8)),  # over Tết
        (datetime(2026, 3, 2, 1, 0, tzinfo=UTC), vn(2026, 3, 2, 8)),  # 08:00 in Hà Nội
    ],
)
def test_next_working_instant(t: datetime, expected: datetime) -> None:
    result = VN.next_working_instant(t)
    assert result == expected
    assert result.tzinfo == VN_TZ


def test_next_working_day_start() -> None:
    assert VN.next_working_day_start(vn(2026, 3, 2, 7)) == vn(2026, 3, 3, 8)
    assert VN.next_working_day_start(vn(2026, 2, 13, 10)) == vn(2026, 2, 23, 8)
    assert VN.next_working_day_start(vn(2026, 8, 21, 16)) == vn(2026, 8, 22, 8)
    assert VN.next_working_day_start(vn(2026, 8, 28, 9)) == vn(2026, 9, 3, 8)


def test_end_of_working_day() -> None:
    assert VN.end_of_working_day(date(2026, 3, 2)) == vn(2026, 3, 2, 17)
    with pytest.raises(ValueError, match="not a working day"):
        VN.end_of_working_day(date(2026, 3, 7))


def test_calendar_without_working_days_fails_cleanly() -> None:
    cal = WorkingCalendar(OfficeSchedule(week={}), public_days_off=(), makeup_workdays=())
    with pytest.raises(ValueError, match="no working day"):
        cal.next_working_instant(vn(2026, 3, 2, 9))
    with pytest.raises(ValueError, match="no working day"):
        cal.add_working_minutes(vn(2026, 3, 2, 9), 60)


@pytest.mark.parametrize(
    "call",
    [
        lambda: VN.next_working_instant(datetime(2026, 3, 2, 9)),
        lambda: VN.next_working_day_start(datetime(2026, 3, 2, 9)),
        lambda: VN.add_working_minutes(datetime(2026, 3, 2, 9), 60),
        lambda: VN.add_working_minutes(datetime(2026, 3, 2, 9), 0),
        lambda: VN.working_minutes_between(datetime(2026, 3, 2, 9), vn(2026, 3, 3, 9)),
        lambda: VN.working_minutes_between(vn(2026, 3, 2, 9), datetime(2026, 3, 3, 9)),
    ],
)
def test_naive_datetimes_rejected(call: object) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        call()  # type: ignore[operator]


# -- adding and counting working time ---------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "minutes", "expected"),
    [
        # Ending exactly at a block end gives that block end.
        (vn(2026, 3, 2, 8), 240, vn(2026, 3, 2, 12)),
        (vn(2026, 3, 2, 8), 480, vn(2026, 3, 2, 17)),
        (vn(2026, 3, 2, 8), 241, vn(2026, 3, 2, 13, 1)),
        (vn(2026, 3, 2, 8), 5 * 480, vn(2026, 3, 6, 17)),
        (vn(2026, 3, 2, 8), 5 * 480 + 1, vn(2026, 3, 9, 8, 1)),
        (vn(2026, 3, 2, 12, 30), 60, vn(2026, 3, 2, 14)),  # lunch → 13:00
        (vn(2026, 3, 7, 10), 480, vn(2026, 3, 9, 17)),  # weekend → Monday
        (vn(2026, 3, 2, 8, 0, 45), 1, vn(2026, 3, 2, 8, 1)),  # seconds floored
        # Tết: Fri 13 Feb 10:00 + 3 working days: 6 h Fri, then Mon 23, Tue 24, 2 h Wed 25.
        (vn(2026, 2, 13, 10), 3 * 480, vn(2026, 2, 25, 10)),
        # 60 working days from Mon 5 Jan 2026 08:00: 12 weeks, less Tết (5 days) → 13 weeks,
        # the last day being Fri 3 Apr.
        (vn(2026, 1, 5, 8), 60 * 480, vn(2026, 4, 3, 17)),
    ],
)
def test_add_working_minutes(start: datetime, minutes: int, expected: datetime) -> None:
    assert VN.add_working_minutes(start, minutes) == expected


def test_add_zero_minutes_returns_start() -> None:
    start = vn(2026, 3, 7, 10, 0, 30)  # a Saturday: not snapped
    assert VN.add_working_minutes(start, 0) == start


def test_add_negative_minutes_rejected() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        VN.add_working_minutes(vn(2026, 3, 2, 8), -1)


def test_makeup_saturday_counts_and_its_weekday_does_not() -> None:
    # Fri 21 Aug + 2 working days: Friday and the make-up Saturday 22 Aug.
    assert VN.add_working_minutes(vn(2026, 8, 21, 8), 960) == vn(2026, 8, 22, 17)
    # Fri 28 Aug + 2 days: Friday, then skip Mon 31 Aug, 1 and 2 Sep → Thu 3 Sep.
    assert VN.add_working_minutes(vn(2026, 8, 28, 8), 960) == vn(2026, 9, 3, 17)


def test_hand_made_calendar_ignores_vietnamese_holidays() -> None:
    assert PLAIN.add_working_minutes(vn(2026, 2, 13, 10), 3 * 480) == vn(2026, 2, 18, 10)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (vn(2026, 3, 2, 8), vn(2026, 3, 2, 17), 480),
        (vn(2026, 3, 2, 7), vn(2026, 3, 2, 18), 480),
        (vn(2026, 3, 2, 11), vn(2026, 3, 2, 14), 120),
        (vn(2026, 3, 2, 12, 10), vn(2026, 3, 2, 12, 50), 0),
        (vn(2026, 3, 6, 16), vn(2026, 3, 9, 9), 120),
        (vn(2026, 2, 13, 10), vn(2026, 2, 25, 10), 3 * 480),
        (vn(2026, 3, 2, 9, 0, 59), vn(2026, 3, 2, 9, 1, 1), 1),  # both floored
        (vn(2026, 3, 3, 8), vn(2026, 3, 2, 8), 0),
    ],
)
def test_working_minutes_between(a: datetime, b: datetime, expected: int) -> None:
    assert VN.working_minutes_between(a, b) == expected


_BASE = vn(2025, 1, 1)
_SPAN_SECONDS = int((vn(2028, 1, 1) - _BASE).total_seconds())


@settings(max_examples=400, deadline=None)
@given(
    offset=st.integers(min_value=0, max_value=_SPAN_SECONDS),
    minutes=st.integers(min_value=0, max_value=40 * 480),
)
def test_add_and_between_are_inverse(offset: int, minutes: int) -> None:
    start = _BASE + timedelta(seconds=offset)
    end = VN.add_working_minutes(start, minutes)
    snapped = VN.next_working_instant(start)
    assert VN.working_minutes_between(snapped, end) == minutes
    if minutes:
        # The deadline is inside working time or exactly at a block end.
        assert VN.is_working_day(end.date())
        assert any(s < end <= e for s, e in VN.blocks_on(end.date()))


def test_many_deadlines() -> None:
    start = vn(2026, 1, 1, 7, 13)
    results = []
    for i in range(1000):
        received = start + timedelta(minutes=397 * i)
        minutes = (1 + i % 30) * 480
        due = VN.add_working_minutes(received, minutes)
        assert VN.working_minutes_between(VN.next_working_instant(received), due) == minutes
        results.append(due)
    assert len(results) == 1000
