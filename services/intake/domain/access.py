"""Who may see and act on what (phân quyền): the one place the intake decides it. The routes,
the use cases and the queries ask here.

- An admin (quản trị) sees and acts on every agency's dossiers and reports, and sets up the
  catalogue.
- A clerk (cán bộ một cửa) or a supervisor (lãnh đạo) belongs to one agency. They see the
  dossiers their agency received and those transferred to it for a step (the handling
  agency), and only their own agency's lists and reports. A clerk receives dossiers only for
  their agency's procedures.
- An agency's supervisor list holds phones: only an admin or one of that agency's
  supervisors reads it.

Which roles may call a route at all is said on the route (`require(...)` in api/deps.py);
this module says which agency's data a caller reaches once there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

Role = Literal["clerk", "supervisor", "admin"]
ROLES: tuple[Role, ...] = ("clerk", "supervisor", "admin")

# The dossier attributes (and columns) through which an agency sees a dossier: it received
# it, or holds it for a step. The repository filters on the same two (visible_to_agency).
VISIBLE_THROUGH: tuple[str, ...] = ("agency_code", "handling_agency")


@dataclass(frozen=True)
class Principal:
    """Who is calling: a clerk (cán bộ một cửa), a supervisor (lãnh đạo) or an admin."""

    id: str
    role: Role
    agency_code: str | None

    def __post_init__(self) -> None:
        # Every rule below reads "no agency" as "every agency": a clerk or supervisor without
        # one must not exist (tokens are refused without one; this holds it here too).
        if self.role != "admin" and not self.agency_code:
            raise ValueError(f"a {self.role} belongs to an agency")

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class HasAgencies(Protocol):
    agency_code: str
    handling_agency: str


def agency_scope(caller: Principal) -> str | None:
    """The one agency whose data the caller reaches; None: every agency (an admin)."""
    return None if caller.is_admin else caller.agency_code


def may_see(caller: Principal, dossier: HasAgencies) -> bool:
    """A dossier: an admin's, or the caller's agency received it or holds it."""
    scope = agency_scope(caller)
    return scope is None or scope in (getattr(dossier, name) for name in VISIBLE_THROUGH)


def may_see_agency(caller: Principal, agency_code: str | None) -> bool:
    """An agency's lists and reports (?agency=): an admin's, or the caller's own."""
    return caller.is_admin or (agency_code is not None and agency_code == caller.agency_code)


def may_receive_for(caller: Principal, procedure_agency: str) -> bool:
    """A dossier of a procedure: an admin for any agency, a clerk for their own."""
    return may_see_agency(caller, procedure_agency)


def may_read_supervisors(caller: Principal, agency_code: str) -> bool:
    """An agency's supervisor list (phones: personal data)."""
    return caller.is_admin or (caller.role == "supervisor" and caller.agency_code == agency_code)
