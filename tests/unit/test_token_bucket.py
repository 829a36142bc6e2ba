"""TokenBucket on a fake clock whose sleep moves it forward: the waits are asserted exactly."""

from __future__ import annotations

import asyncio

import pytest

from services.notifier.adapters.rate_limit import TokenBucket


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)  # let other tasks run, as a real sleep would

    def bucket(self, rate: float, burst: int) -> TokenBucket:
        return TokenBucket(rate, burst, clock=self.clock, sleep=self.sleep)


async def test_a_full_bucket_lets_the_burst_through_without_waiting() -> None:
    time = FakeTime()
    bucket = time.bucket(rate=2, burst=3)
    for _ in range(3):
        await bucket.acquire()
    assert time.sleeps == []


async def test_past_the_burst_each_call_waits_one_interval() -> None:
    time = FakeTime()
    bucket = time.bucket(rate=2, burst=3)
    for _ in range(6):
        await bucket.acquire()
    assert time.sleeps == [0.5, 0.5, 0.5]


async def test_a_part_token_shortens_the_wait() -> None:
    time = FakeTime()
    bucket = time.bucket(rate=4, burst=1)
    await bucket.acquire()
    time.now += 0.1  # 0.4 of a token back
    await bucket.acquire()
    assert time.sleeps == [pytest.approx(0.15)]


async def test_idle_time_refills_up_to_the_burst_only() -> None:
    time = FakeTime()
    bucket = time.bucket(rate=10, burst=2)
    await bucket.acquire()
    await bucket.acquire()
    time.now += 3600
    for _ in range(3):
        await bucket.acquire()
    assert time.sleeps == [0.1]


async def test_waiters_are_served_in_arrival_order_one_interval_apart() -> None:
    time = FakeTime()
    bucket = time.bucket(rate=1, burst=1)
    served: list[tuple[int, float]] = []

    async def take(index: int) -> None:
        await bucket.acquire()
        served.append((index, time.now))

    await asyncio.gather(*(take(i) for i in range(5)))
    assert served == [(0, 1000.0), (1, 1001.0), (2, 1002.0), (3, 1003.0), (4, 1004.0)]
    assert time.sleeps == [1.0, 1.0, 1.0, 1.0]


async def test_no_debt_after_a_crowd_one_interval_gives_exactly_one_free_call() -> None:
    time = FakeTime()
    bucket = time.bucket(rate=5, burst=2)
    await asyncio.gather(*(bucket.acquire() for _ in range(10)))
    time.sleeps.clear()
    time.now += 0.2  # one token's worth
    await bucket.acquire()
    assert time.sleeps == []
    await bucket.acquire()
    assert time.sleeps == [pytest.approx(0.2)]


async def test_a_clock_that_steps_back_adds_no_tokens() -> None:
    time = FakeTime()
    bucket = time.bucket(rate=1, burst=1)
    await bucket.acquire()
    time.now -= 50
    await bucket.acquire()
    assert time.sleeps == [1.0]


async def test_rate_zero_or_below_is_unlimited() -> None:
    time = FakeTime()
    for rate in (0.0, -1.0):
        bucket = time.bucket(rate=rate, burst=0)
        assert bucket.unlimited
        for _ in range(1000):
            await bucket.acquire()
    assert time.sleeps == []


def test_a_limited_bucket_needs_room_for_one_call() -> None:
    with pytest.raises(ValueError):
        TokenBucket(1.0, 0)
