"""Statutory time limits (thời hạn giải quyết) and deadlines (hẹn trả kết quả).

Pure functions over a ``WorkingCalendar``; ``now`` and every instant are passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from enum import StrEnum

from services.core.domain.calendar import VN_TZ, WorkingCalendar

MINUTES_PER_WORKING_DAY = 8 * 60
"""1 working day = 8 working hours, whatever the agency's office hours (docs/domain.md)."""


class TimeUnit(StrEnum):
    WORKING_DAYS = "working_days"
    WORKING_HOURS = "working_hours"
    CALENDAR_DAYS = "calendar_days"


@dataclass(frozen=True)
class TimeLimit:
    """Statutory time limit (thời hạn giải quyết) of a procedure, e.g. 3 working days."""

    value: int
    unit: TimeUnit

    def __post_init__(self) -> None:
        if isinstance(self.value, bool) or not isinstance(self.value, int) or self.value < 1:
            raise ValueError(f"time limit value must be an integer >= 1, got {self.value!r}")
        object.__setattr__(self, "unit", TimeUnit(self.unit))

    @property
    def working_minutes(self) -> int | None:
        """Working minutes of the limit; None for calendar days (ngày theo lịch)."""
        if self.unit is TimeUnit.WORKING_DAYS:
            return self.value * MINUTES_PER_WORKING_DAY
        if self.unit is TimeUnit.WORKING_HOURS:
            return self.value * 60
        return None


def _aware(t: datetime, name: str) -> datetime:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {t.isoformat()}")
    return t.astimezone(VN_TZ)


def clock_start(calendar: WorkingCalendar, received_at: datetime, cutoff: time | None) -> datetime:
    """When counting starts for a dossier received at ``received_at`` (thời điểm bắt đầu tính).

    Received outside office hours or at lunch → the next block. With a cut-off (e.g. 15:00),
    received on a working day at or after it → the next working day's first block
    (Decree 63/2024/NĐ-CP Art. 7(2)).
    """
    local = _aware(received_at, "received_at")
    if (
        cutoff is not None
        and calendar.is_working_day(local.date())
        and local.time() >= cutoff.replace(tzinfo=None)
    ):
        return calendar.next_working_day_start(local)
    return calendar.next_working_instant(local)


def due_at(calendar: WorkingCalendar, start: datetime, limit: TimeLimit) -> datetime:
    """The deadline (hạn giải quyết) of ``limit`` counted from the clock start ``start``.

    Working units: the instant the allotted working time is used up. Calendar days: close of
    business on ``start``'s date + value days, or of the next working day if that is a day off
    (Civil Code 2015 Art. 148: a limit whose last day is a day off ends at the end of the
    next working day).
    """
    local = _aware(start, "start")
    minutes = limit.working_minutes
    if minutes is not None:
        return calendar.add_working_minutes(local, minutes)
    return _close_of_business_on_or_after(calendar, local + timedelta(days=limit.value))


def _close_of_business_on_or_after(calendar: WorkingCalendar, t: datetime) -> datetime:
    day = t.date()
    if not calendar.is_working_day(day):
        day = calendar.next_working_day_start(t).date()
    return calendar.end_of_working_day(day)


def appointment(
    calendar: WorkingCalendar, received_at: datetime, limit: TimeLimit, cutoff: time | None
) -> datetime:
    """Appointment printed on the receipt (Giấy tiếp nhận hồ sơ và hẹn trả kết quả)."""
    return due_at(calendar, clock_start(calendar, received_at, cutoff), limit)


class ClockError(ValueError):
    """A deadline clock was used out of order (e.g. stopping a stopped clock)."""


@dataclass(frozen=True)
class DeadlineClock:
    """A dossier's deadline across its lifecycle.

    ``started_at`` is the clock start of the current run and ``due_at`` its deadline.
    While stopped, ``remaining_minutes`` holds the working minutes left at the stop (0 if
    already overdue); for calendar-day limits ``remaining_seconds`` also holds the wall-clock
    seconds left, which a resume adds back before rounding to close of business.
    ``version`` (deadline version) increases on every restart, resume and extension.
    ``changed_at`` is the instant of the last transition; no later transition may precede it
    (None: unknown, only ``stopped_at`` is enforced).
    """

    limit: TimeLimit
    cutoff: time | None
    started_at: datetime
    due_at: datetime
    stopped_at: datetime | None = None
    remaining_minutes: int | None = None
    remaining_seconds: int | None = None
    version: int = 1
    changed_at: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("started_at", "due_at", "stopped_at", "changed_at"):
            value = getattr(self, name)
            if value is not None and (value.tzinfo is None or value.utcoffset() is None):
                raise ClockError(f"{name} must be timezone-aware")
        if self.version < 1:
            raise ClockError(f"version must be >= 1, got {self.version}")
        if self.stopped_at is None and self.remaining_minutes is not None:
            raise ClockError("remaining_minutes is only kept while the clock is stopped")

    @classmethod
    def open(
        cls,
        calendar: WorkingCalendar,
        received_at: datetime,
        limit: TimeLimit,
        cutoff: time | None,
    ) -> DeadlineClock:
        """Start the clock at receipt (tiếp nhận hồ sơ)."""
        received = _aware(received_at, "received_at")
        start = clock_start(calendar, received, cutoff)
        return cls(
            limit=limit,
            cutoff=cutoff,
            started_at=start,
            due_at=due_at(calendar, start, limit),
            changed_at=received,
        )

    @property
    def is_running(self) -> bool:
        return self.stopped_at is None

    def _check_at(self, at: datetime) -> datetime:
        local = _aware(at, "at")
        last = self.stopped_at if self.stopped_at is not None else self.changed_at
        if last is not None and local < last:
            raise ClockError(f"{local.isoformat()} is before the last transition {last}")
        return local

    def stop(self, calendar: WorkingCalendar, at: datetime) -> DeadlineClock:
        """Stop the clock: supplement requested (yêu cầu bổ sung) or pause (tạm dừng)."""
        if not self.is_running:
            raise ClockError("the clock is already stopped")
        local = self._check_at(at)
        # Stopped before the run began (e.g. after the cut-off): nothing was used yet.
        counted_from = max(local, self.started_at)
        remaining = max(0, calendar.working_minutes_between(counted_from, self.due_at))
        seconds: int | None = None
        if self.limit.working_minutes is None:
            seconds = max(0, int((self.due_at - counted_from).total_seconds()))
        return replace(
            self,
            stopped_at=local,
            remaining_minutes=remaining,
            remaining_seconds=seconds,
            changed_at=local,
        )

    def restart(self, calendar: WorkingCalendar, at: datetime) -> DeadlineClock:
        """Supplement received: the full limit counts again from ``at`` ("tính lại từ đầu").

        Decree 297/2025 Art. 6(4)(a); the cut-off applies to ``at`` as to a receipt.
        """
        local = self._require_stopped(at)
        start = clock_start(calendar, local, self.cutoff)
        return self._new_run(start, due_at(calendar, start, self.limit), local)

    def resume(self, calendar: WorkingCalendar, at: datetime) -> DeadlineClock:
        """Pause ended: the remaining time continues from ``next_working_instant(at)``."""
        local = self._require_stopped(at)
        start = calendar.next_working_instant(local)
        if self.limit.working_minutes is None:
            wall = timedelta(seconds=self.remaining_seconds or 0)
            new_due = _close_of_business_on_or_after(calendar, start + wall)
        else:
            new_due = calendar.add_working_minutes(start, self.remaining_minutes or 0)
        return self._new_run(start, new_due, local)

    def extend(self, new_due_at: datetime) -> DeadlineClock:
        """Extension with apology (Phiếu xin lỗi và hẹn lại ngày trả kết quả)."""
        new_due = _aware(new_due_at, "new_due_at")
        if not self.is_running:
            raise ClockError("cannot extend a stopped clock; resume or restart it first")
        if new_due <= self.due_at:
            raise ClockError(f"new appointment {new_due} must be later than {self.due_at}")
        return replace(self, due_at=new_due, version=self.version + 1)

    def remaining_working_minutes(self, calendar: WorkingCalendar, now: datetime) -> int:
        """Working minutes left until ``due_at``; negative when overdue; frozen while stopped."""
        local = _aware(now, "now")
        if not self.is_running:
            return self.remaining_minutes or 0
        if local <= self.due_at:
            return calendar.working_minutes_between(max(local, self.started_at), self.due_at)
        return -calendar.working_minutes_between(self.due_at, local)

    def _require_stopped(self, at: datetime) -> datetime:
        if self.is_running:
            raise ClockError("the clock is running; stop it first")
        return self._check_at(at)

    def _new_run(self, start: datetime, new_due: datetime, at: datetime) -> DeadlineClock:
        return replace(
            self,
            started_at=start,
            due_at=new_due,
            stopped_at=None,
            remaining_minutes=None,
            remaining_seconds=None,
            version=self.version + 1,
            changed_at=at,
        )


class Outcome(StrEnum):
    """trước hạn / đúng hạn / quá hạn."""

    EARLY = "early"
    ON_TIME = "on_time"
    LATE = "late"


def outcome(calendar: WorkingCalendar, finished_at: datetime, due_at: datetime) -> Outcome:
    """Mark a result against its deadline (docs/domain.md, "Outcome of a result").

    Early (trước hạn): finished on a date before the deadline's date; on time (đúng hạn): on
    that date and not after the deadline; late (quá hạn): after it. Instants are compared at
    minute resolution, like all working-time arithmetic. ``calendar`` is accepted so that
    callers need not change if agency-specific rules appear.
    """
    finished = _aware(finished_at, "finished_at").replace(second=0, microsecond=0)
    due = _aware(due_at, "due_at").replace(second=0, microsecond=0)
    if finished > due:
        return Outcome.LATE
    if finished.date() < due.date():
        return Outcome.EARLY
    return Outcome.ON_TIME


def step_due_at(
    calendar: WorkingCalendar, handed_over_at: datetime, allotted_hours: int
) -> datetime:
    """Due time of a process step (liên thông, Phiếu kiểm soát quá trình)."""
    if allotted_hours < 0:
        raise ValueError(f"allotted_hours must be >= 0, got {allotted_hours}")
    start = calendar.next_working_instant(handed_over_at)
    return calendar.add_working_minutes(start, allotted_hours * 60)


def step_mark(calendar: WorkingCalendar, finished_at: datetime, step_due: datetime) -> Outcome:
    """Early / on time / late mark of a process step; same rule as ``outcome``."""
    return outcome(calendar, finished_at, step_due)
