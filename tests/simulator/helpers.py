"""A signing CVM caller for the simulator tests, a fake clock and request builders."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from controller.cloud import signing
from controller.simulator import Simulator

START = 1_700_000_000.0  # 2023-11-14T22:13:20Z
REGION = "ap-guangzhou"
ZONE = "ap-guangzhou-3"
TYPE = "S2.MEDIUM4"
IMAGE = "img-pmqg1cw7"


class FakeClock:
    """Wall-clock seconds that move only when the test says so."""

    def __init__(self, start: float = START) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def spot(
    *,
    zone: str = ZONE,
    instance_type: str = TYPE,
    count: int = 1,
    max_price: str = "0.60",
    tags: dict[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """RunInstances parameters of a one-time spot bid."""
    params: dict[str, Any] = {
        "InstanceChargeType": "SPOTPAID",
        "Placement": {"Zone": zone, "ProjectId": 0},
        "InstanceType": instance_type,
        "ImageId": IMAGE,
        "InstanceCount": count,
        "InstanceMarketOptions": {
            "MarketType": "spot",
            "SpotOptions": {"MaxPrice": max_price, "SpotInstanceType": "one-time"},
        },
    }
    if tags:
        params["TagSpecification"] = [
            {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        ]
    params.update(extra)
    return params


class Cvm:
    """Signs and sends CVM calls the way the SDK does, over any httpx client."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        clock: FakeClock,
        secret_id: str,
        secret_key: str,
        region: str = REGION,
    ) -> None:
        self.http = http
        self.clock = clock
        self.secret_id = secret_id
        self.secret_key = secret_key
        self.region = region

    async def send(
        self,
        action: str,
        params: dict[str, Any] | None = None,
        *,
        body: bytes | None = None,
        region: str | None = None,
        headers: dict[str, str] | None = None,
        secret_key: str | None = None,
        timestamp: int | None = None,
        sign: bool = True,
    ) -> httpx.Response:
        raw = body if body is not None else json.dumps(params or {}).encode()
        ts = int(self.clock()) if timestamp is None else timestamp
        host = self.http.base_url.netloc.decode()
        sent = {
            "Content-Type": "application/json",
            "Host": host,
            "X-TC-Action": action,
            "X-TC-Version": "2017-03-12",
            "X-TC-Timestamp": str(ts),
            "X-TC-Region": region or self.region,
        }
        if sign:
            sent["Authorization"] = signing.authorization(
                self.secret_id,
                secret_key or self.secret_key,
                host=host,
                content_type="application/json",
                body=raw,
                timestamp=ts,
                service="cvm",
            )
        sent.update(headers or {})
        return await self.http.post("/", content=raw, headers=sent)

    async def call(self, action: str, params: dict[str, Any] | None = None, **kw: Any) -> Any:
        """The ``Response`` object of a call (success or error)."""
        response = await self.send(action, params, **kw)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        return response.json()["Response"]

    async def ok(self, action: str, params: dict[str, Any] | None = None, **kw: Any) -> Any:
        result = await self.call(action, params, **kw)
        assert "Error" not in result, result
        return result

    async def code(self, action: str, params: dict[str, Any] | None = None, **kw: Any) -> str:
        result = await self.call(action, params, **kw)
        assert "Error" in result, result
        code: str = result["Error"]["Code"]
        return code

    async def launch(self, **kw: Any) -> list[str]:
        ids: list[str] = (await self.ok("RunInstances", spot(**kw)))["InstanceIdSet"]
        return ids

    async def states(self, ids: list[str] | None = None) -> dict[str, str]:
        params: dict[str, Any] = {"Limit": 100}
        if ids:
            params["InstanceIds"] = ids
        result = await self.ok("DescribeInstancesStatus", params)
        return {s["InstanceId"]: s["InstanceState"] for s in result["InstanceStatusSet"]}

    # ---- admin ---------------------------------------------------------------------------

    async def admin(self, method: str, path: str, payload: Any = None) -> Any:
        response = await self.http.request(method, f"/_sim/{path}", json=payload)
        assert response.status_code == 200, response.text
        return response.json()

    async def admin_error(self, method: str, path: str, payload: Any = None) -> Any:
        response = await self.http.request(method, f"/_sim/{path}", json=payload)
        assert response.status_code == 400, response.text
        return response.json()["error"]

    async def instances(self, *, include_gone: bool = False) -> dict[str, dict[str, Any]]:
        path = "instances?include_gone=1" if include_gone else "instances"
        items = (await self.admin("GET", path))["instances"]
        return {i["InstanceId"]: i for i in items}


@asynccontextmanager
async def in_process(sim: Simulator, clock: FakeClock) -> AsyncIterator[Cvm]:
    """A :class:`Cvm` talking to ``sim.app`` through httpx's ASGI transport."""
    transport = httpx.ASGITransport(app=sim.app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://cvm.tencentcloudapi.com"
    ) as http:
        yield Cvm(http, clock, sim.config.secret_id, sim.config.secret_key)
