"""The periodic scan of one dossier: raise the flags whose thresholds have passed.

The adapter selects ``WHERE next_check_at <= now`` and calls ``scan`` for each row; the
result carries the flags to publish and the state to write back (raised versions, next check).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from services.core.domain.calendar import VN_TZ, WorkingCalendar
from services.tracker.domain import outgoing
from services.tracker.domain.model import TrackedDossier
from services.tracker.domain.outgoing import DeadlineEvent
from services.tracker.domain.thresholds import (
    check_threshold,
    due_soon_instant,
    next_check_at,
    overdue_instant,
)


@dataclass(frozen=True)
class ScanResult:
    """The dossier after the scan, the flags to publish, and whether the state must be saved."""

    tracked: TrackedDossier
    events: tuple[DeadlineEvent, ...] = ()
    changed: bool = False


def scan(
    tracked: TrackedDossier, now: datetime, calendar: WorkingCalendar, threshold_minutes: int
) -> ScanResult:
    """Flags due at ``now`` and not raised yet for the current deadline version.

    - ``deadline.overdue``: ``now`` past ``due_at`` (minute resolution), once per version.
      A dossier found past its deadline before ``due_soon`` was raised (first scan of
      imported history, a long scanner outage, a new version already late) gets ``overdue``
      only, and ``due_soon`` is marked raised for that version: it is no longer news.
    - ``deadline.due_soon``: remaining working time <= ``threshold_minutes``, once per version.
    - ``deadline.step_overdue``: an open step past its own due time, once per step, naming
      the step's agency.

    Nothing is raised while the clock is stopped (awaiting supplement, paused) or once the
    dossier has its result or is closed; open steps wait with the clock.
    ``occurred_at`` of a flag is the instant its threshold was crossed (never after ``now``).
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(VN_TZ)
    check_threshold(threshold_minutes)
    events: list[DeadlineEvent] = []
    result = tracked
    clock = tracked.clock
    if tracked.is_pending and clock.is_running:
        version = clock.version
        late_from = overdue_instant(clock.due_at)
        if tracked.overdue_raised_version < version and now >= late_from:
            events.append(
                outgoing.overdue(
                    tracked.dossier_id,
                    late_from,
                    clock.due_at,
                    version,
                    calendar.working_minutes_between(clock.due_at, now),
                    tracked.handling_agency,
                )
            )
            result = replace(
                result, overdue_raised_version=version, due_soon_raised_version=version
            )
        elif tracked.due_soon_raised_version < version and tracked.overdue_raised_version < version:
            soon_from = due_soon_instant(clock, calendar, threshold_minutes)
            if now >= soon_from:
                events.append(
                    outgoing.due_soon(
                        tracked.dossier_id,
                        soon_from,
                        clock.due_at,
                        version,
                        clock.remaining_working_minutes(calendar, now),
                        tracked.handling_agency,
                    )
                )
                result = replace(result, due_soon_raised_version=version)
        steps = list(result.steps)
        for number, step in enumerate(steps, start=1):
            if not step.is_open or step.due_at is None or step.overdue_raised:
                continue
            step_late_from = overdue_instant(step.due_at)
            if now >= step_late_from:
                events.append(
                    outgoing.step_overdue(
                        tracked.dossier_id,
                        step_late_from,
                        number,
                        step.agency,
                        step.handed_over_at,
                        step.due_at,
                    )
                )
                steps[number - 1] = replace(step, overdue_raised=True)
        result = replace(result, steps=tuple(steps))
    result = replace(result, next_check_at=next_check_at(result, calendar, threshold_minutes))
    return ScanResult(result, tuple(events), changed=result != tracked)
