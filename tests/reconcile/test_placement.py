"""Placement strategies against the in-process simulator, stepped by hand (SQLite, PostgreSQL).

Ground truth is the simulator: where the instances run; the records (``compute_nodes``) and
the activities must agree. The market is set through the simulator's admin API so the
cheapest pool with stock is known; nothing here asserts how long anything took.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import sqlalchemy as sa

from controller.health import EngineCollector
from controller.store.schema import activities, compute_nodes
from tests.support.engine import EngineRig, engine_rig

ZONES = ("ap-guangzhou-3", "ap-guangzhou-4", "ap-guangzhou-6")
TYPES = ("S5.MEDIUM4", "SA2.MEDIUM4")


async def _market(rig: EngineRig, zone: str, instance_type: str, **values: Any) -> None:
    response = await rig.admin.put(
        "/_sim/market", json={"zone": zone, "instance_type": instance_type, **values}
    )
    response.raise_for_status()


async def _step(rig: EngineRig, seconds: float = 1.0) -> None:
    rig.clock.advance(seconds)
    await rig.sweep()
    await rig.run_pass()
    await rig.run_pass()


async def _converge(rig: EngineRig, count: int) -> list[dict[str, Any]]:
    for _ in range(30):
        await _step(rig)
        alive = [i for i in await rig.alive() if i["InstanceState"] == "RUNNING"]
        if len(alive) == count:
            return alive
    raise AssertionError(f"did not converge to {count}: {len(await rig.alive())} alive")


def _pools(instances: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    return Counter((i["Zone"], i["InstanceType"]) for i in instances)


async def _env_nodes(rig: EngineRig, env_id: str) -> Counter[tuple[str, str]]:
    c = compute_nodes.c
    async with rig.store.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(c.zone, c.instance_type).where(c.env_id == env_id, c.state != "ENDED")
        )
        return Counter((r.zone, r.instance_type) for r in rows)


async def _causes(rig: EngineRig, env_id: str) -> list[str]:
    async with rig.store.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(activities.c.cause).where(activities.c.env_id == env_id)
        )
        return [r.cause for r in rows]


def _env_values(**extra: Any) -> dict[str, Any]:
    return {
        "zone": ZONES[0],
        "fallback_zones": ",".join(ZONES[1:]),
        "instance_type": TYPES[0],
        "fallback_instance_types": ",".join(TYPES[1:]),
        **extra,
    }


async def _cheap_market(rig: EngineRig) -> None:
    """S5.MEDIUM4 dear everywhere; SA2.MEDIUM4 cheapest in ap-guangzhou-4 but nearly out
    of stock there, next cheapest in ap-guangzhou-6."""
    for zone in ZONES:
        await _market(rig, zone, "S5.MEDIUM4", price=0.30)
    await _market(rig, "ap-guangzhou-3", "SA2.MEDIUM4", price=0.09)
    await _market(rig, "ap-guangzhou-4", "SA2.MEDIUM4", price=0.05, stock=5)  # UnderStock
    await _market(rig, "ap-guangzhou-6", "SA2.MEDIUM4", price=0.07)


async def test_price_capacity_launches_in_the_cheapest_pool_with_stock(database_url: str) -> None:
    async with engine_rig(database_url) as rig:
        await _cheap_market(rig)
        env_id = await rig.create_env(
            6, **_env_values(allocation_strategy="PRICE_CAPACITY_OPTIMIZED")
        )
        alive = await _converge(rig, 6)
        assert _pools(alive) == {("ap-guangzhou-6", "SA2.MEDIUM4"): 6}
        assert await _env_nodes(rig, env_id) == _pools(alive)
        causes = await _causes(rig, env_id)
        assert any(
            "cheapest per vCPU with stock: SA2.MEDIUM4 in ap-guangzhou-6 at 0.035 CNY/vCPU-h, "
            "EnoughStock" in c
            for c in causes
        ), causes


async def test_cost_optimized_takes_the_cheapest_even_with_little_stock(database_url: str) -> None:
    async with engine_rig(database_url) as rig:
        await _cheap_market(rig)
        await rig.create_env(3, **_env_values(allocation_strategy="COST_OPTIMIZED"))
        alive = await _converge(rig, 3)
        assert _pools(alive) == {("ap-guangzhou-4", "SA2.MEDIUM4"): 3}


async def test_equality_spreads_over_zones(database_url: str) -> None:
    async with engine_rig(database_url) as rig:
        await _cheap_market(rig)
        await _market(rig, "ap-guangzhou-4", "SA2.MEDIUM4", stock=5000)
        env_id = await rig.create_env(
            7,
            **_env_values(allocation_strategy="PRICE_CAPACITY_OPTIMIZED", zone_balance="EQUALITY"),
        )
        alive = await _converge(rig, 7)
        zones = Counter(i["Zone"] for i in alive)
        assert set(zones) == set(ZONES)
        assert max(zones.values()) - min(zones.values()) <= 1
        assert all(i["InstanceType"] == "SA2.MEDIUM4" for i in alive)  # the cheapest type
        assert await _env_nodes(rig, env_id) == _pools(alive)


async def test_a_sold_out_pool_is_left_for_the_next_cheapest_and_nothing_moves(
    database_url: str,
) -> None:
    async with engine_rig(database_url) as rig:
        await _cheap_market(rig)
        await rig.create_env(4, **_env_values(allocation_strategy="PRICE_CAPACITY_OPTIMIZED"))
        first = await _converge(rig, 4)
        assert _pools(first) == {("ap-guangzhou-6", "SA2.MEDIUM4"): 4}
        # ap-guangzhou-6 sold out while the cache still says EnoughStock: the launch fails,
        # the offering is blocked for its backoff, the next cheapest with stock is used.
        await _market(rig, "ap-guangzhou-6", "SA2.MEDIUM4", stock=4)
        await _market(rig, "ap-guangzhou-3", "SA2.MEDIUM4", price=0.01)  # now cheaper
        async with rig.store.engine.begin() as conn:
            await conn.execute(sa.text("UPDATE compute_environments SET desired_count = 6"))
        alive = await _converge(rig, 6)
        pools = _pools(alive)
        assert pools[("ap-guangzhou-6", "SA2.MEDIUM4")] == 4, "running instances never move"
        assert sum(pools.values()) == 6


async def test_metrics_show_each_offering_of_the_cache(database_url: str) -> None:
    async with engine_rig(database_url) as rig:
        await _cheap_market(rig)
        await rig.create_env(2, **_env_values(allocation_strategy="CAPACITY_OPTIMIZED"))
        await _converge(rig, 2)
        metrics = {m.name: m for m in EngineCollector(rig.engine.view).collect()}
        key = {"zone": "ap-guangzhou-4", "instance_type": "SA2.MEDIUM4", "charge_type": "SPOTPAID"}
        price = [
            s.value
            for s in metrics["spot_controller_offering_price_cny"].samples
            if s.labels == key
        ]
        stock = [
            s.value
            for s in metrics["spot_controller_offering_stock_class"].samples
            if s.labels == key
        ]
        assert price == [0.05]
        assert stock == [1.0]  # UnderStock
        zones = {s.labels["zone"] for s in metrics["spot_controller_offering_price_cny"].samples}
        assert zones == set(ZONES)  # only the zones an environment uses are asked


async def test_an_environment_of_attributes_only_takes_the_cheapest_matching_type(
    database_url: str,
) -> None:
    async with engine_rig(database_url) as rig:
        await _cheap_market(rig)
        await rig.create_env(
            3,
            **_env_values(
                instance_type="",
                fallback_instance_types="",
                allocation_strategy="PRICE_CAPACITY_OPTIMIZED",
                instance_cpu=2,
                instance_memory=4,
            ),
        )
        alive = await _converge(rig, 3)
        cheapest = min(
            (p.price, p.zone, p.instance_type)
            for p in rig.sim.world.pools.values()
            if p.zone in ZONES
            and (p.cpu, p.memory) == (2, 4)
            and p.status_category == "EnoughStock"
        )
        assert _pools(alive) == {(cheapest[1], cheapest[2]): 3}
