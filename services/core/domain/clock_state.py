"""A ``DeadlineClock`` to and from a JSON-ready dict: one format for every service's state.

Datetimes are ISO 8601 strings in Vietnam time; ``clock_from_state(clock_to_state(c)) == c``.
States stored by earlier versions load too: see ``clock_from_state``.
"""

from __future__ import annotations

from datetime import date, datetime, time
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
        "version": c.version,
        "changed_at": iso(c.changed_at),
        "online": c.online,
        "last_day": c.last_day.isoformat() if c.last_day is not None else None,
        "original_due_at": iso(c.original_due_at),
    }


def clock_from_state(
    s: dict[str, Any], *, original_due_at: datetime | None = None
) -> DeadlineClock:
    """The clock of a stored state. ``original_due_at``: the extension's original deadline
    where a service kept it beside the clock before the clock held it.

    Older states lack what later rules added, and load as follows. ``online`` absent: False,
    the rule their receipt was counted under (the tracker never stored the channel; the
    intake and the tracker then agree). ``last_day`` absent on a calendar-day clock: the
    deadline's own day, the same unless a day off moved the end (a resume may then give a day
    or two more than the law). ``remaining_seconds`` (calendar days, before ``last_day``) is
    no longer read.
    """
    limit = TimeLimit(int(s["limit"]["value"]), TimeUnit(s["limit"]["unit"]))
    due = parse_required_dt(s["due_at"])
    last_day: date | None = None
    if s.get("last_day"):
        last_day = date.fromisoformat(s["last_day"])
    elif limit.working_minutes is None:
        last_day = due.date()
    return DeadlineClock(
        limit=limit,
        cutoff=time.fromisoformat(s["cutoff"]) if s.get("cutoff") else None,
        started_at=parse_required_dt(s["started_at"]),
        due_at=due,
        stopped_at=parse_dt(s.get("stopped_at")),
        remaining_minutes=s.get("remaining_minutes"),
        version=int(s["version"]),
        changed_at=parse_dt(s.get("changed_at")),
        online=bool(s.get("online", False)),
        last_day=last_day,
        original_due_at=parse_dt(s.get("original_due_at")) or original_due_at,
    )
