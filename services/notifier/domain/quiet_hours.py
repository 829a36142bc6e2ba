"""Quiet hours (giờ yên lặng): no SMS goes out inside the window; held ones leave at its end."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from services.core.domain.calendar import VN_TZ


@dataclass(frozen=True)
class QuietHours:
    """A daily window in Vietnam time, e.g. 21:00–07:00; it may run over midnight."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> QuietHours | None:
        """ "HH:MM-HH:MM", or None for an empty text or an empty window (start == end)."""
        if not text.strip():
            return None
        first, sep, second = text.strip().partition("-")
        if not sep:
            raise ValueError(f"quiet hours must look like 21:00-07:00, got {text!r}")
        start, end = _hhmm(first), _hhmm(second)
        return None if start == end else cls(start, end)

    def contains(self, at: datetime) -> bool:
        local = _local(at).time()
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def release_at(self, at: datetime) -> datetime:
        """The end of the window holding ``at``; ``at`` itself when outside it."""
        if not self.contains(at):
            return at
        local = _local(at)
        end = datetime.combine(local.date(), self.end, tzinfo=VN_TZ)
        if end <= local:
            end += timedelta(days=1)
        return end


def _local(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("quiet hours need a timezone-aware time")
    return at.astimezone(VN_TZ)


def _hhmm(text: str) -> time:
    hours, sep, minutes = text.strip().partition(":")
    if not (sep and hours.isdigit() and minutes.isdigit()):
        raise ValueError(f"not a time of day (HH:MM): {text!r}")
    return time(int(hours), int(minutes))
