"""The capacity policy against the in-process simulator, stepped by hand (SQLite, PostgreSQL).

Ground truth is the simulator: which instances are alive, their charge types and the prices
it bills them at; the records (``compute_nodes``) must agree. Steps are bounded loops on a
manual clock; nothing here asserts how long anything took.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from controller.core.instances import ON_DEMAND, SPOT
from controller.store.schema import activities, compute_environments, compute_nodes
from tests.support.engine import EngineRig, engine_rig

ZONE, TYPE = "ap-guangzhou-3", "S2.MEDIUM4"


async def _market(rig: EngineRig, **values: Any) -> None:
    response = await rig.admin.put(
        "/_sim/market", json={"zone": ZONE, "instance_type": TYPE, **values}
    )
    response.raise_for_status()


async def _step(rig: EngineRig, seconds: float = 0.5) -> None:
    """Time passes, a sweep, and two passes: one that may retry spot, one that sees its block."""
    rig.clock.advance(seconds)
    await rig.sweep()
    await rig.run_pass()
    await rig.run_pass()


async def _charges(rig: EngineRig) -> list[str]:
    return sorted(i["InstanceChargeType"] for i in await rig.alive())


async def _live_nodes(rig: EngineRig, env_id: str) -> list[dict[str, Any]]:
    c = compute_nodes.c
    async with rig.store.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(compute_nodes).where(c.env_id == env_id, c.state != "ENDED")
        )
        return [dict(r._mapping) for r in rows]


async def _env(rig: EngineRig, env_id: str) -> dict[str, Any]:
    async with rig.store.engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(compute_environments).where(compute_environments.c.id == env_id)
            )
        ).one()
        return dict(row._mapping)


async def test_compensation_fills_the_gap_after_the_delay_and_the_way_back_replaces_it(
    database_url: str,
) -> None:
    async with engine_rig(database_url) as rig:
        await _market(rig, stock=0)  # every spot offering of the environment is sold out
        env_id = await rig.create_env(
            4, compensate_with_on_demand=True, compensate_after_s=5, disruption_budget=2
        )
        await _step(rig, 0)
        assert await _charges(rig) == []  # spot tried and refused; not yet compensated
        for _ in range(40):
            await _step(rig)
            if len(await rig.alive()) == 4:
                break
        assert await _charges(rig) == [ON_DEMAND] * 4
        nodes = await _live_nodes(rig, env_id)
        assert sorted(n["role"] for n in nodes) == ["compensation"] * 4
        prices = {i["InstanceId"]: i["Price"] for i in await rig.alive()}
        for node in nodes:  # the price recorded is what the simulator bills
            assert node["charge_type"] == ON_DEMAND
            assert Decimal(node["hourly_price"]) == Decimal(str(prices[node["instance_id"]]))
        async with rig.store.engine.connect() as conn:
            causes = (
                await conn.execute(
                    sa.select(activities.c.cause).where(activities.c.env_id == env_id)
                )
            ).scalars()
            assert any(
                c.startswith("compensate for 4 spot instances unavailable: ResourceInsufficient")
                and c.endswith("in every spot offering for 5 s")
                for c in causes
            )
        await _step(rig)
        row = await _env(rig, env_id)
        assert (row["status"], row["status_reason"]) == (
            "READY",
            "4 of 4 running (0 spot, 4 pay-as-you-go, 4 compensating)",
        )

        # Spot comes back: launch-before-terminate, never below 4, never above 4 + 2.
        await _market(rig, stock=5000)
        seen_max = 0
        for _ in range(40):
            await _step(rig, 1.5)  # past any spot backoff
            alive = await rig.alive()
            running = [i for i in alive if i["InstanceState"] == "RUNNING"]
            assert len(running) >= 4
            assert len(alive) <= 6
            seen_max = max(seen_max, len(alive))
            if await _charges(rig) == [SPOT] * 4:
                break
        assert await _charges(rig) == [SPOT] * 4
        assert seen_max > 4  # replacements ran beside what they replaced
        await _step(rig)  # the sweep sees the replaced instances gone
        assert sorted(n["role"] for n in await _live_nodes(rig, env_id)) == ["spot"] * 4
        async with rig.store.engine.connect() as conn:
            causes = list(
                (
                    await conn.execute(
                        sa.select(activities.c.cause).where(activities.c.env_id == env_id)
                    )
                ).scalars()
            )
        assert any(c.startswith("replace compensation instance") for c in causes)
        assert sum("replaced" in c for c in causes) == 4


async def test_an_accepted_termination_frees_its_budget_before_the_instance_is_gone(
    database_url: str,
) -> None:
    """Budget 1: the next replacement starts once Tencent accepted the last termination, not
    once the terminated instance has vanished (here it stays TERMINATING for an hour)."""
    async with engine_rig(database_url, sim={"terminate_delay_s": 3600.0}) as rig:
        await _market(rig, stock=0)
        await rig.create_env(
            3, compensate_with_on_demand=True, compensate_after_s=1, disruption_budget=1
        )
        for _ in range(20):
            await _step(rig)
            if len(await rig.alive()) == 3:
                break
        assert await _charges(rig) == [ON_DEMAND] * 3
        await _market(rig, stock=5000)
        for _ in range(40):
            await _step(rig, 1.5)
            assert len(await rig.alive()) <= 3 + 1  # PENDING or RUNNING: desired + budget
            if await _charges(rig) == [SPOT] * 3:
                break
        assert await _charges(rig) == [SPOT] * 3
        going = [i for i in await rig.instances() if i["InstanceState"] == "TERMINATING"]
        assert sorted(i["InstanceChargeType"] for i in going) == [ON_DEMAND] * 3


async def test_spot_back_in_the_market_ends_its_backoff_at_the_next_refresh(
    database_url: str,
) -> None:
    """A backoff grown long while spot was sold out does not hold the way back: the offering
    cache's next look (every 15 s at a zone with a sold-out pool) shows stock, and spot is
    tried."""
    async with engine_rig(database_url, backoff_base_s=1200.0, backoff_max_s=3600.0) as rig:
        await _market(rig, stock=0)
        await rig.create_env(2, compensate_with_on_demand=True, compensate_after_s=1)
        for _ in range(10):
            await _step(rig)
            if len(await rig.alive()) == 2:
                break
        assert await _charges(rig) == [ON_DEMAND] * 2
        await _market(rig, stock=5000)
        for _ in range(2):  # 2 x 16 s: a zone with a sold-out pool is looked at every 15 s
            await _step(rig, 16)
            if SPOT in await _charges(rig):
                break
        assert SPOT in await _charges(rig)


async def test_the_spend_cap_is_never_exceeded(database_url: str) -> None:
    async with engine_rig(database_url) as rig:
        await _market(rig, price=0.12, on_demand_price=0.6)
        env_id = await rig.create_env(
            6, on_demand_base_count=2, max_hourly_spend="1.50", max_price="0.20"
        )
        for _ in range(6):
            await _step(rig)
        alive = await rig.alive()
        spend = sum(Decimal(str(i["Price"])) for i in alive)
        assert spend <= Decimal("1.50")
        # two pay-as-you-go (1.20) leave room for two spot at 0.12: 1.44
        assert sorted(i["InstanceChargeType"] for i in alive) == [ON_DEMAND] * 2 + [SPOT] * 2
        row = await _env(rig, env_id)
        assert row["status"] == "CAPPED"
        assert row["status_reason"] == (
            "capped by max_hourly_spend 1.50 CNY/h: 1.44 CNY/h running, next instance 0.12 CNY/h"
        )
        await _market(rig, price=0.02)  # spot gets cheaper: no churn, but room to grow
        for _ in range(6):
            await _step(rig, 61)  # past the price book's TTL
        spend = sum(Decimal(str(i["Price"])) for i in await rig.alive())
        assert spend <= Decimal("1.50")
        assert len(await rig.alive()) == 6  # 1.44 + 2 x 0.02 = 1.48
        assert (await _env(rig, env_id))["status"] == "READY"
        assert sorted(n["role"] for n in await _live_nodes(rig, env_id)).count("base") == 2


async def test_scale_in_terminates_compensation_first(database_url: str) -> None:
    async with engine_rig(database_url) as rig:
        env_id = await rig.create_env(
            1, compensate_with_on_demand=True, compensate_after_s=2, disruption_budget=1
        )
        await _step(rig, 0)
        await _step(rig)
        assert await _charges(rig) == [SPOT]
        await _market(rig, stock=1)  # the pool can sell no more spot (no reclaim)
        await rig.set_desired(env_id, 3)
        for _ in range(20):
            await _step(rig)
            if len(await rig.alive()) == 3:
                break
        assert await _charges(rig) == [ON_DEMAND, ON_DEMAND, SPOT]
        await rig.set_desired(env_id, 1)
        for _ in range(4):
            await _step(rig)
        assert await _charges(rig) == [SPOT]
        assert [n["role"] for n in await _live_nodes(rig, env_id)] == ["spot"]


async def test_a_policy_change_rebalances_within_the_budget_and_defaults_change_nothing(
    database_url: str,
) -> None:
    async with engine_rig(database_url) as rig:
        env_id = await rig.create_env(4)
        for _ in range(3):
            await _step(rig)
        assert await _charges(rig) == [SPOT] * 4
        first = {i["InstanceId"] for i in await rig.alive()}
        async with rig.store.engine.begin() as conn:
            await conn.execute(
                sa.update(compute_environments)
                .where(compute_environments.c.id == env_id)
                .values(on_demand_percentage=50, disruption_budget=1)
            )
        for _ in range(30):
            await _step(rig)
            alive = await rig.alive()
            assert 4 <= len(alive) <= 5
            assert sum(i["InstanceState"] == "RUNNING" for i in alive) >= 4
            if await _charges(rig) == [ON_DEMAND] * 2 + [SPOT] * 2:
                break
        assert await _charges(rig) == [ON_DEMAND] * 2 + [SPOT] * 2
        settled = {i["InstanceId"] for i in await rig.alive()}
        assert len(settled & first) == 2  # two spot kept, not churned
        for _ in range(3):
            await _step(rig)
        assert {i["InstanceId"] for i in await rig.alive()} == settled


async def test_spot_quota_is_compensated_and_on_demand_sold_out_too_stays_short_with_a_reason(
    database_url: str,
) -> None:
    async with engine_rig(database_url) as rig:
        await _market(rig, quota=0)  # LimitExceeded.SpotQuota for every spot launch
        env_id = await rig.create_env(2, compensate_with_on_demand=True, compensate_after_s=2)
        for _ in range(20):
            await _step(rig)
            if len(await rig.alive()) == 2:
                break
        assert await _charges(rig) == [ON_DEMAND] * 2
        async with rig.store.engine.connect() as conn:
            causes = (
                await conn.execute(
                    sa.select(activities.c.cause).where(activities.c.env_id == env_id)
                )
            ).scalars()
            assert any(
                c.startswith("compensate for 2 spot instances unavailable: LimitExceeded.SpotQuota")
                for c in causes
            )

        other = await rig.create_env(
            2, compensate_with_on_demand=True, compensate_after_s=2, name="dry"
        )
        await _market(rig, on_demand_stock=2)  # the two already alive use it all
        calls = await rig.run_instances_calls()
        steps = 20
        for _ in range(steps):
            await _step(rig)
        assert [i for i in await rig.alive() if i["Tags"].get("spot-controller:env") == other] == []
        # Backed off, not spinning: at most one attempt per offering and charge type per step.
        assert await rig.run_instances_calls() - calls <= 2 * steps
        row = await _env(rig, other)
        assert row["status"] in ("BACKOFF", "ERROR")
        assert row["status_reason"].startswith("short by 2: ")
