"""End to end: a running engine compensates a sold-out spot market with pay-as-you-go, goes
back to spot when it returns, and shows both in its records, statuses and /metrics.

Real HTTP to a simulator server, a real database (SQLite and PostgreSQL), the real clock;
every wait is a bounded ``eventually`` on ground truth, never a timing assertion.
"""

from __future__ import annotations

from typing import Any

import anyio
import httpx

from controller import health
from controller.service import Environments
from controller.store.store import Store
from tests.support.polling import eventually
from tests.support.world import World, running_engine, settings_for

POOL = {"zone": "ap-guangzhou-3", "instance_type": "S2.MEDIUM4"}
SEED = {
    "name": "batch",
    **POOL,
    "image_id": "img-pmqg1cw7",
    "max_price": "0.60",
    "desired_count": 3,
    "compensate_with_on_demand": True,
    "compensate_after_s": 1,
    "disruption_budget": 1,
}


def _charges(alive: list[dict[str, Any]]) -> list[str]:
    return sorted(i["InstanceChargeType"] for i in alive)


async def test_sold_out_spot_is_compensated_then_replaced_by_spot(
    database_url: str, sim_url: str, world: World
) -> None:
    settings = settings_for(database_url, sim_url)
    store = await Store.open(database_url)
    try:
        await world.admin("PUT", "market", {**POOL, "stock": 0})
        env_id = (await Environments(store, "ap-guangzhou").create(SEED)).id
        async with running_engine(settings, store) as engine:
            sock = health.bind("127.0.0.1:0")
            port = sock.getsockname()[1]
            stop = anyio.Event()
            async with (
                anyio.create_task_group() as tg,
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http,
            ):
                tg.start_soon(health.serve, engine.view, sock, stop)

                async def compensated() -> bool:
                    alive = await world.alive(env_id)
                    running = [i for i in alive if i["InstanceState"] == "RUNNING"]
                    return _charges(running) == ["POSTPAID_BY_HOUR"] * 3

                await eventually(compensated, what="3 pay-as-you-go instances running")
                label = f'charge_type="POSTPAID_BY_HOUR",env="batch",env_id="{env_id}"'

                async def metrics_show_it() -> bool:
                    text = (await http.get("/metrics")).text
                    return (
                        "spot_controller_environment_running_by_charge"
                        f'{{{label},role="compensation"}} 3.0' in text
                    )

                await eventually(metrics_show_it, what="compensation in /metrics")
                assert (
                    "spot_controller_environment_hourly_spend_cny"
                    in (await http.get("/metrics")).text
                )

                await world.admin("PUT", "market", {**POOL, "stock": 5000})
                peak = 0

                async def back_to_spot() -> bool:
                    nonlocal peak
                    alive = await world.alive(env_id)
                    peak = max(peak, len(alive))
                    assert len(alive) <= 3 + 1  # desired + disruption budget
                    return _charges(alive) == ["SPOTPAID"] * 3

                await eventually(back_to_spot, within_s=40, what="back to 3 spot instances")
                stop.set()
        nodes = await store.list_nodes(env_id)
        roles = sorted((n["charge_type"], n["role"]) for n in nodes if n["instance_id"])
        assert roles.count(("POSTPAID_BY_HOUR", "compensation")) == 3
        assert sum(1 for n in nodes if n["end_reason"] == "replaced") == 3
    finally:
        await store.close()
