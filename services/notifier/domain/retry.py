"""When to try a provider again (thử lại): exponential backoff with jitter, up to a horizon."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class RetryPolicy:
    """Attempt n waits ``base * 2**(n-1)`` capped at ``cap``, the second half of it drawn at
    random (so a gateway that comes back is not hit by every notice at the same instant), and
    at least what the provider asked for (Retry-After). Past ``horizon`` from the first
    attempt the notice has failed for good."""

    base: timedelta = timedelta(seconds=5)
    cap: timedelta = timedelta(minutes=10)
    horizon: timedelta = timedelta(hours=24)

    def delay(self, attempts: int, jitter: float, retry_after: float | None = None) -> timedelta:
        """The wait after ``attempts`` failed attempts; ``jitter`` is uniform in [0, 1)."""
        if attempts < 1 or not 0 <= jitter <= 1:
            raise ValueError("attempts must be >= 1 and jitter within [0, 1]")
        full: timedelta = min(self.cap, self.base * (2 ** min(attempts - 1, 30)))
        wait: timedelta = full / 2 + full / 2 * jitter
        if retry_after is not None and retry_after > 0:
            wait = max(wait, timedelta(seconds=min(retry_after, self.cap.total_seconds())))
        return wait

    def next_attempt(
        self,
        attempts: int,
        first_attempt_at: datetime,
        now: datetime,
        jitter: float,
        retry_after: float | None = None,
    ) -> datetime | None:
        """When to try again, or None when the horizon is spent."""
        at = now + self.delay(attempts, jitter, retry_after)
        if at - first_attempt_at > self.horizon:
            return None
        return at
