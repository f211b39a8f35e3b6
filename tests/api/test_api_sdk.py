"""Tencent's batch SDK drives compute environments on spot-controller, over real HTTP, with the
engine and the simulator running, on SQLite and PostgreSQL. Ground truth is the simulator's
instances and the database rows."""

from __future__ import annotations

import json
from typing import Any

from controller.cloud.client import CvmClient
from controller.settings import SIMULATOR_SECRET_ID, SIMULATOR_SECRET_KEY
from controller.store.store import Store
from tests.api.rig import Batch, api_endpoint, api_settings, new_key, signed_post
from tests.support.polling import eventually
from tests.support.world import World, running_engine, settings_for

# Tencent's documented example, as a spot environment (ap-guangzhou-3, S2.MEDIUM4, "0.60").
SPOT_ENV: dict[str, Any] = {
    "ComputeEnv": {
        "EnvName": "sdk-env",
        "EnvDescription": "made by the batch SDK",
        "EnvType": "MANAGED",
        "DesiredComputeNodeCount": 2,
        "EnvData": {
            "InstanceType": "S2.MEDIUM4",
            "ImageId": "img-pmqg1cw7",
            "InstanceChargeType": "SPOTPAID",
            "InstanceMarketOptions": {
                "MarketType": "spot",
                "SpotOptions": {"MaxPrice": "0.60", "SpotInstanceType": "one-time"},
            },
        },
        "Tags": [{"Key": "team", "Value": "ml"}],
    },
    "Placement": {"Zone": "ap-guangzhou-3"},
    "ClientToken": "sdk-create-1",
}


async def test_the_batch_sdk_creates_scales_inspects_and_deletes_an_environment(
    database_url: str, sim_url: str, world: World, store: Store
) -> None:
    settings = api_settings(settings_for(database_url, sim_url))
    async with (
        running_engine(settings, store),
        CvmClient(settings) as cvm,
        api_endpoint(settings, store, cvm) as (endpoint, _),
    ):
        batch = Batch(endpoint, *await new_key(store, "ops"))

        env_id = (await batch("CreateComputeEnv", SPOT_ENV))["EnvId"]
        # The same ClientToken again: the same environment, not a second one.
        assert (await batch("CreateComputeEnv", SPOT_ENV))["EnvId"] == env_id
        rows = await store.list_environments()
        assert [r["id"] for r in rows] == [env_id]
        row = rows[0]
        assert (row["zone"], row["instance_type"], row["image_id"]) == (
            "ap-guangzhou-3",
            "S2.MEDIUM4",
            "img-pmqg1cw7",
        )
        assert (row["max_price"], row["desired_count"], row["description"]) == (
            "0.6",
            2,
            "made by the batch SDK",
        )

        async def running(n: int) -> bool:
            return await world.running(env_id) == n and len(await world.alive(env_id)) == n

        await eventually(lambda: running(2), what="2 instances RUNNING in the simulator")

        async def metrics_show(n: int) -> bool:
            answer = await batch("DescribeComputeEnv", {"EnvId": env_id})
            return answer["ComputeNodeMetrics"]["RunningCount"] == n

        await eventually(lambda: metrics_show(2), what="DescribeComputeEnv RunningCount 2")
        shown = await batch("DescribeComputeEnv", {"EnvId": env_id})
        truth = {i["InstanceId"] for i in await world.alive(env_id)}
        assert {n["ComputeNodeInstanceId"] for n in shown["ComputeNodeSet"]} == truth
        assert {n["ComputeNodeState"] for n in shown["ComputeNodeSet"]} == {"RUNNING"}
        assert shown["DesiredComputeNodeCount"] == 2
        assert shown["Tags"] == [{"Key": "team", "Value": "ml"}]

        await batch("ModifyComputeEnv", {"EnvId": env_id, "DesiredComputeNodeCount": 4})
        assert (await store.get_environment(env_id) or {})["desired_count"] == 4
        await eventually(lambda: running(4), what="4 instances RUNNING after ModifyComputeEnv")

        # A row written with plain SQL is listed like any other.
        sql_env = await store.insert_environment(
            {
                "name": "by-sql",
                "zone": "ap-guangzhou-3",
                "instance_type": "S2.MEDIUM4",
                "image_id": "img-pmqg1cw7",
                "max_price": "0.5",
                "desired_count": 0,
            }
        )
        listed = await batch("DescribeComputeEnvs", {})
        assert listed["TotalCount"] == 2
        assert {e["EnvId"] for e in listed["ComputeEnvSet"]} == {env_id, sql_env["id"]}
        by_name = await batch(
            "DescribeComputeEnvs", {"Filters": [{"Name": "env-name", "Values": ["by-sql"]}]}
        )
        assert [e["EnvId"] for e in by_name["ComputeEnvSet"]] == [sql_env["id"]]
        by_tag = await batch(
            "DescribeComputeEnvs", {"Filters": [{"Name": "tag:team", "Values": ["ml"]}]}
        )
        assert [e["EnvId"] for e in by_tag["ComputeEnvSet"]] == [env_id]
        paged = await batch("DescribeComputeEnvs", {"Offset": 1, "Limit": 1})
        assert paged["TotalCount"] == 2
        assert len(paged["ComputeEnvSet"]) == 1

        async def creations() -> list[dict[str, Any]]:
            answer = await batch("DescribeComputeEnvActivities", {"EnvId": env_id, "Limit": 100})
            assert answer["TotalCount"] == len(answer["ActivitySet"])
            return [
                a
                for a in answer["ActivitySet"]
                if a["ComputeNodeActivityType"] == "CREATE_COMPUTE_NODE"
            ]

        async def all_succeeded() -> bool:
            created = await creations()
            return len(created) == 4 and {a["ActivityState"] for a in created} == {"SUCCEED"}

        await eventually(all_succeeded, what="4 CREATE_COMPUTE_NODE activities SUCCEED")
        created = await creations()
        causes = {a["Cause"] for a in created}
        assert "CreateComputeEnv: the capacity is 2" in causes
        assert "ModifyComputeEnv: increase the capacity from 2 to 4" in causes
        assert {a["InstanceId"] for a in created} == {
            i["InstanceId"] for i in await world.alive(env_id)
        }

        info = await batch("DescribeComputeEnvCreateInfo", {"EnvId": env_id})
        assert info["EnvData"]["InstanceMarketOptions"]["SpotOptions"]["MaxPrice"] == "0.6"
        assert info["EnvData"]["InstanceTypes"] == ["S2.MEDIUM4"]

        # A targeted scale-in: the named node ends, the desired count drops by one.
        victim = (await batch("DescribeComputeEnv", {"EnvId": env_id}))["ComputeNodeSet"][0]
        await batch(
            "TerminateComputeNodes", {"EnvId": env_id, "ComputeNodeIds": [victim["ComputeNodeId"]]}
        )
        assert (await store.get_environment(env_id) or {})["desired_count"] == 3

        async def victim_gone() -> bool:
            alive = {i["InstanceId"] for i in await world.alive(env_id)}
            return victim["ComputeNodeInstanceId"] not in alive and len(alive) == 3

        await eventually(victim_gone, what="the named node terminated, 3 left")
        node_filter = {"Name": "compute-node-id", "Values": [victim["ComputeNodeId"]]}
        history = await batch(
            "DescribeComputeEnvActivities", {"EnvId": env_id, "Filters": node_filter}
        )
        assert {a["ComputeNodeActivityType"] for a in history["ActivitySet"]} >= {
            "CREATE_COMPUTE_NODE",
            "TERMINATE_COMPUTE_NODE",
        }

        await batch("DeleteComputeEnv", {"EnvId": env_id})
        assert await store.get_environment(env_id) is None

        async def all_gone() -> bool:
            return not await world.alive(env_id)

        await eventually(all_gone, what="every instance terminated after DeleteComputeEnv")
        gone = await batch.refused("DescribeComputeEnv", {"EnvId": env_id})
        assert gone.code == "ResourceNotFound.ComputeEnv"
        audited = await store.list_audit()
        assert [(a["action"], a["result"], a["key_name"]) for a in reversed(audited)] == [
            ("CreateComputeEnv", "OK", "ops"),
            ("CreateComputeEnv", "OK", "ops"),
            ("ModifyComputeEnv", "OK", "ops"),
            ("TerminateComputeNodes", "OK", "ops"),
            ("DeleteComputeEnv", "OK", "ops"),
        ]
        assert {a["env_id"] for a in audited} == {env_id}


async def test_env_data_disks_network_and_login_reach_run_instances(
    database_url: str, sim_url: str, world: World, store: Store
) -> None:
    """EnvData's launch fields are passed on to RunInstances: CVM shows them on the instance."""
    request = {
        "ComputeEnv": {
            "EnvName": "disks",
            "DesiredComputeNodeCount": 1,
            "EnvData": {
                "InstanceTypes": ["S2.MEDIUM4", "S5.MEDIUM4"],
                "Zones": ["ap-guangzhou-3", "ap-guangzhou-4"],
                "ImageId": "img-pmqg1cw7",
                "InstanceName": "batch-node",
                "SystemDisk": {"DiskType": "CLOUD_PREMIUM", "DiskSize": 100},
                "DataDisks": [{"DiskType": "CLOUD_SSD", "DiskSize": 200}],
                "InternetAccessible": {
                    "InternetChargeType": "TRAFFIC_POSTPAID_BY_HOUR",
                    "InternetMaxBandwidthOut": 10,
                },
                "EnhancedService": {"MonitorService": {"Enabled": False}},
                "InstanceChargeType": "SPOTPAID",
                "InstanceMarketOptions": {"SpotOptions": {"MaxPrice": "0.80"}},
            },
        },
        "Placement": {"Zone": "ap-guangzhou-3"},
    }
    settings = api_settings(settings_for(database_url, sim_url))
    async with (
        running_engine(settings, store),
        CvmClient(settings) as cvm,
        api_endpoint(settings, store, cvm) as (endpoint, _),
    ):
        batch = Batch(endpoint, *await new_key(store, "ops"))
        env_id = (await batch("CreateComputeEnv", request))["EnvId"]
        row = await store.get_environment(env_id) or {}
        assert (row["fallback_instance_types"], row["fallback_zones"]) == (
            "S5.MEDIUM4",
            "ap-guangzhou-4",
        )

        instance = await _the_one_instance(world, sim_url, env_id)
        assert instance["SystemDisk"]["DiskType"] == "CLOUD_PREMIUM"
        assert instance["SystemDisk"]["DiskSize"] == 100
        assert [(d["DiskType"], d["DiskSize"]) for d in instance["DataDisks"]] == [
            ("CLOUD_SSD", 200)
        ]
        assert instance["InternetAccessible"]["InternetMaxBandwidthOut"] == 10
        assert instance["InstanceName"] == "batch-node"
        info = await batch("DescribeComputeEnvCreateInfo", {"EnvId": env_id})
        data = info["EnvData"]
        assert data["SystemDisk"]["DiskSize"] == 100
        assert data["InstanceTypes"] == ["S2.MEDIUM4", "S5.MEDIUM4"]
        assert data["Zones"] == ["ap-guangzhou-3", "ap-guangzhou-4"]
        assert data["EnhancedService"]["MonitorService"]["Enabled"] is False


async def test_instance_type_options_choose_from_the_market(
    database_url: str, sim_url: str, world: World, store: Store
) -> None:
    """InstanceTypeOptions (CPU, Memory) stand for the types: the placement's attribute
    columns, and the instance launched is one of the market's types with that shape."""
    request = {
        "ComputeEnv": {
            "EnvName": "by-shape",
            "DesiredComputeNodeCount": 1,
            "EnvData": {
                "InstanceTypeOptions": {"CPU": 2, "Memory": 4},
                "ImageId": "img-pmqg1cw7",
                "InstanceChargeType": "SPOTPAID",
                "InstanceMarketOptions": {"SpotOptions": {"MaxPrice": "0.60"}},
            },
        },
        "Placement": {"Zone": "ap-guangzhou-3"},
    }
    settings = api_settings(settings_for(database_url, sim_url))
    async with (
        running_engine(settings, store),
        CvmClient(settings) as cvm,
        api_endpoint(settings, store, cvm) as (endpoint, _),
    ):
        batch = Batch(endpoint, *await new_key(store, "ops"))
        env_id = (await batch("CreateComputeEnv", request))["EnvId"]
        row = await store.get_environment(env_id) or {}
        assert (row["instance_type"], row["instance_cpu"], row["instance_memory"]) == ("", 2, 4)

        instance = await _the_one_instance(world, sim_url, env_id)
        assert (instance["CPU"], instance["Memory"]) == (2, 4)
        info = await batch("DescribeComputeEnvCreateInfo", {"EnvId": env_id})
        assert info["EnvData"]["InstanceTypeOptions"]["CPU"] == 2
        assert info["EnvData"].get("InstanceTypes") is None


async def test_modify_renames_describes_and_retypes_and_create_infos_filter(
    database_url: str, sim_url: str, store: Store
) -> None:
    settings = api_settings(settings_for(database_url, sim_url))
    async with CvmClient(settings) as cvm, api_endpoint(settings, store, cvm) as (endpoint, _):
        batch = Batch(endpoint, *await new_key(store, "ops"))
        request = {**SPOT_ENV, "ClientToken": "modify-1"}
        request["ComputeEnv"] = {**SPOT_ENV["ComputeEnv"], "DesiredComputeNodeCount": 0}
        env_id = (await batch("CreateComputeEnv", request))["EnvId"]
        await batch(
            "ModifyComputeEnv",
            {
                "EnvId": env_id,
                "EnvName": "renamed",
                "EnvDescription": "now two types",
                "EnvData": {"InstanceTypes": ["S5.MEDIUM4", "S2.MEDIUM4"]},
            },
        )
        row = await store.get_environment(env_id) or {}
        assert (row["name"], row["description"]) == ("renamed", "now two types")
        assert (row["instance_type"], row["fallback_instance_types"]) == (
            "S5.MEDIUM4",
            "S2.MEDIUM4",
        )
        assert row["desired_count"] == 0  # untouched
        infos = await batch(
            "DescribeComputeEnvCreateInfos",
            {"Filters": [{"Name": "env-name", "Values": ["renamed"]}]},
        )
        assert infos["TotalCount"] == 1
        [info] = infos["ComputeEnvCreateInfoSet"]
        assert info["EnvData"]["InstanceTypes"] == ["S5.MEDIUM4", "S2.MEDIUM4"]
        assert info["EnvDescription"] == "now two types"
        by_zone = await batch(
            "DescribeComputeEnvs", {"Filters": [{"Name": "zone", "Values": ["ap-guangzhou-4"]}]}
        )
        assert by_zone["TotalCount"] == 0
        by_id = await batch("DescribeComputeEnvs", {"EnvIds": [env_id]})
        assert [e["EnvName"] for e in by_id["ComputeEnvSet"]] == ["renamed"]
        categories = await batch("DescribeInstanceCategories")
        assert {"GENERAL"} <= {c["InstanceCategory"] for c in categories["InstanceCategorySet"]}
        types = await batch(
            "DescribeAvailableCvmInstanceTypes",
            {"Filters": [{"Name": "zone", "Values": ["ap-guangzhou-3"]}]},
        )
        assert "S2.MEDIUM4" in {t["InstanceType"] for t in types["InstanceTypeConfigSet"]}
        configs = await batch(
            "DescribeCvmZoneInstanceConfigInfos",
            {"Filters": [{"Name": "instance-charge-type", "Values": ["SPOTPAID"]}]},
        )
        assert {i["InstanceChargeType"] for i in configs["InstanceTypeQuotaSet"]} == {"SPOTPAID"}


async def _the_one_instance(world: World, sim_url: str, env_id: str) -> dict[str, Any]:
    """The environment's one instance once launched, as CVM's DescribeInstances shows it."""

    async def one_alive() -> bool:
        return len(await world.alive(env_id)) == 1

    await eventually(one_alive, what="the instance launched")
    [alive] = await world.alive(env_id)
    query = json.dumps({"InstanceIds": [alive["InstanceId"]]}).encode()
    sim = sim_url.removeprefix("http://")
    shown = await signed_post(
        sim, SIMULATOR_SECRET_ID, SIMULATOR_SECRET_KEY, "DescribeInstances", query,
        service="cvm",
    )  # fmt: skip
    [instance] = shown["InstanceSet"]
    return dict(instance)
