"""Compatibility proof: Tencent's official Python SDK against the simulator over loopback HTTP.

The SDK is synchronous (``requests``), so these are plain sync tests against a uvicorn server
in a background thread. Warnings are errors here too, and the SDK warns about any response
field its models do not know, so these tests also prove the response shapes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.cvm.v20170312 import cvm_client, models

from controller.simulator import Simulator, SimulatorConfig
from controller.simulator.server import background_server
from tests.simulator.helpers import TYPE, ZONE, spot

SECRET_ID = "AKIDsdktest"
SECRET_KEY = "sdk-test-key"
Client = Any  # tencentcloud ships no type hints
MakeClient = Callable[..., Client]


def _config() -> SimulatorConfig:
    config = SimulatorConfig(
        secret_id=SECRET_ID, secret_key=SECRET_KEY, launch_delay_s=0, terminate_delay_s=0
    )
    config.faults.rate_limits = {}
    return config


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def sim() -> Simulator:
    return Simulator(_config(), seed=1)


@pytest.fixture
def base_url(sim: Simulator) -> Iterator[str]:
    with background_server(sim) as url:
        yield url


@pytest.fixture
def admin(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=5) as http:
        yield http


@pytest.fixture
def make_client(base_url: str) -> Iterator[MakeClient]:
    clients: list[Client] = []

    def make(
        secret_id: str = SECRET_ID, secret_key: str = SECRET_KEY, url: str = base_url
    ) -> Client:
        profile = ClientProfile(
            httpProfile=HttpProfile(
                endpoint=url.removeprefix("http://"), protocol="http", reqTimeout=10
            )
        )
        client = cvm_client.CvmClient(
            credential.Credential(secret_id, secret_key), "ap-guangzhou", profile
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.request.conn._session.close()


@pytest.fixture
def client(make_client: MakeClient) -> Client:
    return make_client()


def call(client: Client, action: str, params: dict[str, Any]) -> Any:
    """Build the SDK's request model from ``params`` and call ``action`` with it."""
    request = getattr(models, f"{action}Request")()
    request.from_json_string(json.dumps(params))
    return getattr(client, action)(request)


def error_code(client: Client, action: str, params: dict[str, Any]) -> str:
    with pytest.raises(TencentCloudSDKException) as raised:
        call(client, action, params)
    assert raised.value.requestId or raised.value.code == "ServerNetworkError"
    code: str = raised.value.code
    return code


def test_launch_with_tags_and_token_then_page_and_terminate(client: Client) -> None:
    params = spot(count=250, tags={"spot-controller:env": "env-1", "team": "x"}, ClientToken="c1")
    ids = call(client, "RunInstances", params).InstanceIdSet
    assert len(ids) == 250
    assert call(client, "RunInstances", params).InstanceIdSet == ids  # idempotent

    seen: list[str] = []
    for offset in (0, 100, 200):
        page = call(
            client,
            "DescribeInstances",
            {
                "Filters": [{"Name": "tag:spot-controller:env", "Values": ["env-1"]}],
                "Offset": offset,
                "Limit": 100,
            },
        )
        assert page.TotalCount == 250
        seen += [i.InstanceId for i in page.InstanceSet]
        first = page.InstanceSet[0]
        assert first.InstanceState == "RUNNING"
        assert first.Placement.Zone == ZONE
        assert {(t.Key, t.Value) for t in first.Tags} == {
            ("spot-controller:env", "env-1"),
            ("team", "x"),
        }
        assert first.InstanceChargeType == "SPOTPAID"
    assert seen == ids

    for start in range(0, 250, 100):
        call(client, "TerminateInstances", {"InstanceIds": ids[start : start + 100]})
    status = call(client, "DescribeInstancesStatus", {"InstanceIds": ids[:100], "Limit": 100})
    assert status.TotalCount == 0  # terminate_delay_s = 0: gone at the next call
    nobody = call(
        client, "DescribeInstances", {"Filters": [{"Name": "tag-key", "Values": ["team"]}]}
    )
    assert (nobody.TotalCount, nobody.InstanceSet) == (0, [])


def test_zone_configs_and_price(client: Client) -> None:
    infos = call(
        client,
        "DescribeZoneInstanceConfigInfos",
        {
            "Filters": [
                {"Name": "zone", "Values": [ZONE]},
                {"Name": "instance-type", "Values": [TYPE]},
                {"Name": "instance-charge-type", "Values": ["SPOTPAID"]},
            ]
        },
    )
    [item] = infos.InstanceTypeQuotaSet
    assert (item.Zone, item.InstanceType, item.Status, item.StatusCategory) == (
        ZONE,
        TYPE,
        "SELL",
        "EnoughStock",
    )
    assert item.Price.UnitPriceDiscount < 0.60
    assert item.Price.ChargeUnit == "HOUR"
    price = call(client, "InquiryPriceRunInstances", spot())
    assert price.Price.InstancePrice.UnitPriceDiscount == item.Price.UnitPriceDiscount


def test_error_codes_reach_the_sdk(client: Client, admin: httpx.Client) -> None:
    assert error_code(client, "RunInstances", spot(max_price="0.01")) == (
        "InvalidParameterValue.InsufficientPrice"
    )
    assert error_code(client, "RunInstances", spot(ImageId="ubuntu-22")) == (
        "InvalidImageId.Malformed"
    )
    admin.put(
        "/_sim/market", json={"zone": ZONE, "instance_type": TYPE, "quota": 2}
    ).raise_for_status()
    assert error_code(client, "RunInstances", spot(count=3)) == "LimitExceeded.SpotQuota"
    admin.put(
        "/_sim/market", json={"zone": ZONE, "instance_type": TYPE, "stock": 1}
    ).raise_for_status()
    assert error_code(client, "RunInstances", spot(count=2)) == (
        "InvalidParameterValue.InsufficientOffering"
    )
    assert error_code(client, "TerminateInstances", {"InstanceIds": ["ins-zzzzzzzz"]}) == (
        "InvalidInstanceId.NotFound"
    )


def test_auth_failures_reach_the_sdk(make_client: MakeClient) -> None:
    wrong_key = make_client(secret_key="not-the-key")
    assert error_code(wrong_key, "DescribeInstances", {}) == "AuthFailure.SignatureFailure"
    stranger = make_client(secret_id="AKIDstranger")
    assert error_code(stranger, "DescribeInstances", {}) == "AuthFailure.SecretIdNotFound"


def test_signature_expire_with_a_clock_offset(make_client: MakeClient) -> None:
    skewed = Simulator(_config(), seed=1, clock=lambda: time.time() + 1000)
    with background_server(skewed) as url:
        client = make_client(url=url)
        assert error_code(client, "DescribeInstances", {}) == "AuthFailure.SignatureExpire"


def test_a_burst_is_throttled(client: Client, admin: httpx.Client) -> None:
    admin.put("/_sim/faults", json={"rate_limits": {"DescribeInstances": 2}}).raise_for_status()
    codes = []
    for _ in range(6):
        try:
            call(client, "DescribeInstances", {})
            codes.append("OK")
        except TencentCloudSDKException as exc:
            codes.append(exc.code)
    assert codes[:2] == ["OK", "OK"]
    assert "RequestLimitExceeded" in codes


def test_http_503_is_a_network_error_to_the_sdk(client: Client, admin: httpx.Client) -> None:
    admin.put("/_sim/faults", json={"http_error_rate": 1.0}).raise_for_status()
    assert error_code(client, "DescribeInstances", {}) == "ServerNetworkError"
    admin.put("/_sim/faults", json={"http_error_rate": 0.0, "error_rate": 1.0}).raise_for_status()
    assert error_code(client, "DescribeInstances", {}) == "InternalError"
