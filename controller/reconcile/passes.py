"""The pass: desired -> observation -> plan -> records -> calls -> statuses.

One pass at a time decides for every environment. It plans only when something it reads
changed or a timer came due, records each launch's intent before the launch is sent, sends
replacements before it records the endings it observed (a storm waits for capacity, not for
bookkeeping), and after a failed write starts again from the records and a fresh sweep.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio

from controller.core import launches, planner, transitions
from controller.core.backoff import BackoffBook
from controller.core.events import Event
from controller.core.model import NodeState
from controller.core.plan import Observation, Plan, Policy, Snapshot
from controller.core.transitions import LogLine
from controller.errors import StoreError
from controller.logs import get_logger
from controller.reconcile.clock import Clock
from controller.reconcile.desired import DesiredState
from controller.reconcile.fleet import RECENTLY_ENDED_TTL_S, FleetState
from controller.reconcile.hooks import EngineHooks
from controller.reconcile.launcher import Launcher
from controller.reconcile.ledger import Ledger
from controller.reconcile.metrics import Counters
from controller.reconcile.observer import Observer
from controller.reconcile.offerings import OfferingCache
from controller.reconcile.statuses import StatusWriter, unobserved_reports
from controller.reconcile.triggers import COALESCE_S, Wakeup
from controller.settings import Settings

log = get_logger()

# Launch intents recorded per transaction: a scale-out of 10,000 launches in one pass took
# 208 s one transaction each; batches keep each write short and let sends start early.
INTENT_BATCH = 100


@dataclass
class PassStats:
    passes: int = 0
    passes_skipped: int = 0  # found nothing changed since the last plan
    last_pass_at: float | None = None  # monotonic
    last_pass_duration_s: float = 0.0
    store_ok: bool = True


@dataclass
class PassParts:
    """The shared objects a pass reads and drives (wired by the engine)."""

    desired: DesiredState
    observer: Observer
    fleet: FleetState  # read here; written only through the ledger
    ledger: Ledger
    launcher: Launcher
    backoff: BackoffBook
    statuses: StatusWriter
    wakeup: Wakeup
    counters: Counters
    offerings: OfferingCache


class Passes:
    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        parts: PassParts,
        *,
        leading: Callable[[], bool],
        hooks: EngineHooks,
        new_node_id: Callable[[], str],
    ) -> None:
        self.settings, self.clock, self.p = settings, clock, parts
        self._leading, self.hooks, self._new_node_id = leading, hooks, new_node_id
        self.policy = Policy(
            launch_batch_max=settings.launch_batch_max,
            launch_timeout_s=settings.launch_timeout_s,
            orphan_grace_s=settings.orphan_grace_s,
            visibility_grace_s=settings.visibility_grace_s,
            terminate_retry_s=max(10.0, settings.resync_interval_s),
        )
        self.stats = PassStats()
        self.needs_reload = False  # a write failed: memory may be ahead of the records
        self._audited_at: float | None = None  # when the records were last checked (monotonic)

    async def loop(self, stop: anyio.Event) -> None:
        s = self.settings
        failures = 0
        while not stop.is_set():
            started = self.clock.monotonic()
            try:
                if self._leading():
                    await self.run_pass()
                    self.stats.store_ok = True
                failures = 0
            except StoreError as exc:
                failures += 1
                self.stats.store_ok = False
                # Start again from the records and a fresh sweep before acting.
                self.needs_reload = True
                log.error(Event.PASS_FAILED, reason="store", error=str(exc), failures=failures)
            delay = s.poll_interval_s
            if failures:
                delay = min(30.0, s.poll_interval_s * 2 ** min(failures, 5))
            await self.p.wakeup.wait(started + delay, min(COALESCE_S, s.poll_interval_s))

    async def run_pass(self) -> Plan | None:
        self.hooks.before_pass()
        plan = await self._run_pass()
        self.hooks.after_pass(plan)
        return plan

    async def _run_pass(self) -> Plan | None:
        p = self.p
        started = self.clock.monotonic()
        now = self.clock.now()
        if self.needs_reload:
            if p.launcher.launches_in_flight:
                # A launch answered after the read would be recorded but missing from memory,
                # and its instances adopted a second time: reload once the answers are in.
                log.debug(
                    Event.RELOAD_DEFERRED, launches_in_flight=len(p.launcher.launches_in_flight)
                )
                return None
            await p.ledger.load()
            p.observer.forget(lease_changed=False)
            p.desired.forget_read()
            self.needs_reload = False
            p.wakeup.mark_dirty()
        if await p.desired.refresh(started):
            p.wakeup.mark_dirty()
        self._expire(now)
        self.stats.passes += 1
        if p.observer.observation is None:
            # Never act on a partial view: wait for the first full sweep, but say why.
            reports = unobserved_reports(
                p.desired.invalid, list(p.desired.specs), p.observer.sweep_error
            )
            await p.statuses.write(reports, now, p.desired.specs, p.desired.names, observed=False)
            return None
        if (
            self._audited_at is None
            or started - self._audited_at >= self.settings.resync_interval_s
        ):
            self._audited_at = started
            await self._restore_missing_records(now)
        if not p.wakeup.due(started):
            # Nothing a plan reads has changed: the plan would be the last one again. (A plan
            # of 100,000 nodes every second was most of the daemon's CPU when idle.)
            self.stats.passes_skipped += 1
            self._finished(started)
            return None
        await p.offerings.refresh(p.desired.specs.values())  # only those that need it
        obs = p.observer.take()
        snap = Snapshot(
            now=now,
            environments=p.desired.specs,
            invalid=p.desired.invalid,
            nodes=[n for n in p.fleet.nodes.values() if n.state != NodeState.ENDED],
            launches=list(p.fleet.launches.values()),
            launches_in_flight=frozenset(p.launcher.launches_in_flight),
            observation=obs,
            blocks=p.backoff.blocks,
            holds=p.backoff.holds,
            recently_ended=frozenset(p.fleet.recently_ended),
            terminate_requested=p.launcher.terminate_requested,
            policy=self.policy,
            prices=p.offerings.current,
            market=p.offerings.market,
        )
        self.hooks.before_plan(snap)
        plan = planner.plan(snap)
        self.hooks.after_plan(snap)
        await self._carry_out(plan, obs, now)
        p.wakeup.replan_at = started + self._seconds_to_next_timer(now, plan.wake_at)
        self._finished(started)
        return plan

    async def _carry_out(self, plan: Plan, obs: Observation | None, now: datetime) -> None:
        p = self.p
        effects = transitions.effects(
            plan, p.fleet.nodes, p.desired.names, obs, now, self._new_node_id
        )
        _write_lines(effects.lines)
        for note in plan.notes:
            log.info(note.event, env=p.desired.name(note.env_id), env_id=note.env_id, **note.fields)
        for res in plan.resolutions:
            launch = p.fleet.launches.get(res.client_token)
            if launch is not None:
                log.info(
                    Event.LAUNCH_RESOLVED_FROM_TAGS,
                    env_id=launch.env_id,
                    client_token=launch.client_token,
                    instance_ids=list(res.instance_ids),
                )
                await p.launcher.succeeded(launch, res.instance_ids, None)
        # Launches first: replacing capacity is what a storm waits for, and recording 3,000
        # endings took 0.6 s. Safe out of order: if the record below fails, memory is reloaded
        # from the records and nothing acts again before a full sweep.
        for launch in plan.resends:
            p.launcher.resend(launch)
        intents = [
            launches.build_intent(
                order,
                p.desired.specs[order.env_id],
                cluster=self.settings.cluster,
                now=now,
                nonce=uuid.uuid4().hex,
                new_node_id=self._new_node_id,
            )
            for order in plan.launches
        ]
        specs = p.desired.specs
        p.offerings.launched(
            o.offering for o in plan.launches if specs[o.env_id].placement.needs_market
        )
        for start in range(0, len(intents), INTENT_BATCH):
            batch = intents[start : start + INTENT_BATCH]
            await p.ledger.record_intents(batch)  # if this fails, nothing of it is sent
            for intent in batch:
                p.launcher.start(intent)
        seen = obs.instances if obs is not None else {}
        await p.ledger.record_effects(effects, now, seen, plan.notes)
        for env_id, reason in effects.ended:
            p.counters.add("ended", env_id, reason.value)
        for node in effects.changed_nodes.values():
            if node.state == NodeState.ENDED:
                p.counters.usage.add_ended(node)
        for order in plan.terminations:
            p.launcher.terminate(order.instance_ids, order.reason)
        await p.statuses.write(plan.statuses, now, p.desired.specs, p.desired.names)

    async def _restore_missing_records(self, now: datetime) -> None:
        """Once a resync interval: rows of live nodes deleted by hand are written again, so
        every alive instance keeps a live record (nothing is launched or terminated for it)."""
        for node in await self.p.ledger.restore_missing(now):
            log.warning(
                Event.NODE_RECORD_RESTORED,
                env=self.p.desired.name(node.env_id),
                env_id=node.env_id,
                node_id=node.id,
                instance_ids=[node.instance_id] if node.instance_id else [],
                state=node.state.value,
            )

    def _expire(self, now: datetime) -> None:
        self.p.ledger.expire(now)
        self.p.launcher.expire(now, RECENTLY_ENDED_TTL_S)
        self.p.backoff.expire(now)

    def _seconds_to_next_timer(self, now: datetime, plan_timers: list[datetime]) -> float:
        """Until the soonest backoff, hold or terminate retry ends: a plan changes then even
        if nothing else does. At most the resync interval, so statuses stay fresh."""
        soonest = self.settings.resync_interval_s
        retry = timedelta(seconds=self.policy.terminate_retry_s)
        ends = self.p.backoff.ends()
        ends += [asked + retry for asked in self.p.launcher.terminate_requested.values()]
        ends += plan_timers  # e.g. compensation becoming due
        ends += self.p.statuses.short_due_at()  # an environment short long enough to announce
        for end in ends:
            if end > now:
                soonest = min(soonest, (end - now).total_seconds())
        return soonest

    def _finished(self, started: float) -> None:
        self.stats.last_pass_at = self.clock.monotonic()
        self.stats.last_pass_duration_s = self.stats.last_pass_at - started


def _write_lines(lines: list[LogLine]) -> None:
    for line in lines:
        getattr(log, line.level)(line.event, **line.fields)
