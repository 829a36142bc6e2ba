"""Waiting for an event with a time limit (core.runtime.waiting)."""

from __future__ import annotations

import asyncio

import pytest

from services.core.runtime.waiting import wait_event


async def test_a_set_event_ends_the_wait_and_an_unset_one_times_out() -> None:
    event = asyncio.Event()
    assert await wait_event(event, 0.01) is False
    event.set()
    assert await wait_event(event, 10) is True


@pytest.mark.parametrize("turns_before_cancel", range(4))
async def test_a_cancel_that_comes_with_the_wake_up_still_stops_the_loop(
    turns_before_cancel: int,
) -> None:
    """The dispatcher's loop: woken and stopped at the same moment, it must stop."""
    event, waiting = asyncio.Event(), asyncio.Event()

    async def loop() -> None:
        while True:
            waiting.set()
            await wait_event(event, 10)
            event.clear()

    task = asyncio.create_task(loop())
    await waiting.wait()  # the loop is waiting for the event
    event.set()
    for _ in range(turns_before_cancel):
        await asyncio.sleep(0)  # lets the wake-up get that far first
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(5):
            await task
