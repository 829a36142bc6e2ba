"""When each flag becomes due: the instants that both ``scan`` and ``next_check_at`` use.

Keeping one definition of each threshold instant is what guarantees that scanning at
``next_check_at`` raises something (no dossier gets stuck) and that nothing becomes due
before ``next_check_at`` (no flag is late).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from services.core.domain.calendar import VN_TZ, WorkingCalendar
from services.core.domain.deadlines import DeadlineClock
from services.tracker.domain.model import TrackedDossier


def check_threshold(threshold_minutes: int) -> int:
    if isinstance(threshold_minutes, bool) or threshold_minutes < 0:
        raise ValueError(f"threshold_minutes must be >= 0, got {threshold_minutes!r}")
    return threshold_minutes


def overdue_instant(due_at: datetime) -> datetime:
    """First instant past ``due_at``, at minute resolution like ``outcome``.

    A result at 17:00:59 for a 17:00 deadline is on time, so the dossier is overdue from
    17:01:00 on.
    """
    return due_at.astimezone(VN_TZ).replace(second=0, microsecond=0) + timedelta(minutes=1)


def due_soon_instant(
    clock: DeadlineClock, calendar: WorkingCalendar, threshold_minutes: int
) -> datetime:
    """First instant at which the remaining working time is <= ``threshold_minutes``.

    Equals ``calendar.subtract_working_minutes(due_at, threshold)`` when the run holds more
    than the threshold; otherwise the run is "due soon" from its start, and the instant is
    the clock's last transition (receipt, restart or resume). For every ``now`` at or after
    that transition: ``now >= due_soon_instant`` ⇔
    ``clock.remaining_working_minutes(calendar, now) <= threshold``.
    """
    run = calendar.working_minutes_between(clock.started_at, clock.due_at)
    if run <= threshold_minutes:
        return (clock.changed_at or clock.started_at).astimezone(VN_TZ)
    return calendar.subtract_working_minutes(clock.due_at, threshold_minutes)


def next_check_at(
    tracked: TrackedDossier, calendar: WorkingCalendar, threshold_minutes: int
) -> datetime | None:
    """The earliest un-raised threshold of the current deadline version or an open step."""
    if not tracked.is_pending or not tracked.clock.is_running:
        return None
    clock = tracked.clock
    candidates: list[datetime] = []
    if tracked.overdue_raised_version < clock.version:
        candidates.append(overdue_instant(clock.due_at))
        if tracked.due_soon_raised_version < clock.version:
            candidates.append(due_soon_instant(clock, calendar, threshold_minutes))
    for step in tracked.steps:
        if step.is_open and step.due_at is not None and not step.overdue_raised:
            candidates.append(overdue_instant(step.due_at))
    return min(candidates, default=None)


def with_next_check(
    tracked: TrackedDossier, calendar: WorkingCalendar, threshold_minutes: int
) -> TrackedDossier:
    return replace(tracked, next_check_at=next_check_at(tracked, calendar, threshold_minutes))
