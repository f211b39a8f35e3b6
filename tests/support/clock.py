"""A clock that moves only when a test says so, for the engine's parts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio
import anyio.lowlevel

from controller.reconcile.clock import Clock


class ManualClock(Clock):
    """Monotonic and wall time that advance together, by hand.

    ``sleep_until`` does not wait: it yields once, so a loop driven by this clock is stepped
    by the test rather than by time passing.
    """

    def __init__(self, start: datetime | None = None, monotonic: float = 1000.0) -> None:
        self._wall = start or datetime.now(UTC).replace(microsecond=0)
        self._mono = monotonic

    def monotonic(self) -> float:
        return self._mono

    def now(self) -> datetime:
        return self._wall

    def advance(self, seconds: float) -> None:
        self._mono += seconds
        self._wall += timedelta(seconds=seconds)

    async def sleep_until(self, deadline: float, stop: anyio.Event) -> None:
        await anyio.lowlevel.checkpoint()
