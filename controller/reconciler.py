"""The reconcile loop: observe -> plan -> record intent -> act -> record result.

It holds the records of live nodes and unresolved launches in memory (loaded from the store at
start, written through on every change), so a pass reads only the environment rows from the
database. All decisions are made by :func:`controller.core.planner.plan`; this module carries them
out and keeps the durable record ahead of every action that costs money.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import socket
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
from anyio.abc import TaskGroup

from controller.cloud.client import CvmClient
from controller.core import planner
from controller.core.backoff import Block, next_block
from controller.core.instances import Instance, LaunchRequest, Offering
from controller.core.model import (
    CLUSTER_TAG,
    CREATE_NODE,
    ENV_TAG,
    GOING_CLOUD_STATES,
    TERMINATE_NODE,
    TOKEN_TAG,
    ActivityRecord,
    EndReason,
    Launch,
    Node,
    NodeState,
)
from controller.core.planner import EnvStatus, Observation, Plan, Policy, Snapshot, StatusReport
from controller.core.spec import STATUS_COLUMNS, EnvironmentSpec, parse_environment
from controller.errors import (
    AuthError,
    CapacityError,
    CloudError,
    InstanceNotFound,
    InvalidSpec,
    LeaseLost,
    OperationRejected,
    PriceTooLow,
    QuotaExceeded,
    SpotControllerError,
    StoreError,
    Throttled,
    TransientError,
    ValidationFailed,
)
from controller.ids import new_node_id
from controller.logs import get_logger
from controller.settings import Settings
from controller.store.notify import watch_environment_changes
from controller.store.store import Fence, Store

log = get_logger()

RECENTLY_ENDED_TTL_S = 600.0
# Launch intents recorded per transaction: a scale-out of 10,000 launches in one pass took
# 208 s one transaction each; batches keep each write short and let sends start early.
INTENT_BATCH = 100
ACTIVE_SWEEP_INTERVAL_S = 2.0
# How late a due sweep may start before the probe it stood in for goes ahead.
SWEEP_START_GRACE_S = 0.05
# Probes for reclaimed instances may cost at most this share of the resync sweeps' calls.
PROBE_SHARE = 0.1
SWEEP_PAGE = 100  # instances per DescribeInstances page

# What each kind of node change means for the node's activities.
_END_CAUSES = {
    EndReason.INTERRUPTED: "spot instance reclaimed",
    EndReason.RELEASED: "instance released outside the controller",
    EndReason.SCALE_IN: "scale in",
    EndReason.ENV_DELETED: "environment deleted",
    EndReason.LAUNCH_FAILED: "instance failed to launch",
    EndReason.LAUNCH_TIMEOUT: "instance did not start within the launch timeout",
    EndReason.ORPHAN: "tagged instance of an environment that no longer exists",
}


def client_token(env_id: str, request_fields: Mapping[str, Any], nonce: str) -> str:
    """A ClientToken derived from the exact request: a changed parameter gets a new token."""
    digest = hashlib.sha256(
        json.dumps({"request": request_fields, "nonce": nonce}, sort_keys=True).encode()
    ).hexdigest()
    return f"{env_id}-{digest[:40]}"


@dataclass
class Health:
    """What the heartbeat, health endpoint and status views read."""

    started_at: float = 0.0
    last_pass_at: float | None = None
    last_sweep_at: float | None = None
    last_probe_at: float | None = None
    passes: int = 0
    passes_skipped: int = 0
    last_pass_duration_s: float = 0.0
    leader: bool = False
    last_lease_tick_at: float | None = None
    observed: bool = False
    store_ok: bool = True
    last_error: str = ""


class Reconciler:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        client: CvmClient,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.client = client
        self.clock = clock
        self.rng = rng or random.Random()
        self.policy = Policy(
            launch_batch_max=settings.launch_batch_max,
            launch_timeout_s=settings.launch_timeout_s,
            orphan_grace_s=settings.orphan_grace_s,
            visibility_grace_s=settings.visibility_grace_s,
            terminate_retry_s=max(10.0, settings.resync_interval_s),
        )
        self.nodes: dict[str, Node] = {}
        self.launches: dict[str, Launch] = {}
        self.launches_in_flight: set[str] = set()
        self.terminating_in_flight: set[str] = set()
        self.terminate_requested: dict[str, datetime] = {}
        self.recently_ended: dict[str, datetime] = {}
        # Node ids of each unresolved launch: resolving a launch must not scan every node
        # (10,000 launches x 100,000 nodes was most of a 100,000-instance cold start).
        self.launch_nodes: dict[str, list[str]] = {}
        self.blocks: dict[tuple[str | None, Offering], Block] = {}
        self.holds: dict[str, Block] = {}
        self.observation: Observation | None = None
        self.sweep_error: CloudError | None = None
        self.needs_reload = False
        self.observation_fresh = False
        self.sweep_started_at: float | None = None  # monotonic, of the sweep last started
        self.sweep_in_progress = False
        self.sweep_wanted = anyio.Event()
        # Going instances a probe found since the last pass, and when that probe started.
        self.probed: dict[str, Instance] = {}
        self.probed_at: datetime | None = None
        # Whether anything a plan reads changed since the last plan (rows are compared on
        # every pass); and when a timer (backoff, terminate retry) next changes a plan.
        self.dirty = True
        self.replan_at: float = 0.0
        self.env_names: dict[str, str] = {}
        self.specs: dict[str, EnvironmentSpec] = {}
        self.invalid: dict[str, str] = {}
        self.invalid_logged: dict[str, str] = {}
        # env id -> (the row's user columns, its spec or the reason it is invalid): a row is
        # parsed again only when a user changed it (10,000 rows a second cost a core).
        self.parsed: dict[str, tuple[tuple[Any, ...], EnvironmentSpec | str]] = {}
        # The environment revision the rows were read at, and when (monotonic): rows are read
        # again when a user change moved the revision, and at least every resync interval.
        self.rows_revision: int | None = None
        self.rows_read_at: float | None = None
        self.last_status: dict[str, tuple[Any, ...]] = {}
        self.last_status_write: dict[str, float] = {}
        self.health = Health()
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        # Monotonic event counts for /metrics: (metric, env id, label) -> count.
        self.counts: Counter[tuple[str, str, str]] = Counter()
        self.wakeup = anyio.Event()
        self._tg: TaskGroup | None = None

    # ----- lifecycle ----------------------------------------------------------------------

    async def load(self) -> None:
        """Read the durable records: live nodes and unresolved launches."""
        nodes, pending = await self.store.load_state()
        self.nodes = {n.id: n for n in nodes}
        self.launches = {la.client_token: la for la in pending}
        self.launch_nodes = {}
        for node in self.nodes.values():
            if node.launch_token in self.launches:
                self.launch_nodes.setdefault(node.launch_token, []).append(node.id)
        log.info("state_loaded", nodes=len(self.nodes), pending_launches=len(self.launches))

    async def run(self, *, stop: anyio.Event | None = None) -> None:
        """Hold the lease, sweep and pass until ``stop`` is set.

        Only the replica holding the cluster's lease acts; the others wait to take over. Calls
        already sent when ``stop`` is set finish so their results are recorded (the daemon's
        shutdown deadline bounds this); then the lease is given up at once.
        """
        self.health.started_at = anyio.current_time()
        stop = stop or anyio.Event()
        self.store.fencing = True
        try:
            async with anyio.create_task_group() as actions:
                self._tg = actions
                async with anyio.create_task_group() as loops:
                    loops.start_soon(self._lease_loop, stop)
                    loops.start_soon(self._sweep_loop, stop)
                    loops.start_soon(self._pass_loop, stop)
                    loops.start_soon(self._probe_loop, stop)
                    loops.start_soon(self._watch_loop, stop)
                    await stop.wait()
                    loops.cancel_scope.cancel()
        finally:
            self._tg = None
            fence = self.store.fence
            if fence is not None:
                with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                    try:
                        await self.store.release_lease(fence)
                        log.info("lease_released", holder=self.holder, epoch=fence.epoch)
                    except StoreError as exc:
                        log.warning("lease_release_failed", error=str(exc))
                self.store.fence = None

    @property
    def leading(self) -> bool:
        return self.store.fence is not None or not self.store.fencing

    # ----- the lease ----------------------------------------------------------------------

    async def _lease_loop(self, stop: anyio.Event) -> None:
        s = self.settings
        last_renewed = anyio.current_time()
        while not stop.is_set():
            self.health.last_lease_tick_at = anyio.current_time()
            fence = self.store.fence
            try:
                if fence is None:
                    epoch = await self.store.acquire_lease(
                        s.cluster, self.holder, s.lease_duration_s
                    )
                    if epoch is not None:
                        last_renewed = anyio.current_time()
                        await self._become_leader(epoch)
                elif await self.store.renew_lease(fence, s.lease_duration_s):
                    last_renewed = anyio.current_time()
                else:
                    self._lose_lease("the lease was taken over or expired")
            except StoreError as exc:
                self.health.store_ok = False
                log.warning(
                    "lease_renew_failed" if fence else "lease_acquire_failed",
                    error=str(exc),
                    holder=self.holder,
                )
            if (
                self.store.fence is not None
                and anyio.current_time() - last_renewed > s.lease_renew_deadline_s
            ):
                self._lose_lease(f"not renewed for {s.lease_renew_deadline_s:g} s")
            await _sleep_until(anyio.current_time() + s.lease_retry_s, stop)

    async def _become_leader(self, epoch: int) -> None:
        """Start from the durable records: another replica may have acted since we last did."""
        self.store.fence = Fence(self.settings.cluster, self.holder, epoch)
        self.probed, self.probed_at = {}, None
        self.observation = None
        self.observation_fresh = False
        self.health.observed = False
        self.last_status.clear()
        self.last_status_write.clear()
        self.rows_read_at = None
        try:
            await self.load()
        except StoreError:
            self.store.fence = None
            raise
        self.health.leader = True
        log.info("lease_acquired", holder=self.holder, epoch=epoch)
        self._wake()

    def _lose_lease(self, reason: str) -> None:
        """Stop acting at once; calls in flight can no longer record anything."""
        fence = self.store.fence
        self.store.fence = None
        self.health.leader = False
        self.health.observed = False
        self.observation = None
        self.nodes.clear()
        self.launches.clear()
        log.warning(
            "lease_lost", holder=self.holder, epoch=fence.epoch if fence else None, reason=reason
        )

    async def _watch_loop(self, stop: anyio.Event) -> None:
        """PostgreSQL: start a pass as soon as a user commits a change to compute_environments.

        A shortcut, never the only way changes are seen: passes still read every row each
        poll interval, so a change made while the listening connection is down is not lost.
        """
        if self.store.dialect != "postgresql":
            return
        url = self.store.engine.url.render_as_string(hide_password=False)
        failures = 0
        while not stop.is_set():
            try:
                async with watch_environment_changes(url) as changes:
                    log.info("notify_listening", reconnected=failures > 0)
                    failures = 0
                    while True:
                        await changes.wait()
                        if self.leading:
                            self._wake()
            except StoreError as exc:
                failures += 1
                log.warning("notify_failed", error=str(exc), failures=failures)
                backoff = self.settings.poll_interval_s * 2 ** min(failures, 5)
                await _sleep_until(anyio.current_time() + min(30.0, backoff), stop)

    def _wake(self) -> None:
        self.dirty = True
        self.wakeup.set()

    # ----- observation --------------------------------------------------------------------

    def _busy(self) -> bool:
        return bool(self.launches) or any(
            n.state in (NodeState.CREATING, NodeState.DELETING) for n in self.nodes.values()
        )

    async def _sweep_loop(self, stop: anyio.Event) -> None:
        failures = 0
        while not stop.is_set():
            started = anyio.current_time()
            if not self.leading:
                # Check again as often as the lease is tried: a new leader sweeps at once.
                wait = min(self.settings.poll_interval_s, self.settings.lease_retry_s)
                await _sleep_until(started + wait, stop)
                continue
            self.sweep_wanted = anyio.Event()
            looked_at, self.sweep_started_at = self.sweep_started_at, anyio.current_time()
            self.sweep_in_progress = True
            try:
                await self.sweep()
                failures = 0
                self.sweep_error = None
            except CloudError as exc:
                self.sweep_started_at = looked_at  # a failed sweep looked at nothing
                failures += 1
                self.sweep_error = exc
                self.health.last_error = str(exc)
                log.warning(
                    "sweep_failed",
                    reason=_reason_class(exc),
                    code=exc.code,
                    request_id=exc.request_id,
                    failures=failures,
                )
                if isinstance(exc, AuthError):
                    self._hold_all(exc)
            finally:
                self.sweep_in_progress = False
            if failures:
                backoff = self.settings.poll_interval_s * 2 ** min(failures, 8)
                await _sleep_until(started + min(self.settings.backoff_max_s, backoff), stop)
            else:
                await self._wait_for_next_sweep(started, stop)

    async def _wait_for_next_sweep(self, started: float, stop: anyio.Event) -> None:
        """Sweep every resync interval; sooner while launches or terminations are in flight,
        and at once when a probe found instances being reclaimed."""
        active = min(self.settings.resync_interval_s, ACTIVE_SWEEP_INTERVAL_S)
        while not stop.is_set() and not self.sweep_wanted.is_set():
            deadline = started + (active if self._busy() else self.settings.resync_interval_s)
            now = anyio.current_time()
            if now >= deadline:
                return
            step = min(self.settings.poll_interval_s, active)  # work may start meanwhile
            with anyio.move_on_after(min(deadline, now + step) - now):
                await self.sweep_wanted.wait()

    def probe_interval(self) -> float | None:
        """Seconds between probes for the fleet last swept; None when probing is off."""
        fleet = len(self.observation.instances) if self.observation else 0
        return probe_interval(
            self.settings.probe_interval_s, self.settings.resync_interval_s, fleet
        )

    async def _probe_loop(self, stop: anyio.Event) -> None:
        """List only the instances being reclaimed, between sweeps.

        Tencent does not push interruptions and a sweep of a large fleet is many pages: one
        filtered call finds a reclaim within about a second. A probe that finds one asks for
        a sweep at once, which also finds those already gone.

        A reclaimed instance may show ``TERMINATING`` only briefly, so a probe is due exactly
        one interval after the last look, and a sweep counts as a look from when it started:
        its first pages are as old as that, so probes go on while a long sweep reads the rest.
        The probe that would fall within an interval before a resync sweep is left to it.
        """
        while not stop.is_set():
            interval = self.probe_interval()
            now = anyio.current_time()
            if interval is None or not self.leading or self.observation is None:
                await _sleep_until(now + self.settings.poll_interval_s, stop)
                continue
            due = max(self.sweep_started_at or 0.0, self.health.last_probe_at or 0.0) + interval
            if not self.sweep_in_progress and self.sweep_started_at is not None:
                # A resync sweep about to start looks at everything: no probe just before it
                # (that one probe a cycle was the calls the steady state had over 1.1x a sweep).
                next_sweep = self.sweep_started_at + self.settings.resync_interval_s
                if now - SWEEP_START_GRACE_S < next_sweep <= now + interval:
                    due = max(due, next_sweep + SWEEP_START_GRACE_S)
            if now < due:
                # Not past the poll interval: the interval follows the fleet, which grows.
                await _sleep_until(min(due, now + self.settings.poll_interval_s), stop)
                continue
            await self.probe()

    async def probe(self) -> list[Instance]:
        """One DescribeInstances over this cluster's instances in a going state."""
        started_at = self.clock()
        self.health.last_probe_at = anyio.current_time()
        try:
            going = await self.client.describe_instances(
                filters={
                    f"tag:{CLUSTER_TAG}": [self.settings.cluster],
                    "instance-state": sorted(GOING_CLOUD_STATES),
                }
            )
        except CloudError as exc:
            log.debug("probe_failed", code=exc.code, request_id=exc.request_id)
            return []
        if not going:
            return going
        live = {
            n.instance_id: n
            for n in self.nodes.values()
            if n.instance_id and n.state in (NodeState.CREATING, NodeState.RUNNING)
        }
        news = [i for i in going if i.instance_id in live and i.instance_id not in self.probed]
        if news:
            log.debug("probe_found", instances=len(news))
            self.probed.update((i.instance_id, i) for i in news)
            self.probed_at = started_at
            self._wake()
            self.sweep_wanted.set()
        return going

    async def sweep(self) -> Observation:
        """One paged DescribeInstances over this cluster's tag; the planner's only view."""
        started_at = self.clock()
        instances = await self.client.describe_instances(
            filters={f"tag:{CLUSTER_TAG}": [self.settings.cluster]}
        )
        seen = {i.instance_id: i for i in instances}
        # Offset paging over a list that changes while it is read can skip entries. Before a
        # recorded instance is judged gone, ask for it by id, which is exact. After a storm
        # that is thousands of ids: DescribeInstancesStatus answers them from a rate limit of
        # its own instead of queueing behind the sweep's pages (0.75 s for 3,000); only the
        # few that still exist are then described in full.
        missing = [
            n.instance_id
            for n in self.nodes.values()
            if n.instance_id
            and n.instance_id not in seen
            and n.state in (NodeState.CREATING, NodeState.RUNNING, NodeState.DELETING)
        ]
        if missing:
            still_there = await self.client.describe_instances_status(missing)
            if still_there:
                for inst in await self.client.describe_instances(instance_ids=list(still_there)):
                    seen[inst.instance_id] = inst
        obs = Observation(seen, started_at)
        log.debug(
            "sweep_completed", instances=len(instances), states=sorted({i.state for i in instances})
        )
        self.observation = obs
        self.observation_fresh = True
        self.health.last_sweep_at = anyio.current_time()
        if self.probed_at is not None and self.probed_at <= started_at:
            self.probed.clear()  # this sweep is newer than the probe
        if not self.health.observed:
            log.info("first_observation", instances=len(instances))
        self.health.observed = True
        self._wake()
        return obs

    # ----- the pass -----------------------------------------------------------------------

    async def _pass_loop(self, stop: anyio.Event) -> None:
        failures = 0
        while not stop.is_set():
            started = anyio.current_time()
            try:
                if self.leading:
                    await self.run_pass()
                    self.health.store_ok = True
                failures = 0
            except StoreError as exc:
                failures += 1
                self.health.store_ok = False
                self.health.last_error = str(exc)
                # Memory may now be ahead of the records: start again from the records and a
                # fresh sweep before acting.
                self.needs_reload = True
                log.error("pass_failed", reason="store", error=str(exc), failures=failures)
            delay = self.settings.poll_interval_s
            if failures:
                delay = min(30.0, self.settings.poll_interval_s * 2 ** min(failures, 5))
            self.wakeup = anyio.Event()
            with anyio.move_on_after(max(0.0, started + delay - anyio.current_time())):
                await self.wakeup.wait()
                # Coalesce bursts of wake-ups (many launches finishing) into one pass.
                await anyio.sleep(min(0.05, self.settings.poll_interval_s))

    async def run_pass(self) -> Plan | None:
        started = anyio.current_time()
        now = self.clock()
        if self.needs_reload:
            if self.launches_in_flight:
                # A launch answered after the read would be recorded but missing from memory,
                # and its instances adopted a second time: reload once the answers are in.
                log.debug("reload_deferred", launches_in_flight=len(self.launches_in_flight))
                return None
            await self.load()
            self.observation = None
            self.rows_read_at = None
            self.needs_reload = False
            self.dirty = True
        if await self._rows_may_have_changed(started):
            self.rows_revision, rows = await self.store.load_environment_rows()
            self.rows_read_at = started
            if self._load_specs(rows):
                self.dirty = True
        self._expire(now)
        self.health.passes += 1
        if self.observation is None:
            # Never act on a partial view: wait for the first full sweep, but say why.
            await self._report_unobserved(now)
            return None
        if not self.dirty and started < self.replan_at:
            # Nothing a plan reads has changed: the plan would be the last one again. (A plan
            # of 100,000 nodes every second was most of the daemon's CPU when idle.)
            self.health.passes_skipped += 1
            self.health.last_pass_at = anyio.current_time()
            self.health.last_pass_duration_s = self.health.last_pass_at - started
            return None
        self.dirty = False
        obs = self._take_observation()
        snap = Snapshot(
            now=now,
            environments=self.specs,
            invalid=self.invalid,
            nodes=[n for n in self.nodes.values() if n.state != NodeState.ENDED],
            launches=list(self.launches.values()),
            launches_in_flight=frozenset(self.launches_in_flight),
            observation=obs,
            blocks=self.blocks,
            holds=self.holds,
            recently_ended=frozenset(self.recently_ended),
            terminate_requested=self.terminate_requested,
            policy=self.policy,
        )
        plan = planner.plan(snap)
        await self._apply(plan, obs, now)
        self.replan_at = started + self._seconds_to_next_timer(now)
        self.health.last_pass_at = anyio.current_time()
        self.health.last_pass_duration_s = self.health.last_pass_at - started
        return plan

    async def _rows_may_have_changed(self, now: float) -> bool:
        """One integer instead of every row: whether a user changed compute_environments since
        the rows were read. Read anyway every resync interval, and always when the revision
        is missing (a database edited by hand)."""
        if (
            self.rows_read_at is None
            or self.rows_revision is None
            or now - self.rows_read_at >= self.settings.resync_interval_s
        ):
            return True
        return await self.store.environment_revision() != self.rows_revision

    def _take_observation(self) -> Observation | None:
        """What is new since the last plan: a sweep, the probe's finds, both, or nothing."""
        probed, probed_at = self.probed, self.probed_at
        self.probed, self.probed_at = {}, None
        if self.observation_fresh and self.observation is not None:
            self.observation_fresh = False
            obs = self.observation
            if probed and probed_at is not None and probed_at > obs.started_at:
                obs = Observation({**obs.instances, **probed}, obs.started_at)
            return obs
        if probed and probed_at is not None:
            return Observation(probed, probed_at, complete=False)
        return None

    def _seconds_to_next_timer(self, now: datetime) -> float:
        """Until the soonest backoff, hold or terminate retry ends: a plan changes then even
        if nothing else does. At most the resync interval, so statuses stay fresh."""
        soonest = self.settings.resync_interval_s
        retry = timedelta(seconds=self.policy.terminate_retry_s)
        ends = [b.until for b in self.blocks.values()] + [h.until for h in self.holds.values()]
        ends += [asked + retry for asked in self.terminate_requested.values()]
        for end in ends:
            if end > now:
                soonest = min(soonest, (end - now).total_seconds())
        return soonest

    def _load_specs(self, rows: list[dict[str, Any]]) -> bool:
        """Parse the rows that changed; True when any row was added, changed or deleted."""
        changed = len(rows) != len(self.parsed)
        specs: dict[str, EnvironmentSpec] = {}
        invalid: dict[str, str] = {}
        parsed: dict[str, tuple[tuple[Any, ...], EnvironmentSpec | str]] = {}
        for row in rows:
            env_id = row["id"]
            self.env_names[env_id] = row["name"]
            key = tuple(v for k, v in row.items() if k not in STATUS_COLUMNS)
            cached = self.parsed.get(env_id)
            if cached is not None and cached[0] == key:
                result = cached[1]
            else:
                changed = True
                try:
                    result = parse_environment(row, self.settings.region)
                except ValidationFailed as exc:
                    result = f"invalid {exc.field}: {exc.rule}"
            parsed[env_id] = (key, result)
            if isinstance(result, str):
                invalid[env_id] = result
            else:
                specs[env_id] = result
        self.parsed = parsed
        for env_id, reason in invalid.items():
            if env_id not in self.invalid_logged or self.invalid_logged[env_id] != reason:
                log.warning("env_invalid", env=self.env_names[env_id], env_id=env_id, reason=reason)
        self.invalid_logged = dict(invalid)
        self.specs = specs
        self.invalid = invalid
        return changed

    def _expire(self, now: datetime) -> None:
        cutoff = now - timedelta(seconds=RECENTLY_ENDED_TTL_S)
        self.recently_ended = {i: t for i, t in self.recently_ended.items() if t > cutoff}
        self.terminate_requested = {i: t for i, t in self.terminate_requested.items() if t > cutoff}
        self.blocks = {
            k: b
            for k, b in self.blocks.items()
            if b.active(now) or b.until > now - timedelta(hours=1)
        }

    # ----- carrying out a plan ------------------------------------------------------------

    async def _apply(self, plan: Plan, obs: Observation | None, now: datetime) -> None:
        changed: dict[str, Node] = {}
        new_nodes: list[Node] = []
        new_acts: list[ActivityRecord] = []
        finished: list[tuple[str, str, str, str]] = []
        if obs is not None:
            for node in self.nodes.values():
                if node.instance_id and node.instance_id in obs.instances:
                    first = node.last_seen_at is None
                    node.last_seen_at = now
                    if first:
                        changed[node.id] = node
        for ch in plan.node_changes:
            target = self.nodes.get(ch.node_id)
            if target is None:
                continue
            self._change_node(target, ch, now, new_acts, finished)
            changed[target.id] = target
        for adoption in plan.adoptions:
            new_nodes.append(self._adopt(adoption, now, new_acts))
        for termination in plan.terminations:
            if termination.env_id is None:
                for iid in termination.instance_ids:
                    new_nodes.append(self._orphan_node(iid, obs, now, new_acts))
        for res in plan.resolutions:
            launch = self.launches.get(res.client_token)
            if launch is not None:
                log.info(
                    "launch_resolved_from_tags",
                    env_id=launch.env_id,
                    client_token=launch.client_token,
                    instance_ids=list(res.instance_ids),
                )
                await self._launch_succeeded(launch, res.instance_ids, None)
        # Launches first: replacing capacity is what a storm waits for, and recording 3,000
        # endings took 0.6 s. Safe to do out of order: if the record below fails, memory is
        # reloaded from the records and nothing acts again before a full sweep.
        for launch in plan.resends:
            self._spawn(self._send_launch, launch, True)
        intents = [self._launch_intent(order, now) for order in plan.launches]
        for start in range(0, len(intents), INTENT_BATCH):
            batch = intents[start : start + INTENT_BATCH]
            # Intent before action: if this write fails, nothing of the batch is launched.
            await self.store.record_launch_intents(batch)
            for launch, nodes, cause in batch:
                self._start_launch(launch, nodes, cause)
        await self.store.record_changes(
            new_nodes=new_nodes,
            changed_nodes=list(changed.values()),
            new_activities=new_acts,
            finished_activities=finished,
            now=now,
        )
        for node in list(self.nodes.values()):
            if node.state == NodeState.ENDED:
                del self.nodes[node.id]
        for order in plan.terminations:
            ids = [i for i in order.instance_ids if i not in self.terminating_in_flight]
            if ids:
                self.terminating_in_flight.update(ids)
                self._spawn(self._terminate, ids, order.reason)
        await self._record_statuses(plan.statuses, now)

    def _change_node(
        self,
        node: Node,
        ch: planner.NodeChange,
        now: datetime,
        acts: list[ActivityRecord],
        finished: list[tuple[str, str, str, str]],
    ) -> None:
        previous = node.state
        node.state = ch.state
        if ch.cloud_state is not None or ch.state == NodeState.ENDED:
            node.cloud_state = ch.cloud_state if ch.cloud_state is not None else node.cloud_state
        if ch.end_reason is not None:
            node.end_reason = ch.end_reason.value
            node.end_detail = ch.detail
        name = self.env_names.get(node.env_id, "")
        fields = {
            "env": name,
            "env_id": node.env_id,
            "instance_ids": [node.instance_id],
            "node_id": node.id,
        }
        if ch.state == NodeState.RUNNING and previous != NodeState.RUNNING:
            node.running_at = now
            finished.append((node.id, CREATE_NODE, "SUCCEED", "instance RUNNING"))
            log.info("instance_running", **fields)
        elif ch.event == "instance_observed":
            log.debug("instance_observed", cloud_state=ch.cloud_state, **fields)
        elif ch.state == NodeState.DELETING and previous != NodeState.DELETING:
            reason = ch.end_reason or EndReason.SCALE_IN
            if reason in (EndReason.LAUNCH_FAILED, EndReason.LAUNCH_TIMEOUT):
                finished.append((node.id, CREATE_NODE, "FAILED", ch.detail))
            acts.append(
                ActivityRecord(
                    node.env_id,
                    TERMINATE_NODE,
                    "PROCESSING",
                    f"{_END_CAUSES[reason]}: {ch.detail}",
                    node_id=node.id,
                    instance_id=node.instance_id,
                )
            )
            log.info(ch.event, reason=reason.value, detail=ch.detail, **fields)
        elif ch.state == NodeState.ENDED:
            node.ended_at = now
            if node.instance_id and previous == NodeState.DELETING:
                # Terminated by us: a lagging sweep may still show it; never adopt it back.
                self.recently_ended[node.instance_id] = now
            reason = EndReason(node.end_reason) if node.end_reason else EndReason.RELEASED
            self.counts[("ended", node.env_id, reason.value)] += 1
            if previous == NodeState.DELETING:
                finished.append((node.id, TERMINATE_NODE, "SUCCEED", "instance gone"))
                log.info("instance_terminated", reason=reason.value, **fields)
            else:
                ok = "SUCCEED" if node.running_at else "FAILED"
                finished.append(
                    (node.id, CREATE_NODE, ok, ch.detail if ok == "FAILED" else "instance RUNNING")
                )
                acts.append(
                    ActivityRecord(
                        node.env_id,
                        TERMINATE_NODE,
                        "SUCCEED",
                        f"{_END_CAUSES[reason]}: {ch.detail}",
                        node_id=node.id,
                        instance_id=node.instance_id,
                        state_reason="instance gone",
                        ended=True,
                    )
                )
                log.warning(ch.event, reason=reason.value, detail=ch.detail, **fields)

    def _adopt(self, adoption: planner.Adoption, now: datetime, acts: list[ActivityRecord]) -> Node:
        inst = adoption.instance
        state = NodeState.RUNNING if inst.state == "RUNNING" else NodeState.CREATING
        node = Node(
            id=new_node_id(),
            env_id=adoption.env_id,
            state=state,
            zone=inst.zone,
            instance_type=inst.instance_type,
            created_at=now,
            instance_id=inst.instance_id,
            launch_token=adoption.launch_token,
            origin="ADOPTED",
            launched_at=inst.created_time or now,
            last_seen_at=now,
            cloud_state=inst.state,
            running_at=now if state == NodeState.RUNNING else None,
        )
        self.nodes[node.id] = node
        if node.launch_token in self.launch_nodes:
            self.launch_nodes[node.launch_token].append(node.id)
        acts.append(
            ActivityRecord(
                node.env_id,
                CREATE_NODE,
                "SUCCEED" if state == NodeState.RUNNING else "PROCESSING",
                "adopted: tagged instance without a record",
                node_id=node.id,
                instance_id=inst.instance_id,
                ended=state == NodeState.RUNNING,
            )
        )
        log.warning(
            "orphan_adopted",
            env=self.env_names.get(node.env_id, ""),
            env_id=node.env_id,
            instance_ids=[inst.instance_id],
            node_id=node.id,
        )
        return node

    def _orphan_node(
        self, instance_id: str, obs: Observation | None, now: datetime, acts: list[ActivityRecord]
    ) -> Node:
        inst = obs.instances[instance_id] if obs is not None else None
        env_id = (inst.tags.get(ENV_TAG) if inst else None) or "unknown"
        node = Node(
            id=new_node_id(),
            env_id=env_id,
            state=NodeState.DELETING,
            zone=inst.zone if inst else "",
            instance_type=inst.instance_type if inst else "",
            created_at=now,
            instance_id=instance_id,
            origin="ADOPTED",
            launched_at=inst.created_time if inst else None,
            last_seen_at=now,
            cloud_state=inst.state if inst else None,
            end_reason=EndReason.ORPHAN.value,
            end_detail=_END_CAUSES[EndReason.ORPHAN],
        )
        self.nodes[node.id] = node
        acts.append(
            ActivityRecord(
                env_id,
                TERMINATE_NODE,
                "PROCESSING",
                _END_CAUSES[EndReason.ORPHAN],
                node_id=node.id,
                instance_id=instance_id,
            )
        )
        log.warning("orphan_terminating", env_id=env_id, instance_ids=[instance_id])
        return node

    # ----- launches -----------------------------------------------------------------------

    def _launch_intent(
        self, order: planner.LaunchOrder, now: datetime
    ) -> tuple[Launch, list[Node], str]:
        """The launch to record for ``order``: its exact request, token and SUBMITTED nodes."""
        spec = self.specs[order.env_id]
        fields: dict[str, Any] = {
            "zone": order.offering.zone,
            "instance_type": order.offering.instance_type,
            "image_id": spec.image_id,
            "max_price": spec.max_price,
            "count": order.count,
            "instance_name": spec.instance_name,
            "project_id": spec.project_id,
            "security_group_ids": list(spec.security_group_ids),
            "vpc_id": spec.vpc_id,
            "subnet_id": spec.subnet_id,
            "key_ids": list(spec.key_ids),
        }
        token = client_token(spec.id, fields, uuid.uuid4().hex)
        tags = {**spec.tags, ENV_TAG: spec.id, CLUSTER_TAG: self.settings.cluster, TOKEN_TAG: token}
        request = LaunchRequest(
            zone=order.offering.zone,
            instance_type=order.offering.instance_type,
            image_id=spec.image_id,
            max_price=spec.max_price,
            count=order.count,
            client_token=token,
            tags=tags,
            instance_name=spec.instance_name,
            project_id=spec.project_id,
            security_group_ids=spec.security_group_ids,
            vpc_id=spec.vpc_id,
            subnet_id=spec.subnet_id,
            key_ids=spec.key_ids,
            user_data=spec.user_data,
        )
        launch = Launch(token, spec.id, order.offering, order.count, request, now)
        nodes = [
            Node(
                id=new_node_id(),
                env_id=spec.id,
                state=NodeState.SUBMITTED,
                zone=order.offering.zone,
                instance_type=order.offering.instance_type,
                created_at=now,
                launch_token=token,
                max_price=spec.max_price,
            )
            for _ in range(order.count)
        ]
        return launch, nodes, order.cause

    def _start_launch(self, launch: Launch, nodes: list[Node], cause: str) -> None:
        """After its intent is recorded: track the launch and send it."""
        token = launch.client_token
        self.launches[token] = launch
        for node in nodes:
            self.nodes[node.id] = node
        self.launch_nodes[token] = [node.id for node in nodes]
        log.info(
            "launch_requested",
            env=self.specs[launch.env_id].name,
            env_id=launch.env_id,
            client_token=token,
            count=launch.count,
            zone=launch.offering.zone,
            instance_type=launch.offering.instance_type,
            max_price=launch.request.max_price,
            cause=cause,
        )
        self._spawn(self._send_launch, launch, False)

    def _spawn(self, fn: Callable[..., Any], *args: Any) -> None:
        if self._tg is None:
            raise SpotControllerError("the reconciler is not running")
        self._tg.start_soon(fn, *args)

    async def _send_launch(self, launch: Launch, resend: bool) -> None:
        if launch.client_token in self.launches_in_flight:
            return
        self.launches_in_flight.add(launch.client_token)
        env = self.env_names.get(launch.env_id, "")
        try:
            if resend:
                log.info(
                    "launch_resent",
                    env=env,
                    env_id=launch.env_id,
                    client_token=launch.client_token,
                    count=launch.count,
                )
            # Fencing: a replica that lost its lease must not launch.
            await self.store.check_fence()
            try:
                result = await self.client.run_instances(launch.request)
            except (TransientError, Throttled) as exc:
                self.counts[("launches", launch.env_id, "unresolved")] += 1
                # Outcome unknown: the same token is sent again after the next sweep.
                log.warning(
                    "launch_unresolved",
                    env=env,
                    env_id=launch.env_id,
                    client_token=launch.client_token,
                    reason=_reason_class(exc),
                    code=exc.code,
                    request_id=exc.request_id,
                )
                return
            except CloudError as exc:
                await self._launch_failed(launch, exc)
                return
            await self._launch_succeeded(launch, result.instance_ids, result.request_id)
        except LeaseLost as exc:
            # The intent stays pending: the replica that holds the lease resolves it.
            log.warning(
                "launch_abandoned",
                env_id=launch.env_id,
                client_token=launch.client_token,
                reason=str(exc),
            )
        except StoreError as exc:
            # The result could not be recorded: the launch stays pending and is resolved again
            # from its tags or its token once the database is back.
            log.error(
                "record_failed",
                env_id=launch.env_id,
                client_token=launch.client_token,
                error=str(exc),
            )
        finally:
            self.launches_in_flight.discard(launch.client_token)
            self._wake()

    async def _launch_succeeded(
        self, launch: Launch, instance_ids: tuple[str, ...], request_id: str | None
    ) -> None:
        now = self.clock()
        mine = self._nodes_of_launch(launch.client_token)
        nodes = sorted((n for n in mine if n.state == NodeState.SUBMITTED), key=lambda n: n.id)
        # Ids this launch returned that a node already holds: only a node of this launch can
        # (adopted by its launch tag, or resolved from tags before this answer came back).
        known = {n.instance_id for n in mine if n.instance_id}
        fresh = [i for i in instance_ids if i not in known]
        updated = [replace(n) for n in nodes]
        for node, iid in zip(updated, fresh, strict=False):
            node.instance_id = iid
            node.state = NodeState.CREATING
            node.launched_at = now
        for node in updated[len(fresh) :]:  # fewer instances than asked (partial delivery)
            node.state = NodeState.ENDED
            node.ended_at = now
            node.end_reason = EndReason.LAUNCH_FAILED.value
            node.end_detail = "RunInstances returned fewer instances than requested"
        await self.store.record_launch_succeeded(launch.client_token, request_id, updated, now)
        for node in updated:
            if node.state == NodeState.ENDED:
                self.nodes.pop(node.id, None)
            else:
                self.nodes[node.id] = node
        self.launches.pop(launch.client_token, None)
        self.launch_nodes.pop(launch.client_token, None)
        self.blocks.pop((None, launch.offering), None)
        self.blocks.pop((launch.env_id, launch.offering), None)
        self.holds.pop(launch.env_id, None)
        self.counts[("launches", launch.env_id, "succeeded")] += 1
        self.counts[("launched", launch.env_id, "")] += len(fresh)
        log.info(
            "launch_succeeded",
            env=self.env_names.get(launch.env_id, ""),
            env_id=launch.env_id,
            client_token=launch.client_token,
            instance_ids=list(fresh),
            count=len(fresh),
            request_id=request_id,
        )

    def _nodes_of_launch(self, token: str) -> list[Node]:
        """The live nodes recorded for launch ``token``, without scanning every node."""
        ids = self.launch_nodes.get(token)
        if ids is None:  # not indexed: look once
            ids = [n.id for n in self.nodes.values() if n.launch_token == token]
            self.launch_nodes[token] = ids
        return [
            node
            for node_id in ids
            if (node := self.nodes.get(node_id)) is not None and node.launch_token == token
        ]

    async def _launch_failed(self, launch: Launch, exc: CloudError) -> None:
        now = self.clock()
        nodes = [
            replace(n)
            for n in self._nodes_of_launch(launch.client_token)
            if n.state == NodeState.SUBMITTED
        ]
        for node in nodes:
            node.state = NodeState.ENDED
            node.ended_at = now
            node.end_reason = EndReason.LAUNCH_FAILED.value
            node.end_detail = f"{exc.code}: {exc.message}"[:500]
        await self.store.record_launch_failed(
            launch.client_token, exc.code, exc.message, exc.request_id, nodes, now
        )
        for node in nodes:
            self.nodes.pop(node.id, None)
        self.launches.pop(launch.client_token, None)
        self.launch_nodes.pop(launch.client_token, None)
        kind = _reason_class(exc)
        self.counts[("launches", launch.env_id, kind)] += 1
        env = self.env_names.get(launch.env_id, "")
        log.warning(
            "launch_failed",
            env=env,
            env_id=launch.env_id,
            client_token=launch.client_token,
            count=launch.count,
            reason=kind,
            code=exc.code,
            request_id=exc.request_id,
            zone=launch.offering.zone,
            instance_type=launch.offering.instance_type,
        )
        reason = f"{exc.code} in {launch.offering}"
        if isinstance(exc, AuthError):
            previous = self.holds.get(launch.env_id)
            self.holds[launch.env_id] = Block(
                now + timedelta(seconds=self.settings.error_retry_s),
                "auth",
                f"authentication failed: {exc.code}",
                (previous.failures + 1) if previous else 1,
            )
            block = self.holds[launch.env_id]
        else:
            key: tuple[str | None, Offering] = (
                (None, launch.offering)
                if type(exc) is CapacityError
                else (launch.env_id, launch.offering)
            )
            if kind in ("capacity", "price"):
                block = next_block(
                    self.blocks.get(key),
                    kind=kind,
                    reason=reason,
                    now=now,
                    base_s=self.settings.backoff_base_s,
                    max_s=self.settings.backoff_max_s,
                    rng=self.rng,
                )
            else:
                block = Block(now + timedelta(seconds=self.settings.error_retry_s), kind, reason)
            self.blocks[key] = block
        log.info(
            "backoff_scheduled",
            env=env,
            env_id=launch.env_id,
            reason=kind,
            pool=str(launch.offering),
            until=block.until.strftime("%Y-%m-%dT%H:%M:%SZ"),
            failures=block.failures,
        )

    async def _report_unobserved(self, now: datetime) -> None:
        error = self.sweep_error
        reports = [
            StatusReport(env_id, EnvStatus.INVALID, reason, 0, 0, 0, None)
            for env_id, reason in self.invalid.items()
        ]
        if error is not None:
            status = EnvStatus.ERROR if isinstance(error, AuthError) else EnvStatus.NEW
            reason = (
                f"cannot observe instances: {error.code}: {error.message}"[:500]
                if isinstance(error, AuthError)
                else f"waiting for the first complete DescribeInstances sweep ({error.code})"
            )
            reports += [
                StatusReport(env_id, status, reason, 0, 0, 0, None) for env_id in self.specs
            ]
        await self._record_statuses(reports, now)

    def _hold_all(self, exc: CloudError) -> None:
        self.dirty = True
        now = self.clock()
        for env_id in self.specs:
            self.holds[env_id] = Block(
                now + timedelta(seconds=self.settings.error_retry_s),
                "auth",
                f"authentication failed: {exc.code}",
            )

    # ----- terminations -------------------------------------------------------------------

    async def _terminate(self, instance_ids: list[str], reason: EndReason) -> None:
        now = self.clock()
        try:
            await self.store.check_fence()
        except StoreError as exc:
            log.warning("terminate_abandoned", instance_ids=instance_ids, reason=str(exc))
            self.terminating_in_flight.difference_update(instance_ids)
            return
        try:
            await self.client.terminate_instances(instance_ids)
            for iid in instance_ids:
                self.terminate_requested[iid] = now
            log.info(
                "terminate_requested",
                instance_ids=instance_ids,
                count=len(instance_ids),
                reason=reason.value,
            )
        except InstanceNotFound as exc:
            # The client already drops the ids Tencent names as gone; this error named none.
            log.info("terminate_not_found", instance_ids=instance_ids, request_id=exc.request_id)
            if len(instance_ids) > 1:
                for iid in instance_ids:  # find the unknown one by trying each alone
                    await self._terminate_one_batch([iid])
        except OperationRejected as exc:
            log.info(
                "terminate_deferred",
                instance_ids=instance_ids,
                code=exc.code,
                request_id=exc.request_id,
            )
        except CloudError as exc:
            log.warning(
                "terminate_failed",
                instance_ids=instance_ids,
                reason=_reason_class(exc),
                code=exc.code,
                request_id=exc.request_id,
            )
        finally:
            self.terminating_in_flight.difference_update(instance_ids)
            self.dirty = True  # a failed request is planned again

    async def _terminate_one_batch(self, ids: list[str]) -> None:
        try:
            await self.client.terminate_instances(ids)
            now = self.clock()
            for iid in ids:
                self.terminate_requested[iid] = now
        except CloudError as exc:
            log.warning(
                "terminate_failed",
                instance_ids=ids,
                reason=_reason_class(exc),
                code=exc.code,
                request_id=exc.request_id,
            )

    # ----- status -------------------------------------------------------------------------

    async def _record_statuses(self, reports: list[StatusReport], now: datetime) -> None:
        rows = []
        t = anyio.current_time()
        for rep in reports:
            key = (
                rep.status,
                rep.reason,
                rep.running,
                rep.pending,
                rep.launching,
                rep.next_attempt_at,
            )
            stale = (
                t - self.last_status_write.get(rep.env_id, -1e9) > self.settings.resync_interval_s
            )
            if key == self.last_status.get(rep.env_id) and not stale:
                continue
            if key != self.last_status.get(rep.env_id):
                previous = self.last_status.get(rep.env_id)
                name = self.env_names.get(rep.env_id, "")
                log.info(
                    "env_status",
                    env=name,
                    env_id=rep.env_id,
                    status=rep.status.value,
                    reason=rep.reason,
                    running=rep.running,
                    pending=rep.pending,
                    launching=rep.launching,
                    desired=self.specs[rep.env_id].desired_count
                    if rep.env_id in self.specs
                    else None,
                )
                if rep.status == EnvStatus.READY and (
                    previous is None or previous[0] != EnvStatus.READY
                ):
                    log.info("env_converged", env=name, env_id=rep.env_id, running=rep.running)
            self.last_status[rep.env_id] = key
            self.last_status_write[rep.env_id] = t
            rows.append(
                {
                    "env_id": rep.env_id,
                    "status": rep.status.value,
                    "status_reason": rep.reason,
                    "running_count": rep.running,
                    "pending_count": rep.pending,
                    "launching_count": rep.launching,
                    "next_attempt_at": rep.next_attempt_at,
                    "last_reconciled_at": now,
                }
            )
        await self.store.record_statuses(rows)


def probe_interval(every_s: float, resync_interval_s: float, fleet: int) -> float | None:
    """Seconds between probes: ``every_s``, but no more often than keeps the probes (one call
    each) within ``PROBE_SHARE`` of the calls of sweeping ``fleet`` instances every resync
    interval. None when ``every_s`` is 0 (probing off)."""
    if every_s <= 0:
        return None
    pages = max(1, math.ceil(fleet / SWEEP_PAGE))
    return max(every_s, resync_interval_s / (PROBE_SHARE * pages))


def _reason_class(exc: CloudError) -> str:
    for cls, name in (
        (PriceTooLow, "price"),
        (CapacityError, "capacity"),
        (QuotaExceeded, "quota"),
        (InvalidSpec, "spec"),
        (AuthError, "auth"),
        (Throttled, "throttled"),
        (TransientError, "transient"),
    ):
        if isinstance(exc, cls):
            return name
    return "unknown"


async def _sleep_until(deadline: float, stop: anyio.Event) -> None:
    with anyio.move_on_after(max(0.0, deadline - anyio.current_time())):
        await stop.wait()
