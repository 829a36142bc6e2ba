"""A dossier as the JSON document kept in its row (the state column), and back."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from schemas.events import (
    Address,
    Applicant,
    DossierStatus,
)
from services.core.domain.clock_state import clock_from_state, clock_to_state, iso, parse_dt
from services.core.domain.deadlines import TimeLimit, TimeUnit
from services.intake.domain.model import Document, Dossier, HistoryEntry, Procedure

# --- state (de)serialisation -------------------------------------------------------------


def dossier_to_state(d: Dossier) -> dict[str, Any]:
    return {
        "id": d.id,
        "code": d.code,
        "agency_code": d.agency_code,
        "procedure": _procedure_state(d.procedure),
        "applicant": d.applicant.model_dump(mode="json") if d.applicant else None,
        "channel": d.channel,
        "return_method": d.return_method,
        "return_address": d.return_address.model_dump(mode="json") if d.return_address else None,
        "received_at": d.received_at.isoformat(),
        "documents": [{"name": doc.name, "copies": doc.copies} for doc in d.documents],
        "clock": clock_to_state(d.clock),
        "status": d.status.value,
        "handling_agency": d.handling_agency,
        "status_before_pause": d.status_before_pause.value if d.status_before_pause else None,
        # Also in the clock, which is read first; kept here for a reader of the older format.
        "original_due_at": iso(d.original_due_at),
        "supplement_requests": d.supplement_requests,
        "outcome": d.outcome,
        "finished_at": iso(d.finished_at),
        "personal_data_erased_at": iso(d.personal_data_erased_at),
        "history": [
            {
                "action": h.action,
                "at": h.at.isoformat(),
                "status": h.status.value,
                "details": h.details,
            }
            for h in d.history
        ],
    }


def dossier_from_state(s: dict[str, Any]) -> Dossier:
    return Dossier(
        id=s["id"],
        code=s["code"],
        agency_code=s["agency_code"],
        procedure=_procedure_from_state(s["procedure"]),
        applicant=Applicant.model_validate(s["applicant"]) if s["applicant"] else None,
        channel=s["channel"],
        return_method=s["return_method"],
        return_address=Address.model_validate(s["return_address"]) if s["return_address"] else None,
        received_at=datetime.fromisoformat(s["received_at"]),
        # Absent from states stored before the papers were listed: none listed.
        documents=tuple(Document(doc["name"], doc["copies"]) for doc in s.get("documents", ())),
        clock=clock_from_state(s["clock"], original_due_at=parse_dt(s["original_due_at"])),
        status=DossierStatus(s["status"]),
        handling_agency=s["handling_agency"],
        status_before_pause=DossierStatus(s["status_before_pause"])
        if s["status_before_pause"]
        else None,
        supplement_requests=s["supplement_requests"],
        outcome=s["outcome"],
        finished_at=parse_dt(s["finished_at"]),
        # Absent from states stored before erasure existed: not erased.
        personal_data_erased_at=parse_dt(s.get("personal_data_erased_at")),
        history=[
            HistoryEntry(
                h["action"],
                datetime.fromisoformat(h["at"]),
                DossierStatus(h["status"]),
                h["details"],
            )
            for h in s["history"]
        ],
    )


def _procedure_state(p: Procedure) -> dict[str, Any]:
    return {
        "code": p.code,
        "name": p.name,
        "agency_code": p.agency_code,
        "time_limit": {"value": p.time_limit.value, "unit": p.time_limit.unit.value},
        "cutoff_time": p.cutoff_time.strftime("%H:%M") if p.cutoff_time else None,
        "postal_return": p.postal_return,
    }


def _procedure_from_state(s: dict[str, Any]) -> Procedure:
    return Procedure(
        code=s["code"],
        name=s["name"],
        agency_code=s["agency_code"],
        time_limit=TimeLimit(s["time_limit"]["value"], TimeUnit(s["time_limit"]["unit"])),
        cutoff_time=time.fromisoformat(s["cutoff_time"]) if s["cutoff_time"] else None,
        postal_return=s["postal_return"],
    )
