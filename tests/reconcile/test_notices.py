"""The engine's events land in the outbox with the records that cause them (SQLite,
PostgreSQL), stepped by hand: a failed write writes no event, a status is announced once per
entry, and the capacity policy's events (compensation, the spend cap) are there."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa

from controller.core.instances import ON_DEMAND
from controller.errors import StoreError
from controller.notifications.service import Targets
from controller.store.schema import compute_nodes, outbox
from tests.support.engine import EngineRig, engine_rig

ZONE, TYPE = "ap-guangzhou-3", "S2.MEDIUM4"


async def _events(rig: EngineRig) -> list[dict[str, Any]]:
    async with rig.store.engine.connect() as conn:
        rows = await conn.execute(sa.select(outbox).order_by(outbox.c.seq))
        return [{**r._mapping, "payload": json.loads(r.payload)} for r in rows]


async def _names(rig: EngineRig) -> list[str]:
    return [e["event"] for e in await _events(rig)]


async def _step(rig: EngineRig, seconds: float = 0.5) -> None:
    rig.clock.advance(seconds)
    await rig.sweep()
    await rig.run_pass()
    await rig.run_pass()


async def _market(rig: EngineRig, **values: Any) -> None:
    response = await rig.admin.put(
        "/_sim/market", json={"zone": ZONE, "instance_type": TYPE, **values}
    )
    response.raise_for_status()


async def _target(rig: EngineRig) -> None:
    await Targets(rig.store, "default").add("t", "http://127.0.0.1:1/h", "webhook", [], [], "k")


async def test_a_failed_record_writes_no_event_and_the_retry_writes_it_once(
    database_url: str,
) -> None:
    async with engine_rig(database_url) as rig:
        await _target(rig)
        env_id = await rig.create_env(2)
        await _step(rig, 0)  # launched; the instances are PENDING or RUNNING
        assert Counter(await _names(rig))["COMPUTE_NODE_CREATED"] == 2
        assert Counter(await _names(rig))["COMPUTE_NODE_RUNNING"] == 0  # not yet seen running
        rig.store.fail.add("record_changes")
        await rig.sweep()  # sees the instances RUNNING
        with pytest.raises(StoreError):
            await rig.run_pass()
        # Nothing was recorded, so nothing was announced.
        assert Counter(await _names(rig))["COMPUTE_NODE_RUNNING"] == 0
        rig.engine.passes.needs_reload = True
        for _ in range(5):
            await _step(rig)
        async with rig.store.engine.connect() as conn:
            running = (
                await conn.execute(
                    sa.select(compute_nodes.c.id).where(
                        compute_nodes.c.env_id == env_id, compute_nodes.c.state == "RUNNING"
                    )
                )
            ).scalars()
            running_ids = set(running)
        assert len(running_ids) == 2
        announced = [
            e["payload"]["node_id"]
            for e in await _events(rig)
            if e["event"] == "COMPUTE_NODE_RUNNING"
        ]
        assert sorted(announced) == sorted(running_ids)  # each once, each recorded


async def test_backoff_and_short_are_announced_once_per_episode(database_url: str) -> None:
    async with engine_rig(database_url, notify_short_after_s=3.0) as rig:
        await _target(rig)
        env_id = await rig.create_env(1)
        for _ in range(5):
            await _step(rig)
        await _market(rig, stock=1)  # the pool holds one: a second cannot be had
        await rig.set_desired(env_id, 2)
        for _ in range(20):
            await _step(rig)
        names = Counter(await _names(rig))
        assert len(await rig.alive()) == 1  # ground truth: short by one
        assert names["COMPUTE_ENV_BACKOFF"] == 1
        assert names["COMPUTE_ENV_SHORT"] == 1
        [short] = [e for e in await _events(rig) if e["event"] == "COMPUTE_ENV_SHORT"]
        assert short["env_id"] == env_id
        assert (short["payload"]["running"], short["payload"]["desired"]) == (1, 2)
        assert names["COMPUTE_NODE_CREATION_FAILED"] >= 1  # the refused RunInstances
        await _market(rig, stock=10)
        for _ in range(20):
            await _step(rig, 2)
            if len(await rig.alive()) == 2:
                break
        for _ in range(3):
            await _step(rig)  # READY: the episode is over
        assert len(await rig.alive()) == 2
        assert rig.engine.view.statuses()[env_id].value == "READY"
        await _market(rig, stock=1)  # a stock cut: one instance reclaimed, none to replace it
        for _ in range(20):
            await _step(rig)
        names = Counter(await _names(rig))
        # Reclaimed: seen TERMINATING (interrupted) or already gone (released).
        assert names["COMPUTE_NODE_INTERRUPTED"] + names["COMPUTE_NODE_RELEASED"] == 1, names
        assert names["COMPUTE_ENV_SHORT"] == 2  # a second episode
        assert names["COMPUTE_ENV_BACKOFF"] == 2


async def test_compensation_started_is_announced(database_url: str) -> None:
    async with engine_rig(database_url) as rig:
        await _target(rig)
        await _market(rig, stock=0)
        comp = await rig.create_env(
            2, name="comp", compensate_with_on_demand=True, compensate_after_s=1
        )
        for _ in range(20):
            await _step(rig)
            if len(await rig.alive()) == 2:
                break
        assert sorted(i["InstanceChargeType"] for i in await rig.alive()) == [ON_DEMAND] * 2
        started = [
            e for e in await _events(rig) if e["event"] == "COMPUTE_ENV_COMPENSATION_STARTED"
        ]
        assert [e["env_id"] for e in started] == [comp]
        assert started[0]["payload"]["count"] == 2


async def test_reaching_the_spend_cap_is_announced(database_url: str) -> None:
    async with engine_rig(database_url) as rig:
        await _market(rig, price=0.12, on_demand_price=0.6)
        await _target(rig)
        capped = await rig.create_env(4, name="capped", max_hourly_spend="0.30", max_price="0.20")
        for _ in range(6):
            await _step(rig)
        [cap] = [e for e in await _events(rig) if e["event"] == "COMPUTE_ENV_SPEND_CAP_REACHED"]
        assert cap["env_id"] == capped
        assert cap["payload"]["status"] == "CAPPED"
        assert "max_hourly_spend 0.30" in cap["payload"]["reason"]
