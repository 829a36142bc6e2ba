"""The tracker's deadline engine: dossier events in, deadline state and events out.

Pure: no I/O and no clock; every instant comes from the event or the caller. The adapter
loads the ``TrackedDossier`` (or None), calls ``apply`` / ``apply_envelope`` with the agency's
calendar, writes ``decision.tracked`` and ``decision.events`` (outbox) in one transaction, and
logs ``decision.ignored`` when set. Deduplication by ``event_id`` stays with the adapter; apply
is also robust on its own: an event older than the last applied one, or one the dossier's
status does not allow (a replay: started twice, paused while paused), changes nothing.

The clock uses the very functions the intake uses (``DeadlineClock``, ``outcome``,
``step_due_at``, ``step_mark``), so for the same events and calendar both agree on
``due_at`` and ``outcome``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import date, datetime, time
from typing import Any

from pydantic import ValidationError

from schemas.events import (
    DOSSIER_EVENTS,
    DossierEvent,
    DossierExtended,
    DossierPaused,
    DossierReceived,
    DossierRejected,
    DossierResumed,
    DossierTransferred,
    DossierWithdrawn,
    Envelope,
    PersonalDataErased,
    ResultReady,
    SupplementReceived,
    SupplementRequested,
    parse_payload,
)
from services.core.domain.calendar import VN_TZ, WorkingCalendar
from services.core.domain.deadlines import (
    ClockError,
    DeadlineClock,
    TimeLimit,
    TimeUnit,
    outcome,
    step_due_at,
    step_mark,
)
from services.core.domain.lifecycle import Action, ForbiddenAction, check_allowed
from services.tracker.domain import outgoing
from services.tracker.domain.model import (
    ClockTransition,
    Step,
    TrackedDossier,
    TransitionKind,
)
from services.tracker.domain.outgoing import DeadlineEvent
from services.tracker.domain.thresholds import check_threshold, with_next_check

REASON_CALENDAR_CHANGED = "calendar_changed"

_ACTIONS: dict[str, Action] = {
    "dossier.started": Action.START,
    "dossier.transferred": Action.TRANSFER,
    "dossier.supplement_requested": Action.REQUEST_SUPPLEMENT,
    "dossier.supplement_received": Action.RECEIVE_SUPPLEMENT,
    "dossier.paused": Action.PAUSE,
    "dossier.resumed": Action.RESUME,
    "dossier.extended": Action.EXTEND,
    "dossier.result_ready": Action.COMPLETE,
    "dossier.returned": Action.RETURN,
    "dossier.rejected": Action.REJECT,
    "dossier.withdrawn": Action.WITHDRAW,
}


@dataclass(frozen=True)
class DossierRef:
    """The dossier an event is about (from the envelope; payloads do not repeat it)."""

    dossier_id: str
    code: str
    agency_code: str

    @classmethod
    def of(cls, envelope: Envelope) -> DossierRef:
        return cls(envelope.dossier_id, envelope.dossier_code, envelope.agency_code)


@dataclass(frozen=True)
class EventOutcome:
    """What to do with one event: the state to save and the deadline events to publish.

    ``ignored`` holds the reason when the event changed nothing (the adapter logs it);
    ``tracked`` is then the input unchanged (None for an unknown dossier). ``changed`` says
    whether ``tracked`` differs from the input, i.e. whether there is anything to save.
    """

    tracked: TrackedDossier | None
    events: tuple[DeadlineEvent, ...] = ()
    ignored: str | None = None
    changed: bool = False

    @property
    def applied(self) -> bool:
        return self.ignored is None


class _Ignored(Exception):
    pass


def _ignore(tracked: TrackedDossier | None, reason: str) -> EventOutcome:
    return EventOutcome(tracked, (), reason, False)


def _local(t: datetime) -> datetime:
    return t.astimezone(VN_TZ)


def schedule_of(tracked: TrackedDossier | None, payload: DossierEvent) -> dict[str, Any] | None:
    """The office schedule whose calendar ``apply`` needs: the dossier's, or the receipt's."""
    if tracked is not None:
        return tracked.schedule
    if isinstance(payload, DossierReceived):
        return payload.office_schedule
    return None


def apply_envelope(
    tracked: TrackedDossier | None,
    envelope: Envelope,
    calendar: WorkingCalendar,
    threshold_minutes: int,
) -> EventOutcome:
    """``apply`` for a raw envelope; an unknown type or an invalid payload is ignored."""
    if envelope.type not in DOSSIER_EVENTS:
        return _ignore(tracked, f"not a dossier event type: {envelope.type!r}")
    try:
        payload = parse_payload(envelope)
    except ValidationError as exc:
        return _ignore(tracked, f"invalid {envelope.type} payload ({exc.error_count()} errors)")
    return apply(
        tracked,
        envelope.type,
        payload,
        calendar,
        threshold_minutes,
        ref=DossierRef.of(envelope),
        event_id=envelope.event_id,
    )


def apply(
    tracked: TrackedDossier | None,
    envelope_type: str,
    payload: DossierEvent,
    calendar: WorkingCalendar,
    threshold_minutes: int,
    *,
    ref: DossierRef,
    event_id: str | None = None,
) -> EventOutcome:
    """Apply one dossier event (any type of ``schemas.events.DOSSIER_EVENTS``).

    ``calendar`` is the working calendar of the dossier's office schedule (``schedule_of``);
    ``threshold_minutes`` the due-soon threshold in working minutes (default 480 in settings).
    Transitions that change the appointment in force emit ``deadline.changed``; the end of
    the clock (result ready, rejected, withdrawn) emits ``deadline.closed``.

    Replays: an event older than the last applied one is ignored; one at the same instant is
    ignored if it was already applied, recognised by ``event_id`` when given, else by its
    payload (two identical facts at the same instant without ids count as one).
    """
    check_threshold(threshold_minutes)
    model = DOSSIER_EVENTS.get(envelope_type)
    if model is None:
        return _ignore(tracked, f"not a dossier event type: {envelope_type!r}")
    if not isinstance(payload, model):
        return _ignore(tracked, f"{type(payload).__name__} is not the payload of {envelope_type}")
    if tracked is not None and tracked.dossier_id != ref.dossier_id:
        return _ignore(tracked, f"event for {ref.dossier_id} applied to {tracked.dossier_id}")
    if isinstance(payload, PersonalDataErased):
        # The tracker keeps no personal data (code, agency, dates, clock and outcome only:
        # docs/privacy.md), so there is nothing to erase; applied, so it is not taken for a
        # replay or an error, and the dossier's clock, which the reports read, stays.
        return EventOutcome(tracked, (), None, changed=False)
    try:
        if isinstance(payload, DossierReceived):
            if tracked is not None:
                raise _Ignored("dossier.received for a dossier already tracked (replay)")
            new, events = _receive(ref, payload, calendar)
        else:
            if tracked is None:
                raise _Ignored(
                    f"{envelope_type} for unknown dossier {ref.dossier_id} "
                    "(out of order, or its dossier.received was lost)"
                )
            at = _local(payload.at)
            if at < tracked.last_event_at:
                raise _Ignored(
                    f"{envelope_type} at {at.isoformat()} is older than the last applied "
                    f"transition at {tracked.last_event_at.isoformat()} (replay)"
                )
            digest = _digest(envelope_type, payload, event_id)
            same_instant = at == tracked.last_event_at
            if same_instant and digest in tracked.last_event_digests:
                raise _Ignored(f"{envelope_type} at {at.isoformat()} was already applied (replay)")
            check_allowed(_ACTIONS[envelope_type], tracked.status)
            new, events = _transition(tracked, payload, at, calendar)
            digests = (*tracked.last_event_digests, digest) if same_instant else (digest,)
            new = replace(new, status=payload.status, last_event_at=at, last_event_digests=digests)
    except _Ignored as exc:
        return _ignore(tracked, str(exc))
    except ForbiddenAction as exc:
        return _ignore(tracked, f"{exc} (replay or out of order)")
    except ClockError as exc:
        return _ignore(tracked, f"{envelope_type} refused by the clock: {exc}")
    new = with_next_check(new, calendar, threshold_minutes)
    return EventOutcome(new, tuple(events), None, changed=new != tracked)


def _receive(
    ref: DossierRef, payload: DossierReceived, calendar: WorkingCalendar
) -> tuple[TrackedDossier, list[DeadlineEvent]]:
    try:
        limit = TimeLimit(payload.time_limit.value, TimeUnit(payload.time_limit.unit))
        cutoff = time.fromisoformat(payload.cutoff_time) if payload.cutoff_time else None
    except ValueError as exc:
        raise _Ignored(f"dossier.received with an invalid time limit or cut-off: {exc}") from exc
    received_at = _local(payload.received_at)
    clock = DeadlineClock.open(calendar, received_at, limit, cutoff, payload.channel)
    tracked = TrackedDossier(
        dossier_id=ref.dossier_id,
        code=ref.code,
        agency_code=ref.agency_code,
        handling_agency=ref.agency_code,
        status=payload.status,
        schedule=dict(payload.office_schedule),
        received_at=received_at,
        clock=clock,
        last_event_at=max(received_at, _local(payload.at)),
    )
    event = outgoing.changed(ref.dossier_id, received_at, clock.due_at, clock.version, "received")
    return tracked, [event]


def _transition(
    tracked: TrackedDossier, payload: DossierEvent, at: datetime, calendar: WorkingCalendar
) -> tuple[TrackedDossier, list[DeadlineEvent]]:
    """The state change of one event after a dossier's receipt (status set by the caller)."""
    clock = tracked.clock
    did = tracked.dossier_id
    if isinstance(payload, DossierTransferred):
        if payload.to_agency == tracked.handling_agency:
            raise _Ignored(f"dossier is already with {payload.to_agency}")
        hours = payload.allotted_hours
        step = Step(
            agency=payload.to_agency,
            handed_over_at=at,
            allotted_hours=hours,
            due_at=step_due_at(calendar, at, hours) if hours else None,
        )
        steps = (*_close_step(tracked.steps, at, calendar, marked=True), step)
        return replace(tracked, handling_agency=payload.to_agency, steps=steps), []
    if isinstance(payload, SupplementRequested | DossierPaused):
        stopped = clock.stop(calendar, at)
        requests = tracked.supplement_requests + isinstance(payload, SupplementRequested)
        new = _with_clock(tracked, stopped, TransitionKind.STOP, at)
        new = replace(new, supplement_requests=requests)
        return new, [outgoing.changed(did, at, None, stopped.version, _reason(payload))]
    if isinstance(payload, SupplementReceived):
        new = _with_clock(tracked, clock.restart(calendar, at), TransitionKind.RESTART, at)
        return new, [_changed(new, at, _reason(payload))]
    if isinstance(payload, DossierResumed):
        new = _with_clock(tracked, clock.resume(calendar, at), TransitionKind.RESUME, at)
        return new, [_changed(new, at, _reason(payload))]
    if isinstance(payload, DossierExtended):
        if payload.due_at is None:
            raise _Ignored("dossier.extended without the new appointment (due_at)")
        target = _local(payload.due_at)
        # Once a run, later than the appointment in force; while paused too (the clock's rule).
        new = _with_clock(tracked, clock.extend(target), TransitionKind.EXTEND, at, target)
        return new, [_changed(new, at, _reason(payload))]
    if isinstance(payload, ResultReady):
        result = outcome(calendar, at, clock.legal_due_at)
        new = replace(
            tracked,
            outcome=result,
            finished_at=at,
            steps=_close_step(tracked.steps, at, calendar, marked=True),
        )
        event = outgoing.closed(
            did,
            at,
            _reason(payload),
            result.value,
            clock.due_at,
            tracked.original_due_at,
            clock.version,
        )
        return new, [event]
    if isinstance(payload, DossierRejected | DossierWithdrawn):
        # A rejection is the agency's decision and ends its step; a withdrawal is not its doing.
        marked = isinstance(payload, DossierRejected)
        new = replace(
            tracked, finished_at=at, steps=_close_step(tracked.steps, at, calendar, marked=marked)
        )
        # A stopped clock owes no date: its last one is not the appointment (issue 13 item 1).
        due_at = clock.due_at if clock.is_running else None
        event = outgoing.closed(
            did, at, _reason(payload), None, due_at, tracked.original_due_at, clock.version
        )
        return new, [event]
    # dossier.started, dossier.returned: the status only (the return step is not counted).
    return tracked, []


def _digest(envelope_type: str, payload: DossierEvent, event_id: str | None) -> str:
    """A short fingerprint of one event, to recognise its replay at the same instant."""
    text = "id\n" + event_id if event_id else envelope_type + "\n" + payload.model_dump_json()
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _reason(payload: DossierEvent) -> str:
    """``supplement_requested`` for a ``SupplementRequested``, etc."""
    for name, model in DOSSIER_EVENTS.items():
        if type(payload) is model:
            return name.removeprefix("dossier.")
    raise ValueError(f"not a dossier event payload: {payload!r}")  # pragma: no cover


def _with_clock(
    tracked: TrackedDossier,
    clock: DeadlineClock,
    kind: TransitionKind,
    at: datetime,
    new_due_at: datetime | None = None,
) -> TrackedDossier:
    transition = ClockTransition(kind, at, new_due_at)
    return replace(tracked, clock=clock, transitions=(*tracked.transitions, transition))


def _changed(tracked: TrackedDossier, at: datetime, reason: str) -> DeadlineEvent:
    return outgoing.changed(tracked.dossier_id, at, tracked.due_at, tracked.version, reason)


def _close_step(
    steps: tuple[Step, ...], at: datetime, calendar: WorkingCalendar, *, marked: bool
) -> tuple[Step, ...]:
    if not steps or not steps[-1].is_open:
        return steps
    last = steps[-1]
    mark = step_mark(calendar, at, last.due_at) if marked and last.due_at is not None else None
    return (*steps[:-1], replace(last, finished_at=at, mark=mark))


# -- calendar changes ----------------------------------------------------------------------


def touched_by(tracked: TrackedDossier, day: date) -> bool:
    """Whether a calendar change on ``day`` may move this dossier's deadlines.

    A conservative filter for the adapter: open dossiers received on or before ``day``
    whose clock is stopped (a later resume counts from the new calendar) or whose deadline
    or open step is due on or after ``day``. ``recompute`` of an untouched dossier is a
    no-op.
    """
    if not tracked.is_pending or tracked.received_at.date() > day:
        return False
    if not tracked.clock.is_running:
        return True
    dues = [tracked.clock.due_at] + [s.due_at for s in tracked.steps if s.is_open and s.due_at]
    return any(_local(d).date() >= day for d in dues)


def recompute(
    tracked: TrackedDossier,
    calendar: WorkingCalendar,
    threshold_minutes: int,
    at: datetime,
) -> EventOutcome:
    """Rebuild the deadlines of an open dossier under a changed calendar (override added or
    removed), effective ``at`` (when the change was made: the events' ``occurred_at``).

    If the appointment in force moves: new deadline version and ``deadline.changed``
    (reason ``calendar_changed``); flags raised for the old version are raised again only if
    due under the new deadline (the next scan decides). Open steps get their due time
    recomputed; a step flag already raised stays raised (once per step). Finished dossiers
    are left alone: their outcome is history.
    """
    check_threshold(threshold_minutes)
    if not tracked.is_pending:
        return EventOutcome(tracked)
    try:
        rebuilt = tracked.clock.replay(calendar, tracked.received_at, tracked.transitions)
    except ClockError as exc:
        return _ignore(tracked, f"calendar change could not be replayed: {exc}")
    new_due = rebuilt.due_at if rebuilt.is_running else None
    moved = new_due != tracked.due_at
    version = tracked.version + 1 if moved else tracked.version
    steps = tuple(
        replace(s, due_at=step_due_at(calendar, s.handed_over_at, s.allotted_hours))
        if s.is_open and s.allotted_hours
        else s
        for s in tracked.steps
    )
    new = replace(tracked, clock=replace(rebuilt, version=version), steps=steps)
    new = with_next_check(new, calendar, threshold_minutes)
    events: tuple[DeadlineEvent, ...] = ()
    if moved:
        events = (_changed(new, _local(at), REASON_CALENDAR_CHANGED),)
    return EventOutcome(new, events, None, changed=new != tracked)
