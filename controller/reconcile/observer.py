"""The observer: what the cloud shows of this cluster's instances, by sweep and by probe.

A sweep is one paged ``DescribeInstances`` over the cluster's tag: complete, so a recorded
instance it lacks may be gone. A probe lists only instances in a going state: narrow and cheap,
so a reclaim on a large fleet is seen within about a second. The pass takes what is new with
:meth:`Observer.take`; probe findings count only when newer than the sweep.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime

import anyio

from controller.cloud.client import CvmClient
from controller.core.backoff import BackoffBook
from controller.core.events import Event
from controller.core.instances import Instance
from controller.core.model import CLUSTER_TAG, GOING_CLOUD_STATES
from controller.core.plan import Observation
from controller.errors import Blocks, CloudError
from controller.logs import get_logger
from controller.reconcile.clock import Clock
from controller.reconcile.fleet import FleetView
from controller.reconcile.hooks import EngineHooks
from controller.reconcile.triggers import Wakeup
from controller.settings import Settings

log = get_logger()

ACTIVE_SWEEP_INTERVAL_S = 2.0
# How late a due sweep may start before the probe it stood in for goes ahead.
SWEEP_START_GRACE_S = 0.05
# Probes for reclaimed instances may cost at most this share of the resync sweeps' calls.
PROBE_SHARE = 0.1
SWEEP_PAGE = 100  # instances per DescribeInstances page


def probe_interval(
    every_s: float, resync_interval_s: float, fleet: int, share: float = PROBE_SHARE
) -> float | None:
    """Seconds between probes: ``every_s``, but no more often than keeps the probes (one call
    each) within ``share`` of the calls of sweeping ``fleet`` instances every resync
    interval. None when ``every_s`` is 0 (probing off)."""
    if every_s <= 0:
        return None
    pages = max(1, math.ceil(fleet / SWEEP_PAGE))
    return max(every_s, resync_interval_s / (share * pages))


class Observer:
    def __init__(
        self,
        settings: Settings,
        client: CvmClient,
        clock: Clock,
        fleet: FleetView,
        wakeup: Wakeup,
        backoff: BackoffBook,
        *,
        leading: Callable[[], bool],
        env_ids: Callable[[], list[str]],
        hooks: EngineHooks,
        probe_share: float = PROBE_SHARE,
    ) -> None:
        self.hooks = hooks
        self.settings, self.client, self.clock = settings, client, clock
        self.fleet, self.wakeup, self.backoff = fleet, wakeup, backoff
        self._leading, self._env_ids, self.probe_share = leading, env_ids, probe_share
        self.observation: Observation | None = None  # the latest complete sweep
        self.observed = False  # a complete sweep was done since this replica took the lease
        self.sweep_error: CloudError | None = None
        self.last_sweep_at: float | None = None  # monotonic, of the sweep last finished
        self.last_probe_at: float | None = None
        self._fresh = False  # whether the pass has not taken the latest sweep yet
        self._sweep_started_at: float | None = None  # monotonic, of the sweep last started
        self._sweeping = False
        self._sweep_wanted = anyio.Event()
        # Going instances a probe found since the last pass, and when that probe started.
        self._probed: dict[str, Instance] = {}
        self._probed_at: datetime | None = None

    def forget(self, *, lease_changed: bool) -> None:
        """Nothing is acted on until the next complete sweep (a reload, a new lease)."""
        if lease_changed:
            self.observed = False
        self.observation = None
        self._fresh = False
        self._probed, self._probed_at = {}, None

    def take(self) -> Observation | None:
        """What is new since the last plan: a sweep, the probe's finds, both, or nothing."""
        probed, probed_at = self._probed, self._probed_at
        self._probed, self._probed_at = {}, None
        if self._fresh and self.observation is not None:
            self._fresh = False
            obs = self.observation
            if probed and probed_at is not None and probed_at > obs.started_at:
                obs = Observation({**obs.instances, **probed}, obs.started_at)
            return obs
        if probed and probed_at is not None:
            return Observation(probed, probed_at, complete=False)
        return None

    # ----- sweeps ---------------------------------------------------------------------------

    async def sweep_loop(self, stop: anyio.Event) -> None:
        s, clock = self.settings, self.clock
        failures = 0
        while not stop.is_set():
            started = clock.monotonic()
            if not self._leading():
                # Check again as often as the lease is tried: a new leader sweeps at once.
                await clock.sleep_until(started + min(s.poll_interval_s, s.lease_retry_s), stop)
                continue
            self._sweep_wanted = anyio.Event()
            looked_at, self._sweep_started_at = self._sweep_started_at, clock.monotonic()
            self._sweeping = True
            try:
                await self.sweep()
                failures = 0
                self.sweep_error = None
            except CloudError as exc:
                self._sweep_started_at = looked_at  # a failed sweep looked at nothing
                failures += 1
                self.sweep_error = exc
                log.warning(
                    Event.SWEEP_FAILED,
                    reason=exc.kind,
                    code=exc.code,
                    request_id=exc.request_id,
                    failures=failures,
                )
                if exc.blocks is Blocks.ENVIRONMENT:  # the credentials were refused
                    self.wakeup.mark_dirty()
                    self.backoff.hold_all(self._env_ids(), exc, clock.now())
            finally:
                self._sweeping = False
            if failures:
                backoff = s.poll_interval_s * 2 ** min(failures, 8)
                await clock.sleep_until(started + min(s.backoff_max_s, backoff), stop)
            else:
                await self._wait_for_next_sweep(started, stop)

    async def _wait_for_next_sweep(self, started: float, stop: anyio.Event) -> None:
        """Every resync interval; sooner while launches or terminations are in flight, and at
        once when a probe found instances being reclaimed."""
        s = self.settings
        active = min(s.resync_interval_s, ACTIVE_SWEEP_INTERVAL_S)
        while not stop.is_set() and not self._sweep_wanted.is_set():
            deadline = started + (active if self.fleet.busy() else s.resync_interval_s)
            now = self.clock.monotonic()
            if now >= deadline:
                return
            step = min(s.poll_interval_s, active)  # work may start meanwhile
            with anyio.move_on_after(min(deadline, now + step) - now):
                await self._sweep_wanted.wait()

    async def sweep(self) -> Observation:
        """One paged DescribeInstances over this cluster's tag; the planner's only full view."""
        self.hooks.before_sweep()
        started_at = self.clock.now()
        instances = await self.client.describe_instances(
            filters={f"tag:{CLUSTER_TAG}": [self.settings.cluster]}
        )
        seen = {i.instance_id: i for i in instances}
        # Offset paging over a list that changes while it is read can skip entries. Before a
        # recorded instance is judged gone, ask for it by id, which is exact. After a storm
        # that is thousands of ids: DescribeInstancesStatus answers them from a rate limit of
        # its own instead of queueing behind the sweep's pages (0.75 s for 3,000); only the
        # few that still exist are then described in full.
        missing = [iid for iid in self.fleet.expected_instance_ids() if iid not in seen]
        if missing:
            still_there = await self.client.describe_instances_status(missing)
            if still_there:
                for inst in await self.client.describe_instances(instance_ids=list(still_there)):
                    seen[inst.instance_id] = inst
        obs = Observation(seen, started_at)
        log.debug(
            Event.SWEEP_COMPLETED,
            instances=len(instances),
            states=sorted({i.state for i in instances}),
        )
        if not self.observed:
            log.info(Event.FIRST_OBSERVATION, instances=len(instances))
        self.observed = True
        self.observation = obs
        self._fresh = True
        self.last_sweep_at = self.clock.monotonic()
        if self._probed_at is not None and self._probed_at <= started_at:
            self._probed.clear()  # this sweep is newer than the probe
        self.wakeup.poke()
        self.hooks.after_sweep(obs)
        return obs

    # ----- probes ---------------------------------------------------------------------------

    def probe_interval(self) -> float | None:
        """Seconds between probes for the fleet last swept; None when probing is off."""
        fleet = len(self.observation.instances) if self.observation else 0
        s = self.settings
        return probe_interval(s.probe_interval_s, s.resync_interval_s, fleet, self.probe_share)

    async def probe_loop(self, stop: anyio.Event) -> None:
        """List only the instances being reclaimed, between sweeps.

        Tencent does not push interruptions and a sweep of a large fleet is many pages: one
        filtered call finds a reclaim within about a second. A probe that finds one asks for
        a sweep at once, which also finds those already gone.

        A reclaimed instance may show ``TERMINATING`` only briefly, so a probe is due exactly
        one interval after the last look, and a sweep counts as a look from when it started:
        its first pages are as old as that, so probes go on while a long sweep reads the rest.
        The probe that would fall within an interval before a resync sweep is left to it.
        """
        s, clock = self.settings, self.clock
        while not stop.is_set():
            interval = self.probe_interval()
            now = clock.monotonic()
            if interval is None or not self._leading() or self.observation is None:
                await clock.sleep_until(now + s.poll_interval_s, stop)
                continue
            due = max(self._sweep_started_at or 0.0, self.last_probe_at or 0.0) + interval
            if not self._sweeping and self._sweep_started_at is not None:
                # A resync sweep about to start looks at everything: no probe just before it
                # (that one probe a cycle was the calls the steady state had over 1.1x a sweep).
                next_sweep = self._sweep_started_at + s.resync_interval_s
                if now - SWEEP_START_GRACE_S < next_sweep <= now + interval:
                    due = max(due, next_sweep + SWEEP_START_GRACE_S)
            if now < due:
                # Not past the poll interval: the interval follows the fleet, which grows.
                await clock.sleep_until(min(due, now + s.poll_interval_s), stop)
                continue
            await self.probe()

    async def probe(self) -> list[Instance]:
        """One DescribeInstances over this cluster's instances in a going state."""
        started_at = self.clock.now()
        self.last_probe_at = self.clock.monotonic()
        try:
            going = await self.client.describe_instances(
                filters={
                    f"tag:{CLUSTER_TAG}": [self.settings.cluster],
                    "instance-state": sorted(GOING_CLOUD_STATES),
                }
            )
        except CloudError as exc:
            log.debug(Event.PROBE_FAILED, code=exc.code, request_id=exc.request_id)
            return []
        if not going:
            return going
        live = self.fleet.live_instance_ids()
        news = [i for i in going if i.instance_id in live and i.instance_id not in self._probed]
        if news:
            log.debug(Event.PROBE_FOUND, instances=len(news))
            self._probed.update((i.instance_id, i) for i in news)
            self._probed_at = started_at
            self.wakeup.poke()
            self._sweep_wanted.set()
        return going
