"""What the tracker keeps per dossier: its clock, transfer steps and the flags already raised.

Immutable values: every change is a new ``TrackedDossier`` (``dataclasses.replace``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schemas.events import DossierStatus
from services.core.domain.deadlines import (
    ClockTransition,
    DeadlineClock,
    Outcome,
    TransitionKind,
)
from services.core.domain.lifecycle import PENDING_STATUSES

# The clock's transitions are the core's (the intake replays them too); named here as well.
__all__ = ["ClockTransition", "Step", "TrackedDossier", "TransitionKind"]


@dataclass(frozen=True)
class Step:
    """One inter-agency step (liên thông, Phiếu kiểm soát quá trình).

    ``due_at`` is None when the transfer carried no allotted hours (nothing to be late for).
    ``mark`` is set when the step is closed by the next transfer, the result or a rejection.
    """

    agency: str
    handed_over_at: datetime
    allotted_hours: int | None
    due_at: datetime | None
    finished_at: datetime | None = None
    mark: Outcome | None = None
    overdue_raised: bool = False

    @property
    def is_open(self) -> bool:
        return self.finished_at is None


@dataclass(frozen=True)
class TrackedDossier:
    """The tracker's state of one dossier.

    ``clock.version`` is the deadline version; ``due_soon_raised_version`` and
    ``overdue_raised_version`` are the versions for which those flags were raised (0 = never),
    so a flag of an older version never blocks the same flag of the current one.
    ``transitions`` are the clock facts since the receipt (``received_at`` with the clock's
    limit, cut-off and channel), enough to rebuild the clock under another calendar
    (``DeadlineClock.replay``).
    ``next_check_at`` is the earliest instant at which a scan may have something to raise;
    None while the clock is stopped, once the dossier is finished, or when every flag of the
    current version is raised.
    ``last_event_digests`` fingerprints the events applied at ``last_event_at``, so that a
    replay of one of them (same instant, not older) is recognised as well.
    """

    dossier_id: str
    code: str
    agency_code: str
    handling_agency: str
    status: DossierStatus
    schedule: dict[str, Any]
    received_at: datetime
    clock: DeadlineClock
    last_event_at: datetime
    outcome: Outcome | None = None
    finished_at: datetime | None = None
    supplement_requests: int = 0
    steps: tuple[Step, ...] = ()
    transitions: tuple[ClockTransition, ...] = ()
    due_soon_raised_version: int = 0
    overdue_raised_version: int = 0
    next_check_at: datetime | None = None
    last_event_digests: tuple[str, ...] = ()

    @property
    def version(self) -> int:
        return self.clock.version

    @property
    def original_due_at(self) -> datetime | None:
        """The deadline before the extension of the current run, if extended."""
        return self.clock.original_due_at

    @property
    def due_at(self) -> datetime | None:
        """The appointment in force; None while the clock is stopped."""
        return self.clock.due_at if self.clock.is_running else None

    @property
    def is_pending(self) -> bool:
        """The agency still owes a result: the deadline matters."""
        return self.status in PENDING_STATUSES

    @property
    def open_step(self) -> Step | None:
        if self.steps and self.steps[-1].is_open:
            return self.steps[-1]
        return None
