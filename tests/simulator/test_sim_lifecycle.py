"""Instance lifecycle and the instance actions, in-process, on a fake clock."""

from __future__ import annotations

import base64
import re

import pytest

from controller.simulator import Simulator, SimulatorConfig
from tests.simulator.helpers import TYPE, ZONE, Cvm, FakeClock, in_process, spot

ID = re.compile(r"^ins-[a-z0-9]{8}$")
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


async def test_pending_running_terminating_gone(cvm: Cvm, clock: FakeClock) -> None:
    response = await cvm.ok("RunInstances", spot(count=2, tags={"env": "e1"}))
    ids = response["InstanceIdSet"]
    assert len(ids) == 2
    assert all(ID.match(i) for i in ids)
    assert UUID4.match(response["RequestId"])

    assert await cvm.states(ids) == dict.fromkeys(ids, "PENDING")
    clock.advance(2.9)
    assert set((await cvm.states(ids)).values()) == {"PENDING"}
    clock.advance(0.2)
    assert set((await cvm.states(ids)).values()) == {"RUNNING"}

    described = (await cvm.ok("DescribeInstances", {"InstanceIds": ids}))["InstanceSet"]
    first = described[0]
    assert first["InstanceChargeType"] == "SPOTPAID"
    assert first["Placement"]["Zone"] == ZONE
    assert first["Tags"] == [{"Key": "env", "Value": "e1"}]
    assert first["LatestOperation"] == "RunInstances"
    assert first["LatestOperationState"] == "SUCCESS"
    assert first["CreatedTime"] == "2023-11-14T22:13:20Z"
    assert (first["CPU"], first["Memory"]) == (2, 4)
    assert first["PrivateIpAddresses"]

    await cvm.ok("TerminateInstances", {"InstanceIds": ids})
    assert set((await cvm.states(ids)).values()) == {"TERMINATING"}
    clock.advance(1.0)
    assert await cvm.states(ids) == {}
    gone = await cvm.instances(include_gone=True)
    assert {gone[i]["EndReason"] for i in ids} == {"terminated"}
    assert gone[ids[0]]["EndedTime"] == "2023-11-14T22:13:24Z"
    assert gone[ids[0]]["InstanceState"] == "TERMINATED"
    assert await cvm.instances() == {}


async def test_a_big_clock_jump_fires_each_transition_at_its_own_time(
    cvm: Cvm, clock: FakeClock
) -> None:
    [instance_id] = await cvm.launch()
    clock.advance(3600)
    assert await cvm.states() == {instance_id: "RUNNING"}
    view = (await cvm.instances())[instance_id]
    assert view["RunningTime"] == "2023-11-14T22:13:23Z"


async def test_launch_failed_then_terminated(config: SimulatorConfig, clock: FakeClock) -> None:
    config.launch_failure_rate = 1.0
    sim = Simulator(config, seed=3, clock=clock)
    async with in_process(sim, clock) as cvm:
        [instance_id] = await cvm.launch()
        clock.advance(3)
        [instance] = (await cvm.ok("DescribeInstances", {}))["InstanceSet"]
        assert instance["InstanceState"] == "LAUNCH_FAILED"
        assert instance["LatestOperationState"] == "FAILED"
        assert instance["LatestOperationErrorMsg"]
        await cvm.ok("TerminateInstances", {"InstanceIds": [instance_id]})
        clock.advance(1)
        view = (await cvm.instances(include_gone=True))[instance_id]
        assert view["EndReason"] == "terminated"
        assert view["LaunchFailed"] is True
        stats = await cvm.admin("GET", "stats")
        assert stats["launch_failed_total"] == 1


async def test_terminate_refuses_pending_terminating_and_unknown_ids_all_or_nothing(
    cvm: Cvm, clock: FakeClock
) -> None:
    [first] = await cvm.launch()
    code = await cvm.code("TerminateInstances", {"InstanceIds": [first]})
    assert code == "UnsupportedOperation.InstanceStatePending"
    clock.advance(3)
    result = await cvm.call("TerminateInstances", {"InstanceIds": [first, "ins-zzzzzzzz"]})
    assert result["Error"]["Code"] == "InvalidInstanceId.NotFound"
    assert "ins-zzzzzzzz" in result["Error"]["Message"]
    assert await cvm.states() == {first: "RUNNING"}  # nothing terminated
    await cvm.ok("TerminateInstances", {"InstanceIds": [first]})
    code = await cvm.code("TerminateInstances", {"InstanceIds": [first]})
    assert code == "UnsupportedOperation.InstanceStateTerminating"
    clock.advance(1)
    assert await cvm.code("TerminateInstances", {"InstanceIds": [first]}) == (
        "InvalidInstanceId.NotFound"
    )
    assert await cvm.code("TerminateInstances", {"InstanceIds": ["i-bad"]}) == (
        "InvalidInstanceId.Malformed"
    )
    assert await cvm.code("TerminateInstances", {}) == "MissingParameter"


async def test_client_token_gives_the_same_ids_and_launches_once(cvm: Cvm) -> None:
    first = await cvm.launch(count=3, ClientToken="token-1")
    again = await cvm.launch(count=3, ClientToken="token-1")
    assert again == first
    other = await cvm.launch(count=1, ClientToken="token-2")
    assert set(other).isdisjoint(first)
    assert len(await cvm.instances()) == 4
    assert (await cvm.instances())[first[0]]["ClientToken"] == "token-1"
    code = await cvm.code("RunInstances", spot(ClientToken="x" * 65))
    assert code == "InvalidClientToken.TooLong"


async def test_stock_is_taken_on_launch_and_given_back_when_gone(
    cvm: Cvm, clock: FakeClock
) -> None:
    await cvm.admin("PUT", "market", {"zone": ZONE, "instance_type": TYPE, "stock": 3})
    ids = await cvm.launch(count=3)
    sold_out = "ResourceInsufficient.ZoneSoldOutForSpecifiedInstance"
    assert await cvm.code("RunInstances", spot()) == sold_out
    clock.advance(3)
    await cvm.ok("TerminateInstances", {"InstanceIds": ids[:1]})
    assert await cvm.code("RunInstances", spot()) == sold_out
    clock.advance(1)
    assert len(await cvm.launch()) == 1


async def test_min_count_takes_what_is_left(cvm: Cvm) -> None:
    await cvm.admin("PUT", "market", {"zone": ZONE, "instance_type": TYPE, "stock": 4})
    assert len(await cvm.launch(count=3, MinCount=2)) == 3
    code = await cvm.code("RunInstances", spot(count=10, MinCount=2))
    assert code == "ResourceInsufficient.InsufficientOfferingMinimum"


async def test_describe_filters(cvm: Cvm, clock: FakeClock) -> None:
    a = await cvm.launch(count=2, tags={"env": "a", "team": "x"})
    b = await cvm.launch(zone="ap-guangzhou-4", instance_type="S5.MEDIUM4", tags={"env": "b"})
    c = await cvm.launch(InstanceName="web", tags={"other": "y"})
    clock.advance(3)
    await cvm.ok("TerminateInstances", {"InstanceIds": c})

    async def ids(*filters: tuple[str, list[str]]) -> set[str]:
        params = {"Filters": [{"Name": n, "Values": v} for n, v in filters], "Limit": 100}
        result = await cvm.ok("DescribeInstances", params)
        assert result["TotalCount"] == len(result["InstanceSet"])
        return {i["InstanceId"] for i in result["InstanceSet"]}

    assert await ids(("tag:env", ["a"])) == set(a)
    assert await ids(("tag:env", ["a", "b"])) == set(a + b)
    assert await ids(("tag-key", ["team"])) == set(a)
    assert await ids(("tag-value", ["b", "y"])) == set(b + c)
    assert await ids(("zone", ["ap-guangzhou-4"])) == set(b)
    assert await ids(("instance-type", ["S5.MEDIUM4"])) == set(b)
    assert await ids(("instance-state", ["TERMINATING"])) == set(c)
    assert await ids(("instance-name", ["web"])) == set(c)
    assert await ids(("instance-charge-type", ["SPOTPAID"])) == set(a + b + c)
    assert await ids(("instance-id", [a[0], b[0]])) == {a[0], b[0]}
    assert await ids(("tag:env", ["a"]), ("zone", ["ap-guangzhou-4"])) == set()
    assert await cvm.code(
        "DescribeInstances", {"Filters": [{"Name": "bogus", "Values": ["1"]}]}
    ) == ("InvalidFilter")
    too_many_values = {"Filters": [{"Name": "zone", "Values": ["a"] * 6}]}
    assert await cvm.code("DescribeInstances", too_many_values) == (
        "InvalidFilterValue.LimitExceeded"
    )
    too_many_filters = {"Filters": [{"Name": "zone", "Values": ["a"]}] * 11}
    assert await cvm.code("DescribeInstances", too_many_filters) == (
        "InvalidParameterValue.LimitExceeded"
    )
    both = {"InstanceIds": a, "Filters": [{"Name": "zone", "Values": [ZONE]}]}
    assert await cvm.code("DescribeInstances", both) == "InvalidParameter"
    unknown = await cvm.ok("DescribeInstances", {"InstanceIds": ["ins-00000000"]})
    assert unknown == {"TotalCount": 0, "InstanceSet": [], "RequestId": unknown["RequestId"]}


async def test_paging_is_stable_and_counts_all_matches(cvm: Cvm, clock: FakeClock) -> None:
    ids = await cvm.launch(count=45)
    clock.advance(1)
    ids += await cvm.launch(count=10)
    seen: list[str] = []
    for offset in range(0, 60, 20):
        page = await cvm.ok("DescribeInstances", {"Offset": offset})
        assert page["TotalCount"] == 55
        seen += [i["InstanceId"] for i in page["InstanceSet"]]
    assert seen == ids
    assert await cvm.code("DescribeInstances", {"Limit": 101}) == "InvalidParameterValueLimit"
    assert await cvm.code("DescribeInstances", {"Offset": -1}) == "InvalidParameterValueOffset"
    status = await cvm.ok("DescribeInstancesStatus", {"Offset": 50, "Limit": 10})
    assert status["TotalCount"] == 55
    assert [s["InstanceId"] for s in status["InstanceStatusSet"]] == ids[50:]


async def test_describe_lag_hides_young_instances_from_describe_only(
    cvm: Cvm, clock: FakeClock
) -> None:
    await cvm.admin("PUT", "faults", {"describe_lag_s": 5})
    ids = await cvm.launch()
    assert (await cvm.ok("DescribeInstances", {"InstanceIds": ids}))["TotalCount"] == 0
    assert await cvm.states(ids) == {}
    assert set(await cvm.instances()) == set(ids)  # the admin view ignores the lag
    clock.advance(5)
    assert await cvm.states(ids) == {ids[0]: "RUNNING"}


async def test_names_of_a_batch(cvm: Cvm) -> None:
    await cvm.launch(count=2, InstanceName="node-")
    await cvm.launch(count=2, InstanceName="web{R:7}-x")
    await cvm.launch()
    names = [i["InstanceName"] for i in (await cvm.instances()).values()]
    assert names == ["node-1", "node-2", "web7-x", "web8-x", "未命名"]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        (spot(zone="ap-shanghai-2"), "InvalidZone.MismatchRegion"),
        (spot(zone="ap-guangzhou-9"), "InvalidParameterValue.ZoneNotSupported"),
        (spot(instance_type="s5.medium"), "InvalidInstanceType.Malformed"),
        (spot(instance_type="S9.HUGE128"), "InvalidParameterValue.InstanceTypeNotFound"),
        (spot(ImageId="ubuntu"), "InvalidImageId.Malformed"),
        (spot(ImageId="img-00000000"), "InvalidImageId.NotFound"),
        (spot(count=0), "InvalidParameterValue.Range"),
        (spot(count=501), "InvalidParameterValue.Range"),
        (spot(count=2, MinCount=3), "InvalidParameterValue.Range"),
        (spot(InstanceCount="2"), "InvalidParameter"),
        (spot(max_price="0.05"), "InvalidParameterValue.InsufficientPrice"),
        (spot(max_price="cheap"), "InvalidParameterValue"),
        (spot(SecurityGroupIds=["default"]), "InvalidSgId.Malformed"),
        (spot(UserData="not base64!"), "InvalidParameterValue.InvalidUserDataFormat"),
        (
            spot(UserData=base64.b64encode(b"x" * 16385).decode()),
            "InvalidParameterValue.TooLong",
        ),
        (spot(InstanceName="n" * 129), "InvalidInstanceName.TooLong"),
        (
            spot(VirtualPrivateCloud={"VpcId": "vpc1", "SubnetId": "subnet-1"}),
            ("InvalidParameterValue.VpcIdMalformed"),
        ),
        (spot(LoginSettings={"KeyIds": ["key"]}), "InvalidKeyPairId.Malformed"),
        (spot(tags={"qcloud:x": "1"}), "FailedOperation.TagKeyReserved"),
        (spot(Bogus=1), "UnknownParameter"),
        (spot(Placement={}), "MissingParameter"),
        (spot(InstanceChargeType="PREPAID"), "InvalidParameterValue"),
        (spot(DryRun=True), "DryRunOperation"),
    ],
)
async def test_run_instances_refusals(cvm: Cvm, params: dict[str, object], code: str) -> None:
    assert await cvm.code("RunInstances", params) == code
    assert await cvm.instances() == {}


async def test_run_instances_accepts_the_full_shape(cvm: Cvm) -> None:
    ids = await cvm.launch(
        InstanceName="full",
        SecurityGroupIds=["sg-abcdef12"],
        VirtualPrivateCloud={"VpcId": "vpc-abcdef12", "SubnetId": "subnet-abcdef12"},
        LoginSettings={"KeyIds": ["skey-abcdef12"]},
        UserData=base64.b64encode(b"#!/bin/sh\necho hi\n").decode(),
        SystemDisk={"DiskType": "CLOUD_PREMIUM", "DiskSize": 50},
        InternetAccessible={"InternetMaxBandwidthOut": 0},
        tags={"a": "1", "b": ""},
    )
    [instance] = (await cvm.ok("DescribeInstances", {"InstanceIds": ids}))["InstanceSet"]
    assert instance["SecurityGroupIds"] == ["sg-abcdef12"]
    assert instance["VirtualPrivateCloud"]["VpcId"] == "vpc-abcdef12"
    assert instance["LoginSettings"] == {"KeyIds": ["skey-abcdef12"]}
    assert instance["Tags"] == [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": ""}]


async def test_postpaid_instances_are_on_demand(cvm: Cvm) -> None:
    params = spot()
    params["InstanceChargeType"] = "POSTPAID_BY_HOUR"
    assert await cvm.code("RunInstances", params) == "InvalidParameterCombination"
    del params["InstanceMarketOptions"]
    ids = (await cvm.ok("RunInstances", params))["InstanceIdSet"]
    assert (await cvm.instances())[ids[0]]["InstanceChargeType"] == "POSTPAID_BY_HOUR"
