"""The dossier lifecycle (vòng đời hồ sơ): which action may happen in which status.

One table, read by the intake to refuse forbidden actions and by anyone who needs to know
whether a status is final. Statuses are those of docs/domain.md, "Lifecycle of a dossier".
"""

from __future__ import annotations

from enum import StrEnum

from schemas.events import DossierStatus

S = DossierStatus


class Action(StrEnum):
    START = "start"
    TRANSFER = "transfer"
    REQUEST_SUPPLEMENT = "request-supplement"
    RECEIVE_SUPPLEMENT = "receive-supplement"
    PAUSE = "pause"
    RESUME = "resume"
    EXTEND = "extend"
    COMPLETE = "complete"
    RETURN = "return"
    REJECT = "reject"
    WITHDRAW = "withdraw"


_WORKING = frozenset({S.RECEIVED, S.IN_PROGRESS, S.TRANSFERRED})
_OPEN = _WORKING | {S.AWAITING_SUPPLEMENT, S.PAUSED}

ALLOWED_FROM: dict[Action, frozenset[DossierStatus]] = {
    Action.START: frozenset({S.RECEIVED}),
    Action.TRANSFER: _WORKING,
    Action.REQUEST_SUPPLEMENT: _WORKING,
    Action.RECEIVE_SUPPLEMENT: frozenset({S.AWAITING_SUPPLEMENT}),
    Action.PAUSE: _WORKING,
    Action.RESUME: frozenset({S.PAUSED}),
    Action.EXTEND: _WORKING | {S.PAUSED},
    Action.COMPLETE: _WORKING,
    Action.RETURN: frozenset({S.RESULT_READY}),
    Action.REJECT: _OPEN,
    Action.WITHDRAW: _OPEN,
}

FINAL_STATUSES = frozenset({S.RETURNED, S.REJECTED, S.WITHDRAWN})
CLOCK_STOPPED_STATUSES = frozenset({S.AWAITING_SUPPLEMENT, S.PAUSED})
#: Statuses in which the agency still owes a result: the deadline matters.
PENDING_STATUSES = _OPEN


class ForbiddenAction(Exception):
    """The action is not allowed in the dossier's current status (→ HTTP 409)."""

    def __init__(self, action: Action, status: DossierStatus) -> None:
        super().__init__(f"'{action}' is not allowed when the dossier is '{status}'")
        self.action = action
        self.status = status


def check_allowed(action: Action, status: DossierStatus) -> None:
    if status not in ALLOWED_FROM[action]:
        raise ForbiddenAction(action, status)
