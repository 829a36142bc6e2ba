"""The tracker's pure domain: each dossier's legal clock, its flags and their next check.

- ``apply`` / ``apply_envelope``: a dossier event → ``EventOutcome`` (new state + deadline events).
- ``scan``: the flags due at ``now`` → ``ScanResult`` (new state + flags).
- ``recompute``: a calendar change → ``EventOutcome``.
- ``TrackedDossier.next_check_at``: the instant the scan must next look at a dossier.
"""

from services.tracker.domain.model import ClockTransition, Step, TrackedDossier, TransitionKind
from services.tracker.domain.outgoing import (
    DEADLINE_CHANGED,
    DEADLINE_CLOSED,
    DEADLINE_DUE_SOON,
    DEADLINE_EVENT_TYPES,
    DEADLINE_OVERDUE,
    DEADLINE_STEP_OVERDUE,
    DeadlineEvent,
)
from services.tracker.domain.scan import ScanResult, scan
from services.tracker.domain.state import from_state, to_state
from services.tracker.domain.thresholds import due_soon_instant, next_check_at, overdue_instant
from services.tracker.domain.tracking import (
    REASON_CALENDAR_CHANGED,
    DossierRef,
    EventOutcome,
    apply,
    apply_envelope,
    recompute,
    schedule_of,
    touched_by,
)

__all__ = [
    "DEADLINE_CHANGED",
    "DEADLINE_CLOSED",
    "DEADLINE_DUE_SOON",
    "DEADLINE_EVENT_TYPES",
    "DEADLINE_OVERDUE",
    "DEADLINE_STEP_OVERDUE",
    "REASON_CALENDAR_CHANGED",
    "ClockTransition",
    "DeadlineEvent",
    "EventOutcome",
    "DossierRef",
    "ScanResult",
    "Step",
    "TrackedDossier",
    "TransitionKind",
    "apply",
    "apply_envelope",
    "due_soon_instant",
    "from_state",
    "next_check_at",
    "overdue_instant",
    "recompute",
    "scan",
    "schedule_of",
    "to_state",
    "touched_by",
]
