"""Time limits, clock start, deadlines, the lifecycle clock and outcomes.

2026 reference: Mon 2 Mar, Mon 9 Mar, Mon 20 Apr, Mon 27 Apr (observed Giỗ Tổ), Thu 30 Apr and
Fri 1 May are days off; Tết is Mon 16 – Fri 20 Feb.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

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
from services.core.domain.clock_state import clock_from_state, clock_to_state
from services.core.domain.deadlines import (
    ClockError,
    ClockTransition,
    DeadlineClock,
    Outcome,
    TimeLimit,
    TimeUnit,
    TransitionKind,
    appointment,
    clock_start,
    outcome,
    receipt_day,
    step_due_at,
    step_mark,
)
from services.core.holidays_vn import vietnam_calendar

VN = vietnam_calendar()
CUTOFF = time(15, 0)
DAYS_3 = TimeLimit(3, TimeUnit.WORKING_DAYS)
DAY_1 = TimeLimit(1, TimeUnit.WORKING_DAYS)
_WEEKDAY = (Block(time(8), time(12)), Block(time(13), time(17)))
# A desk open on Saturday mornings until 11:30.
SATURDAY_DESK = vietnam_calendar(
    OfficeSchedule(week={**{d: _WEEKDAY for d in range(5)}, 5: (Block(time(8), time(11, 30)),)})
)


def cal_days(n: int) -> TimeLimit:
    return TimeLimit(n, TimeUnit.CALENDAR_DAYS)


def vn(*args: int) -> datetime:
    return datetime(*args, tzinfo=VN_TZ)  # type: ignore[misc]


# -- TimeLimit ---------------------------------------------------------------------------------


def test_time_limit_minutes() -> None:
    assert TimeLimit(3, TimeUnit.WORKING_DAYS).working_minutes == 1440
    assert TimeLimit(4, TimeUnit.WORKING_HOURS).working_minutes == 240
    assert TimeLimit(15, TimeUnit.CALENDAR_DAYS).working_minutes is None
    assert TimeLimit(2, "working_days").unit is TimeUnit.WORKING_DAYS  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [0, -1, 1.5, True])
def test_time_limit_value_validated(value: object) -> None:
    with pytest.raises(ValueError, match=">= 1"):
        TimeLimit(value, TimeUnit.WORKING_DAYS)  # type: ignore[arg-type]


def test_time_limit_unit_validated() -> None:
    with pytest.raises(ValueError):
        TimeLimit(1, "weeks")  # type: ignore[arg-type]


# -- clock start ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("received", "cutoff", "expected"),
    [
        (vn(2026, 3, 2, 7, 30), None, vn(2026, 3, 2, 8)),  # before opening
        (vn(2026, 3, 2, 9, 15), None, vn(2026, 3, 2, 9, 15)),
        (vn(2026, 3, 2, 12, 30), None, vn(2026, 3, 2, 13)),  # lunch
        (vn(2026, 3, 2, 17, 30), None, vn(2026, 3, 3, 8)),  # after closing
        (vn(2026, 3, 7, 10), None, vn(2026, 3, 9, 8)),  # Saturday
        (vn(2026, 3, 2, 14, 59), CUTOFF, vn(2026, 3, 2, 14, 59)),
        # "After 15:00": a receipt at 15:00 is not late, at the minute (as the receipt shows).
        (vn(2026, 3, 2, 15), CUTOFF, vn(2026, 3, 2, 15)),
        (vn(2026, 3, 2, 15, 0, 59), CUTOFF, vn(2026, 3, 2, 15, 0, 59)),
        (vn(2026, 3, 2, 15, 1), CUTOFF, vn(2026, 3, 3, 8)),
        (vn(2026, 3, 2, 15, 30), CUTOFF, vn(2026, 3, 3, 8)),
        (vn(2026, 3, 6, 15, 30), CUTOFF, vn(2026, 3, 9, 8)),  # Friday → Monday
        (vn(2026, 3, 7, 16), CUTOFF, vn(2026, 3, 9, 8)),  # Saturday, after the cut-off hour
        (vn(2026, 2, 13, 15, 1), CUTOFF, vn(2026, 2, 23, 8)),  # before Tết
    ],
)
def test_clock_start(received: datetime, cutoff: time | None, expected: datetime) -> None:
    assert clock_start(VN, received, cutoff) == expected


def test_a_receipt_at_the_cut_off_counts_that_day() -> None:
    # Mon 15:00 + 1 working day: 2 h Monday, 6 h Tuesday → Tue 15:00 (not Tue 17:00).
    assert appointment(VN, vn(2026, 3, 2, 15), DAY_1, CUTOFF) == vn(2026, 3, 3, 15)
    assert appointment(VN, vn(2026, 3, 2, 15, 1), DAY_1, CUTOFF) == vn(2026, 3, 3, 17)


@pytest.mark.parametrize(
    ("calendar", "received", "online", "expected"),
    [
        # Decree 297/2025 Art. 6(3): online, from one hour before closing → next working day.
        (VN, vn(2026, 3, 2, 15, 59), True, vn(2026, 3, 2, 15, 59)),
        (VN, vn(2026, 3, 2, 16), True, vn(2026, 3, 3, 8)),
        (VN, vn(2026, 3, 2, 16, 30), True, vn(2026, 3, 3, 8)),
        (VN, vn(2026, 3, 2, 16, 30), False, vn(2026, 3, 2, 16, 30)),  # at the counter
        (VN, vn(2026, 3, 6, 16, 10), True, vn(2026, 3, 9, 8)),  # Friday → Monday
        (VN, vn(2026, 3, 2, 11, 30), True, vn(2026, 3, 2, 11, 30)),  # before lunch: not closing
        (VN, vn(2026, 3, 7, 16, 30), True, vn(2026, 3, 9, 8)),  # a day off: next instant anyway
        # The agency's own closing time: a desk closing at 11:30 on Saturday, last hour 10:30.
        (SATURDAY_DESK, vn(2026, 3, 7, 10, 29), True, vn(2026, 3, 7, 10, 29)),
        (SATURDAY_DESK, vn(2026, 3, 7, 10, 30), True, vn(2026, 3, 9, 8)),
        (SATURDAY_DESK, vn(2026, 3, 7, 10, 30), False, vn(2026, 3, 7, 10, 30)),
        (SATURDAY_DESK, vn(2026, 3, 6, 16, 30), True, vn(2026, 3, 7, 8)),  # Fri → Sat desk
    ],
)
def test_online_dossiers_in_the_last_hour_count_from_the_next_working_day(
    calendar: WorkingCalendar, received: datetime, online: bool, expected: datetime
) -> None:
    assert clock_start(calendar, received, None, online=online) == expected
    channel = "online" if online else "counter"
    clock = DeadlineClock.open(calendar, received, DAY_1, None, channel)
    assert clock.started_at == expected
    assert clock.online is online


def test_online_and_cut_off_together() -> None:
    # Online before the cut-off and before the last hour: that instant.
    assert clock_start(VN, vn(2026, 3, 2, 14, 30), CUTOFF, online=True) == vn(2026, 3, 2, 14, 30)
    # After the cut-off, whatever the channel.
    assert clock_start(VN, vn(2026, 3, 2, 15, 30), CUTOFF, online=True) == vn(2026, 3, 3, 8)
    # Postal dossiers are not online.
    assert DeadlineClock.open(VN, vn(2026, 3, 2, 16, 30), DAY_1, None, "postal").due_at == vn(
        2026, 3, 3, 16, 30
    )


def test_clock_start_rejects_naive() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        clock_start(VN, datetime(2026, 3, 2, 9), CUTOFF)


# -- due dates and appointments ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("received", "limit", "cutoff", "expected"),
    [
        # Tết: Fri 13 Feb 10:00 + 3 days → 6 h Fri, Mon 23, Tue 24, 2 h Wed 25.
        (vn(2026, 2, 13, 10), DAYS_3, None, vn(2026, 2, 25, 10)),
        (vn(2026, 2, 13, 8), DAYS_3, None, vn(2026, 2, 24, 17)),
        # Block-end boundary: 4 h from Mon 08:00 is 12:00, 8 h is 17:00.
        (vn(2026, 3, 2, 8), TimeLimit(4, TimeUnit.WORKING_HOURS), None, vn(2026, 3, 2, 12)),
        (vn(2026, 3, 2, 8), TimeLimit(8, TimeUnit.WORKING_HOURS), None, vn(2026, 3, 2, 17)),
        (vn(2026, 3, 2, 8), TimeLimit(1, TimeUnit.WORKING_DAYS), None, vn(2026, 3, 2, 17)),
        # 16 h from Tue 10:30: 5.5 h Tue, 8 h Wed, 2.5 h Thu.
        (
            vn(2026, 3, 3, 10, 30),
            TimeLimit(16, TimeUnit.WORKING_HOURS),
            None,
            vn(2026, 3, 5, 10, 30),
        ),
        # Outside hours.
        (vn(2026, 3, 2, 7, 30), TimeLimit(4, TimeUnit.WORKING_HOURS), None, vn(2026, 3, 2, 12)),
        (vn(2026, 3, 2, 17, 30), TimeLimit(4, TimeUnit.WORKING_HOURS), None, vn(2026, 3, 3, 12)),
        (vn(2026, 3, 7, 10), TimeLimit(1, TimeUnit.WORKING_DAYS), None, vn(2026, 3, 9, 17)),
        (vn(2026, 3, 2, 12, 30), TimeLimit(1, TimeUnit.WORKING_HOURS), None, vn(2026, 3, 2, 14)),
        # Cut-off 15:00.
        (vn(2026, 3, 2, 15, 30), TimeLimit(1, TimeUnit.WORKING_DAYS), CUTOFF, vn(2026, 3, 3, 17)),
        # 14:59: 2 h 1 min Monday, 4 h Tuesday morning, 1 h 59 min Tuesday afternoon.
        (
            vn(2026, 3, 2, 14, 59),
            TimeLimit(1, TimeUnit.WORKING_DAYS),
            CUTOFF,
            vn(2026, 3, 3, 14, 59),
        ),
        # Make-up Saturday 22 Aug 2026 counts; Mon 31 Aug does not.
        (vn(2026, 8, 21, 8), TimeLimit(2, TimeUnit.WORKING_DAYS), None, vn(2026, 8, 22, 17)),
        (vn(2026, 8, 21, 8), DAYS_3, None, vn(2026, 8, 24, 17)),
        (vn(2026, 8, 28, 8), TimeLimit(2, TimeUnit.WORKING_DAYS), None, vn(2026, 9, 3, 17)),
        # Calendar days end at close of business; a day off moves to the next working day.
        (vn(2026, 3, 2, 9), TimeLimit(4, TimeUnit.CALENDAR_DAYS), None, vn(2026, 3, 6, 17)),
        (vn(2026, 3, 2, 9), TimeLimit(5, TimeUnit.CALENDAR_DAYS), None, vn(2026, 3, 9, 17)),
        (vn(2026, 4, 20, 10), TimeLimit(7, TimeUnit.CALENDAR_DAYS), None, vn(2026, 4, 28, 17)),
        (vn(2026, 4, 20, 10), TimeLimit(10, TimeUnit.CALENDAR_DAYS), None, vn(2026, 5, 4, 17)),
        # After the cut-off the receipt counts as Monday's; counting starts the day after it.
        (vn(2026, 3, 6, 15, 30), TimeLimit(3, TimeUnit.CALENDAR_DAYS), CUTOFF, vn(2026, 3, 12, 17)),
        # 5 calendar days from Wed 11 Feb land on Mon 16 Feb (Tết) → Mon 23 Feb.
        (vn(2026, 2, 11, 9), TimeLimit(5, TimeUnit.CALENDAR_DAYS), None, vn(2026, 2, 23, 17)),
    ],
)
def test_appointment(
    received: datetime, limit: TimeLimit, cutoff: time | None, expected: datetime
) -> None:
    assert appointment(VN, received, limit, cutoff) == expected


# -- calendar days: Civil Code 2015 Art. 147–148 -------------------------------------------------


@pytest.mark.parametrize(
    ("received", "days", "expected"),
    [
        # Received on a Saturday: counting starts on Sunday, the 10th day is Tue 17 Mar.
        (vn(2026, 3, 7, 10), 10, vn(2026, 3, 17, 17)),
        (vn(2026, 3, 8, 10), 1, vn(2026, 3, 9, 17)),  # Sunday + 1 = Monday
        # Received after closing: the day of receipt is still the day not counted.
        (vn(2026, 3, 2, 18), 1, vn(2026, 3, 3, 17)),
        (vn(2026, 3, 2, 7), 1, vn(2026, 3, 3, 17)),  # before opening, the same
        # The last day a day off (Saturday): the close of the next working day.
        (vn(2026, 3, 6, 9), 1, vn(2026, 3, 9, 17)),
        (vn(2026, 3, 5, 16, 59), 2, vn(2026, 3, 9, 17)),
    ],
)
def test_calendar_days_count_from_the_day_after_receipt(
    received: datetime, days: int, expected: datetime
) -> None:
    clock = DeadlineClock.open(VN, received, cal_days(days), None)
    assert clock.due_at == expected
    # Counting starts at the midnight after the day of receipt.
    assert clock.started_at == datetime.combine(
        received.date() + timedelta(days=1), time(0), tzinfo=VN_TZ
    )
    assert clock.last_day == received.date() + timedelta(days=days)


def test_a_late_receipt_counts_as_the_next_working_days_for_calendar_days() -> None:
    # After the cut-off on Friday: received Monday, counting from Tuesday; 3 days → Thu.
    assert receipt_day(VN, vn(2026, 3, 6, 15, 30), CUTOFF) == date(2026, 3, 9)
    assert appointment(VN, vn(2026, 3, 6, 15, 30), cal_days(3), CUTOFF) == vn(2026, 3, 12, 17)
    # Online in the last hour: the same.
    assert receipt_day(VN, vn(2026, 3, 6, 16, 30), None, online=True) == date(2026, 3, 9)
    assert appointment(VN, vn(2026, 3, 6, 16, 30), cal_days(3), None, "online") == vn(
        2026, 3, 12, 17
    )
    # Not late: Friday is the day of receipt; Sat, Sun, Mon → Mon 9 Mar.
    assert receipt_day(VN, vn(2026, 3, 6, 14), CUTOFF) == date(2026, 3, 6)
    assert appointment(VN, vn(2026, 3, 6, 14), cal_days(3), CUTOFF) == vn(2026, 3, 9, 17)
    # On a day off nothing is late: Saturday online is Saturday's.
    assert receipt_day(VN, vn(2026, 3, 7, 16, 30), CUTOFF, online=True) == date(2026, 3, 7)


def test_admin_day_off_moves_deadline() -> None:
    storm = vietnam_calendar(overrides=[CalendarOverride(date(2026, 3, 4), DayKind.DAY_OFF)])
    # Mon 09:00 + 3 days: 7 h Mon, 8 h Tue, Wed off, 8 h Thu, 1 h Fri.
    assert appointment(storm, vn(2026, 3, 2, 9), DAYS_3, None) == vn(2026, 3, 6, 9)
    assert appointment(VN, vn(2026, 3, 2, 9), DAYS_3, None) == vn(2026, 3, 5, 9)


def test_admin_workday_on_saturday_counts() -> None:
    extra = vietnam_calendar(overrides=[CalendarOverride(date(2026, 3, 7), DayKind.WORKDAY)])
    limit = TimeLimit(2, TimeUnit.WORKING_DAYS)
    assert appointment(extra, vn(2026, 3, 6, 8), limit, None) == vn(2026, 3, 7, 17)
    assert appointment(VN, vn(2026, 3, 6, 8), limit, None) == vn(2026, 3, 9, 17)


def test_thousand_appointments() -> None:
    limits = [
        DAYS_3,
        TimeLimit(15, TimeUnit.WORKING_DAYS),
        TimeLimit(60, TimeUnit.WORKING_DAYS),
        TimeLimit(4, TimeUnit.WORKING_HOURS),
        TimeLimit(30, TimeUnit.CALENDAR_DAYS),
    ]
    received = vn(2026, 1, 1, 6, 7)
    results = [
        appointment(VN, received + timedelta(minutes=331 * i), limits[i % 5], CUTOFF)
        for i in range(1000)
    ]
    assert all(r > received for r in results)


# -- the lifecycle clock ------------------------------------------------------------------------


def opened(cutoff: time | None = None) -> DeadlineClock:
    # Mon 2 Mar 09:00 + 3 days: 7 h Mon, 8 h Tue, 8 h Wed, 1 h Thu → Thu 5 Mar 09:00.
    return DeadlineClock.open(VN, vn(2026, 3, 2, 9), DAYS_3, cutoff)


def test_open() -> None:
    clock = opened()
    assert clock.started_at == vn(2026, 3, 2, 9)
    assert clock.due_at == vn(2026, 3, 5, 9)
    assert clock.is_running
    assert clock.version == 1


def test_open_with_cutoff() -> None:
    clock = DeadlineClock.open(VN, vn(2026, 3, 2, 15, 30), DAYS_3, CUTOFF)
    assert clock.started_at == vn(2026, 3, 3, 8)
    assert clock.due_at == vn(2026, 3, 5, 17)


def test_stop_keeps_remaining_time() -> None:
    stopped = opened().stop(VN, vn(2026, 3, 3, 10))
    assert not stopped.is_running
    assert stopped.stopped_at == vn(2026, 3, 3, 10)
    # Tue 10:00 → Thu 09:00: 6 h + 8 h + 1 h.
    assert stopped.remaining_minutes == 900
    assert stopped.version == 1
    assert stopped.remaining_working_minutes(VN, vn(2026, 3, 20, 9)) == 900


def test_stop_before_the_run_began_keeps_the_full_limit() -> None:
    clock = DeadlineClock.open(
        VN, vn(2026, 3, 2, 15, 30), TimeLimit(1, TimeUnit.WORKING_DAYS), CUTOFF
    )
    assert clock.stop(VN, vn(2026, 3, 2, 16)).remaining_minutes == 480


def test_stop_when_overdue_keeps_zero() -> None:
    assert opened().stop(VN, vn(2026, 3, 6, 9)).remaining_minutes == 0


def test_supplement_restarts_full_limit() -> None:
    clock = opened().stop(VN, vn(2026, 3, 3, 10)).restart(VN, vn(2026, 3, 9, 14))
    # Mon 9 Mar 14:00 + 3 days: 3 h Mon, 8 h Tue, 8 h Wed, 5 h Thu → Thu 12 Mar 14:00.
    assert clock.started_at == vn(2026, 3, 9, 14)
    assert clock.due_at == vn(2026, 3, 12, 14)
    assert clock.is_running
    assert clock.remaining_minutes is None
    assert clock.version == 2


def test_supplement_after_cutoff_counts_from_next_day() -> None:
    clock = opened(CUTOFF).stop(VN, vn(2026, 3, 3, 10)).restart(VN, vn(2026, 3, 9, 15, 10))
    assert clock.started_at == vn(2026, 3, 10, 8)
    assert clock.due_at == vn(2026, 3, 12, 17)


def test_pause_resume_continues_remaining_time() -> None:
    paused = opened().stop(VN, vn(2026, 3, 3, 10))
    resumed = paused.resume(VN, vn(2026, 3, 9, 14))
    # 900 min from Mon 9 Mar 14:00: 3 h Mon, 8 h Tue, 4 h Wed morning → Wed 11 Mar 12:00.
    assert resumed.due_at == vn(2026, 3, 11, 12)
    assert resumed.version == 2
    assert resumed.is_running
    # Resumed on a Saturday: counting continues on Monday 08:00 (8 h Mon + 7 h Tue).
    assert paused.resume(VN, vn(2026, 3, 7, 10)).due_at == vn(2026, 3, 10, 16)


def test_resume_overdue_clock_is_due_at_once() -> None:
    resumed = opened().stop(VN, vn(2026, 3, 6, 9)).resume(VN, vn(2026, 3, 9, 7))
    assert resumed.due_at == vn(2026, 3, 9, 8)


def test_calendar_days_pause_resume() -> None:
    # Mon 2 Mar + 5 days: the period's last day is Sat 7 Mar; it ends Mon 9 Mar 17:00.
    clock = DeadlineClock.open(VN, vn(2026, 3, 2, 9), cal_days(5), None)
    assert clock.due_at == vn(2026, 3, 9, 17)
    assert clock.last_day == date(2026, 3, 7)
    stopped = clock.stop(VN, vn(2026, 3, 4, 9))
    # Wed 09:00 → Mon 17:00 working: 7 h Wed, 8 h Thu, 8 h Fri, 8 h Mon.
    assert stopped.remaining_minutes == 31 * 60
    # Paused on Wed 4: that day is used, Thu 5 – Sat 7 are left (3 days). Resumed Mon 9:
    # Tue 10, Wed 11, Thu 12 → Thu 12 Mar 17:00 (not the Saturday's Monday moved on by 7 days).
    resumed = stopped.resume(VN, vn(2026, 3, 9, 9))
    assert resumed.due_at == vn(2026, 3, 12, 17)
    assert resumed.last_day == date(2026, 3, 12)
    # Resumed on the day of the pause: nothing moves.
    assert stopped.resume(VN, vn(2026, 3, 4, 15)).due_at == clock.due_at
    # Paused and resumed again: the days are counted from the resume's day.
    again = resumed.stop(VN, vn(2026, 3, 10, 9)).resume(VN, vn(2026, 3, 13, 9))
    assert again.due_at == vn(2026, 3, 16, 17)  # Wed 11, Thu 12 left → Sat 14, Sun 15 → Mon


def test_calendar_days_paused_before_counting_began_keep_the_whole_period() -> None:
    clock = DeadlineClock.open(VN, vn(2026, 3, 6, 15, 30), cal_days(3), CUTOFF)  # counts as Mon
    stopped = clock.stop(VN, vn(2026, 3, 6, 16))
    assert stopped.resume(VN, vn(2026, 3, 10, 9)).due_at == vn(2026, 3, 13, 17)  # Tue + 3


@pytest.mark.parametrize("limit", [DAY_1, cal_days(3)])
def test_a_pause_before_the_run_began_does_not_shorten_it(limit: TimeLimit) -> None:
    # After the cut-off on Friday: counts from Monday. Paused and resumed that evening.
    clock = DeadlineClock.open(VN, vn(2026, 3, 6, 15, 30), limit, CUTOFF)
    resumed = clock.stop(VN, vn(2026, 3, 6, 16)).resume(VN, vn(2026, 3, 6, 16, 30))
    assert resumed.due_at == clock.due_at


_INSTANTS = st.datetimes(
    min_value=datetime(2026, 1, 2), max_value=datetime(2026, 11, 30), timezones=st.just(VN_TZ)
)


@settings(max_examples=300, deadline=None)
@given(
    received=_INSTANTS,
    limit=st.sampled_from(
        [DAY_1, DAYS_3, TimeLimit(4, TimeUnit.WORKING_HOURS), cal_days(1), cal_days(10)]
    ),
    cutoff=st.sampled_from([None, CUTOFF]),
    channel=st.sampled_from(["counter", "online", "postal"]),
    pause_after=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=20)),
    extend_by=st.sampled_from([None, timedelta(days=3)]),
)
def test_a_pause_resumed_at_once_moves_nothing(
    received: datetime,
    limit: TimeLimit,
    cutoff: time | None,
    channel: str,
    pause_after: timedelta,
    extend_by: timedelta | None,
) -> None:
    clock = DeadlineClock.open(VN, received, limit, cutoff, channel)
    if extend_by is not None:
        clock = clock.extend(clock.due_at + extend_by)
    at = received + pause_after
    if at >= clock.legal_due_at.replace(second=0) - timedelta(minutes=1):
        return  # overdue at the stop: due at once on resume, by design
    resumed = clock.stop(VN, at).resume(VN, at)
    assert (resumed.due_at, resumed.legal_due_at) == (clock.due_at, clock.legal_due_at)


def test_calendar_days_overdue_at_the_stop_are_due_on_resume() -> None:
    clock = DeadlineClock.open(VN, vn(2026, 3, 2, 9), cal_days(1), None)  # due Tue 3 Mar 17:00
    stopped = clock.stop(VN, vn(2026, 3, 5, 9))
    assert stopped.resume(VN, vn(2026, 3, 9, 10)).due_at == vn(2026, 3, 9, 17)
    # After closing, or on a day off: the close of the next working day.
    assert stopped.resume(VN, vn(2026, 3, 9, 18)).due_at == vn(2026, 3, 10, 17)
    assert stopped.resume(VN, vn(2026, 3, 7, 10)).due_at == vn(2026, 3, 9, 17)


def test_calendar_days_supplement_counts_as_a_receipt() -> None:
    clock = DeadlineClock.open(VN, vn(2026, 3, 2, 9), cal_days(10), None)
    stopped = clock.stop(VN, vn(2026, 3, 3, 9))
    # The supplement came in on Saturday 7 Mar (by post): Sun 8 is day 1, Tue 17 day 10.
    assert stopped.restart(VN, vn(2026, 3, 7, 9)).due_at == vn(2026, 3, 17, 17)
    # After the cut-off on Friday it counts as Monday's: Tue 10 is day 1, Thu 19 day 10.
    late = DeadlineClock.open(VN, vn(2026, 3, 2, 9), cal_days(10), CUTOFF).stop(
        VN, vn(2026, 3, 3, 9)
    )
    assert late.restart(VN, vn(2026, 3, 6, 15, 30)).due_at == vn(2026, 3, 19, 17)


def test_a_supplement_of_an_online_dossier_follows_the_last_hour_rule() -> None:
    online = DeadlineClock.open(VN, vn(2026, 3, 2, 9), DAY_1, None, "online")
    restarted = online.stop(VN, vn(2026, 3, 2, 10)).restart(VN, vn(2026, 3, 3, 16, 15))
    assert restarted.started_at == vn(2026, 3, 4, 8)
    counter = DeadlineClock.open(VN, vn(2026, 3, 2, 9), DAY_1, None)
    assert counter.stop(VN, vn(2026, 3, 2, 10)).restart(VN, vn(2026, 3, 3, 16, 15)).started_at == (
        vn(2026, 3, 3, 16, 15)
    )


def test_version_increments() -> None:
    clock = opened()
    clock = clock.stop(VN, vn(2026, 3, 3, 10))
    assert clock.version == 1
    clock = clock.restart(VN, vn(2026, 3, 4, 9))
    assert clock.version == 2
    clock = clock.stop(VN, vn(2026, 3, 5, 9)).resume(VN, vn(2026, 3, 6, 9))
    assert clock.version == 3
    clock = clock.extend(clock.due_at + timedelta(days=2))
    assert clock.version == 4


@pytest.mark.parametrize("online", [False, True])
@pytest.mark.parametrize("limit", [DAYS_3, cal_days(5)])
def test_state_round_trip(limit: TimeLimit, online: bool) -> None:
    channel = "online" if online else "counter"
    clock = DeadlineClock.open(VN, vn(2026, 3, 2, 9), limit, CUTOFF, channel)
    for c in (clock, clock.stop(VN, vn(2026, 3, 3, 9)), clock.extend(vn(2026, 3, 20, 17))):
        assert clock_from_state(clock_to_state(c)) == c


def test_states_stored_before_the_new_rules_load() -> None:
    stored = {
        "limit": {"value": 5, "unit": "calendar_days"},
        "cutoff": None,
        "started_at": "2026-03-02T09:00:00+07:00",
        "due_at": "2026-03-09T17:00:00+07:00",
        "stopped_at": "2026-03-04T09:00:00+07:00",
        "remaining_minutes": 1860,
        "remaining_seconds": 460800,
        "version": 1,
        "changed_at": "2026-03-04T09:00:00+07:00",
    }
    clock = clock_from_state(stored, original_due_at=None)
    assert not clock.online and clock.original_due_at is None
    assert clock.last_day == date(2026, 3, 9)  # the deadline's own day stands in
    assert clock.resume(VN, vn(2026, 3, 9, 9)).due_at == vn(2026, 3, 16, 17)
    working = {**stored, "limit": {"value": 3, "unit": "working_days"}}
    assert clock_from_state(working).last_day is None
    extended = clock_from_state(
        {**working, "stopped_at": None, "remaining_minutes": None},
        original_due_at=vn(2026, 3, 5, 9),
    )
    assert extended.original_due_at == vn(2026, 3, 5, 9)


def test_extend_must_be_later_and_happens_once() -> None:
    clock = opened()
    extended = clock.extend(vn(2026, 3, 10, 17))
    assert extended.due_at == vn(2026, 3, 10, 17)
    assert extended.original_due_at == extended.legal_due_at == vn(2026, 3, 5, 9)
    assert extended.extended and not clock.extended
    with pytest.raises(ClockError, match="later"):
        clock.extend(clock.due_at)
    with pytest.raises(ClockError, match="later"):
        clock.extend(vn(2026, 3, 4, 17))
    with pytest.raises(ClockError, match="only once"):
        extended.extend(vn(2026, 3, 20, 17))
    # A restart is a new run: its appointment may be extended again.
    again = extended.stop(VN, vn(2026, 3, 3, 9)).restart(VN, vn(2026, 3, 4, 9))
    assert again.original_due_at is None
    assert again.extend(vn(2026, 3, 20, 17)).due_at == vn(2026, 3, 20, 17)


def test_a_paused_clock_may_be_extended_and_the_date_stands_on_resume() -> None:
    # Due Thu 5 Mar 09:00; paused Tue 3 Mar 10:00 with 900 working minutes left.
    paused = opened().stop(VN, vn(2026, 3, 3, 10))
    with pytest.raises(ClockError, match="later"):
        paused.extend(vn(2026, 3, 5, 9))  # not later than the appointment the stop left
    extended = paused.extend(vn(2026, 3, 20, 17))
    assert not extended.is_running
    assert extended.due_at == vn(2026, 3, 20, 17)
    assert extended.original_due_at == vn(2026, 3, 5, 9)
    assert extended.version == paused.version + 1
    with pytest.raises(ClockError, match="only once"):
        extended.extend(vn(2026, 3, 27, 17))
    # Resumed Mon 9 Mar 14:00: the law's deadline is Wed 11 Mar 12:00 (900 minutes on); the
    # date promised is later and stands; the result is marked against the law's deadline.
    resumed = extended.resume(VN, vn(2026, 3, 9, 14))
    assert resumed.due_at == vn(2026, 3, 20, 17)
    assert resumed.original_due_at == resumed.legal_due_at == vn(2026, 3, 11, 12)
    assert resumed.version == extended.version + 1
    # Resumed so late that the law's deadline passes the date promised: the law's is in force.
    late = extended.resume(VN, vn(2026, 3, 20, 8))  # Fri 480 + Mon 23 Mar 420 → 16:00
    assert late.due_at == late.original_due_at == vn(2026, 3, 23, 16)


def test_an_extension_given_before_a_pause_stands_too() -> None:
    # Extended to Tue 10 Mar 17:00 while running, then paused Wed 4 Mar 09:00: the law's
    # deadline (Thu 5 Mar 09:00) had 480 minutes left; resumed Mon 9 Mar 08:00 → Mon 17:00.
    clock = opened().extend(vn(2026, 3, 10, 17)).stop(VN, vn(2026, 3, 4, 9))
    assert clock.remaining_minutes == 480
    resumed = clock.resume(VN, vn(2026, 3, 9, 8))
    assert resumed.due_at == vn(2026, 3, 10, 17)
    assert resumed.legal_due_at == vn(2026, 3, 9, 17)


def test_replay_under_another_calendar() -> None:
    storm = vietnam_calendar(overrides=[CalendarOverride(date(2026, 3, 10), DayKind.DAY_OFF)])
    transitions = [
        ClockTransition(TransitionKind.STOP, vn(2026, 3, 3, 10)),
        ClockTransition(TransitionKind.EXTEND, vn(2026, 3, 4, 10), vn(2026, 3, 11, 17)),
        ClockTransition(TransitionKind.RESUME, vn(2026, 3, 9, 14)),
    ]
    live = opened().stop(VN, vn(2026, 3, 3, 10)).extend(vn(2026, 3, 11, 17))
    live = live.resume(VN, vn(2026, 3, 9, 14))
    # The same calendar rebuilds the same clock.
    assert opened().replay(VN, vn(2026, 3, 2, 9), transitions) == live
    assert live.due_at == vn(2026, 3, 11, 17)
    assert live.original_due_at == vn(2026, 3, 11, 12)
    # Tue 10 Mar off: the 900 minutes from Mon 9 Mar 14:00 end Thu 12 Mar 12:00, past the
    # date promised: that deadline is both in force and the law's.
    rebuilt = live.replay(storm, vn(2026, 3, 2, 9), transitions)
    assert rebuilt.version == live.version
    assert rebuilt.due_at == rebuilt.original_due_at == vn(2026, 3, 12, 12)


def test_clock_misuse() -> None:
    clock = opened()
    stopped = clock.stop(VN, vn(2026, 3, 3, 10))
    with pytest.raises(ClockError, match="already stopped"):
        stopped.stop(VN, vn(2026, 3, 3, 11))
    with pytest.raises(ClockError, match="running"):
        clock.restart(VN, vn(2026, 3, 3, 11))
    with pytest.raises(ClockError, match="running"):
        clock.resume(VN, vn(2026, 3, 3, 11))
    with pytest.raises(ClockError, match="before the last transition"):
        stopped.restart(VN, vn(2026, 3, 3, 9))
    with pytest.raises(ClockError, match="before the last transition"):
        clock.stop(VN, vn(2026, 3, 2, 8))
    assert issubclass(ClockError, ValueError)


def test_clock_rejects_naive() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        DeadlineClock.open(VN, datetime(2026, 3, 2, 9), DAYS_3, None)
    with pytest.raises(ValueError, match="timezone-aware"):
        opened().stop(VN, datetime(2026, 3, 3, 9))
    with pytest.raises(ValueError, match="timezone-aware"):
        opened().extend(datetime(2026, 3, 10, 9))


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (vn(2026, 3, 2, 9), 1440),
        (vn(2026, 3, 2, 7), 1440),
        (vn(2026, 3, 4, 17), 60),
        (vn(2026, 3, 5, 9), 0),
        (vn(2026, 3, 5, 11), -120),
        # Thu 09:00 → Fri 09:00: 3 h + 4 h Thu, 1 h Fri.
        (vn(2026, 3, 6, 9), -480),
    ],
)
def test_remaining_working_minutes(now: datetime, expected: int) -> None:
    assert opened().remaining_working_minutes(VN, now) == expected


# -- outcomes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("finished", "expected"),
    [
        (vn(2026, 3, 4, 16), Outcome.EARLY),
        (vn(2026, 3, 1, 10), Outcome.EARLY),
        (vn(2026, 3, 5, 8, 30), Outcome.ON_TIME),
        (vn(2026, 3, 5, 9), Outcome.ON_TIME),  # exactly at the deadline
        (vn(2026, 3, 5, 9, 0, 30), Outcome.ON_TIME),  # within the deadline minute
        (vn(2026, 3, 5, 9, 1), Outcome.LATE),
        (vn(2026, 3, 6, 8), Outcome.LATE),
    ],
)
def test_outcome(finished: datetime, expected: Outcome) -> None:
    assert outcome(VN, finished, vn(2026, 3, 5, 9)) == expected


def test_step_due_and_mark() -> None:
    # 2 h from Mon 16:00: 1 h Monday, 1 h Tuesday.
    due = step_due_at(VN, vn(2026, 3, 2, 16), 2)
    assert due == vn(2026, 3, 3, 9)
    assert step_due_at(VN, vn(2026, 3, 2, 12, 15), 2) == vn(2026, 3, 2, 15)
    assert step_due_at(VN, vn(2026, 3, 2, 8), 4) == vn(2026, 3, 2, 12)
    assert step_mark(VN, vn(2026, 3, 2, 16, 30), due) is Outcome.EARLY
    assert step_mark(VN, due, due) is Outcome.ON_TIME
    assert step_mark(VN, vn(2026, 3, 3, 10), due) is Outcome.LATE
    with pytest.raises(ValueError):
        step_due_at(VN, vn(2026, 3, 2, 8), -1)
