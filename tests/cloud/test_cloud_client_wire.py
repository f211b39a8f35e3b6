"""The client's wire: bodies, headers and signatures as the SDK makes them, responses parsed.

``httpx.MockTransport`` stands in for Tencent here: these tests pin bytes and headers, which the
simulator (tested in test_cloud_client_simulator.py) would accept either way.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from tencentcloud.cvm.v20170312 import models as sdk

from controller.cloud import signing
from controller.cloud.client import CvmClient
from controller.core.instances import Instance, LaunchRequest
from controller.errors import InvalidSpec, ValidationFailed
from controller.secrets import Secret
from controller.settings import SIMULATOR_SECRET_ID, SIMULATOR_SECRET_KEY
from tests.cloud.cloud_fakes import (
    LAUNCH,
    SECRET_ID,
    SECRET_KEY,
    SESSION_TOKEN,
    Handler,
    Wire,
    api_error,
    client_for,
    make_settings,
    ok,
)

TC = "cvm.tencentcloudapi.com"
TC_GZ = "cvm.ap-guangzhou.tencentcloudapi.com"


def _sdk_run_instances_body() -> bytes:
    """What the official SDK serialises for LAUNCH, through its own models and json.dumps."""
    req = sdk.RunInstancesRequest()
    req.InstanceChargeType = "SPOTPAID"
    placement = sdk.Placement()
    placement.Zone = LAUNCH.zone
    placement.ProjectId = 0
    req.Placement = placement
    req.InstanceType = LAUNCH.instance_type
    req.ImageId = LAUNCH.image_id
    vpc = sdk.VirtualPrivateCloud()
    vpc.VpcId = LAUNCH.vpc_id
    vpc.SubnetId = LAUNCH.subnet_id
    req.VirtualPrivateCloud = vpc
    req.InstanceCount = LAUNCH.count
    req.InstanceName = LAUNCH.instance_name
    login = sdk.LoginSettings()
    login.KeyIds = list(LAUNCH.key_ids)
    req.LoginSettings = login
    req.SecurityGroupIds = list(LAUNCH.security_group_ids)
    req.ClientToken = LAUNCH.client_token
    spec = sdk.TagSpecification()
    spec.ResourceType = "instance"
    spec.Tags = []
    for key, value in LAUNCH.tags.items():
        tag = sdk.Tag()
        tag.Key = key
        tag.Value = value
        spec.Tags.append(tag)
    req.TagSpecification = [spec]
    market = sdk.InstanceMarketOptionsRequest()
    market.MarketType = "spot"
    spot = sdk.SpotMarketOptions()
    spot.MaxPrice = LAUNCH.max_price
    spot.SpotInstanceType = "one-time"
    market.SpotOptions = spot
    req.InstanceMarketOptions = market
    req.UserData = LAUNCH.user_data
    return json.dumps(req._serialize()).encode()


async def test_run_instances_body_is_byte_identical_to_the_sdk() -> None:
    wire = Wire(lambda r: ok({"InstanceIdSet": ["ins-aaaaaaaa", "ins-bbbbbbbb", "ins-cccccccc"]}))
    async with client_for(wire) as client:
        result = await client.run_instances(LAUNCH)
    assert result.instance_ids == ("ins-aaaaaaaa", "ins-bbbbbbbb", "ins-cccccccc")
    assert result.request_id == "req-ok"
    assert wire.requests[0].content == _sdk_run_instances_body()


async def test_run_instances_json_shape() -> None:
    wire = Wire(lambda r: ok({"InstanceIdSet": ["ins-aaaaaaaa"]}))
    async with client_for(wire) as client:
        await client.run_instances(LAUNCH)
    assert wire.bodies()[0] == {
        "InstanceChargeType": "SPOTPAID",
        "Placement": {"Zone": "ap-guangzhou-3", "ProjectId": 0},
        "InstanceType": "S5.MEDIUM4",
        "ImageId": "img-12345678",
        "VirtualPrivateCloud": {"VpcId": "vpc-22222222", "SubnetId": "subnet-33333333"},
        "InstanceCount": 3,
        "InstanceName": "batch-node",
        "LoginSettings": {"KeyIds": ["skey-44444444"]},
        "SecurityGroupIds": ["sg-11111111"],
        "ClientToken": "env-abcd1234-launch-0001",
        "TagSpecification": [
            {
                "ResourceType": "instance",
                "Tags": [
                    {"Key": "spot-controller:cluster", "Value": "default"},
                    {"Key": "spot-controller:env", "Value": "env-abcd1234"},
                ],
            }
        ],
        "InstanceMarketOptions": {
            "SpotOptions": {"MaxPrice": "0.60", "SpotInstanceType": "one-time"},
            "MarketType": "spot",
        },
        "UserData": "IyEvYmluL3NoCmVjaG8gaGk=",
    }


async def test_minimal_launch_drops_absent_fields() -> None:
    wire = Wire(lambda r: ok({"InstanceIdSet": ["ins-aaaaaaaa"]}))
    minimal = LaunchRequest(
        zone="ap-guangzhou-3",
        instance_type="S5.MEDIUM4",
        image_id="img-12345678",
        max_price="0.5",
        count=1,
        client_token="t1",
        tags={},
    )
    async with client_for(wire) as client:
        await client.run_instances(minimal)
    assert wire.requests[0].content == (
        b'{"InstanceChargeType": "SPOTPAID", "Placement": {"Zone": "ap-guangzhou-3"}, '
        b'"InstanceType": "S5.MEDIUM4", "ImageId": "img-12345678", "InstanceCount": 1, '
        b'"ClientToken": "t1", "InstanceMarketOptions": {"SpotOptions": {"MaxPrice": "0.5", '
        b'"SpotInstanceType": "one-time"}, "MarketType": "spot"}}'
    )


async def test_non_ascii_is_escaped_as_the_sdk_does() -> None:
    wire = Wire(lambda r: ok({"InstanceSet": [], "TotalCount": 0}))
    async with client_for(wire) as client:
        await client.describe_instances(filters={"instance-name": ["未命名"]})
    assert b'"Values": ["\\u672a\\u547d\\u540d"]' in wire.requests[0].content


@pytest.mark.parametrize(
    ("endpoint", "url", "host"),
    [
        ("http://127.0.0.1:9000", "http://127.0.0.1:9000/", "127.0.0.1:9000"),
        ("https://cvm.tencentcloudapi.com", f"https://{TC}/", TC),
        ("https://cvm.ap-guangzhou.tencentcloudapi.com/", f"https://{TC_GZ}/", TC_GZ),
        ("http://user@localhost:8080/ignored", "http://localhost:8080/", "localhost:8080"),
    ],
)
async def test_headers_and_signature_match_the_sdk(endpoint: str, url: str, host: str) -> None:
    wire = Wire(lambda r: ok({"InstanceStatusSet": [], "TotalCount": 0}))
    client = CvmClient(
        make_settings(cvm_endpoint=endpoint, region="ap-shanghai"),
        transport=httpx.MockTransport(wire),
        wall_clock=lambda: 1551113065.7,
    )
    async with client:
        await client.describe_instances_status(["ins-aaaaaaaa"])
    request = wire.requests[0]
    assert request.method == "POST"
    assert str(request.url) == url
    headers = request.headers
    assert headers["Host"] == host
    assert headers["Content-Type"] == "application/json"
    assert headers["X-TC-Action"] == "DescribeInstancesStatus"
    assert headers["X-TC-Version"] == "2017-03-12"
    assert headers["X-TC-Timestamp"] == "1551113065"
    assert headers["X-TC-Region"] == "ap-shanghai"
    assert "X-TC-Token" not in headers
    expected = signing.authorization(
        SECRET_ID,
        SECRET_KEY,
        host=host,
        content_type="application/json",
        body=request.content,
        timestamp=1551113065,
        service="cvm",
    )
    assert headers["Authorization"] == expected
    assert headers["Authorization"].startswith(
        f"TC3-HMAC-SHA256 Credential={SECRET_ID}/2019-02-25/cvm/tc3_request, "
        "SignedHeaders=content-type;host, Signature="
    )


async def test_session_token_is_sent_as_x_tc_token() -> None:
    wire = Wire(lambda r: ok({"InstanceStatusSet": [], "TotalCount": 0}))
    async with client_for(wire, session_token=Secret(SESSION_TOKEN)) as client:
        await client.describe_instances_status(["ins-aaaaaaaa"])
    assert wire.requests[0].headers["X-TC-Token"] == SESSION_TOKEN


async def test_no_credentials_signs_with_the_simulator_credentials() -> None:
    wire = Wire(lambda r: ok({"InstanceStatusSet": [], "TotalCount": 0}))
    settings = make_settings(secret_id=Secret(""), secret_key=Secret(""))
    async with CvmClient(settings, transport=httpx.MockTransport(wire)) as client:
        await client.describe_instances_status(["ins-aaaaaaaa"])
    request = wire.requests[0]
    parsed = signing.parse_authorization(request.headers["Authorization"])
    assert parsed is not None
    assert parsed.secret_id == SIMULATOR_SECRET_ID
    expected = signing.signature(
        SIMULATOR_SECRET_KEY,
        host="127.0.0.1:9000",
        content_type="application/json",
        body=request.content,
        timestamp=int(request.headers["X-TC-Timestamp"]),
        service="cvm",
    )
    assert parsed.signature == expected


def _instance(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "InstanceId": f"ins-{n:08d}",
        "InstanceState": "RUNNING",
        "InstanceType": "S5.MEDIUM4",
        "Placement": {"Zone": "ap-guangzhou-3", "ProjectId": 0},
        "CreatedTime": "2024-05-06T07:08:09Z",
        "Tags": [{"Key": "spot-controller:env", "Value": "env-1"}],
        **extra,
    }


async def test_describe_instances_parses_every_field() -> None:
    item = _instance(
        1,
        ImageId="img-12345678",
        InstanceName="node",
        InstanceChargeType="SPOTPAID",
        LatestOperationErrorMsg="ResourceInsufficient",
        PrivateIpAddresses=["10.0.0.5"],
        SomethingNew={"x": 1},
    )
    wire = Wire(lambda r: ok({"InstanceSet": [item], "TotalCount": 1}))
    async with client_for(wire) as client:
        [instance] = await client.describe_instances(instance_ids=["ins-00000001"])
    assert instance == Instance(
        instance_id="ins-00000001",
        state="RUNNING",
        zone="ap-guangzhou-3",
        instance_type="S5.MEDIUM4",
        created_time=datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC),
        tags={"spot-controller:env": "env-1"},
        image_id="img-12345678",
        instance_name="node",
        charge_type="SPOTPAID",
        latest_operation_error="ResourceInsufficient",
        private_ips=("10.0.0.5",),
    )
    assert instance.created_time is not None
    assert instance.created_time.utcoffset() is not None


async def test_nulls_where_tencent_sends_them_are_tolerated() -> None:
    item = _instance(
        1, Tags=None, PrivateIpAddresses=None, CreatedTime=None, LatestOperationErrorMsg=""
    )
    wire = Wire(lambda r: ok({"InstanceSet": [item], "TotalCount": 1}))
    async with client_for(wire) as client:
        [instance] = await client.describe_instances(instance_ids=["ins-00000001"])
    assert instance.tags == {}
    assert instance.private_ips == ()
    assert instance.created_time is None
    assert instance.latest_operation_error is None


async def test_describe_by_ids_chunks_by_100_with_limit_100() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        ids = json.loads(request.content)["InstanceIds"]
        return ok({"InstanceSet": [_instance(int(i[4:])) for i in ids], "TotalCount": len(ids)})

    wire = Wire(handler)
    ids = [f"ins-{n:08d}" for n in range(250)]
    async with client_for(wire) as client:
        found = await client.describe_instances(instance_ids=ids + ids[:5])
    assert [i.instance_id for i in found] == ids
    bodies = wire.bodies()
    assert [len(b["InstanceIds"]) for b in bodies] == [100, 100, 50]
    assert all(b["Limit"] == 100 and "Filters" not in b for b in bodies)


def _paged(instances: list[dict[str, Any]], total: int | None = None) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        offset, limit = body["Offset"], body["Limit"]
        page = instances[offset : offset + limit]
        return ok({"InstanceSet": page, "TotalCount": len(instances) if total is None else total})

    return handler


async def test_describe_with_filters_pages_until_total_count() -> None:
    wire = Wire(_paged([_instance(n) for n in range(250)]))
    async with client_for(wire) as client:
        found = await client.describe_instances(filters={"tag:spot-controller:env": ["env-1"]})
    assert len(found) == 250
    assert len({i.instance_id for i in found}) == 250
    bodies = wire.bodies()
    assert [(b["Offset"], b["Limit"]) for b in bodies] == [(0, 100), (100, 100), (200, 100)]
    assert bodies[0]["Filters"] == [{"Name": "tag:spot-controller:env", "Values": ["env-1"]}]


async def test_exact_multiple_of_100_stops_at_total_count() -> None:
    wire = Wire(_paged([_instance(n) for n in range(200)]))
    async with client_for(wire) as client:
        assert len(await client.describe_instances(filters={})) == 200
    assert len(wire.requests) == 2


async def test_total_count_that_lies_high_stops_at_the_first_short_page() -> None:
    wire = Wire(_paged([_instance(n) for n in range(150)], total=10_000))
    async with client_for(wire) as client:
        assert len(await client.describe_instances(filters={"zone": ["ap-guangzhou-3"]})) == 150
    assert len(wire.requests) == 2


async def test_api_repeating_the_same_full_page_cannot_loop_forever() -> None:
    page = [_instance(n) for n in range(100)]
    wire = Wire(lambda r: ok({"InstanceSet": page, "TotalCount": 1_000_000}))
    async with client_for(wire) as client:
        with pytest.raises(Exception, match="PagingRunaway") as info:
            await client.describe_instances(filters={"zone": ["ap-guangzhou-3"]})
    assert info.type.__name__ == "TransientError"
    assert len(wire.requests) == 2


async def test_describe_rejects_ids_with_filters_and_bare_strings() -> None:
    wire = Wire(lambda r: ok({}))
    async with client_for(wire) as client:
        with pytest.raises(ValueError, match="not both"):
            await client.describe_instances(instance_ids=["ins-1"], filters={"zone": ["z"]})
        with pytest.raises(TypeError):
            await client.describe_instances(instance_ids="ins-00000001")
        with pytest.raises(TypeError):
            await client.describe_instances(filters={"zone": "ap-guangzhou-3"})
        assert await client.describe_instances(instance_ids=[]) == []
    assert wire.requests == []


async def test_describe_instances_status_chunks_and_maps() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        ids = json.loads(request.content)["InstanceIds"]
        statuses = [{"InstanceId": i, "InstanceState": "PENDING"} for i in ids[:-1]]
        return ok({"InstanceStatusSet": statuses, "TotalCount": len(statuses)})

    wire = Wire(handler)
    ids = [f"ins-{n:08d}" for n in range(150)]
    async with client_for(wire) as client:
        states = await client.describe_instances_status(ids)
    assert len(states) == 148  # the last id of each chunk "does not exist"
    assert set(states.values()) == {"PENDING"}
    assert [len(b["InstanceIds"]) for b in wire.bodies()] == [100, 50]
    assert all(b["Limit"] == 100 for b in wire.bodies())


async def test_terminate_chunks_by_100() -> None:
    wire = Wire(lambda r: ok({}))
    ids = [f"ins-{n:08d}" for n in range(201)]
    async with client_for(wire) as client:
        await client.terminate_instances(ids)
    assert [b["InstanceIds"] for b in wire.bodies()] == [ids[:100], ids[100:200], ids[200:]]
    assert all(r.headers["X-TC-Action"] == "TerminateInstances" for r in wire.requests)


async def test_terminate_drops_ids_reported_gone_and_terminates_the_rest() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        ids = json.loads(request.content)["InstanceIds"]
        if "ins-00000002" in ids:
            return api_error("InvalidInstanceId.NotFound", "The instance `['ins-00000002']` ...")
        return ok({})

    wire = Wire(handler)
    async with client_for(wire) as client:
        await client.terminate_instances(["ins-00000001", "ins-00000002", "ins-00000003"])
    assert [b["InstanceIds"] for b in wire.bodies()] == [
        ["ins-00000001", "ins-00000002", "ins-00000003"],
        ["ins-00000001", "ins-00000003"],
    ]


async def test_terminate_not_found_naming_no_id_raises() -> None:
    wire = Wire(lambda r: api_error("InvalidInstanceId.NotFound", "not found"))
    async with client_for(wire) as client:
        with pytest.raises(Exception) as info:  # noqa: PT011 - the class is asserted below
            await client.terminate_instances(["ins-00000001"])
    assert type(info.value).__name__ == "InstanceIdsNotFound"
    assert len(wire.requests) == 1


async def test_zone_config_infos_filters_spot_and_parses_offerings() -> None:
    item = {
        "Zone": "ap-guangzhou-3",
        "InstanceType": "S5.MEDIUM4",
        "InstanceChargeType": "SPOTPAID",
        "Status": "SELL",
        "StatusCategory": "EnoughStock",
        "Price": {"UnitPrice": 0.5, "UnitPriceDiscount": 0.1, "ChargeUnit": "HOUR"},
        "Cpu": 2,
        "Memory": 4,
    }
    sold_out = {"Zone": "ap-guangzhou-4", "InstanceType": "S5.LARGE8", "Status": "SOLD_OUT"}
    wire = Wire(lambda r: ok({"InstanceTypeQuotaSet": [item, sold_out]}))
    async with client_for(wire) as client:
        offerings = await client.describe_zone_instance_config_infos(
            zone="ap-guangzhou-3", instance_type="S5.MEDIUM4"
        )
    assert wire.bodies()[0] == {
        "Filters": [
            {"Name": "instance-charge-type", "Values": ["SPOTPAID"]},
            {"Name": "zone", "Values": ["ap-guangzhou-3"]},
            {"Name": "instance-type", "Values": ["S5.MEDIUM4"]},
        ]
    }
    first, second = offerings
    assert (first.zone, first.instance_type, first.status) == (
        "ap-guangzhou-3",
        "S5.MEDIUM4",
        "SELL",
    )
    assert first.status_category == "EnoughStock"
    assert first.unit_price == pytest.approx(0.1)
    assert (first.cpu, first.memory) == (2, 4)
    assert second.unit_price is None
    assert second.status_category is None


async def test_inquiry_price_sends_the_launch_shape_and_reads_the_unit_price() -> None:
    price = {"InstancePrice": {"UnitPrice": 1.2, "UnitPriceDiscount": 0.24, "ChargeUnit": "HOUR"}}
    wire = Wire(lambda r: ok({"Price": price}))
    async with client_for(wire) as client:
        assert await client.inquiry_price_run_instances(LAUNCH) == pytest.approx(0.24)
    body = wire.bodies()[0]
    assert wire.requests[0].headers["X-TC-Action"] == "InquiryPriceRunInstances"
    assert body["InstanceChargeType"] == "SPOTPAID"
    assert body["InstanceMarketOptions"]["SpotOptions"]["MaxPrice"] == "0.60"
    assert "ClientToken" not in body
    assert body["InstanceCount"] == 1  # a unit price, whatever LAUNCH.count says
    assert "UserData" not in body


async def test_inquiry_price_without_a_price_is_malformed() -> None:
    wire = Wire(lambda r: ok({"Price": {}}))
    async with client_for(wire, cvm_max_attempts=1) as client:
        with pytest.raises(Exception, match=r"Response\.Malformed"):
            await client.inquiry_price_run_instances(LAUNCH)


async def test_launch_larger_than_the_batch_cap_is_refused_locally() -> None:
    wire = Wire(lambda r: ok({}))
    big = LaunchRequest(
        zone="z", instance_type="t", image_id="i", max_price="1", count=101,
        client_token="t", tags={},
    )  # fmt: skip
    async with client_for(wire) as client:
        with pytest.raises(ValidationFailed, match="count"):
            await client.run_instances(big)
    assert wire.requests == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("client_token", "x" * 65),
        ("client_token", ""),
        ("client_token", "tøken"),
        ("count", 0),
        ("max_price", "0,60"),
        ("max_price", "0"),
        ("max_price", "-1"),
        ("zone", ""),
        ("vpc_id", "vpc-1"),
    ],
)
def test_launch_request_validates(field: str, value: Any) -> None:
    fields: dict[str, Any] = {
        "zone": "z", "instance_type": "t", "image_id": "i", "max_price": "0.6", "count": 1,
        "client_token": "tok", "tags": {},
    }  # fmt: skip
    fields[field] = value
    with pytest.raises(ValidationFailed):
        LaunchRequest(**fields)


def test_launch_request_is_frozen_and_hides_user_data() -> None:
    tags = {"a": "b"}
    request = LaunchRequest(
        zone="z", instance_type="t", image_id="i", max_price="0.6", count=1,
        client_token="tok", tags=tags, user_data="c2VjcmV0LXVzZXItZGF0YQ==",
    )  # fmt: skip
    tags["a"] = "changed"
    assert request.tags == {"a": "b"}
    assert "c2VjcmV0LXVzZXItZGF0YQ==" not in repr(request)
    with pytest.raises(AttributeError):
        request.count = 2  # type: ignore[misc]


async def test_api_error_with_charset_content_type_is_still_an_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        error = {"Code": "InvalidImageId.NotFound", "Message": "m"}
        body = json.dumps({"Response": {"Error": error, "RequestId": "r1"}}).encode()
        content_type = {"Content-Type": "application/json; charset=utf-8"}
        return httpx.Response(200, content=body, headers=content_type)

    async with client_for(Wire(handler)) as client:
        with pytest.raises(InvalidSpec) as info:
            await client.run_instances(LAUNCH)
    assert info.value.request_id == "r1"
    assert info.value.action == "RunInstances"
