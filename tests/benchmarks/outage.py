"""The outage scenario: every spot pool of the region sold out for a while, then back.

Environments run on spot; then the stock of every spot pool drops to 0 (the simulator reclaims
every spot instance at once, as a stock cut does) and comes back ``outage_s`` later. Run once
with ``compensate_with_on_demand`` off and once on. Ground truth is sampled from the simulator:
RUNNING instances per environment and charge type, and the hourly price of what is alive.

Figures: the fraction of desired instance-seconds covered (during the outage and over the whole
run), the time to full coverage after the outage starts (floor: ``compensate_after_s`` + launch
latency), the time to be all spot again after it ends (floor: ceil(compensating / budget)
batches of one launch latency each, launch-before-terminate), and the pay-as-you-go
instance-hours and spend.
"""

from __future__ import annotations

import itertools
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import anyio

from controller.core.model import ENV_TAG
from tests.benchmarks import rig
from tests.benchmarks.presets import RunOptions
from tests.benchmarks.report import Figure, Target
from tests.benchmarks.session import Session
from tests.support.polling import eventually

ON_DEMAND = "POSTPAID_BY_HOUR"


@dataclass
class OutageSample:
    t: float
    running: dict[str, int]  # env id -> RUNNING, any charge type
    spot_running: dict[str, int]
    on_demand_alive: int  # PENDING or RUNNING pay-as-you-go: billed
    spend_per_h: float  # CNY per hour of everything alive


@dataclass
class Phases:
    """Wall-clock times of the run: steady spot, outage, spot back, all spot, the end."""

    start: float = 0.0
    out: float = 0.0
    back: float = 0.0
    spot: float = 0.0
    end: float = 0.0


@dataclass
class OutageRecorder:
    cloud: rig.Cloud
    env_ids: dict[str, int]  # env id -> desired
    interval_s: float
    samples: list[OutageSample] = field(default_factory=list)

    async def sample(self) -> OutageSample:
        running: dict[str, int] = defaultdict(int)
        spot: dict[str, int] = defaultdict(int)
        on_demand, spend = 0, 0.0
        for inst in await self.cloud.instances():
            env_id = inst["Tags"].get(ENV_TAG)
            if env_id not in self.env_ids or inst["InstanceState"] not in ("PENDING", "RUNNING"):
                continue
            spend += float(inst.get("Price") or 0.0)
            is_on_demand = inst["InstanceChargeType"] == ON_DEMAND
            on_demand += is_on_demand
            if inst["InstanceState"] == "RUNNING":
                running[env_id] += 1
                spot[env_id] += not is_on_demand
        s = OutageSample(time.time(), dict(running), dict(spot), on_demand, spend)
        self.samples.append(s)
        return s

    async def loop(self) -> None:
        while True:
            await self.sample()
            await anyio.sleep(self.interval_s)

    def covered(self, s: OutageSample) -> bool:
        return all(s.running.get(e, 0) >= d for e, d in self.env_ids.items())

    def all_spot(self, s: OutageSample) -> bool:
        return s.on_demand_alive == 0 and all(
            s.spot_running.get(e, 0) == d for e, d in self.env_ids.items()
        )

    def first(self, after: float, test: Any) -> float | None:
        return next((s.t - after for s in self.samples if s.t >= after and test(s)), None)

    def coverage(self, start: float, end: float) -> float:
        """Covered desired instance-seconds / desired instance-seconds over [start, end]."""
        rows = [s for s in self.samples if start <= s.t <= end]
        covered = wanted = 0.0
        for a, b in itertools.pairwise(rows):
            dt = b.t - a.t
            covered += dt * sum(min(a.running.get(e, 0), d) for e, d in self.env_ids.items())
            wanted += dt * sum(self.env_ids.values())
        return covered / wanted if wanted else 1.0

    def integral(self, start: float, end: float, value: Any) -> float:
        rows = [s for s in self.samples if start <= s.t <= end]
        return float(sum((b.t - a.t) * value(a) for a, b in itertools.pairwise(rows)))


def default_budget(desired: int) -> int:
    """The policy's default disruption budget: 10 % of desired, rounded up, at least 1."""
    return max(1, math.ceil(desired / 10))


async def _create(
    s: Session, envs: int, each: int, compensate: bool, after_s: int
) -> dict[str, int]:
    pools = rig.pools_of_region()
    rows, ids = [], {}
    for i in range(envs):
        env_id = f"env-out{i:04d}{'c' if compensate else 'n'}"
        zone, instance_type = pools[i % len(pools)]
        ids[env_id] = each
        rows.append(
            (
                env_id,
                f"outage-{i:02d}",
                zone,
                instance_type,
                rig.IMAGE_ID,
                rig.MAX_PRICE,
                each,
                compensate,
                after_s,
            )
        )
    await s.sql.execute(
        "INSERT INTO compute_environments (id, name, zone, instance_type, image_id, max_price, "
        "desired_count, compensate_with_on_demand, compensate_after_s) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    return ids


async def _set_spot_stock(s: Session, stock: int) -> None:
    for zone, instance_type in rig.pools_of_region():
        response = await s.cloud.http.put(
            "/_sim/market", json={"zone": zone, "instance_type": instance_type, "stock": stock}
        )
        response.raise_for_status()


async def outage_group(compensate: bool, opts: RunOptions) -> dict[str, Any]:
    preset = opts.preset
    envs, each = preset.outage_fleet
    after_s = preset.outage_compensate_after_s
    spec = rig.SimulatorSpec(preset.launch_latency_s, preset.api_latency_ms)
    label = f"outage {envs}x{each}, compensation {'on' if compensate else 'off'}"
    async with Session(opts, spec) as s:
        env_ids = await _create(s, envs, each, compensate, after_s)
        await s.start_daemon()
        await s.wait_observed()
        await s.wait_cloud(envs * each, preset.timeout_s, interval_s=0.2)
        rec = OutageRecorder(s.cloud, env_ids, max(preset.sample_interval_s, 0.25))
        t = Phases()
        async with anyio.create_task_group() as tg:
            tg.start_soon(rec.loop)
            t.start = time.time()
            await anyio.sleep(preset.outage_steady_s)
            t.out = time.time()
            await _set_spot_stock(s, 0)
            await anyio.sleep(preset.outage_s)
            t.back = time.time()
            await _set_spot_stock(s, rig.POOL_SIZE)

            async def all_spot() -> bool:
                return bool(rec.samples) and rec.all_spot(rec.samples[-1])

            await eventually(
                all_spot, within_s=preset.timeout_s, interval_s=0.1, what="all spot again"
            )
            t.spot = time.time()
            await anyio.sleep(preset.outage_steady_s)
            t.end = time.time()
            tg.cancel_scope.cancel()
    return _figures(label, compensate, rec, t, preset.launch_latency_s, after_s, each)


def _figures(
    label: str,
    compensate: bool,
    rec: OutageRecorder,
    t: Phases,
    launch_latency_s: float,
    after_s: int,
    each: int,
) -> dict[str, Any]:
    t_start, t_out, t_back, t_spot, t_end = t.start, t.out, t.back, t.spot, t.end
    # From the outage's start: first the reclaim shows (not covered), then coverage is back.
    dropped = rec.first(t_out, lambda s: not rec.covered(s))
    full_after = None
    if dropped is not None:
        again = rec.first(t_out + dropped, rec.covered)
        full_after = None if again is None else dropped + again
    back_after = t_spot - t_back
    peak_on_demand = max((s.on_demand_alive for s in rec.samples), default=0)
    per_env_compensating = math.ceil(peak_on_demand / max(1, len(rec.env_ids)))
    budget = default_budget(each)
    back_floor = math.ceil(per_env_compensating / budget) * launch_latency_s
    on_demand_hours = rec.integral(t_start, t_end, lambda s: s.on_demand_alive) / 3600
    spend = rec.integral(t_start, t_end, lambda s: s.spend_per_h) / 3600
    during = rec.coverage(t_out, t_back)
    overall = rec.coverage(t_start, t_end)
    outage_s = t_back - t_out
    full_floor = (after_s + launch_latency_s) if compensate else (outage_s + launch_latency_s)
    wanted = sum(rec.env_ids.values())
    uncovered = rec.integral(
        t_start,
        t_end,
        lambda s: sum(max(0, d - s.running.get(e, 0)) for e, d in rec.env_ids.items()),
    )
    uncovered_floor = wanted * full_floor
    details = {
        "compensate_with_on_demand": compensate,
        "compensate_after_s": after_s,
        "environments": len(rec.env_ids),
        "instances_each": each,
        "outage_s": round(outage_s, 1),
        "run_s": round(t_end - t_start, 1),
        "launch_latency_s": launch_latency_s,
        "coverage_during_outage": round(during, 4),
        "coverage_overall": round(overall, 4),
        "full_coverage_after_outage_start_s": full_after,
        "full_coverage_floor_s": full_floor,
        "all_spot_after_outage_end_s": round(back_after, 2),
        "all_spot_floor_s": back_floor,
        "disruption_budget": budget,
        "peak_on_demand_alive": peak_on_demand,
        "uncovered_instance_s": round(uncovered, 1),
        "uncovered_floor_instance_s": round(uncovered_floor, 1),
        "on_demand_instance_hours": round(on_demand_hours, 3),
        "spend_cny": round(spend, 3),
        "samples": len(rec.samples),
    }
    figures = [
        Figure(label, "desired instance-seconds covered, during the outage", "%", during * 100),
        Figure(
            label,
            "desired instance-seconds not covered",
            "inst-s",
            uncovered,
            floor=uncovered_floor,
            target=Target("ratio<=", 1.25) if compensate else None,
            note="floor: every instance missing for compensate_after_s + launch latency"
            if compensate
            else "floor: every instance missing until spot is back + launch latency",
        ),
        Figure(
            label,
            "desired instance-seconds covered, whole run",
            "%",
            overall * 100,
            target=Target(">=", 99.0) if compensate else None,
            note=f"run {t_end - t_start:.0f} s, outage {outage_s:.0f} s",
        ),
        Figure(
            label,
            "outage start -> every environment at desired",
            "s",
            full_after,
            floor=full_floor,
            target=Target("ratio<=", 1.25) if compensate else None,
            note=f"compensate_after_s {after_s}" if compensate else "spot back only",
        ),
        Figure(
            label,
            "outage end -> all spot again",
            "s",
            back_after,
            floor=back_floor if compensate else launch_latency_s,
            target=Target("ratio<=", 1.25) if compensate else None,
            note=f"{peak_on_demand} pay-as-you-go at peak, budget {budget}",
        ),
        Figure(label, "pay-as-you-go instance-hours bought", "h", on_demand_hours),
        Figure(label, "spend over the run", "CNY", spend),
    ]
    key = f"outage-{'on' if compensate else 'off'}"
    return {"figures": [f.to_json() for f in figures], "scenarios": {key: details}}
