"""Synthetic market traces, seeded (the same seed and pools give the same file).

The model, per pool (zone, instance type, base spot price, base stock):
- price: a multiplicative random walk, one step an hour: price x exp(N(0, ``volatility``)),
  kept within ``band`` (0.7 to 1.3 of the base price by default);
- stock: the base stock, except in storms. Storms come per zone (Poisson, ``storms_per_day``
  per zone), last 30 to 120 minutes, and cut every pool of the zone at once (correlated) to
  5 to 40 % of its base stock, each pool drawing its own fraction; the spot price of the
  zone's pools rises 20 % while the storm lasts. Stock comes back whole when it ends;
- on-demand: the base price / 0.2 and a large stock, unchanged (columns left empty after
  the first row of a pool).
A row is written at t=0 for every pool, then whenever a pool's price or stock changes
(prices at whole hours, storms at their start and end, on a ``step_s`` grid).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from controller.simulator.market import SPOT_DISCOUNT
from controller.simulator.trace import TraceRow


@dataclass(frozen=True)
class PoolModel:
    zone: str
    instance_type: str
    price: float  # base spot price, CNY/hour
    stock: int  # base stock


def generate(
    pools: Sequence[PoolModel],
    *,
    seed: int,
    hours: float = 24,
    step_s: int = 900,
    volatility: float = 0.06,
    band: tuple[float, float] = (0.7, 1.3),
    storms_per_day: float = 2.0,
) -> list[TraceRow]:
    rng = random.Random(seed)
    end = int(hours * 3600)
    grid = range(0, end + 1, step_s)
    # Storms per zone: (start, end) on the grid.
    storms: dict[str, list[tuple[int, int]]] = {}
    for zone in dict.fromkeys(p.zone for p in pools):
        t, spans = 0.0, []
        rate = storms_per_day / 86400
        while rate > 0:
            t += rng.expovariate(rate)
            if t >= end:
                break
            start = int(t // step_s * step_s)
            length = rng.choice(range(1800, 7201, step_s)) if step_s <= 1800 else step_s
            spans.append((start, min(end, start + length)))
        storms[zone] = spans
    cut: dict[tuple[str, str, int], float] = {}  # each pool's fraction in each storm
    rows: list[TraceRow] = []
    walk = {(p.zone, p.instance_type): 1.0 for p in pools}
    last: dict[tuple[str, str], tuple[float, int]] = {}
    for t in grid:
        if t and t % 3600 == 0:
            for key in walk:
                low, high = band
                walk[key] = min(high, max(low, walk[key] * math.exp(rng.gauss(0, volatility))))
        for p in pools:
            key = (p.zone, p.instance_type)
            storm = next((i for i, (a, b) in enumerate(storms[p.zone]) if a <= t < b), None)
            price = p.price * walk[key] * (1.2 if storm is not None else 1.0)
            if storm is not None and (*key, storm) not in cut:
                cut[(*key, storm)] = rng.uniform(0.05, 0.4)
            stock = p.stock if storm is None else int(p.stock * cut[(*key, storm)])
            now = (round(price, 4), stock)
            if last.get(key) == now:
                continue
            first = key not in last
            last[key] = now
            rows.append(
                TraceRow(
                    float(t),
                    p.zone,
                    p.instance_type,
                    now[0],
                    stock,
                    round(p.price / SPOT_DISCOUNT, 4) if first else None,
                    1_000_000 if first else None,
                )
            )
    return rows


# The pools of the shipped 24-hour trace: four 2-vCPU / 4 GB types in three ap-guangzhou
# zones (the simulator's default prices), stock from 40 to 200 each: a tight market, where
# the stock class tells pools apart.
SHIPPED_TYPES = ("S5.MEDIUM4", "SA2.MEDIUM4", "SA5.MEDIUM4", "S6.MEDIUM4")
SHIPPED_ZONES = ("ap-guangzhou-3", "ap-guangzhou-4", "ap-guangzhou-6")


def shipped_pools(seed: int = 16) -> list[PoolModel]:
    from controller.simulator.market import default_pools

    prices = {(z, t): p for z, t, p in default_pools()}
    rng = random.Random(seed)
    return [
        PoolModel(zone, itype, prices[(zone, itype)], rng.choice((40, 60, 80, 120, 200)))
        for zone in SHIPPED_ZONES
        for itype in SHIPPED_TYPES
    ]
