"""Waiting for an event with a time limit, in a way a task can always be cancelled out of.

Why not `asyncio.wait_for(event.wait(), seconds)`: on Python 3.11, when the event is set at
the moment the waiting task is cancelled, `wait_for` may return the event's result and drop
the cancellation. A loop around it then never ends, and whoever stops the task waits for
ever (the notifier's dispatcher did, when a wake-up and the stop came together).
`asyncio.timeout` only turns its own deadline into TimeoutError and lets a cancellation
through.
"""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, seconds: float) -> bool:
    """True when `event` is set within `seconds`, False when the time ran out."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True
