"""Leadership: only the replica holding the cluster's lease acts.

The lease is a row with an epoch (the fencing token). :class:`Leadership` is the only writer
of the store's fence: the store checks it inside every leader write, and :meth:`check` before
every cloud call, so a replica that lost its lease can neither record nor launch.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Awaitable, Callable

import anyio

from controller.core.events import Event
from controller.errors import StoreError
from controller.logs import get_logger
from controller.reconcile.clock import Clock
from controller.settings import Settings
from controller.store.store import Fence, Store

log = get_logger()


class Leadership:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        clock: Clock,
        *,
        on_acquired: Callable[[], Awaitable[None]],
        on_lost: Callable[[], None],
    ) -> None:
        self.settings, self.store, self.clock = settings, store, clock
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._on_acquired, self._on_lost = on_acquired, on_lost
        self.last_tick_at: float | None = None  # monotonic: a standby's proof of life
        self.store_ok = True  # the last lease operation reached the database
        self._last_renewed = clock.monotonic()

    @property
    def leading(self) -> bool:
        return self.store.fence is not None or not self.store.fencing

    @property
    def epoch(self) -> int | None:
        fence = self.store.fence
        return fence.epoch if fence is not None else None

    async def check(self) -> None:
        """Raise LeaseLost unless the lease is still ours (before every cloud call)."""
        await self.store.check_fence()

    async def run(self, stop: anyio.Event) -> None:
        """Take the lease when it is free, renew it while held, give up acting when it is not."""
        self._last_renewed = self.clock.monotonic()
        while not stop.is_set():
            await self.tick()
            await self.clock.sleep_until(self.clock.monotonic() + self.settings.lease_retry_s, stop)

    async def tick(self) -> None:
        """One turn of the lease: acquire, or renew, or notice it is lost."""
        s = self.settings
        self.store.fencing = True  # from now on, writes go through only under a live lease
        self.last_tick_at = self.clock.monotonic()
        fence = self.store.fence
        try:
            if fence is None:
                epoch = await self.store.acquire_lease(s.cluster, self.holder, s.lease_duration_s)
                if epoch is not None:
                    self._last_renewed = self.clock.monotonic()
                    await self._become_leader(epoch)
            elif await self.store.renew_lease(fence, s.lease_duration_s):
                self._last_renewed = self.clock.monotonic()
            else:
                self.lose("the lease was taken over or expired")
            self.store_ok = True
        except StoreError as exc:
            self.store_ok = False
            failed = Event.LEASE_RENEW_FAILED if fence else Event.LEASE_ACQUIRE_FAILED
            log.warning(failed, error=str(exc), holder=self.holder)
        if (
            self.store.fence is not None
            and self.clock.monotonic() - self._last_renewed > s.lease_renew_deadline_s
        ):
            self.lose(f"not renewed for {s.lease_renew_deadline_s:g} s")

    async def _become_leader(self, epoch: int) -> None:
        """Start from the durable records: another replica may have acted since we last did."""
        self.store.fence = Fence(self.settings.cluster, self.holder, epoch)
        try:
            await self._on_acquired()
        except StoreError:
            self.store.fence = None
            raise
        log.info(Event.LEASE_ACQUIRED, holder=self.holder, epoch=epoch)

    def lose(self, reason: str) -> None:
        """Stop acting at once; calls in flight can no longer record anything."""
        epoch = self.epoch
        self.store.fence = None
        self._on_lost()
        log.warning(Event.LEASE_LOST, holder=self.holder, epoch=epoch, reason=reason)

    async def release(self) -> None:
        """On a graceful stop: give the lease up at once, so a standby takes over now."""
        fence = self.store.fence
        if fence is None:
            return
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            try:
                await self.store.release_lease(fence)
                log.info(Event.LEASE_RELEASED, holder=self.holder, epoch=fence.epoch)
            except StoreError as exc:
                log.warning(Event.LEASE_RELEASE_FAILED, error=str(exc))
        self.store.fence = None
