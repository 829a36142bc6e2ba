"""Who may see and act on what: the intake's one module for it (services.intake.domain.access)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from services.intake.domain import access
from services.intake.domain.access import Principal

ADMIN = Principal("a", "admin", None)
CLERK = Principal("c", "clerk", "UBND-Q1")
SUPERVISOR = Principal("s", "supervisor", "UBND-Q1")
OTHER = Principal("o", "supervisor", "STNMT")


@dataclass
class D:
    agency_code: str
    handling_agency: str


@pytest.mark.parametrize(
    ("caller", "dossier", "sees"),
    [
        (ADMIN, D("STNMT", "STNMT"), True),
        (CLERK, D("UBND-Q1", "UBND-Q1"), True),  # received by the clerk's agency
        (CLERK, D("UBND-Q1", "STNMT"), True),  # received, now with another for a step
        (OTHER, D("UBND-Q1", "STNMT"), True),  # held by the caller's agency for a step
        (OTHER, D("UBND-Q1", "UBND-Q1"), False),
    ],
)
def test_a_dossier_is_seen_by_admins_and_the_agencies_that_received_or_hold_it(
    caller: Principal, dossier: D, sees: bool
) -> None:
    assert access.may_see(caller, dossier) is sees


def test_a_clerk_or_supervisor_without_an_agency_cannot_exist() -> None:
    with pytest.raises(ValueError, match="belongs to an agency"):
        Principal("x", "clerk", None)  # it would read as "every agency"


def test_lists_reports_receipts_and_supervisor_lists_follow_the_callers_agency() -> None:
    assert access.agency_scope(ADMIN) is None and access.agency_scope(CLERK) == "UBND-Q1"
    assert access.may_see_agency(ADMIN, "STNMT") and access.may_see_agency(CLERK, "UBND-Q1")
    assert not access.may_see_agency(CLERK, "STNMT") and not access.may_see_agency(CLERK, None)
    assert access.may_receive_for(CLERK, "UBND-Q1") and not access.may_receive_for(CLERK, "X")
    assert access.may_read_supervisors(SUPERVISOR, "UBND-Q1")
    assert not access.may_read_supervisors(CLERK, "UBND-Q1")  # phones: not a clerk's need
    assert not access.may_read_supervisors(OTHER, "UBND-Q1")
    assert access.may_read_supervisors(ADMIN, "UBND-Q1")
