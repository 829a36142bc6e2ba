"""The dossier (hồ sơ) as the intake knows it: pure state changes that record events.

Every command checks the lifecycle table, changes the state, appends one history entry and
one event. Nothing here touches a database, a broker or the clock: `at` is always given.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any, Literal

from schemas.events import (
    Address,
    Applicant,
    DossierEvent,
    DossierExtended,
    DossierPaused,
    DossierReceived,
    DossierRejected,
    DossierResumed,
    DossierReturned,
    DossierStarted,
    DossierStatus,
    DossierTransferred,
    DossierWithdrawn,
    PersonalDataErased,
    ResultReady,
    SupplementReceived,
    SupplementRequested,
    TimeLimitPayload,
)
from services.core.domain.calendar import WorkingCalendar
from services.core.domain.clock_state import iso, parse_dt
from services.core.domain.deadlines import (
    ClockError,
    ClockTransition,
    DeadlineClock,
    TimeLimit,
    TimeUnit,
    TransitionKind,
    outcome,
    step_due_at,
)
from services.core.domain.lifecycle import (
    FINAL_STATUSES,
    PENDING_STATUSES,
    Action,
    check_allowed,
)

S = DossierStatus
# The actions of the history that move the clock, as the clock replays them.
CLOCK_TRANSITIONS: dict[str, TransitionKind] = {
    Action.REQUEST_SUPPLEMENT: TransitionKind.STOP,
    Action.PAUSE: TransitionKind.STOP,
    Action.RECEIVE_SUPPLEMENT: TransitionKind.RESTART,
    Action.RESUME: TransitionKind.RESUME,
    Action.EXTEND: TransitionKind.EXTEND,
}
Channel = Literal["counter", "online", "postal"]
ReturnMethod = Literal["counter", "postal"]


class InvalidCommand(ValueError):
    """A command whose data breaks a rule; names the offending field (→ HTTP 422)."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


@dataclass(frozen=True)
class Procedure:
    """Thủ tục hành chính as the catalogue defines it."""

    code: str
    name: str
    agency_code: str
    time_limit: TimeLimit
    cutoff_time: time | None
    postal_return: bool


@dataclass(frozen=True)
class Document:
    """A paper handed in with the dossier (thành phần hồ sơ), as the receipt slip lists it.
    Its name may name a person (a child's birth certificate): personal data."""

    name: str
    copies: int


@dataclass(frozen=True)
class HistoryEntry:
    action: str
    at: datetime
    status: DossierStatus
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Dossier:
    id: str
    code: str
    agency_code: str
    procedure: Procedure
    # None once erased (erase_personal_data), as is the return address.
    applicant: Applicant | None
    channel: Channel
    return_method: ReturnMethod
    return_address: Address | None
    received_at: datetime
    clock: DeadlineClock
    # The papers received (thành phần hồ sơ): empty when the clerk listed none, or erased.
    documents: tuple[Document, ...] = ()
    status: DossierStatus = S.RECEIVED
    handling_agency: str | None = None
    status_before_pause: DossierStatus | None = None
    supplement_requests: int = 0
    outcome: str | None = None
    finished_at: datetime | None = None
    history: list[HistoryEntry] = field(default_factory=list)
    personal_data_erased_at: datetime | None = None
    events: list[DossierEvent] = field(default_factory=list, compare=False)
    # The calendar the clock was last rebuilt under (``follow_calendar``), not stored.
    _followed: WorkingCalendar | None = field(default=None, init=False, compare=False, repr=False)

    @property
    def due_at(self) -> datetime | None:
        """Ngày hẹn trả kết quả currently in force (None while the clock is stopped)."""
        return None if not self.clock.is_running else self.clock.due_at

    @property
    def original_due_at(self) -> datetime | None:
        """The appointment before the extension (the legal deadline), once extended."""
        return self.clock.original_due_at

    @property
    def last_action_at(self) -> datetime:
        return self.history[-1].at if self.history else self.received_at

    @property
    def closed_at(self) -> datetime | None:
        """When the dossier was closed (returned, rejected or withdrawn), None while it is not:
        a final status allows no further action, so its last action closed it. The retention
        of the applicant's personal data counts from here (erase_personal_data)."""
        return self.last_action_at if self.status in FINAL_STATUSES else None

    @classmethod
    def receive(
        cls,
        *,
        id: str,
        code: str,
        procedure: Procedure,
        applicant: Applicant,
        channel: Channel,
        return_method: ReturnMethod,
        return_address: Address | None,
        received_at: datetime,
        calendar: WorkingCalendar,
        office_schedule: dict[str, Any],
        documents: tuple[Document, ...] = (),
    ) -> Dossier:
        """Tiếp nhận hồ sơ: accept a complete dossier and fix its appointment."""
        if return_method == "postal":
            if not procedure.postal_return:
                raise InvalidCommand(
                    "return_method", "this procedure does not offer return by post"
                )
            if return_address is None:
                raise InvalidCommand("return_address", "return by post needs an address")
        clock = DeadlineClock.open(
            calendar, received_at, procedure.time_limit, procedure.cutoff_time, channel
        )
        dossier = cls(
            id=id,
            code=code,
            agency_code=procedure.agency_code,
            procedure=procedure,
            applicant=applicant,
            channel=channel,
            return_method=return_method,
            return_address=return_address,
            received_at=received_at,
            clock=clock,
            documents=documents,
        )
        dossier._record(
            "receive",
            received_at,
            DossierReceived(
                at=received_at,
                status=S.RECEIVED,
                due_at=clock.due_at,
                procedure_code=procedure.code,
                procedure_name=procedure.name,
                channel=channel,
                return_method=return_method,
                return_address=return_address,
                applicant=applicant,
                received_at=received_at,
                clock_started_at=clock.started_at,
                time_limit=TimeLimitPayload(
                    value=procedure.time_limit.value, unit=procedure.time_limit.unit.value
                ),
                cutoff_time=procedure.cutoff_time.strftime("%H:%M")
                if procedure.cutoff_time
                else None,
                office_schedule=office_schedule,
            ),
            {"due_at": clock.due_at.isoformat()},
        )
        return dossier

    def start(self, at: datetime, unit: str | None = None) -> None:
        """Chuyển xử lý: hand to the processing unit."""
        self._check(Action.START, at)
        self.status = S.IN_PROGRESS
        event = DossierStarted(at=at, status=self.status, due_at=self.due_at, unit=unit)
        self._record(Action.START, at, event, {"unit": unit} if unit else {})

    def transfer(
        self, at: datetime, to_agency: str, allotted_hours: int | None, calendar: WorkingCalendar
    ) -> None:
        """Chuyển liên thông to another agency for its step."""
        self._check(Action.TRANSFER, at)
        if to_agency == (self.handling_agency or self.agency_code):
            raise InvalidCommand("to_agency", "the dossier is already with this agency")
        step_due = step_due_at(calendar, at, allotted_hours) if allotted_hours else None
        from_agency = self.handling_agency or self.agency_code
        self.handling_agency = to_agency
        self.status = S.TRANSFERRED
        event = DossierTransferred(
            at=at,
            status=self.status,
            due_at=self.due_at,
            from_agency=from_agency,
            to_agency=to_agency,
            allotted_hours=allotted_hours,
            step_due_at=step_due,
        )
        self._record(Action.TRANSFER, at, event, {"from": from_agency, "to": to_agency})

    def request_supplement(
        self, at: datetime, items: list[str], reason: str, calendar: WorkingCalendar
    ) -> None:
        """Yêu cầu bổ sung, hoàn thiện hồ sơ: the clock stops until the dossier is complete.

        The law asks for every missing item at once; a second request is allowed with a
        reason but is counted as a violation (request_number >= 2).
        """
        self._check(Action.REQUEST_SUPPLEMENT, at)
        self.follow_calendar(calendar)
        self.clock = self._clock_step(lambda: self.clock.stop(calendar, at))
        self.supplement_requests += 1
        self.status = S.AWAITING_SUPPLEMENT
        event = SupplementRequested(
            at=at,
            status=self.status,
            due_at=None,
            items=items,
            reason=reason,
            request_number=self.supplement_requests,
        )
        self._record(Action.REQUEST_SUPPLEMENT, at, event, {"items": items, "reason": reason})

    def receive_supplement(self, at: datetime, calendar: WorkingCalendar) -> None:
        """The complete dossier arrived: the full time limit counts again from now."""
        self._check(Action.RECEIVE_SUPPLEMENT, at)
        self.follow_calendar(calendar)
        self.clock = self._clock_step(lambda: self.clock.restart(calendar, at))
        self.status = S.IN_PROGRESS
        event = SupplementReceived(
            at=at, status=self.status, due_at=self.due_at, clock_started_at=self.clock.started_at
        )
        self._record(Action.RECEIVE_SUPPLEMENT, at, event, {"due_at": iso(self.due_at)})

    def pause(self, at: datetime, reason: str, calendar: WorkingCalendar) -> None:
        """Tạm dừng: the clock stops; the remaining working time is kept."""
        self._check(Action.PAUSE, at)
        self.follow_calendar(calendar)
        self.clock = self._clock_step(lambda: self.clock.stop(calendar, at))
        self.status_before_pause = self.status
        self.status = S.PAUSED
        event = DossierPaused(
            at=at,
            status=self.status,
            due_at=None,
            reason=reason,
            remaining_working_minutes=self.clock.remaining_minutes,
        )
        self._record(Action.PAUSE, at, event, {"reason": reason})

    def resume(self, at: datetime, calendar: WorkingCalendar) -> None:
        """The pause ends: the remaining time goes on; an appointment extended stands."""
        self._check(Action.RESUME, at)
        self.follow_calendar(calendar)
        self.clock = self._clock_step(lambda: self.clock.resume(calendar, at))
        self.status = self.status_before_pause or S.IN_PROGRESS
        self.status_before_pause = None
        event = DossierResumed(at=at, status=self.status, due_at=self.due_at)
        self._record(Action.RESUME, at, event, {"due_at": iso(self.due_at)})

    def extend(
        self, at: datetime, new_due_at: datetime, reason: str, calendar: WorkingCalendar
    ) -> None:
        """Phiếu xin lỗi và hẹn lại ngày trả kết quả: once, to a later date; while paused
        too, and the date stands when the dossier resumes (``DeadlineClock.extend``).

        The dossier still counts as late against the deadline it had before.
        """
        self._check(Action.EXTEND, at)
        self.follow_calendar(calendar)
        previous = self.clock.due_at
        self.clock = self._clock_step(lambda: self.clock.extend(new_due_at), "new_due_at")
        event = DossierExtended(
            at=at,
            status=self.status,
            due_at=new_due_at,
            previous_due_at=previous,
            original_due_at=previous,
            reason=reason,
        )
        self._record(Action.EXTEND, at, event, {"due_at": iso(new_due_at), "reason": reason})

    def complete(self, at: datetime, calendar: WorkingCalendar) -> None:
        """Có kết quả: the decision is issued; early / on time / late is fixed now."""
        self._check(Action.COMPLETE, at)
        self.follow_calendar(calendar)
        self.outcome = outcome(calendar, at, self.clock.legal_due_at).value
        self.finished_at = at
        self.status = S.RESULT_READY
        event = ResultReady(
            at=at,
            status=self.status,
            due_at=self.due_at,
            return_method=self.return_method,
            original_due_at=self.original_due_at,
            outcome=self.outcome,
        )
        self._record(Action.COMPLETE, at, event, {"outcome": self.outcome})

    def return_result(self, at: datetime) -> None:
        """Trả kết quả: handed to the citizen (the return step is not counted)."""
        self._check(Action.RETURN, at)
        self.status = S.RETURNED
        self._record(Action.RETURN, at, DossierReturned(at=at, status=self.status, due_at=None))

    def reject(self, at: datetime, reason: str) -> None:
        """Từ chối giải quyết, with the reason of the Phiếu từ chối."""
        self._check(Action.REJECT, at)
        self.status = S.REJECTED
        self.finished_at = at
        event = DossierRejected(at=at, status=self.status, due_at=None, reason=reason)
        self._record(Action.REJECT, at, event, {"reason": reason})

    def withdraw(self, at: datetime, reason: str) -> None:
        """Rút hồ sơ at the applicant's request."""
        self._check(Action.WITHDRAW, at)
        self.status = S.WITHDRAWN
        self.finished_at = at
        event = DossierWithdrawn(at=at, status=self.status, due_at=None, reason=reason)
        self._record(Action.WITHDRAW, at, event, {"reason": reason})

    def erase_personal_data(self, at: datetime) -> bool:
        """Xoá dữ liệu cá nhân (Decree 13/2023/NĐ-CP: kept no longer than needed): the
        applicant (name, phone, ID number, e-mail), the return address and the list of papers
        received (a paper's name may name a person) go; the code, the
        procedure, the dates, the clock, the outcome and the history stay, so the reports do
        not change. Records `dossier.personal_data_erased`, which tells the services holding a
        copy. False, and nothing recorded, when the dossier is not closed (its data is still
        needed) or was erased already (told twice, it changes nothing).

        The name goes too, though the issue names phone, e-mail, ID number and address:
        nothing that stays needs it (reports count by agency and procedure; the paper dossier
        the agency archives, found by its code, keeps it), and a name beside a dossier code
        and procedure points to a person as surely as a phone. History details hold only
        dates, agencies, outcomes and the clerk's reasons, no field of the applicant.
        When the retention has passed is the caller's to decide (it selects by closed_at)."""
        closed_at = self.closed_at
        if closed_at is None or self.personal_data_erased_at is not None:
            return False
        self.applicant = None
        self.return_address = None
        self.documents = ()
        self.personal_data_erased_at = at
        self.events.append(
            PersonalDataErased(at=at, status=self.status, due_at=None, closed_at=closed_at)
        )
        return True

    def _check(self, action: Action, at: datetime) -> None:
        check_allowed(action, self.status)
        if at < self.last_action_at:
            raise InvalidCommand("at", "must not be earlier than the dossier's last action")

    def _clock_step(self, step: Any, field_name: str = "at") -> DeadlineClock:
        try:
            result: DeadlineClock = step()
        except ClockError as exc:
            raise InvalidCommand(field_name, str(exc)) from exc
        return result

    def follow_calendar(self, calendar: WorkingCalendar) -> None:
        """Rebuild the clock under ``calendar``, the one in force: a day off or workday
        declared since the clock was computed moves it as it moves the tracker's
        (``DeadlineClock.replay``). So a resume continues the time left under the calendar in
        force, an extension is compared with the appointment in force, a result is marked
        against the deadline in force, and both services count from the same deadline.

        Every command that uses the clock calls it; the intake's command handler calls it
        before any action, so that what the action answers and records is current too.
        Rebuilt once per calendar: ``CalendarBook`` hands out a new calendar when it changes.
        """
        if calendar is self._followed or self.status not in PENDING_STATUSES:
            return  # a finished dossier's deadline is history (the tracker leaves it too)
        # A history the clock cannot replay keeps the clock it has, as the tracker does.
        with contextlib.suppress(ClockError):
            self.clock = self.clock.replay(calendar, self.received_at, self._transitions())
        self._followed = calendar

    def _transitions(self) -> list[ClockTransition]:
        """The clock's transitions since the receipt, from the history."""
        transitions = []
        for entry in self.history:
            kind = CLOCK_TRANSITIONS.get(entry.action)
            if kind is not None:
                promised = (
                    parse_dt(entry.details.get("due_at")) if kind is TransitionKind.EXTEND else None
                )
                transitions.append(ClockTransition(kind, entry.at, promised))
        return transitions

    def _record(
        self,
        action: str,
        at: datetime,
        event: DossierEvent,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.history.append(HistoryEntry(str(action), at, self.status, details or {}))
        self.events.append(event)


def time_limit_of(value: int, unit: str) -> TimeLimit:
    return TimeLimit(value=value, unit=TimeUnit(unit))
