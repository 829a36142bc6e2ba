"""A ``DeadlineClock`` to and from a JSON-ready dict: one format for every service's state.

Datetimes are ISO 8601 strings in Vietnam time; ``clock_from_state(clock_to_state(c)) == c``.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from services.core.domain.calendar import VN_TZ
from services.core.domain.deadlines import DeadlineClock, TimeLimit, TimeUnit


def iso(value: datetime | None) -> str | None:
    return value.astimezone(VN_TZ).isoformat() if value is not None else None


def parse_dt(value: Any) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        raise ValueError(f"naive datetime in stored state: {value!r}")
    return parsed.astimezone(VN_TZ)


def parse_required_dt(value: Any) -> datetime:
    parsed = parse_dt(value)
    if parsed is None:
        raise ValueError("missing datetime in stored state")
    return parsed


def clock_to_state(c: DeadlineClock) -> dict[str, Any]:
    return {
        "limit": {"value": c.limit.value, "unit": c.limit.unit.value},
        "cutoff": c.cutoff.strftime("%H:%M") if c.cutoff is not None else None,
        "started_at": iso(c.started_at),
        "due_at": iso(c.due_at),
        "stopped_at": iso(c.stopped_at),
        "remaining_minutes": c.remaining_minutes,
        "remaining_seconds": c.remaining_seconds,
        "version": c.version,
        "changed_at": iso(c.changed_at),
    }


def clock_from_state(s: dict[str, Any]) -> DeadlineClock:
    return DeadlineClock(
        limit=TimeLimit(int(s["limit"]["value"]), TimeUnit(s["limit"]["unit"])),
        cutoff=time.fromisoformat(s["cutoff"]) if s.get("cutoff") else None,
        started_at=parse_required_dt(s["started_at"]),
        due_at=parse_required_dt(s["due_at"]),
        stopped_at=parse_dt(s.get("stopped_at")),
        remaining_minutes=s.get("remaining_minutes"),
        remaining_seconds=s.get("remaining_seconds"),
        version=int(s["version"]),
        changed_at=parse_dt(s.get("changed_at")),
    )
