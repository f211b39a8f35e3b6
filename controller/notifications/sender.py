"""The sender: delivers each target's queue from the outbox, in order, at least once.

It runs as its own task in the daemon, apart from the engine: a target that is down, slow or
refusing costs the engine nothing but the sender's few short writes. Only the replica holding
the lease sends (a standby's sender idles), so replicas do not send the same event twice; a
sender deposed mid-delivery may, and so may a crash between a delivery and its record: every
event carries an id a receiver can drop duplicates by.

Per target: the oldest event first; a failure is retried after a capped exponential backoff
with jitter, forever for faults of the moment (5xx, timeouts, rate limits), ``REFUSE_ATTEMPTS``
times for a refusal (4xx, a robot's error code), after which that event is dropped, counted.
A queue longer than ``SPOT_CONTROLLER_NOTIFY_QUEUE_MAX`` loses its oldest events, counted and
logged, checked every poll interval also while the target backs off.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx

from controller.core.events import Event
from controller.errors import StoreError
from controller.logs import get_logger
from controller.notifications.delivery import Outcome, Result, attempt
from controller.notifications.messages import OutboxEvent
from controller.notifications.targets import mask_url
from controller.settings import Settings
from controller.store.store import Store

log = get_logger()

REFUSE_ATTEMPTS = 3
BATCH = 50
TARGETS_REFRESH_S = 5.0


@dataclass
class SenderStats:
    """Counts for /metrics, by target (and result code)."""

    attempts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (target, code)
    delivered: Counter[str] = field(default_factory=Counter)
    dropped: Counter[tuple[str, str]] = field(default_factory=Counter)  # (target, reason)
    depth: dict[str, int] = field(default_factory=dict)  # events waiting, at the last look
    failing: dict[str, bool] = field(default_factory=dict)  # target -> its last attempt failed


def retry_delay(failures: int, base_s: float, max_s: float, rng: random.Random) -> float:
    """Capped exponential, with jitter in its upper half (never 0: a down target waits)."""
    ceiling = min(max_s, base_s * 2.0 ** max(0, failures - 1))
    return float(ceiling * rng.uniform(0.5, 1.0))


class Sender:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        leading: Callable[[], bool],
        rng: random.Random | None = None,
    ) -> None:
        self.settings, self.store, self._leading = settings, store, leading
        self.rng = rng or random.Random()
        self.stats = SenderStats()
        self._workers: dict[str, tuple[tuple[Any, ...], anyio.CancelScope]] = {}

    def _now(self) -> datetime:
        return datetime.now(UTC)

    async def run(self, stop: anyio.Event) -> None:
        """Keep one worker per target until ``stop``; a delivery under way is abandoned then
        (its event stays in the outbox and is sent again)."""
        async with (
            httpx.AsyncClient(follow_redirects=False) as http,
            anyio.create_task_group() as tg,
        ):
            while not stop.is_set():
                await self._refresh_workers(tg, http)
                with anyio.move_on_after(TARGETS_REFRESH_S):
                    await stop.wait()
            tg.cancel_scope.cancel()

    async def _refresh_workers(self, tg: anyio.abc.TaskGroup, http: httpx.AsyncClient) -> None:
        if not self._leading():
            targets: list[dict[str, Any]] = []
        else:
            try:
                targets = await self.store.notification_targets()
            except StoreError as exc:
                log.warning(Event.NOTIFIER_STORE_FAILED, error=str(exc))
                return
        wanted = {t["name"]: t for t in targets}
        for name in list(self._workers):
            config, scope = self._workers[name]
            target = wanted.get(name)
            if target is None or _config(target) != config:
                scope.cancel()
                del self._workers[name]
                self.stats.depth.pop(name, None)
                self.stats.failing.pop(name, None)
        for name, target in wanted.items():
            if name not in self._workers:
                scope = anyio.CancelScope()
                self._workers[name] = (_config(target), scope)
                tg.start_soon(self._work, target, http, scope)

    async def _work(
        self, target: dict[str, Any], http: httpx.AsyncClient, scope: anyio.CancelScope
    ) -> None:
        with scope:
            failures = 0
            while True:
                try:
                    await self._trim(target["name"])
                    rows = await self.store.outbox_head(target["name"], BATCH)
                except StoreError as exc:
                    log.warning(Event.NOTIFIER_STORE_FAILED, target=target["name"], error=str(exc))
                    await anyio.sleep(self.settings.notify_poll_interval_s)
                    continue
                if not rows or not self._leading():
                    await anyio.sleep(self.settings.notify_poll_interval_s)
                    continue
                for row in rows:
                    if not self._leading():
                        break
                    try:
                        delay = await self._deliver(target, row, http, failures)
                    except StoreError as exc:
                        log.warning(
                            Event.NOTIFIER_STORE_FAILED, target=target["name"], error=str(exc)
                        )
                        delay = self.settings.notify_poll_interval_s
                    except Exception as exc:  # a bug here must not stop the daemon's reconciling
                        log.error(
                            Event.NOTIFICATION_FAILED,
                            target=target["name"],
                            error=repr(exc),
                            exc_info=True,
                        )
                        delay = self.settings.notify_backoff_max_s
                    if delay is None:
                        failures = 0
                        continue
                    failures += 1
                    await self._pause(target["name"], delay)
                    break  # read the queue's head again after the wait

    async def _deliver(
        self, target: dict[str, Any], row: dict[str, Any], http: httpx.AsyncClient, failures: int
    ) -> float | None:
        """One attempt at the queue's oldest event; None when it left the queue, else the
        wait before the next attempt."""
        name = target["name"]
        event = OutboxEvent.from_row(row)
        now = self._now()
        s = self.settings
        result: Result = await attempt(http, target, event, s.cluster, now, s.notify_timeout_s)
        self.stats.attempts[(name, result.code)] += 1
        fields = {"target": name, "notice": event.event, "event_id": event.event_id}
        if result.outcome == Outcome.DELIVERED:
            await self.store.outbox_delivered(name, row["seq"], self._now())
            self.stats.delivered[name] += 1
            self.stats.failing[name] = False
            log.debug(Event.NOTIFICATION_SENT, **fields, env_id=event.env_id)
            return None
        self.stats.failing[name] = True
        if result.outcome == Outcome.REFUSED and row["attempts"] + 1 >= REFUSE_ATTEMPTS:
            await self.store.outbox_rejected(name, row["seq"], result.error, self._now())
            self.stats.dropped[(name, "refused")] += 1
            log.warning(
                Event.NOTIFICATION_REFUSED,
                **fields,
                error=result.error,
                attempts=row["attempts"] + 1,
                url=mask_url(target["url"]),
            )
            return None
        delay = retry_delay(failures + 1, s.notify_backoff_base_s, s.notify_backoff_max_s, self.rng)
        next_at = self._now() + timedelta(seconds=delay)
        attempts = await self.store.outbox_failed(name, row["seq"], result.error, now, next_at)
        log.warning(
            Event.NOTIFICATION_FAILED,
            **fields,
            error=result.error,
            attempts=attempts,
            retry_in_s=round(delay, 2),
            url=mask_url(target["url"]),
        )
        return delay

    async def _pause(self, name: str, delay_s: float) -> None:
        """Wait before the next attempt, keeping the queue within its bound meanwhile."""
        deadline = anyio.current_time() + delay_s
        while (left := deadline - anyio.current_time()) > 0:
            await anyio.sleep(min(left, self.settings.notify_poll_interval_s))
            try:
                await self._trim(name)
            except StoreError as exc:
                log.warning(Event.NOTIFIER_STORE_FAILED, target=name, error=str(exc))

    async def _trim(self, name: str) -> None:
        if not self._leading():
            return
        limit = self.settings.notify_queue_max
        dropped, waiting = await self.store.outbox_trim(name, limit)
        if dropped:
            self.stats.dropped[(name, "queue_full")] += dropped
            log.warning(Event.NOTIFICATIONS_DROPPED, target=name, count=dropped, queue_max=limit)
        self.stats.depth[name] = waiting


def _config(target: dict[str, Any]) -> tuple[Any, ...]:
    """What a worker was started with: a change of any of it restarts the worker."""
    return (target["kind"], target["url"], target["secret"])
