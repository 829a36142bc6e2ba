"""A token bucket per provider: at most ``burst`` calls at once, ``rate_per_second`` on average.

Gateways throttle (and some bill or ban) a client that sends faster than agreed, so every
call to a provider first takes a token from that provider's bucket.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class TokenBucket:
    """Callers wait their turn in arrival order: the lock is held while the head one sleeps.

    ``rate_per_second <= 0`` means unlimited (acquire returns at once). The clock and the
    sleep are injected so tests can assert the exact waits without waiting.
    """

    def __init__(
        self,
        rate_per_second: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate_per_second > 0 and burst < 1:
            raise ValueError("burst must be at least 1")
        self._rate = rate_per_second
        self._burst = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._last = clock()
        # asyncio.Lock wakes waiters first-come first-served: that is what makes it fair.
        self._lock = asyncio.Lock()

    @property
    def unlimited(self) -> bool:
        return self._rate <= 0

    async def acquire(self) -> None:
        """Take one token, waiting until the bucket has one."""
        if self.unlimited:
            return
        async with self._lock:
            self._refill()
            if self._tokens < 1.0:
                await self._sleep((1.0 - self._tokens) / self._rate)
                self._refill()
            # After the computed wait the bucket holds one token up to float rounding (or a
            # sleep that woke a hair early): clamp rather than sleep again for nanoseconds.
            self._tokens = max(self._tokens - 1.0, 0.0)

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(now - self._last, 0.0)  # a clock that steps back adds nothing
        self._last = now
        self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
