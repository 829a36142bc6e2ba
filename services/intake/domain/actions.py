"""What a clerk asks of the intake, as plain data: receive a dossier, or act on one.

The HTTP layer turns a request body into one of these (api/dossiers.py); so does anything
else that acts on a dossier (the notifier's "delivered" returns it: postal_returns.py). The
use cases (services/intake/commands.py) take them, and `decide` says which call of the
dossier model each one is. ``at`` is when the action happened, for importing history; None
is now.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from schemas.events import Address, Applicant
from services.core.domain.calendar import VN_TZ, WorkingCalendar
from services.intake.domain.model import Document, Dossier


@dataclass(frozen=True)
class ReceiveDossier:
    """Tiếp nhận hồ sơ."""

    procedure_code: str
    applicant: Applicant
    channel: str
    return_method: str
    return_address: Address | None = None
    received_at: datetime | None = None
    documents: tuple[Document, ...] = ()


@dataclass(frozen=True)
class Start:
    at: datetime | None = None
    unit: str | None = None


@dataclass(frozen=True)
class Transfer:
    to_agency: str
    allotted_hours: int | None = None
    at: datetime | None = None


@dataclass(frozen=True)
class RequestSupplement:
    items: Sequence[str]
    reason: str
    at: datetime | None = None


@dataclass(frozen=True)
class ReceiveSupplement:
    at: datetime | None = None


@dataclass(frozen=True)
class Pause:
    reason: str
    at: datetime | None = None


@dataclass(frozen=True)
class Resume:
    at: datetime | None = None


@dataclass(frozen=True)
class Extend:
    new_due_at: datetime
    reason: str
    at: datetime | None = None


@dataclass(frozen=True)
class Complete:
    at: datetime | None = None


@dataclass(frozen=True)
class ReturnResult:
    at: datetime | None = None


@dataclass(frozen=True)
class Reject:
    reason: str
    at: datetime | None = None


@dataclass(frozen=True)
class Withdraw:
    reason: str
    at: datetime | None = None


DossierAction = (
    Start
    | Transfer
    | RequestSupplement
    | ReceiveSupplement
    | Pause
    | Resume
    | Extend
    | Complete
    | ReturnResult
    | Reject
    | Withdraw
)

DossierChange = Callable[[Dossier, datetime, WorkingCalendar], None]


def decide(action: DossierAction) -> DossierChange:
    """The dossier model's call an action stands for (at, and the agency's calendar, given)."""
    match action:
        case Start(unit=unit):
            return lambda d, at, _c: d.start(at, unit)
        case Transfer(to_agency=to, allotted_hours=hours):
            return lambda d, at, c: d.transfer(at, to, hours, c)
        case RequestSupplement(items=items, reason=reason):
            return lambda d, at, c: d.request_supplement(at, list(items), reason, c)
        case ReceiveSupplement():
            return lambda d, at, c: d.receive_supplement(at, c)
        case Pause(reason=reason):
            return lambda d, at, c: d.pause(at, reason, c)
        case Resume():
            return lambda d, at, c: d.resume(at, c)
        case Extend(new_due_at=due, reason=reason):
            return lambda d, at, c: d.extend(at, due.astimezone(VN_TZ), reason, c)
        case Complete():
            return lambda d, at, c: d.complete(at, c)
        case ReturnResult():
            return lambda d, at, _c: d.return_result(at)
        case Reject(reason=reason):
            return lambda d, at, _c: d.reject(at, reason)
        case Withdraw(reason=reason):
            return lambda d, at, _c: d.withdraw(at, reason)
    raise AssertionError(f"no decision for {action!r}")  # pragma: no cover
