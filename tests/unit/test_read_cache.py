"""Values read from the database and kept a few seconds (core.runtime.read_cache): one read
at a time per key, read again in the background before they expire, never kept past their
time from when their read began."""

from __future__ import annotations

import asyncio

import pytest

from services.core.runtime.read_cache import REFRESH_AHEAD, ReadCache


class Monotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Source:
    """The database: each read waits for the test to let it through (`gate`) when held."""

    def __init__(self, value: str | None = "v1") -> None:
        self.value: str | None = value
        self.reads = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: Exception | None = None

    async def read(self) -> str | None:
        self.reads += 1
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return self.value


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_callers_that_miss_together_share_one_read() -> None:
    cache: ReadCache[str, str] = ReadCache(1.0, monotonic=Monotonic())
    source = Source()
    source.gate.clear()
    waiting = [asyncio.ensure_future(cache.get("k", source.read)) for _ in range(20)]
    await settle()
    source.gate.set()
    assert await asyncio.gather(*waiting) == ["v1"] * 20
    assert source.reads == 1 and cache.reads == 1
    assert await cache.get("k", source.read) == "v1"  # held now
    assert source.reads == 1


async def test_a_value_near_its_end_is_served_while_read_again_in_the_background() -> None:
    clock = Monotonic()
    cache: ReadCache[str, str] = ReadCache(1.0, monotonic=clock)
    source = Source()
    assert await cache.get("k", source.read) == "v1"
    clock.now += 1.0 - REFRESH_AHEAD / 2  # in its last quarter
    source.value, source.gate = "v2", asyncio.Event()  # the next read is held
    assert await cache.get("k", source.read) == "v1"  # served at once, not waiting
    assert await cache.get("k", source.read) == "v1"
    await settle()
    assert source.reads == 2 and cache.reads == 2  # one read again, not one per caller
    began = clock.now
    source.gate.set()
    await settle()
    assert await cache.get("k", source.read) == "v2"
    clock.now = began + 1.0 - REFRESH_AHEAD - 0.01  # kept a second from when its read began
    assert cache.fresh("k") == "v2"
    clock.now = began + 1.0
    assert cache.fresh("k") is None


async def test_a_value_gone_from_the_database_is_dropped_by_the_read_ahead() -> None:
    """A revoked token: the background read finds nothing and the next caller is refused."""
    clock = Monotonic()
    cache: ReadCache[str, str] = ReadCache(1.0, monotonic=clock)
    source = Source()
    await cache.get("k", source.read)
    clock.now += 0.9
    source.value = None
    assert await cache.get("k", source.read) == "v1"
    await settle()
    assert cache.fresh("k") is None
    assert await cache.get("k", source.read) is None


async def test_a_failed_background_read_raises_to_nobody_and_the_value_expires() -> None:
    clock = Monotonic()
    cache: ReadCache[str, str] = ReadCache(1.0, monotonic=clock)
    source = Source()
    await cache.get("k", source.read)
    clock.now += 0.9
    source.fail = ConnectionError("database down")
    assert await cache.get("k", source.read) == "v1"
    await settle()
    assert await cache.get("k", source.read) == "v1"  # still within its second
    clock.now += 0.1
    with pytest.raises(ConnectionError):
        await cache.get("k", source.read)  # expired: this caller's read fails to it


async def test_forget_drops_values_and_a_read_begun_before_it_stores_nothing() -> None:
    """The catalogue changed in this process: nothing read before the change is kept."""
    cache: ReadCache[str, str] = ReadCache(5.0, monotonic=Monotonic())
    source = Source()
    assert await cache.get("k", source.read) == "v1"
    cache.forget()
    assert cache.fresh("k") is None
    source.gate.clear()
    before = asyncio.ensure_future(cache.get("k", source.read))
    await settle()
    cache.forget()
    source.value = "v2"
    source.gate.set()
    assert await before == "v2"  # its caller gets what was read
    assert cache.fresh("k") is None  # but it is not kept
    assert await cache.get("k", source.read) == "v2"
    assert source.reads == 3


async def test_a_caller_that_goes_away_does_not_cancel_the_read_others_wait_for() -> None:
    cache: ReadCache[str, str] = ReadCache(1.0, monotonic=Monotonic())
    source = Source()
    source.gate.clear()
    first = asyncio.ensure_future(cache.get("k", source.read))
    second = asyncio.ensure_future(cache.get("k", source.read))
    await settle()
    first.cancel()
    await settle()
    source.gate.set()
    assert await second == "v1"
    assert source.reads == 1 and cache.fresh("k") == "v1"
