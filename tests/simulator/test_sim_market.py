"""The market: prices, stock, quota, reclaim (by rate, by order, by stock cut) and release."""

from __future__ import annotations

import pytest

from controller.simulator import Simulator, SimulatorConfig
from controller.simulator.config import PoolConfig
from tests.simulator.helpers import TYPE, ZONE, Cvm, FakeClock, in_process, spot


async def test_the_seed_example_launches_on_the_default_market(cvm: Cvm) -> None:
    assert len(await cvm.launch(zone="ap-guangzhou-3", instance_type="S2.MEDIUM4")) == 1


async def test_zone_instance_config_infos(cvm: Cvm) -> None:
    params = {
        "Filters": [
            {"Name": "zone", "Values": [ZONE]},
            {"Name": "instance-charge-type", "Values": ["SPOTPAID"]},
        ]
    }
    items = (await cvm.ok("DescribeZoneInstanceConfigInfos", params))["InstanceTypeQuotaSet"]
    by_type = {i["InstanceType"]: i for i in items}
    s2 = by_type[TYPE]
    assert s2["Zone"] == ZONE
    assert s2["InstanceChargeType"] == "SPOTPAID"
    assert (s2["Status"], s2["StatusCategory"]) == ("SELL", "EnoughStock")
    assert s2["Price"]["ChargeUnit"] == "HOUR"
    assert s2["Price"]["UnitPriceDiscount"] < 0.60
    assert s2["Price"]["UnitPriceDiscount"] < s2["Price"]["UnitPrice"]
    assert (s2["Cpu"], s2["Memory"], s2["InstanceFamily"]) == (2, 4, "S2")
    assert {i["Zone"] for i in items} == {ZONE}

    await cvm.admin("PUT", "market", {"zone": ZONE, "instance_type": TYPE, "stock": 0})
    items = (await cvm.ok("DescribeZoneInstanceConfigInfos", params))["InstanceTypeQuotaSet"]
    s2 = next(i for i in items if i["InstanceType"] == TYPE)
    assert (s2["Status"], s2["StatusCategory"]) == ("SOLD_OUT", "WithoutStock")

    everything = await cvm.ok("DescribeZoneInstanceConfigInfos", {})
    zones = {i["Zone"] for i in everything["InstanceTypeQuotaSet"]}
    assert zones == {"ap-guangzhou-3", "ap-guangzhou-4", "ap-guangzhou-6", "ap-guangzhou-7"}
    family = {"Filters": [{"Name": "instance-family", "Values": ["SA3"]}]}
    items = (await cvm.ok("DescribeZoneInstanceConfigInfos", family))["InstanceTypeQuotaSet"]
    assert {i["InstanceType"] for i in items} == {"SA3.MEDIUM4", "SA3.LARGE8"}
    shanghai = await cvm.ok("DescribeZoneInstanceConfigInfos", {}, region="ap-shanghai")
    assert {i["Zone"] for i in shanghai["InstanceTypeQuotaSet"]} == {
        "ap-shanghai-2",
        "ap-shanghai-4",
        "ap-shanghai-5",
    }


async def test_inquiry_price(cvm: Cvm) -> None:
    await cvm.admin("PUT", "market", {"zone": ZONE, "instance_type": TYPE, "price": 0.1})
    price = (await cvm.ok("InquiryPriceRunInstances", spot(count=2)))["Price"]
    assert price["InstancePrice"]["UnitPriceDiscount"] == pytest.approx(0.2)
    assert price["InstancePrice"]["ChargeUnit"] == "HOUR"
    assert price["BandwidthPrice"] == {}
    assert await cvm.instances() == {}


async def test_price_quota_and_sold_out_refusals(cvm: Cvm) -> None:
    await cvm.admin("PUT", "market", {"zone": ZONE, "instance_type": TYPE, "price": 0.5})
    assert await cvm.code("RunInstances", spot(max_price="0.49")) == (
        "InvalidParameterValue.InsufficientPrice"
    )
    assert len(await cvm.launch(max_price="0.5")) == 1

    await cvm.admin("PUT", "market", {"zone": ZONE, "instance_type": TYPE, "quota": 3})
    assert await cvm.code("RunInstances", spot(count=3)) == "LimitExceeded.SpotQuota"
    assert len(await cvm.launch(count=2)) == 2

    zone = "ap-guangzhou-7"
    pools = (await cvm.admin("GET", "market"))["pools"]
    for pool in pools:
        if pool["zone"] == zone:
            change = {"zone": zone, "instance_type": pool["instance_type"], "stock": 0}
            await cvm.admin("PUT", "market", change)
    code = await cvm.code("RunInstances", spot(zone=zone, instance_type="S5.MEDIUM4"))
    assert code == "ResourcesSoldOut.AvailabilityZoneSoldOut"
    # Pay-as-you-go is sold from a stock of its own: spot sold out does not touch it.
    params = {
        **spot(zone=zone, instance_type="S5.MEDIUM4"),
        "InstanceChargeType": "POSTPAID_BY_HOUR",
    }
    del params["InstanceMarketOptions"]
    assert len((await cvm.ok("RunInstances", params))["InstanceIdSet"]) == 1
    change = {"zone": zone, "instance_type": "S5.MEDIUM4", "on_demand_stock": 0}
    await cvm.admin("PUT", "market", change)
    assert await cvm.code("RunInstances", params) == "ResourceInsufficient.SpecifiedInstanceType"


async def test_new_pool_in_a_new_region(cvm: Cvm) -> None:
    pool = {"zone": "ap-beijing-5", "instance_type": "S5.MEDIUM4", "price": 0.09, "stock": 2}
    created = await cvm.admin("PUT", "market", pool)
    assert created["pool"]["stock"] == 2
    assert created["pool"]["quota"] == 10000
    params = spot(zone="ap-beijing-5", instance_type="S5.MEDIUM4")
    ids = (await cvm.ok("RunInstances", params, region="ap-beijing"))["InstanceIdSet"]
    assert len(ids) == 1
    assert await cvm.code("DescribeInstances", {}, region="ap-nowhere") == "UnsupportedRegion"
    assert (await cvm.ok("DescribeInstances", {}))["TotalCount"] == 0  # other region


async def test_reclaim_by_count_fraction_ids_and_filters(cvm: Cvm, clock: FakeClock) -> None:
    a = await cvm.launch(count=10)
    b = await cvm.launch(count=4, zone="ap-guangzhou-4", instance_type="S5.MEDIUM4")
    clock.advance(3)
    reclaimed = (await cvm.admin("POST", "reclaim", {"count": 2, "zone": "ap-guangzhou-4"}))[
        "reclaimed"
    ]
    assert len(reclaimed) == 2
    assert set(reclaimed) <= set(b)
    half = (await cvm.admin("POST", "reclaim", {"fraction": 0.5, "instance_type": TYPE}))[
        "reclaimed"
    ]
    assert len(half) == 5
    assert set(half) <= set(a)
    survivor = next(i for i in a if i not in half)
    named = await cvm.admin("POST", "reclaim", {"instance_ids": [survivor]})
    assert named == {"reclaimed": [survivor]}
    states = await cvm.states()
    assert sum(s == "TERMINATING" for s in states.values()) == 8
    clock.advance(1)
    gone = await cvm.instances(include_gone=True)
    assert {gone[i]["EndReason"] for i in [*reclaimed, *half, survivor]} == {"reclaimed"}
    stats = await cvm.admin("GET", "stats")
    assert stats["reclaimed_total"] == 8
    assert stats["alive"] == 6
    error = await cvm.admin_error("POST", "reclaim", {"instance_ids": [survivor]})
    assert error["field"] == "instance_ids"


async def test_reclaim_only_running_instances(cvm: Cvm, clock: FakeClock) -> None:
    [pending] = await cvm.launch()
    assert (await cvm.admin("POST", "reclaim", {"count": 5}))["reclaimed"] == []
    error = await cvm.admin_error("POST", "reclaim", {"instance_ids": [pending]})
    assert "PENDING" in error["message"]


async def test_stock_cut_reclaims_the_excess_at_once(cvm: Cvm, clock: FakeClock) -> None:
    ids = await cvm.launch(count=5)
    clock.advance(3)
    result = await cvm.admin("PUT", "market", {"zone": ZONE, "instance_type": TYPE, "stock": 2})
    assert len(result["reclaimed"]) == 3
    assert set(result["reclaimed"]) <= set(ids)
    assert result["pool"]["stock"] == 0
    clock.advance(1)
    assert len(await cvm.states()) == 2
    # the cut left a capacity of 2, both in use: nothing more to sell, nothing more to cut
    code = await cvm.code("RunInstances", spot())
    assert code == "ResourceInsufficient.ZoneSoldOutForSpecifiedInstance"
    again = await cvm.admin("PUT", "market", {"zone": ZONE, "instance_type": TYPE, "stock": 2})
    assert again["reclaimed"] == []
    grown = await cvm.admin("PUT", "market", {"zone": ZONE, "instance_type": TYPE, "stock": 10})
    assert grown["pool"]["stock"] == 8


async def test_reclaim_rate_is_a_fraction_per_hour_and_deterministic(clock: FakeClock) -> None:
    async def reclaimed_after_an_hour(seed: int) -> list[str]:
        config = SimulatorConfig.default()
        config.faults.rate_limits = {}
        config.reclaim_rate_per_hour = 0.5
        fake = FakeClock()
        sim = Simulator(config, seed=seed, clock=fake)
        async with in_process(sim, fake) as cvm:
            await cvm.launch(count=200)
            fake.advance(3 + 3600)
            gone = await cvm.instances(include_gone=True)
            return sorted(i for i, v in gone.items() if v["EndReason"] == "reclaimed")

    first = await reclaimed_after_an_hour(5)
    assert 70 <= len(first) <= 130
    assert await reclaimed_after_an_hour(5) == first
    assert await reclaimed_after_an_hour(6) != first


async def test_release_makes_instances_vanish_at_once(cvm: Cvm, clock: FakeClock) -> None:
    ids = await cvm.launch(count=2)
    result = await cvm.admin("POST", "release", {"instance_ids": ids[:1]})
    assert result == {"released": ids[:1]}
    clock.advance(3)
    assert await cvm.states() == {ids[1]: "RUNNING"}
    view = (await cvm.instances(include_gone=True))[ids[0]]
    assert (view["EndReason"], view["InstanceState"]) == ("released", "TERMINATED")
    assert await cvm.code("TerminateInstances", {"InstanceIds": ids[:1]}) == (
        "InvalidInstanceId.NotFound"
    )
    error = await cvm.admin_error("POST", "release", {"instance_ids": ids[:1]})
    assert error["field"] == "instance_ids"


async def test_a_config_market_replaces_the_default(clock: FakeClock) -> None:
    config = SimulatorConfig(
        secret_id="AKIDtest",
        secret_key="k",
        markets=[PoolConfig("ap-guangzhou-3", "S5.LARGE8", 0.2, stock=1, quota=1)],
    )
    sim = Simulator(config, seed=1, clock=clock)
    async with in_process(sim, clock) as cvm:
        assert await cvm.code("RunInstances", spot()) == (
            "InvalidParameterValue.InstanceTypeNotFound"
        )
        assert len(await cvm.launch(instance_type="S5.LARGE8")) == 1
        pools = (await cvm.admin("GET", "market"))["pools"]
        assert pools == [
            {
                "zone": "ap-guangzhou-3",
                "region": "ap-guangzhou",
                "instance_type": "S5.LARGE8",
                "price": 0.2,
                "on_demand_price": 1.0,
                "capacity": 1,
                "stock": 0,
                "alive": 1,
                "quota": 1,
                "cpu": 4,
                "memory": 8,
                "status": "SOLD_OUT",
                "status_category": "WithoutStock",
                "spot": True,
            }
        ]
