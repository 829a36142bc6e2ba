"""How a time is written for a person in Vietnam: the texts, the lookup page and the slips
show the same "HH:MM dd/mm/yyyy", in Vietnam time. Pure."""

from __future__ import annotations

from datetime import datetime

from services.core.domain.calendar import VN_TZ


def minute_text(at: datetime) -> str:
    """ "HH:MM dd/mm/yyyy" in Vietnam time, e.g. "14:00 20/01/2026"."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"a time shown to a person must be timezone-aware, got {at!r}")
    return at.astimezone(VN_TZ).strftime("%H:%M %d/%m/%Y")
