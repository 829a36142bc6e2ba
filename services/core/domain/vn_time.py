"""How a time is written for a person in Vietnam: the texts, the lookup page and the slips
show the same "HH:MM dd/mm/yyyy", in Vietnam time; the texts and the dashboard say how late
a dossier is the same way. Pure."""

from __future__ import annotations

from datetime import datetime

from services.core.domain.calendar import VN_TZ
from services.core.domain.deadlines import MINUTES_PER_WORKING_DAY


def minute_text(at: datetime) -> str:
    """ "HH:MM dd/mm/yyyy" in Vietnam time, e.g. "14:00 20/01/2026"."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"a time shown to a person must be timezone-aware, got {at!r}")
    return at.astimezone(VN_TZ).strftime("%H:%M %d/%m/%Y")


def lateness_text(working_minutes: int, minutes_per_day: int = MINUTES_PER_WORKING_DAY) -> str:
    """How late, in working time: "2 ngày 3 giờ", "5 giờ", "dưới 1 giờ"."""
    if working_minutes < 0 or minutes_per_day < 60:
        raise ValueError("working_minutes must be >= 0 and minutes_per_day >= 60")
    days, rest = divmod(working_minutes, minutes_per_day)
    hours = rest // 60
    parts = [f"{days} ngày"] if days else []
    if hours:
        parts.append(f"{hours} giờ")
    return " ".join(parts) or "dưới 1 giờ"
