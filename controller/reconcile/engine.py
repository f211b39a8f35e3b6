"""The composition root: builds the engine's parts, hands each the shared objects it needs,
and runs their loops in one task group.

Parts and the state each one alone writes:
  Leadership  the lease and the store's fence        Wakeup        dirty, replan_at
  DesiredState rows, specs, invalid rows              Observer      sweeps, probes
  Ledger -> FleetState  nodes and launches (records first, memory after)
  Launcher    calls in flight, terminate requests     BackoffBook   blocks and holds
  StatusWriter the status columns                     Passes        the pass and its stats
Health, metrics and the heartbeat read :class:`EngineView`, never the parts.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

import anyio

from controller.cloud.client import CvmClient
from controller.core.backoff import BackoffBook, Block
from controller.core.instances import Offering
from controller.core.model import NodeState
from controller.core.plan import EnvStatus, Plan
from controller.core.spec import EnvironmentSpec
from controller.ids import new_node_id
from controller.reconcile.clock import Clock
from controller.reconcile.desired import DesiredState
from controller.reconcile.fleet import FleetState
from controller.reconcile.hooks import EngineHooks
from controller.reconcile.launcher import Launcher
from controller.reconcile.lease import Leadership
from controller.reconcile.ledger import Ledger
from controller.reconcile.metrics import Counters, hourly_price
from controller.reconcile.observer import PROBE_SHARE, Observer
from controller.reconcile.offerings import OfferingCache, OfferingRow
from controller.reconcile.passes import Passes, PassParts
from controller.reconcile.statuses import StatusWriter
from controller.reconcile.triggers import Wakeup, watch_user_changes
from controller.settings import Settings
from controller.store.store import Store


class Engine:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        client: CvmClient,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        hooks: EngineHooks | None = None,
        probe_share: float = PROBE_SHARE,
    ) -> None:
        self.settings, self.store, self.client = settings, store, client
        self.clock = clock = clock or Clock()
        hooks = hooks or EngineHooks()
        self.started_at = 0.0  # monotonic, set by run(): an engine never run is not alive
        self.wakeup = Wakeup(clock)
        self.fleet = FleetState()
        self.desired = DesiredState(store, settings.region, settings.resync_interval_s)
        self.ledger = Ledger(store, self.fleet, self.desired.name)
        self.backoff = BackoffBook(
            base_s=settings.backoff_base_s,
            max_s=settings.backoff_max_s,
            error_retry_s=settings.error_retry_s,
            rng=rng or random.Random(),
        )
        self.statuses = StatusWriter(
            store,
            clock,
            settings.resync_interval_s,
            short_after_s=settings.notify_short_after_s,
            stored_status=self.desired.stored_status.get,
        )
        self.counters = Counters()
        self.leadership = Leadership(
            settings, store, clock, on_acquired=self._lease_acquired, on_lost=self._lease_lost
        )
        leading = lambda: self.leadership.leading  # noqa: E731 - read at each call
        self.observer = Observer(
            settings,
            client,
            clock,
            self.fleet,
            self.wakeup,
            self.backoff,
            leading=leading,
            env_ids=lambda: list(self.desired.specs),
            hooks=hooks,
            probe_share=probe_share,
        )
        self.launcher = Launcher(
            client=client,
            clock=clock,
            leadership=self.leadership,
            ledger=self.ledger,
            fleet=self.fleet,
            backoff=self.backoff,
            desired=self.desired,
            wakeup=self.wakeup,
            counters=self.counters,
            hooks=hooks,
        )
        self.offerings = OfferingCache(
            client, clock, self.backoff, refresh_s=settings.offerings_refresh_s
        )
        parts = PassParts(
            self.desired,
            self.observer,
            self.fleet,
            self.ledger,
            self.launcher,
            self.backoff,
            self.statuses,
            self.wakeup,
            self.counters,
            self.offerings,
        )
        self.passes = Passes(
            settings, clock, parts, leading=leading, hooks=hooks, new_node_id=new_node_id
        )
        self.view = EngineView(self)

    async def load(self) -> None:
        """Read the durable records (also done on taking the lease)."""
        await self.ledger.load()

    async def run_pass(self) -> Plan | None:
        return await self.passes.run_pass()

    async def run(self, *, stop: anyio.Event | None = None) -> None:
        """Hold the lease, sweep and pass until ``stop`` is set.

        Only the replica holding the cluster's lease acts; the others wait to take over. Calls
        already sent when ``stop`` is set finish so their results are recorded (the daemon's
        shutdown deadline bounds this); then the lease is given up at once.
        """
        self.started_at = self.clock.monotonic()
        stop = stop or anyio.Event()
        try:
            async with anyio.create_task_group() as calls:
                self.launcher.attach(calls)
                async with anyio.create_task_group() as loops:
                    loops.start_soon(self.leadership.run, stop)
                    loops.start_soon(self.observer.sweep_loop, stop)
                    loops.start_soon(self.passes.loop, stop)
                    loops.start_soon(self.observer.probe_loop, stop)
                    loops.start_soon(
                        watch_user_changes,
                        self.store,
                        self.wakeup,
                        lambda: self.leadership.leading,
                        self.settings.poll_interval_s,
                        stop,
                    )
                    await stop.wait()
                    loops.cancel_scope.cancel()
        finally:
            self.launcher.attach(None)
            await self.leadership.release()

    async def _lease_acquired(self) -> None:
        """Start from the durable records: another replica may have acted since we last did."""
        self.observer.forget(lease_changed=True)
        self.statuses.forget()
        self.desired.forget_read()
        await self.ledger.load()
        self.wakeup.poke()

    def _lease_lost(self) -> None:
        self.observer.forget(lease_changed=True)
        self.ledger.forget()


class EngineView:
    """The engine as health, metrics and the heartbeat see it: read-only, at request time."""

    def __init__(self, engine: Engine) -> None:
        self._e = engine

    @property
    def store(self) -> Store:
        return self._e.store

    @property
    def poll_interval_s(self) -> float:
        return self._e.settings.poll_interval_s

    def monotonic(self) -> float:
        return self._e.clock.monotonic()

    @property
    def started_at(self) -> float:
        return self._e.started_at

    @property
    def leader(self) -> bool:
        return self._e.leadership.leading

    @property
    def standby(self) -> bool:
        return not self.leader

    @property
    def epoch(self) -> int | None:
        return self._e.leadership.epoch

    @property
    def last_lease_tick_at(self) -> float | None:
        return self._e.leadership.last_tick_at

    @property
    def observed(self) -> bool:
        return self._e.observer.observed

    @property
    def last_sweep_at(self) -> float | None:
        return self._e.observer.last_sweep_at

    @property
    def last_probe_at(self) -> float | None:
        return self._e.observer.last_probe_at

    @property
    def passes(self) -> int:
        return self._e.passes.stats.passes

    @property
    def passes_skipped(self) -> int:
        return self._e.passes.stats.passes_skipped

    @property
    def last_pass_at(self) -> float | None:
        return self._e.passes.stats.last_pass_at

    @property
    def last_pass_duration_s(self) -> float:
        return self._e.passes.stats.last_pass_duration_s

    @property
    def store_ok(self) -> bool:
        return self._e.passes.stats.store_ok and self._e.leadership.store_ok

    @property
    def environments(self) -> Mapping[str, EnvironmentSpec]:
        return self._e.desired.specs

    @property
    def invalid(self) -> Mapping[str, str]:
        return self._e.desired.invalid

    def env_name(self, env_id: str) -> str:
        return self._e.desired.name(env_id)

    def statuses(self) -> dict[str, EnvStatus]:
        return {env_id: key[0] for env_id, key in self._e.statuses.current.items()}

    def node_counts(self) -> Counter[tuple[str, NodeState]]:
        """(env id, node state) -> nodes."""
        return self._e.fleet.counts()

    def blocks(self) -> list[tuple[str | None, Offering, Block, bool]]:
        """(env id or None for all, offering, block, whether it is still in force)."""
        now = self._e.clock.now()
        return [
            (env_id, offering, block, block.active(now))
            for (env_id, offering), block in sorted(
                self._e.backoff.blocks.items(), key=lambda kv: str(kv[0])
            )
        ]

    def capacity(self) -> list[tuple[str, str, str, int, Decimal]]:
        """(env id, charge type, role, RUNNING instances, their hourly spend in CNY)."""
        groups: dict[tuple[str, str, str], list[Any]] = {}
        for node in self._e.fleet.nodes.values():
            if node.state != NodeState.RUNNING:
                continue
            entry = groups.setdefault((node.env_id, node.charge_type, node.role), [0, Decimal(0)])
            entry[0] += 1
            entry[1] += hourly_price(node)
        return [(*key, count, spend) for key, (count, spend) in sorted(groups.items())]

    def usage(self) -> list[tuple[str, str, float, float]]:
        """(env id, charge type, instance-seconds, CNY) since the daemon started."""
        totals = self._e.counters.usage.totals(
            iter(self._e.fleet.nodes.values()), self._e.clock.now()
        )
        return [(env, charge, s, cny) for (env, charge), (s, cny) in sorted(totals.items())]

    def offerings(self) -> list[OfferingRow]:
        """The offering cache, with each offering's unavailability from the backoff book."""
        return self._e.offerings.rows()

    def counters(self) -> Iterator[tuple[tuple[str, str, str], int]]:
        return self._e.counters.items()

    def cloud_calls(self) -> list[tuple[tuple[str, str], int]]:
        return sorted(self._e.client.stats.items())

    def probe_interval(self) -> float | None:
        return self._e.observer.probe_interval()
