"""Waiting for the world to catch up: the simulator and the daemon push nothing to a test.

Every wait is bounded; a timeout names what was awaited.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import anyio


async def eventually(
    check: Callable[[], Awaitable[bool]],
    *,
    within_s: float = 20.0,
    interval_s: float = 0.05,
    what: str = "",
) -> float:
    """Poll ``check`` until it holds; the wall-clock time it first held.

    Raises AssertionError naming ``what`` after ``within_s`` seconds.
    """
    deadline = time.monotonic() + within_s
    while True:
        if await check():
            return time.time()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s:g} s waiting for {what}")
        await anyio.sleep(interval_s)


def wait_until(
    check: Callable[[], bool], within_s: float, interval_s: float = 0.25
) -> float | None:
    """For code without an event loop: seconds until ``check()`` held, None if it did not."""
    start = time.monotonic()
    while time.monotonic() - start < within_s:
        if check():
            return time.monotonic() - start
        time.sleep(interval_s)
    return None


async def holds(value: bool) -> bool:
    """A plain condition as a check: ``eventually(lambda: holds(x.ready))``."""
    return value
