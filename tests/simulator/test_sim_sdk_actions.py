"""The official SDK against the new actions, the echoed launch spec, filters and spot errors.

Warnings are errors, and the SDK warns about any response field its models lack, so every
call here also proves the response shape. Each spot error is classified by the controller's
own table from the code and message the simulator actually sent.
"""

from __future__ import annotations

# The SDK fixtures are imported from test_sim_sdk and used by name as pytest does.
# ruff: noqa: F811
import base64
from typing import Any

import httpx
import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from controller.cloud import classify
from controller.errors import CapacityError, InvalidSpec, QuotaExceeded
from controller.simulator import Simulator, SimulatorConfig
from tests.simulator.helpers import IMAGE, TYPE, ZONE, spot
from tests.simulator.test_sim_sdk import (  # noqa: F401  (fixtures)
    Client,
    _config,
    _no_proxy,
    admin,
    base_url,
    call,
    client,
    error_code,
    make_client,
)


@pytest.fixture
def sim() -> Simulator:
    config: SimulatorConfig = _config()
    config.power_delay_s = 0
    return Simulator(config, seed=1)


def _ids(client: Client, *filters: tuple[str, list[str]]) -> list[str]:
    params: dict[str, Any] = {
        "Filters": [{"Name": n, "Values": v} for n, v in filters],
        "Limit": 100,
    }
    return [i.InstanceId for i in call(client, "DescribeInstances", params).InstanceSet]


def test_regions_zones_images_types_and_quota(client: Client) -> None:
    regions = call(client, "DescribeRegions", {})
    served = {r.Region for r in regions.RegionSet if r.RegionState == "AVAILABLE"}
    assert {"ap-guangzhou", "ap-shanghai", "ap-beijing", "ap-singapore"} <= served
    assert regions.TotalCount == len(regions.RegionSet) >= 17
    zones = call(client, "DescribeZones", {})
    assert next((z.Zone, z.ZoneId, z.ZoneState) for z in zones.ZoneSet) == (
        "ap-guangzhou-3",
        "100003",
        "AVAILABLE",
    )
    images = call(client, "DescribeImages", {"ImageIds": [IMAGE]})
    [image] = images.ImageSet
    assert (image.ImageId, image.ImageType, image.Platform) == (IMAGE, "PUBLIC_IMAGE", "TencentOS")
    ubuntu = call(
        client, "DescribeImages", {"Filters": [{"Name": "platform", "Values": ["Ubuntu"]}]}
    )
    assert [i.ImageId for i in ubuntu.ImageSet] == ["img-487zeit5"]
    types = call(
        client,
        "DescribeInstanceTypeConfigs",
        {
            "Filters": [
                {"Name": "zone", "Values": [ZONE]},
                {"Name": "instance-family", "Values": ["S2"]},
            ]
        },
    )
    assert [(t.Zone, t.InstanceType, t.CPU, t.Memory) for t in types.InstanceTypeConfigSet] == [
        (ZONE, TYPE, 2, 4)
    ]
    call(client, "RunInstances", spot(count=3))
    quota = call(
        client,
        "DescribeAccountQuota",
        {"Filters": [{"Name": "zone", "Values": [ZONE]}]},
    ).AccountQuotaOverview
    [spot_quota] = quota.AccountQuota.SpotPaidQuotaSet
    assert (spot_quota.Zone, spot_quota.UsedQuota, spot_quota.TotalQuota) == (ZONE, 6, 100_000)
    assert quota.Region == "ap-guangzhou"


def test_the_launch_spec_is_echoed(client: Client) -> None:
    params = spot(
        InstanceName="web",
        HostName="web-host",
        SystemDisk={"DiskType": "CLOUD_PREMIUM", "DiskSize": 80},
        DataDisks=[{"DiskType": "CLOUD_SSD", "DiskSize": 200, "DeleteWithInstance": True}],
        InternetAccessible={
            "InternetChargeType": "TRAFFIC_POSTPAID_BY_HOUR",
            "InternetMaxBandwidthOut": 10,
            "PublicIpAssigned": True,
        },
        LoginSettings={"KeyIds": ["skey-abcd1234"]},
        SecurityGroupIds=["sg-abcd1234"],
        VirtualPrivateCloud={"VpcId": "vpc-abcd1234", "SubnetId": "subnet-abcd1234"},
        ImageId="img-487zeit5",
        UserData=base64.b64encode(b"#!/bin/sh\n").decode(),
    )
    params["Placement"]["ProjectId"] = 1002189
    [iid] = call(client, "RunInstances", params).InstanceIdSet
    [i] = call(client, "DescribeInstances", {"InstanceIds": [iid]}).InstanceSet
    assert (i.SystemDisk.DiskType, i.SystemDisk.DiskSize) == ("CLOUD_PREMIUM", 80)
    assert i.SystemDisk.DiskId.startswith("disk-")
    [disk] = i.DataDisks
    assert (disk.DiskType, disk.DiskSize, disk.DeleteWithInstance) == ("CLOUD_SSD", 200, True)
    assert i.InternetAccessible.InternetMaxBandwidthOut == 10
    [public_ip] = i.PublicIpAddresses
    assert public_ip.startswith("203.0.")
    assert (i.HostName, i.OsName) == ("web-host", "Ubuntu Server 22.04 LTS 64bit")
    assert i.LoginSettings.KeyIds == ["skey-abcd1234"]
    assert i.SecurityGroupIds == ["sg-abcd1234"]
    assert (i.VirtualPrivateCloud.VpcId, i.VirtualPrivateCloud.SubnetId) == (
        "vpc-abcd1234",
        "subnet-abcd1234",
    )
    assert i.Placement.ProjectId == 1002189
    # and the filters read the same fields
    for name, value in [
        ("vpc-id", "vpc-abcd1234"),
        ("subnet-id", "subnet-abcd1234"),
        ("security-group-id", "sg-abcd1234"),
        ("public-ip-address", public_ip),
        ("private-ip-address", i.PrivateIpAddresses[0]),
        ("uuid", i.Uuid),
        ("project-id", "1002189"),
        ("instance-type", TYPE),
        ("instance-charge-type", "SPOTPAID"),
    ]:
        assert _ids(client, (name, [value])) == [iid], name
    assert _ids(client, ("vpc-id", ["vpc-00000001"])) == []
    # defaults, as CVM fills them
    [plain_id] = call(client, "RunInstances", spot()).InstanceIdSet
    [plain] = call(client, "DescribeInstances", {"InstanceIds": [plain_id]}).InstanceSet
    assert (plain.SystemDisk.DiskType, plain.SystemDisk.DiskSize) == ("CLOUD_BSSD", 50)
    assert (plain.DataDisks, plain.PublicIpAddresses) == (None, None)
    assert plain.HostName.startswith("VM-")


def test_creation_time_filters(client: Client) -> None:
    [iid] = call(client, "RunInstances", spot()).InstanceIdSet
    assert _ids(client, ("creation-start-time", ["2000-01-01 00:00:00"])) == [iid]
    assert _ids(client, ("creation-end-time", ["2000-01-01 00:00:00"])) == []
    assert (
        error_code(
            client,
            "DescribeInstances",
            {"Filters": [{"Name": "creation-start-time", "Values": ["yesterday"]}]},
        )
        == "InvalidFilterValue"
    )
    assert (
        error_code(
            client, "DescribeInstances", {"Filters": [{"Name": "sort-keys", "Values": ["x"]}]}
        )
        == "InvalidFilter"
    )


def test_stop_start_reboot_and_their_refusals(client: Client) -> None:
    [iid] = call(client, "RunInstances", spot()).InstanceIdSet

    def state() -> str:
        [status] = call(client, "DescribeInstancesStatus", {"InstanceIds": [iid]}).InstanceStatusSet
        value: str = status.InstanceState
        return value

    assert state() == "RUNNING"  # launch_delay_s = 0
    assert (
        error_code(client, "StopInstances", {"InstanceIds": [iid], "StoppedMode": "STOP_CHARGING"})
        == "UnsupportedOperation.StoppedModeStopCharging"
    )
    call(client, "StopInstances", {"InstanceIds": [iid], "StopType": "SOFT"})
    assert state() == "STOPPED"  # power_delay_s = 0
    [i] = call(client, "DescribeInstances", {"InstanceIds": [iid]}).InstanceSet
    assert (i.StopChargingMode, i.LatestOperation) == ("KEEP_CHARGING", "StopInstances")
    assert error_code(client, "RebootInstances", {"InstanceIds": [iid]}) == (
        "UnsupportedOperation.InstanceStateStopped"
    )
    call(client, "StartInstances", {"InstanceIds": [iid]})
    assert state() == "RUNNING"
    assert error_code(client, "StartInstances", {"InstanceIds": [iid]}) == (
        "UnsupportedOperation.InstanceStateRunning"
    )
    call(client, "RebootInstances", {"InstanceIds": [iid]})
    assert state() == "RUNNING"
    limits = call(
        client,
        "DescribeInstancesOperationLimit",
        {"InstanceIds": [iid], "Operation": "INSTANCE_DEGRADE"},
    ).InstanceOperationLimitSet
    assert [(x.InstanceId, x.CurrentCount, x.LimitCount) for x in limits] == [(iid, 0, 5)]
    call(client, "StopInstances", {"InstanceIds": [iid]})
    call(client, "TerminateInstances", {"InstanceIds": [iid]})  # a stopped instance can go
    assert call(client, "DescribeInstancesStatus", {"InstanceIds": [iid]}).TotalCount == 0


def test_spot_requests_are_checked(client: Client) -> None:
    no_options = spot()
    no_options["InstanceMarketOptions"] = {"MarketType": "spot"}
    assert error_code(client, "RunInstances", no_options) == "MissingParameter"
    no_price = spot()
    del no_price["InstanceMarketOptions"]["SpotOptions"]["MaxPrice"]
    assert error_code(client, "RunInstances", no_price) == "MissingParameter"
    on_demand = spot(InstanceChargeType="POSTPAID_BY_HOUR")
    assert error_code(client, "RunInstances", on_demand) == "InvalidParameterCombination"
    market_price = spot()
    del market_price["InstanceMarketOptions"]  # SPOTPAID without a bid: the market price
    assert len(call(client, "RunInstances", market_price).InstanceIdSet) == 1


def _sdk_error(client: Client, params: dict[str, Any]) -> TencentCloudSDKException:
    with pytest.raises(TencentCloudSDKException) as raised:
        call(client, "RunInstances", params)
    return raised.value


def test_the_spot_errors_are_raised_and_classified(client: Client, admin: httpx.Client) -> None:
    def market(**change: Any) -> None:
        admin.put("/_sim/market", json=change).raise_for_status()

    def check(params: dict[str, Any], code: str, cls: type) -> None:
        error = _sdk_error(client, params)
        assert error.code == code
        assert type(classify.classify(error.code, error.message)) is cls, code

    # some stock, fewer than asked
    market(zone=ZONE, instance_type=TYPE, stock=2)
    check(spot(count=3), "InvalidParameterValue.InsufficientOffering", CapacityError)
    # none of this type left in the zone
    market(zone=ZONE, instance_type=TYPE, stock=0)
    check(spot(), "ResourceInsufficient.ZoneSoldOutForSpecifiedInstance", CapacityError)
    # a type sold pay-as-you-go only
    check(
        spot(instance_type="GN7.2XLARGE32"),
        "UnsupportedOperation.NoInstanceTypeSupportSpot",
        InvalidSpec,
    )
    # the whole zone sold out
    zone = "ap-guangzhou-7"
    for pool in admin.get("/_sim/market").json()["pools"]:
        if pool["zone"] == zone:
            market(zone=zone, instance_type=pool["instance_type"], stock=0)
    error = _sdk_error(client, spot(zone=zone, instance_type="S5.MEDIUM4"))
    assert error.code == "ResourcesSoldOut.AvailabilityZoneSoldOut"
    assert type(classify.classify(error.code, error.message)) is CapacityError


def test_the_account_spot_quota() -> None:
    config = _config()
    config.spot_vcpu_quota = 4  # two S2.MEDIUM4
    sim = Simulator(config, seed=1)
    from controller.simulator.server import background_server
    from tests.simulator.test_sim_sdk import SECRET_ID, SECRET_KEY

    with background_server(sim) as url:
        from tencentcloud.common import credential
        from tencentcloud.common.profile.client_profile import ClientProfile
        from tencentcloud.common.profile.http_profile import HttpProfile
        from tencentcloud.cvm.v20170312 import cvm_client

        profile = ClientProfile(
            httpProfile=HttpProfile(endpoint=url.removeprefix("http://"), protocol="http")
        )
        client = cvm_client.CvmClient(
            credential.Credential(SECRET_ID, SECRET_KEY), "ap-guangzhou", profile
        )
        try:
            assert len(call(client, "RunInstances", spot(count=2)).InstanceIdSet) == 2
            error = _sdk_error(client, spot())
            assert error.code == "LimitExceeded.UserSpotQuota"
            assert type(classify.classify(error.code, error.message)) is QuotaExceeded
        finally:
            client.request.conn._session.close()


def test_zh_cn_messages_token_and_content_type(sim: Simulator, base_url: str) -> None:
    from controller.cloud import signing

    def post(headers: dict[str, str], body: bytes = b"{}") -> dict[str, Any]:
        sent = {
            "Content-Type": "application/json",
            "X-TC-Action": "DescribeInstances",
            "X-TC-Version": "2017-03-12",
            "X-TC-Region": "ap-guangzhou",
            "X-TC-Timestamp": str(int(sim.clock())),
            **headers,
        }
        host = base_url.removeprefix("http://")
        sent["Authorization"] = signing.authorization(
            sim.config.secret_id,
            sim.config.secret_key,
            host=host,
            content_type=sent["Content-Type"],
            body=body,
            timestamp=int(sent["X-TC-Timestamp"]),
            service="cvm",
        )
        response = httpx.post(base_url, content=body, headers=sent, timeout=5)
        assert response.status_code == 200
        result: dict[str, Any] = response.json()["Response"]
        return result

    zh = post({"X-TC-Language": "zh-CN"}, b'{"Limits": 1}')["Error"]
    assert zh["Code"] == "UnknownParameter"
    assert zh["Message"].startswith("未知参数错误")
    assert "`Limits`" in zh["Message"]
    assert post({"X-TC-Token": "bogus"})["Error"]["Code"] == "AuthFailure.TokenFailure"
    sim.config.session_token = sim.world.config.session_token = "tok-1"
    assert post({"X-TC-Token": "bogus"})["Error"]["Code"] == "AuthFailure.TokenFailure"
    assert "Error" not in post({"X-TC-Token": "tok-1"})
    assert post({"Content-Type": "text/plain"})["Error"]["Code"] == "InvalidParameter"
    form = post({"Content-Type": "application/x-www-form-urlencoded"}, b"Action=X")["Error"]
    assert form["Code"] == "UnsupportedOperation"
    get = httpx.get(base_url, params={"Action": "DescribeInstances"}, timeout=5)
    assert get.status_code == 200
    assert get.json()["Response"]["Error"]["Code"] == "UnsupportedOperation"
    nested = post({}, b'{"Filters": [{"Name": "zone", "Values": ["x"], "Extra": 1}]}')
    assert nested["Error"]["Code"] == "UnknownParameter"
