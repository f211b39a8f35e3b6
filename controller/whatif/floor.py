"""The hindsight floor: the least any placement could have paid on a trace.

Each hour, the environments' desired count placed in the cheapest pools with stock at that
hour's start (the trace as replayed up to then), ignoring interruptions and launch delays:
spot pools at or under the bid by price, each up to its stock; the on-demand part of a
capacity policy, and whatever spot stock cannot hold, at the cheapest pay-as-you-go price.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from controller.core.allocation import split
from controller.core.spec import EnvironmentSpec, parse_environment
from controller.simulator.market import SPOT_DISCOUNT, spec_of
from controller.simulator.trace import Trace, TraceRow

HOUR_S = 3600.0


def _candidates(spec: EnvironmentSpec, pools: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
    """The pools the environment may use: its named types and attribute matches in its zones."""
    named = {(o.zone, o.instance_type) for o in spec.offerings}
    p = spec.placement
    zones = set(spec.zones)
    for zone, itype in pools:
        if zone not in zones or not p.by_attributes:
            continue
        cpu, memory = spec_of(itype)
        if p.instance_cpu is not None and cpu != p.instance_cpu:
            continue
        if p.instance_memory is not None and memory != p.instance_memory:
            continue
        if p.instance_families and itype.partition(".")[0] not in p.instance_families:
            continue
        named.add((zone, itype))
    return named


def floor_cost(trace: Trace, environments: Sequence[Mapping[str, Any]], region: str) -> float:
    specs = [
        parse_environment({**v, "id": f"env-floor{i:03d}"}, region)
        for i, v in enumerate(environments)
    ]
    pools = trace.pools
    allowed = [_candidates(s, pools) for s in specs]
    state: dict[tuple[str, str], TraceRow] = {}
    od_price: dict[tuple[str, str], float] = {}
    rows, index, total = trace.rows, 0, 0.0
    hours = max(1, math.ceil(trace.duration_s / HOUR_S))
    for hour in range(hours):
        start = hour * HOUR_S
        while index < len(rows) and rows[index].t_s <= start:
            row = rows[index]
            state[row.pool] = row
            if row.on_demand_price is not None:
                od_price[row.pool] = row.on_demand_price
            index += 1
        length = min(HOUR_S, trace.duration_s - start) / HOUR_S if trace.duration_s else 1.0
        stock = {pool: row.stock for pool, row in state.items()}
        for spec, mine in zip(specs, allowed, strict=True):
            on_demand, spot = split(spec.desired_count, spec.capacity)
            bid = float(spec.max_price)
            cheap = sorted(
                (row.price, pool)
                for pool, row in state.items()
                if pool in mine and row.price <= bid
            )
            for price, pool in cheap:
                take = min(spot, stock[pool])
                stock[pool] -= take
                spot -= take
                total += take * price * length
            od = [od_price.get(p, state[p].price / SPOT_DISCOUNT) for p in mine if p in state]
            if od:
                total += (on_demand + spot) * min(od) * length
    return total
