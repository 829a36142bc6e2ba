"""``TrackedDossier`` to and from a JSON-ready dict, for the adapter's state column.

Datetimes are ISO 8601 strings; ``from_state(to_state(t)) == t``. The adapter is expected
to keep ``next_check_at`` (indexed), ``status`` and ``clock.version`` in columns of their own
besides this document.
"""

from __future__ import annotations

from typing import Any

from schemas.events import DossierStatus
from services.core.domain.clock_state import clock_from_state, clock_to_state
from services.core.domain.clock_state import iso as _iso
from services.core.domain.clock_state import parse_dt as _dt
from services.core.domain.clock_state import parse_required_dt as _req
from services.core.domain.deadlines import Outcome
from services.tracker.domain.model import ClockTransition, Step, TrackedDossier, TransitionKind

STATE_VERSION = 1


def _step_to_state(step: Step) -> dict[str, Any]:
    return {
        "agency": step.agency,
        "handed_over_at": _iso(step.handed_over_at),
        "allotted_hours": step.allotted_hours,
        "due_at": _iso(step.due_at),
        "finished_at": _iso(step.finished_at),
        "mark": step.mark.value if step.mark is not None else None,
        "overdue_raised": step.overdue_raised,
    }


def _step_from_state(s: dict[str, Any]) -> Step:
    return Step(
        agency=s["agency"],
        handed_over_at=_req(s["handed_over_at"]),
        allotted_hours=s.get("allotted_hours"),
        due_at=_dt(s.get("due_at")),
        finished_at=_dt(s.get("finished_at")),
        mark=Outcome(s["mark"]) if s.get("mark") else None,
        overdue_raised=bool(s.get("overdue_raised", False)),
    )


def to_state(t: TrackedDossier) -> dict[str, Any]:
    return {
        "state_version": STATE_VERSION,
        "dossier_id": t.dossier_id,
        "code": t.code,
        "agency_code": t.agency_code,
        "handling_agency": t.handling_agency,
        "status": t.status.value,
        "schedule": t.schedule,
        "received_at": _iso(t.received_at),
        "clock": clock_to_state(t.clock),
        "last_event_at": _iso(t.last_event_at),
        # Also in the clock, which is read first; kept here for a reader of the older format.
        "original_due_at": _iso(t.original_due_at),
        "outcome": t.outcome.value if t.outcome is not None else None,
        "finished_at": _iso(t.finished_at),
        "supplement_requests": t.supplement_requests,
        "steps": [_step_to_state(s) for s in t.steps],
        "transitions": [
            {"kind": x.kind.value, "at": _iso(x.at), "new_due_at": _iso(x.new_due_at)}
            for x in t.transitions
        ],
        "due_soon_raised_version": t.due_soon_raised_version,
        "overdue_raised_version": t.overdue_raised_version,
        "next_check_at": _iso(t.next_check_at),
        "last_event_digests": list(t.last_event_digests),
    }


def from_state(s: dict[str, Any]) -> TrackedDossier:
    if s.get("state_version") != STATE_VERSION:
        raise ValueError(f"unknown tracker state version {s.get('state_version')!r}")
    return TrackedDossier(
        dossier_id=s["dossier_id"],
        code=s["code"],
        agency_code=s["agency_code"],
        handling_agency=s["handling_agency"],
        status=DossierStatus(s["status"]),
        schedule=dict(s["schedule"]),
        received_at=_req(s["received_at"]),
        clock=clock_from_state(s["clock"], original_due_at=_dt(s.get("original_due_at"))),
        last_event_at=_req(s["last_event_at"]),
        outcome=Outcome(s["outcome"]) if s.get("outcome") else None,
        finished_at=_dt(s.get("finished_at")),
        supplement_requests=int(s.get("supplement_requests", 0)),
        steps=tuple(_step_from_state(x) for x in s.get("steps", [])),
        transitions=tuple(
            ClockTransition(TransitionKind(x["kind"]), _req(x["at"]), _dt(x.get("new_due_at")))
            for x in s.get("transitions", [])
        ),
        due_soon_raised_version=int(s.get("due_soon_raised_version", 0)),
        overdue_raised_version=int(s.get("overdue_raised_version", 0)),
        next_check_at=_dt(s.get("next_check_at")),
        last_event_digests=tuple(s.get("last_event_digests", ())),
    )
