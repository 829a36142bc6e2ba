"""Values read from the database, kept for a few seconds, that no request waits to read again.

Why. A request that needs a row it read a moment ago (a bearer token's holder, a procedure
and its agency's office hours) should not pay a transaction for it: under load that was a
fifth of a POST /dossiers. But a plain expiring cache makes every request that arrives once
an entry has expired read it again, all at once, and each of those reads queues for the
database connection behind the group commit's batches (on SQLite there is one): measured in
`motcua up` at 64 clerks (bench/README.md, "Intake throughput"), the bearer token's check
took up to 1.3 s at its expiry, and it was most of the p99.

So here:
- a key is read once at a time: the callers that miss it together wait for the same read;
- a value in the last quarter of its life is read again in the background by the first
  caller that sees it there, who is served the value still held: a key in steady use is
  never missing, and no caller waits for its read;
- a value is kept `ttl` seconds from when its read *began*, so nothing read before a
  change (a revoked token) is served longer than `ttl` after it;
- `forget()` (this process changed what is read) drops the values and lets no read begun
  before it store its value; None (not found) is not kept: something created a moment ago
  elsewhere is found at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

REFRESH_AHEAD = 0.25  # the share of its life in which a value being served is read again


class ReadCache(Generic[K, V]):
    def __init__(
        self,
        ttl_seconds: float,
        *,
        max_entries: int = 10_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self.monotonic = monotonic
        self._entries: dict[K, tuple[float, V]] = {}
        self._reading: dict[K, asyncio.Future[V | None]] = {}
        self._generation = 0
        self.reads = 0  # reads begun: what the tests count

    def fresh(self, key: K) -> V | None:
        """The value held for `key` if it is still valid, without reading."""
        entry = self._entries.get(key)
        return entry[1] if entry is not None and entry[0] > self.monotonic() else None

    async def get(self, key: K, read: Callable[[], Awaitable[V | None]]) -> V | None:
        """The value of `key`: the one held, or what `read()` returns (shared with the
        callers that miss it meanwhile). A failed read raises to the callers waiting for it."""
        entry = self._entries.get(key)
        if entry is not None:
            left = entry[0] - self.monotonic()
            if left > 0:
                if left < self.ttl * REFRESH_AHEAD:
                    self._begin(key, read)  # served the held value meanwhile
                return entry[1]
        # Shielded: a caller that goes away (a client hanging up) does not cancel the read
        # the others wait for.
        return await asyncio.shield(self._begin(key, read))

    def forget(self) -> None:
        """Drop every value; reads already begun will not store theirs."""
        self._entries.clear()
        self._reading.clear()
        self._generation += 1

    def _begin(self, key: K, read: Callable[[], Awaitable[V | None]]) -> asyncio.Future[V | None]:
        reading = self._reading.get(key)
        if reading is None:
            self.reads += 1
            reading = asyncio.ensure_future(self._read(key, read, self._generation))
            self._reading[key] = reading
            reading.add_done_callback(lambda done: self._ended(key, done))
        return reading

    async def _read(
        self, key: K, read: Callable[[], Awaitable[V | None]], generation: int
    ) -> V | None:
        began = self.monotonic()
        value = await read()
        if generation == self._generation:
            if value is None:
                self._entries.pop(key, None)
            else:
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()  # a few seconds' worth: read again when asked
                self._entries[key] = (began + self.ttl, value)
        return value

    def _ended(self, key: K, done: asyncio.Future[V | None]) -> None:
        if self._reading.get(key) is done:
            del self._reading[key]
        if not done.cancelled():
            # A background read's failure is nobody's to raise: the value held expires, and
            # the next caller's read raises to it.
            done.exception()


__all__ = ["REFRESH_AHEAD", "ReadCache"]
