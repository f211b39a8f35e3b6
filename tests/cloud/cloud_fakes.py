"""Fakes shared by the cloud tests: a virtual clock and settings for a fake endpoint."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import httpx

from controller.cloud.client import CvmClient
from controller.core.instances import LaunchRequest
from controller.settings import Settings

T = TypeVar("T")

SECRET_ID = "AKIDtestsecretid000000000000000000000"
SECRET_KEY = "test-secret-key-must-never-leak"
SESSION_TOKEN = "test-session-token-must-never-leak"


class VirtualClock:
    """Virtual time in the spirit of ``looptime``: it jumps to the next sleeper's deadline
    whenever every other task is blocked, so seconds of schedule run in milliseconds and the
    assertions can be exact."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, anyio.Event]] = []
        self._seq = itertools.count()

    def time(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        event = anyio.Event()
        heapq.heappush(self._sleepers, (self.now + max(0.0, delay), next(self._seq), event))
        await event.wait()

    async def run(self, main: Callable[[], Awaitable[T]]) -> T:
        """Run ``main`` to completion, advancing time only when nothing else can run."""
        results: list[T] = []
        done = anyio.Event()

        async def runner() -> None:
            results.append(await main())
            done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(runner)
            while True:
                await _all_other_tasks_blocked()
                if done.is_set():
                    break
                if not self._sleepers:
                    raise RuntimeError("deadlock: every task is blocked and none is sleeping")
                deadline = self._sleepers[0][0]
                self.now = max(self.now, deadline)
                while self._sleepers and self._sleepers[0][0] <= deadline:
                    heapq.heappop(self._sleepers)[2].set()
        return results[0]


async def _all_other_tasks_blocked() -> None:
    """Like ``anyio.wait_all_tasks_blocked`` without its 0.1 s real-time polling.

    A task waiting on a future is blocked only if no callback is queued that could complete the
    future (a finished child wakes its task group through ``call_soon``), hence the ready queue.
    """
    loop = asyncio.get_running_loop()
    this = asyncio.current_task()
    while True:
        await asyncio.sleep(0)
        if loop._ready:  # type: ignore[attr-defined]
            continue
        waiting = (
            task is this or (task._fut_waiter is not None and not task._fut_waiter.done())  # type: ignore[attr-defined]
            for task in asyncio.all_tasks()
        )
        if all(waiting):
            return


def make_settings(**overrides: Any) -> Settings:
    """Settings for a fake endpoint: fast retries, rate limits high enough not to matter."""
    values: dict[str, Any] = {
        "cvm_endpoint": "http://127.0.0.1:9000",
        "cvm_timeout_s": 1.0,
        "cvm_connect_timeout_s": 1.0,
        "cvm_retry_base_s": 0.01,
        "cvm_retry_max_s": 0.05,
        "rate_limits": {
            "RunInstances": 1000.0,
            "TerminateInstances": 1000.0,
            "DescribeInstances": 1000.0,
            "DescribeInstancesStatus": 1000.0,
        },
    }
    values.update(overrides)
    env = {"TENCENTCLOUD_SECRET_ID": SECRET_ID, "TENCENTCLOUD_SECRET_KEY": SECRET_KEY}
    return Settings.from_env(env, **values)


Handler = Callable[[httpx.Request], httpx.Response]

LAUNCH = LaunchRequest(
    zone="ap-guangzhou-3",
    instance_type="S5.MEDIUM4",
    image_id="img-12345678",
    max_price="0.60",
    count=3,
    client_token="env-abcd1234-launch-0001",
    tags={"spot-controller:cluster": "default", "spot-controller:env": "env-abcd1234"},
    instance_name="batch-node",
    project_id=0,
    security_group_ids=("sg-11111111",),
    vpc_id="vpc-22222222",
    subnet_id="subnet-33333333",
    key_ids=("skey-44444444",),
    user_data="IyEvYmluL3NoCmVjaG8gaGk=",
)


def ok(payload: dict[str, Any], request_id: str = "req-ok") -> httpx.Response:
    return httpx.Response(
        200,
        json={"Response": {**payload, "RequestId": request_id}},
        headers={"Content-Type": "application/json"},
    )


def api_error(code: str, message: str = "nope", request_id: str = "req-err") -> httpx.Response:
    return ok({"Error": {"Code": code, "Message": message}}, request_id)


class Wire:
    """A recording MockTransport: every request kept, answered by ``handler``."""

    def __init__(self, handler: Handler) -> None:
        self.requests: list[httpx.Request] = []
        self.handler = handler

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return self.handler(request)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]


def client_for(wire: Wire, **overrides: Any) -> CvmClient:
    return CvmClient(make_settings(**overrides), transport=httpx.MockTransport(wire))
