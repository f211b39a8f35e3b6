"""The wire: envelope, content type, signature checks and request-level errors."""

from __future__ import annotations

import json

from controller.cloud import signing
from controller.simulator import Simulator, SimulatorConfig
from tests.simulator.helpers import Cvm, FakeClock, in_process


async def test_success_and_error_envelopes(cvm: Cvm) -> None:
    ok = await cvm.send("DescribeInstances", {})
    assert ok.status_code == 200
    assert ok.headers["content-type"] == "application/json"
    assert set(ok.json()["Response"]) == {"TotalCount", "InstanceSet", "RequestId"}
    error = await cvm.send("DescribeInstances", {"Limit": 0})
    assert error.status_code == 200
    assert error.headers["content-type"] == "application/json"
    body = error.json()["Response"]
    assert set(body) == {"Error", "RequestId"}
    assert set(body["Error"]) == {"Code", "Message"}
    assert body["RequestId"] != ok.json()["Response"]["RequestId"]


async def test_signature_is_over_the_raw_body_bytes(cvm: Cvm) -> None:
    odd = (
        b'{ "Limit" :1,\n "Filters": '
        b'[{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
    )
    assert (await cvm.ok("DescribeInstances", body=odd))["TotalCount"] == 0


async def test_auth_failures(cvm: Cvm, clock: FakeClock) -> None:
    assert await cvm.code("DescribeInstances", {}, secret_key="wrong") == (
        "AuthFailure.SignatureFailure"
    )
    stranger = Cvm(cvm.http, clock, "AKIDstranger", "whatever")
    assert await stranger.code("DescribeInstances", {}) == "AuthFailure.SecretIdNotFound"
    now = int(clock())
    assert await cvm.code("DescribeInstances", {}, timestamp=now - 301) == (
        "AuthFailure.SignatureExpire"
    )
    assert await cvm.code("DescribeInstances", {}, timestamp=now + 301) == (
        "AuthFailure.SignatureExpire"
    )
    await cvm.ok("DescribeInstances", {}, timestamp=now - 300)
    assert await cvm.code("DescribeInstances", {}, sign=False) == "MissingParameter"
    garbage = {"Authorization": "Basic dXNlcjpwYXNz"}
    assert await cvm.code("DescribeInstances", {}, headers=garbage) == (
        "AuthFailure.InvalidAuthorization"
    )
    other_body = signing.authorization(
        cvm.secret_id,
        cvm.secret_key,
        host="cvm.tencentcloudapi.com",
        content_type="application/json",
        body=b'{"Limit": 1}',
        timestamp=now,
        service="cvm",
    )
    tampered = {"Authorization": other_body}
    assert await cvm.code("DescribeInstances", {"Limit": 2}, headers=tampered) == (
        "AuthFailure.SignatureFailure"
    )
    wrong_service = other_body.replace("/cvm/", "/batch/")
    assert (
        await cvm.code("DescribeInstances", {"Limit": 1}, headers={"Authorization": wrong_service})
        == "AuthFailure.SignatureFailure"
    )
    stats = await cvm.admin("GET", "stats")
    assert stats["calls"] == {"DescribeInstances": 9}


async def test_request_level_errors(cvm: Cvm) -> None:
    assert await cvm.code("ResetInstance", {}) == "InvalidAction"
    assert await cvm.code("", {}) == "MissingParameter"
    assert await cvm.code("DescribeInstances", {}, headers={"X-TC-Version": "2020-01-01"}) == (
        "NoSuchVersion"
    )
    assert await cvm.code("DescribeInstances", {}, headers={"X-TC-Region": ""}) == (
        "MissingParameter"
    )
    assert await cvm.code("DescribeInstances", {}, region="eu-nowhere") == "UnsupportedRegion"
    assert await cvm.code("DescribeInstances", body=b"{not json") == "InvalidParameter"
    assert await cvm.code("DescribeInstances", body=b"[1, 2]") == "InvalidParameter"
    assert await cvm.code("DescribeInstances", {"Limit": "5"}) == "InvalidParameter"
    assert await cvm.code("DescribeInstances", {"Limits": 5}) == "UnknownParameter"
    stats = await cvm.admin("GET", "stats")
    assert stats["calls_by_action_and_code"]["ResetInstance"] == {"InvalidAction": 1}


async def test_auth_can_be_turned_off(config: SimulatorConfig, clock: FakeClock) -> None:
    config.auth_enabled = False
    sim = Simulator(config, seed=1, clock=clock)
    async with in_process(sim, clock) as cvm:
        assert (await cvm.ok("DescribeInstances", {}, sign=False))["TotalCount"] == 0


async def test_home_region_is_accepted_without_pools(clock: FakeClock) -> None:
    config = SimulatorConfig(secret_id="AKIDtest", secret_key="k", region="ap-tokyo")
    sim = Simulator(config, seed=1, clock=clock)
    async with in_process(sim, clock) as cvm:
        result = await cvm.ok("DescribeInstances", {}, region="ap-tokyo")
        assert result["TotalCount"] == 0
        zones = await cvm.ok("DescribeZoneInstanceConfigInfos", {}, region="ap-tokyo")
        assert zones["InstanceTypeQuotaSet"] == []


async def test_responses_keep_non_ascii_as_utf8(cvm: Cvm) -> None:
    await cvm.launch(InstanceName="节点")
    response = await cvm.send("DescribeInstances", {})
    assert "节点".encode() in response.content
    assert json.loads(response.content)["Response"]["InstanceSet"][0]["InstanceName"] == "节点"
