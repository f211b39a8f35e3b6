"""The engine's one clock: monotonic time for intervals, wall time for records.

Every part takes its time from the :class:`Clock` it is given, never from ``anyio`` or
``datetime`` directly, so a test can drive the engine with a clock it moves by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime

import anyio


class Clock:
    """The real clock: ``anyio.current_time()`` and ``datetime.now(UTC)``."""

    def monotonic(self) -> float:
        return anyio.current_time()

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, deadline: float, stop: anyio.Event) -> None:
        """Sleep until ``deadline`` (monotonic) or until ``stop`` is set, whichever is first."""
        with anyio.move_on_after(max(0.0, deadline - self.monotonic())):
            await stop.wait()
