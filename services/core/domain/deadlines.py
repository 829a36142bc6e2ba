"""Statutory time limits (thời hạn giải quyết) and deadlines (hẹn trả kết quả).

Pure functions over a ``WorkingCalendar``; ``now`` and every instant are passed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
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


ONLINE = "online"
"""The channel of a dossier sent through the online public service portal."""

ONLINE_LAST_HOUR = timedelta(hours=1)
"""An online dossier received this close to the agency's closing time, or later that day,
counts from the next working day (Decree 297/2025 Art. 6(3))."""


def _aware(t: datetime, name: str) -> datetime:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {t.isoformat()}")
    return t.astimezone(VN_TZ)


def _received_late(
    calendar: WorkingCalendar, local: datetime, cutoff: time | None, online: bool
) -> bool:
    """Whether a receipt counts as the next working day's (docs/domain.md, "Working time").

    Only on a working day of the agency: after the procedure's cut-off (Decree 63/2024
    Art. 7(2) says *after* 15:00: a receipt at 15:00 is not late), or for an online dossier
    from one hour before the agency closes that day, by its own hours (10:30 at a desk that
    closes at 11:30 on Saturday). Later the same day is late too: a dossier sent at 20:00
    cannot count from earlier than one sent at 16:30. Compared at the minute, like all
    working time (the receipt shows the minute): 15:00:40 is 15:00.
    """
    day = local.date()
    if not calendar.is_working_day(day):
        return False
    minute = local.replace(second=0, microsecond=0)
    if cutoff is not None and minute.time() > cutoff.replace(tzinfo=None):
        return True
    return online and minute >= calendar.end_of_working_day(day) - ONLINE_LAST_HOUR


def clock_start(
    calendar: WorkingCalendar, received_at: datetime, cutoff: time | None, *, online: bool = False
) -> datetime:
    """When working time starts counting for a dossier received at ``received_at`` (thời điểm
    bắt đầu tính), for limits in working days or hours.

    Received outside office hours or at lunch → the next block. Received late (after the
    cut-off, or online in the last hour before closing: ``_received_late``) → the next
    working day's first block.
    """
    local = _aware(received_at, "received_at")
    if _received_late(calendar, local, cutoff, online):
        return calendar.next_working_day_start(local)
    return calendar.next_working_instant(local)


def receipt_day(
    calendar: WorkingCalendar, received_at: datetime, cutoff: time | None, *, online: bool = False
) -> date:
    """The day a dossier counts as received, for limits in calendar days: the day it came in,
    a day off included, or the next working day when it came in late (``_received_late``)."""
    local = _aware(received_at, "received_at")
    if _received_late(calendar, local, cutoff, online):
        return calendar.next_working_day_start(local).date()
    return local.date()


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=VN_TZ)


def _close_of_business_on_or_after(calendar: WorkingCalendar, day: date) -> datetime:
    if not calendar.is_working_day(day):
        day = calendar.next_working_day_start(_midnight(day)).date()
    return calendar.end_of_working_day(day)


_Run = tuple[datetime, datetime, date | None]
"""A run of the clock: when it starts counting, its deadline, and (calendar days) its last day."""


def _calendar_day_run(calendar: WorkingCalendar, day_zero: date, days: int) -> _Run:
    """``days`` calendar days after ``day_zero`` (Civil Code 2015 Art. 147–148): ``day_zero``
    itself is not counted, so counting starts at the midnight after it; the period's last day
    is ``day_zero + days`` and the period ends at the close of that day, or at the close of
    the next working day when that day is a day off. Close of business: the result is handed
    over at the office."""
    last = day_zero + timedelta(days=days)
    start = _midnight(day_zero + timedelta(days=1))
    return start, _close_of_business_on_or_after(calendar, last), last


def _run_from_receipt(
    calendar: WorkingCalendar,
    received: datetime,
    limit: TimeLimit,
    cutoff: time | None,
    online: bool,
) -> _Run:
    """The full limit counted from a receipt (or from a supplement, which counts as one)."""
    minutes = limit.working_minutes
    if minutes is None:
        day_zero = receipt_day(calendar, received, cutoff, online=online)
        return _calendar_day_run(calendar, day_zero, limit.value)
    start = clock_start(calendar, received, cutoff, online=online)
    return start, calendar.add_working_minutes(start, minutes), None


def appointment(
    calendar: WorkingCalendar,
    received_at: datetime,
    limit: TimeLimit,
    cutoff: time | None,
    channel: str = "counter",
) -> datetime:
    """Appointment printed on the receipt (Giấy tiếp nhận hồ sơ và hẹn trả kết quả)."""
    return DeadlineClock.open(calendar, received_at, limit, cutoff, channel).due_at


class ClockError(ValueError):
    """A deadline clock was used out of order (e.g. stopping a stopped clock)."""


class TransitionKind(StrEnum):
    """A clock transition after the receipt, as ``DeadlineClock.replay`` replays it."""

    STOP = "stop"  # supplement requested, paused
    RESTART = "restart"  # supplement received: the full limit again
    RESUME = "resume"  # pause ended: the remaining time continues
    EXTEND = "extend"  # extension with apology, to ``new_due_at``


@dataclass(frozen=True)
class ClockTransition:
    kind: TransitionKind
    at: datetime
    new_due_at: datetime | None = None  # EXTEND only: the new appointment given


@dataclass(frozen=True)
class DeadlineClock:
    """A dossier's deadline across its lifecycle.

    ``started_at`` is when the current run started counting: for working time the clock
    start; for calendar days the midnight after the day not counted (Civil Code Art. 147), so
    that day is ``started_at``'s date minus one. ``due_at`` is the appointment in force, which
    the flags follow. ``original_due_at`` is set once the appointment is extended in this run:
    the legal deadline, which the result is marked against (``legal_due_at``). ``last_day``
    (calendar-day limits only) is the last day of the legal period, before a day off moves its
    end. While stopped, ``due_at`` and ``original_due_at`` stay as they stood (an extension
    given while stopped included) and ``remaining_minutes`` holds the working minutes that were
    left of the legal deadline at the stop (0 if already overdue).
    ``online``: the dossier came in online (``clock_start``'s last hour); a restart needs it.
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
    version: int = 1
    changed_at: datetime | None = None
    online: bool = False
    last_day: date | None = None
    original_due_at: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("started_at", "due_at", "stopped_at", "changed_at", "original_due_at"):
            value = getattr(self, name)
            if value is not None and (value.tzinfo is None or value.utcoffset() is None):
                raise ClockError(f"{name} must be timezone-aware")
        if self.version < 1:
            raise ClockError(f"version must be >= 1, got {self.version}")
        if self.stopped_at is None and self.remaining_minutes is not None:
            raise ClockError("remaining_minutes is only kept while the clock is stopped")
        if (self.limit.working_minutes is None) != (self.last_day is not None):
            raise ClockError("last_day is kept for limits in calendar days, and only for them")

    @classmethod
    def open(
        cls,
        calendar: WorkingCalendar,
        received_at: datetime,
        limit: TimeLimit,
        cutoff: time | None,
        channel: str = "counter",
    ) -> DeadlineClock:
        """Start the clock at receipt (tiếp nhận hồ sơ) of a dossier that came in by
        ``channel`` (counter, online, postal)."""
        received = _aware(received_at, "received_at")
        return cls._open(calendar, received, limit, cutoff, channel == ONLINE)

    @classmethod
    def _open(
        cls,
        calendar: WorkingCalendar,
        received: datetime,
        limit: TimeLimit,
        cutoff: time | None,
        online: bool,
    ) -> DeadlineClock:
        start, due, last = _run_from_receipt(calendar, received, limit, cutoff, online)
        return cls(
            limit=limit,
            cutoff=cutoff,
            started_at=start,
            due_at=due,
            changed_at=received,
            online=online,
            last_day=last,
        )

    @property
    def is_running(self) -> bool:
        return self.stopped_at is None

    @property
    def legal_due_at(self) -> datetime:
        """The deadline the law gives this run, before any extension (the result's mark)."""
        return self.original_due_at or self.due_at

    @property
    def extended(self) -> bool:
        """Whether the appointment of this run was extended (at most once)."""
        return self.original_due_at is not None

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
        remaining = max(0, calendar.working_minutes_between(counted_from, self.legal_due_at))
        return replace(self, stopped_at=local, remaining_minutes=remaining, changed_at=local)

    def restart(self, calendar: WorkingCalendar, at: datetime) -> DeadlineClock:
        """Supplement received: the full limit counts again from ``at`` ("tính lại từ đầu"),
        as from a receipt, with the dossier's cut-off and channel (Decree 297/2025
        Art. 6(4)(a)). An extension of the previous run ends with it."""
        local = self._require_stopped(at)
        start, due, last = _run_from_receipt(calendar, local, self.limit, self.cutoff, self.online)
        return self._new_run(start, due, last, local, None)

    def resume(self, calendar: WorkingCalendar, at: datetime) -> DeadlineClock:
        """Pause ended: what was left of the legal time at the stop continues from ``at``.

        Working time: the remaining working minutes from ``next_working_instant(at)``.
        Calendar days: the days of the period not begun at the stop (``_days_left``) after
        ``at``'s day, which is not counted, as a receipt's day is not; a clock that was
        already overdue is due at the close of the working day ``at`` falls in (or of the
        next one). Resumed before the run had begun (stopped and resumed the evening of a
        receipt after the cut-off), it goes on from where the run would have begun: a pause
        never shortens the time.
        An extended appointment is a date, not remaining time: it stands. The appointment in
        force is the later of it and the new legal deadline, which the result is marked
        against (the time paused is not the agency's).
        """
        local = self._require_stopped(at)
        if self.last_day is None:
            start = max(calendar.next_working_instant(local), self.started_at)
            legal = calendar.add_working_minutes(start, self.remaining_minutes or 0)
            last = None
        else:
            days = self._days_left()
            if days:
                day_zero = max(local.date(), self._day_zero())
            else:
                day_zero = calendar.next_working_instant(local).date()
            start, legal, last = _calendar_day_run(calendar, day_zero, days)
        if not self.extended:
            return self._new_run(start, legal, last, local, None)
        return self._new_run(start, max(self.due_at, legal), last, local, legal)

    def _days_left(self) -> int:
        """Calendar days of the legal period not begun when the clock stopped: the day of the
        stop counts as used, and nothing is used before the run's day zero."""
        assert self.last_day is not None and self.stopped_at is not None
        return max(0, (self.last_day - max(self.stopped_at.date(), self._day_zero())).days)

    def _day_zero(self) -> date:
        """Calendar days: the day the run counts from, not counted itself."""
        return self.started_at.date() - timedelta(days=1)

    def extend(self, new_due_at: datetime) -> DeadlineClock:
        """Extension with apology (Phiếu xin lỗi và hẹn lại ngày trả kết quả): once a run, to
        a date later than the appointment in force (while stopped: the one the stop left).
        Allowed while the clock is stopped: the date stands when it resumes (``resume``)."""
        new_due = _aware(new_due_at, "new_due_at")
        if self.extended:
            raise ClockError("the appointment may be rescheduled only once")
        if new_due <= self.due_at:
            later = f"must be later than {self.due_at.isoformat()}"
            raise ClockError(f"new appointment {new_due.isoformat()} {later}")
        return self._extend_to(new_due)

    def _extend_to(self, promised: datetime) -> DeadlineClock:
        # Replayed under another calendar, the deadline may already be later than the date
        # promised: the appointment in force is never earlier than the law's.
        return replace(
            self,
            due_at=max(promised, self.due_at),
            original_due_at=self.due_at,
            version=self.version + 1,
        )

    def replay(
        self,
        calendar: WorkingCalendar,
        received_at: datetime,
        transitions: Iterable[ClockTransition],
    ) -> DeadlineClock:
        """This clock rebuilt under ``calendar`` from the receipt at ``received_at`` and the
        transitions since: how a calendar change reaches a clock (the tracker's on a calendar
        event, the intake's before each action), so both count from the same deadline.

        The version counts the transitions. An extension keeps the date promised, unless the
        rebuilt deadline is already at or after it: then the extension no longer moves the
        appointment, and the rebuilt deadline is both in force and the legal one.
        """
        received = _aware(received_at, "received_at")
        clock = DeadlineClock._open(calendar, received, self.limit, self.cutoff, self.online)
        for t in transitions:
            if t.kind is TransitionKind.STOP:
                clock = clock.stop(calendar, t.at)
            elif t.kind is TransitionKind.RESTART:
                clock = clock.restart(calendar, t.at)
            elif t.kind is TransitionKind.RESUME:
                clock = clock.resume(calendar, t.at)
            else:
                clock = clock._extend_to(_aware(t.new_due_at or clock.due_at, "new_due_at"))
        return clock

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

    def _new_run(
        self,
        start: datetime,
        new_due: datetime,
        last: date | None,
        at: datetime,
        original: datetime | None,
    ) -> DeadlineClock:
        return replace(
            self,
            started_at=start,
            due_at=new_due,
            last_day=last,
            original_due_at=original,
            stopped_at=None,
            remaining_minutes=None,
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
