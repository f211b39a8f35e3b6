"""One what-if run: a market trace against the real engine, on the simulator's clock.

The parts are the daemon's own: the planner and engine (:class:`~controller.reconcile.engine
.Engine`), a store (a throw-away SQLite file, migrated as the daemon does), the CVM client
speaking signed HTTP to an in-process simulator (httpx's ASGI transport, no socket). Only
the clock is not: a :class:`ReplayClock` moved by hand, so a day of market replays in
seconds. Each step applies the trace's rows that came due, sweeps, plans twice (the second
pass sees what the first one's calls did), then reads the ground truth from the simulator's
world: which instances run, in which pool, bought how, and which were reclaimed.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx

from controller.cloud.client import CvmClient
from controller.daemon import simulator_settings
from controller.reconcile.clock import Clock
from controller.reconcile.engine import Engine
from controller.service import Environments
from controller.settings import SIMULATOR_SECRET_ID, SIMULATOR_SECRET_KEY, Settings
from controller.simulator import Simulator, SimulatorConfig
from controller.simulator.config import PoolConfig
from controller.simulator.instance import EndReason, State
from controller.simulator.trace import Trace, TracePlayer
from controller.store.store import Store

ENDPOINT = "http://cvm.tencentcloudapi.com"
START = datetime(2026, 1, 1, tzinfo=UTC)
DEFAULT_STEP_S = 60.0
# No throttling on either side: the replay's calls are many per simulated second, and
# Tencent's limits are per real second.
UNLIMITED = 1_000_000.0


class ReplayClock(Clock):
    """Monotonic and wall time that move together, only when the replay says so."""

    def __init__(self, start: datetime = START) -> None:
        self._wall, self._mono = start, 0.0

    def monotonic(self) -> float:
        return self._mono

    def now(self) -> datetime:
        return self._wall

    def epoch(self) -> float:
        return self._wall.timestamp()

    def advance(self, seconds: float) -> None:
        self._mono += seconds
        self._wall += timedelta(seconds=seconds)

    async def sleep_until(self, deadline: float, stop: anyio.Event) -> None:
        await anyio.lowlevel.checkpoint()


@dataclass
class Sample:
    t_s: float
    running: int
    desired: int
    spend_cny: float  # so far


@dataclass
class RunResult:
    strategy: str
    desired: int
    duration_s: float
    cost_cny: float = 0.0
    instance_hours: float = 0.0
    on_demand_hours: float = 0.0
    covered_s: float = 0.0  # desired instance-seconds that ran
    interruptions: int = 0
    launches: int = 0
    offering_calls: int = 0  # DescribeZoneInstanceConfigInfos sent by the offering cache
    series: list[Sample] = field(default_factory=list)

    @property
    def cost_per_instance_hour(self) -> float:
        return self.cost_cny / self.instance_hours if self.instance_hours else 0.0

    @property
    def interruptions_per_100h(self) -> float:
        return 100 * self.interruptions / self.instance_hours if self.instance_hours else 0.0

    @property
    def coverage(self) -> float:
        wanted = self.desired * self.duration_s
        return self.covered_s / wanted if wanted else 1.0

    def summary(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "cost_cny": round(self.cost_cny, 2),
            "cost_per_instance_hour": round(self.cost_per_instance_hour, 4),
            "interruptions": self.interruptions,
            "interruptions_per_100_instance_hours": round(self.interruptions_per_100h, 2),
            "coverage": round(self.coverage, 4),
            "on_demand_hours": round(self.on_demand_hours, 1),
            "instance_hours": round(self.instance_hours, 1),
        }


def simulator_for(
    trace: Trace, clock: ReplayClock, seed: int, images: Sequence[str] = ()
) -> Simulator:
    """The trace's market at its start, Tencent's timings, no faults nor rate limits; the
    environments' images exist."""
    markets = []
    for row in trace.initial().values():
        pool = PoolConfig(
            row.zone,
            row.instance_type,
            row.price,
            stock=row.stock,
            on_demand_price=row.on_demand_price or 0.0,
        )
        if row.on_demand_stock is not None:
            pool.on_demand_stock = row.on_demand_stock
        markets.append(pool)
    config = SimulatorConfig(
        secret_id=SIMULATOR_SECRET_ID,
        secret_key=SIMULATOR_SECRET_KEY,
        region=markets[0].zone.rsplit("-", 1)[0],
        launch_delay_s=20.0,
        terminate_delay_s=5.0,
        markets=markets,
    )
    config.images = list(dict.fromkeys([*config.images, *images]))
    config.faults.rate_limits = {action: None for action in config.faults.rate_limits}
    return Simulator(config, seed=seed, clock=clock.epoch)


def replay_settings(database_url: str, region: str) -> Settings:
    base = Settings.from_env(
        {},
        database_url=database_url,
        region=region,
        rate_limits={
            a: UNLIMITED
            for a in (
                "RunInstances",
                "TerminateInstances",
                "DescribeInstances",
                "DescribeInstancesStatus",
                "DescribeZoneInstanceConfigInfos",
            )
        },
        max_inflight_calls=64,
    )
    return simulator_settings(base, ENDPOINT)


async def run(
    trace: Trace,
    environments: Sequence[Mapping[str, Any]],
    strategy: str,
    *,
    step_s: float = DEFAULT_STEP_S,
    seed: int = 0,
    label: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> RunResult:
    """Replay ``trace`` with ``environments`` (user columns) all set to ``strategy`` (and
    ``overrides``, e.g. a zone balance); ``label`` names the run (default: the strategy)."""
    clock = ReplayClock()
    images = [str(v["image_id"]) for v in environments if v.get("image_id")]
    sim = simulator_for(trace, clock, seed, images)
    region = sim.config.region
    with tempfile.TemporaryDirectory(prefix="spot-controller-whatif-") as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'whatif.db'}"
        store = await Store.open(url, migrate_schema=True)
        try:
            settings = replay_settings(url, region)
            envs = Environments(store, region)
            desired = 0
            for values in environments:
                row = {**values, "allocation_strategy": strategy, **(overrides or {})}
                created = await envs.create(row)
                desired += created.desired_count
            async with CvmClient(
                settings, transport=httpx.ASGITransport(app=sim.app), wall_clock=clock.epoch
            ) as client:
                engine = Engine(settings, store, client, clock=clock, rng=random.Random(seed))
                result = RunResult(label or strategy, desired, trace.duration_s)
                await _steps(engine, sim, TracePlayer(sim, trace), clock, result, step_s)
                result.offering_calls = engine.offerings.calls
                return result
        finally:
            await store.close()


async def _pass(engine: Engine) -> None:
    async with anyio.create_task_group() as calls:
        engine.launcher.attach(calls)
        try:
            await engine.run_pass()
        finally:
            engine.launcher.attach(None)


async def _steps(
    engine: Engine,
    sim: Simulator,
    player: TracePlayer,
    clock: ReplayClock,
    result: RunResult,
    step_s: float,
) -> None:
    elapsed = 0.0
    while elapsed < result.duration_s:
        player.apply_due(elapsed)
        await engine.observer.sweep()
        await _pass(engine)
        await _pass(engine)
        _measure(sim, result, elapsed, step_s)
        clock.advance(step_s)
        elapsed += step_s
    world = sim.advance_locked()
    result.interruptions = sum(
        i.ending_reason == EndReason.RECLAIMED for i in world.instances.values()
    )
    result.launches = len(world.instances)


def _measure(sim: Simulator, result: RunResult, t_s: float, step_s: float) -> None:
    """Bill the step: every RUNNING instance at its pool's price now (spot at the market)."""
    hours = step_s / 3600
    running = 0
    with sim.lock:
        world = sim.advance_locked()
        for instance in world.alive.values():
            if instance.state != State.RUNNING:
                continue
            running += 1
            pool = world.pools[(instance.zone, instance.instance_type)]
            spot = instance.charge_type == "SPOTPAID"
            result.cost_cny += (pool.price if spot else pool.on_demand_price) * hours
            if not spot:
                result.on_demand_hours += hours
    result.instance_hours += running * hours
    result.covered_s += min(running, result.desired) * step_s
    result.series.append(Sample(t_s, running, result.desired, result.cost_cny))
