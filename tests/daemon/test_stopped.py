"""End to end: an instance stopped through the CVM API is replaced and terminated.

The stop goes through the simulator's own StopInstances, signed as any client would sign it,
exactly as an operator stopping an instance from the console reaches CVM. Assertions read the
simulator's ground truth (``/_sim/instances``) and the database rows.
"""

from __future__ import annotations

import time

import httpx
import pytest

from controller.core.model import ENV_TAG
from controller.service import Environments
from controller.settings import SIMULATOR_SECRET_ID, SIMULATOR_SECRET_KEY
from controller.store.store import Store
from tests.simulator.helpers import Cvm
from tests.support.polling import eventually
from tests.support.world import ENVIRONMENT, World, running_engine, settings_for

SEED = ENVIRONMENT


# Stopping takes long enough for a sweep to see STOPPING before STOPPED.
@pytest.mark.sim(power_delay_s=0.5)
async def test_a_stopped_instance_is_replaced_and_terminated(
    database_url: str, sim_url: str, world: World
) -> None:
    settings = settings_for(database_url, sim_url)
    store = await Store.open(database_url)
    try:
        env = (await Environments(store, "ap-guangzhou").create(dict(SEED))).to_json()
        async with (
            running_engine(settings, store),
            httpx.AsyncClient(base_url=sim_url, timeout=10) as http,
        ):
            cvm = Cvm(http, time.time, SIMULATOR_SECRET_ID, SIMULATOR_SECRET_KEY)

            async def running(n: int) -> bool:
                return await world.running(env["id"]) == n

            await eventually(lambda: running(2), what="2 running")
            victim = (await world.alive(env["id"]))[0]["InstanceId"]
            await cvm.ok("StopInstances", {"InstanceIds": [victim]})

            async def replaced_and_terminated() -> bool:
                everything = {i["InstanceId"]: i for i in await world.instances(include_gone=True)}
                mine = [i for i in everything.values() if i["Tags"].get(ENV_TAG) == env["id"]]
                running_now = [i for i in mine if i["InstanceState"] == "RUNNING"]
                return (
                    everything[victim]["InstanceState"] == "TERMINATED"
                    and len(running_now) == 2
                    and victim not in {i["InstanceId"] for i in running_now}
                )

            await eventually(replaced_and_terminated, what="stopped instance replaced, terminated")
        gone = {i["InstanceId"]: i for i in await world.instances(include_gone=True)}[victim]
        assert gone["EndReason"] == "terminated"  # by TerminateInstances, not reclaimed
        assert gone["LatestOperation"] == "TerminateInstances"
        nodes = {n["instance_id"]: n for n in await store.list_nodes(env["id"])}
        assert nodes[victim]["end_reason"] == "stopped"
        assert "STOPP" in (nodes[victim]["end_detail"] or "")
        assert sum(n["state"] == "RUNNING" for n in nodes.values()) == 2
    finally:
        await store.close()
