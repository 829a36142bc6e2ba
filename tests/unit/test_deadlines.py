"""Time limits, clock start, deadlines, the lifecycle clock and outcomes.

2026 reference: Mon 2 Mar, Mon 9 Mar, Mon 20 Apr, Mon 27 Apr (observed Giỗ Tổ), Thu 30 Apr and
Fri 1 May are days off; Tết is Mon 16 – Fri 20 Feb.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest

from services.core.domain.calendar import VN_TZ, CalendarOverride, DayKind
from services.core.domain.deadlines import (
    ClockError,
    DeadlineClock,
    Outcome,
    TimeLimit,
    TimeUnit,
    appointment,
    clock_start,
    due_at,
    outcome,
    step_due_at,
    step_mark,
)
from services.core.holidays_vn import vietnam_calendar

VN = vietnam_calendar()
CUTOFF = time(15, 0)
DAYS_3 = TimeLimit(3, TimeUnit.WORKING_DAYS)


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
        (vn(2026, 3, 2, 15), CUTOFF, vn(2026, 3, 3, 8)),  # at the cut-off
        (vn(2026, 3, 2, 15, 30), CUTOFF, vn(2026, 3, 3, 8)),
        (vn(2026, 3, 6, 15, 30), CUTOFF, vn(2026, 3, 9, 8)),  # Friday → Monday
        (vn(2026, 3, 7, 16), CUTOFF, vn(2026, 3, 9, 8)),  # Saturday, after the cut-off hour
        (vn(2026, 2, 13, 15, 1), CUTOFF, vn(2026, 2, 23, 8)),  # before Tết
    ],
)
def test_clock_start(received: datetime, cutoff: time | None, expected: datetime) -> None:
    assert clock_start(VN, received, cutoff) == expected


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
        (vn(2026, 3, 6, 15, 30), TimeLimit(3, TimeUnit.CALENDAR_DAYS), CUTOFF, vn(2026, 3, 12, 17)),
        # 5 calendar days from Wed 11 Feb land on Mon 16 Feb (Tết) → Mon 23 Feb.
        (vn(2026, 2, 11, 9), TimeLimit(5, TimeUnit.CALENDAR_DAYS), None, vn(2026, 2, 23, 17)),
    ],
)
def test_appointment(
    received: datetime, limit: TimeLimit, cutoff: time | None, expected: datetime
) -> None:
    assert appointment(VN, received, limit, cutoff) == expected


def test_due_at_counts_from_given_start() -> None:
    assert due_at(VN, vn(2026, 3, 2, 13), TimeLimit(4, TimeUnit.WORKING_HOURS)) == vn(
        2026, 3, 2, 17
    )


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
    clock = DeadlineClock.open(VN, vn(2026, 3, 2, 9), TimeLimit(5, TimeUnit.CALENDAR_DAYS), None)
    assert clock.due_at == vn(2026, 3, 9, 17)
    stopped = clock.stop(VN, vn(2026, 3, 4, 9))
    assert stopped.remaining_seconds == int(timedelta(days=5, hours=8).total_seconds())
    # Wed 09:00 → Mon 17:00 working: 7 h Wed, 8 h Thu, 8 h Fri, 8 h Mon.
    assert stopped.remaining_minutes == 31 * 60
    # Resumed Mon 9 Mar 09:00 + 5 d 8 h = Sat 14 Mar 17:00 → next working day Mon 16 Mar.
    assert stopped.resume(VN, vn(2026, 3, 9, 9)).due_at == vn(2026, 3, 16, 17)


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


def test_extend_must_be_later() -> None:
    clock = opened()
    extended = clock.extend(vn(2026, 3, 10, 17))
    assert extended.due_at == vn(2026, 3, 10, 17)
    with pytest.raises(ClockError, match="later"):
        clock.extend(clock.due_at)
    with pytest.raises(ClockError, match="later"):
        clock.extend(vn(2026, 3, 4, 17))
    with pytest.raises(ClockError):
        clock.stop(VN, vn(2026, 3, 3, 9)).extend(vn(2026, 3, 10, 17))


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
