"""Wake-ups: when the next pass runs, and whether it has anything new to plan.

A pass runs every poll interval, at once when poked (a sweep finished, a launch answered, a
user's commit was notified), and plans only when something it reads changed (``dirty``) or a
timer it set (``replan_at``: a backoff ending, a terminate to retry) came due.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio

from controller.core.events import Event
from controller.errors import StoreError
from controller.logs import get_logger
from controller.reconcile.clock import Clock
from controller.store.store import Store

log = get_logger()

# Wake-ups within this long of each other (many launches answering) start one pass.
COALESCE_S = 0.05


class Wakeup:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.dirty = True  # whether anything a plan reads changed since the last plan
        self.replan_at = 0.0  # monotonic: when a timer next changes a plan
        self._event = anyio.Event()

    def poke(self) -> None:
        """Something a plan reads changed: plan again, soon."""
        self.dirty = True
        self._event.set()

    def mark_dirty(self) -> None:
        """Plan again at the next pass, without starting one now."""
        self.dirty = True

    def due(self, now: float) -> bool:
        """Whether a pass started at ``now`` has anything to plan; clears ``dirty``."""
        if not self.dirty and now < self.replan_at:
            return False
        self.dirty = False
        return True

    async def wait(self, deadline: float, coalesce_s: float) -> None:
        """Until ``deadline`` (monotonic) or a poke, then a moment for a burst to gather."""
        self._event = anyio.Event()
        with anyio.move_on_after(max(0.0, deadline - self.clock.monotonic())):
            await self._event.wait()
            await anyio.sleep(coalesce_s)


async def watch_user_changes(
    store: Store,
    wakeup: Wakeup,
    leading: Callable[[], bool],
    poll_interval_s: float,
    stop: anyio.Event,
) -> None:
    """PostgreSQL: start a pass as soon as a user commits a change to compute_environments.

    A shortcut, never the only way changes are seen: passes still read the revision each poll
    interval, so a change made while the listening connection is down is not lost.
    """
    if store.dialect != "postgresql":
        return
    clock = wakeup.clock
    failures = 0
    while not stop.is_set():
        try:
            async with store.watch_changes() as changes:
                log.info(Event.NOTIFY_LISTENING, reconnected=failures > 0)
                failures = 0
                while True:
                    await changes.wait()
                    if leading():
                        wakeup.poke()
        except StoreError as exc:
            failures += 1
            log.warning(Event.NOTIFY_FAILED, error=str(exc), failures=failures)
            backoff = poll_interval_s * 2 ** min(failures, 5)
            await clock.sleep_until(clock.monotonic() + min(30.0, backoff), stop)
