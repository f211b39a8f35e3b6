"""Injected faults: errors, HTTP 503s, timeouts after the effect, latency and rate limits."""

from __future__ import annotations

import time

import anyio
import httpx
import pytest

from controller.simulator import Simulator, SimulatorConfig
from controller.simulator.limits import TENCENT_RATE_LIMITS
from controller.simulator.server import background_server
from tests.simulator.helpers import Cvm, FakeClock, in_process, spot


async def test_error_rate_answers_internal_error_without_effect(cvm: Cvm) -> None:
    await cvm.admin("PUT", "faults", {"error_rate": 1.0})
    assert await cvm.code("RunInstances", spot()) == "InternalError"
    assert await cvm.instances() == {}  # admin calls never fault
    stats = await cvm.admin("GET", "stats")
    assert stats["faults"] == {"error": 1}
    assert stats["errors"] == {"InternalError": 1}
    await cvm.admin("PUT", "faults", {"error_rate": 0})
    assert len(await cvm.launch()) == 1


async def test_http_error_rate_answers_503_with_a_non_json_body(cvm: Cvm) -> None:
    await cvm.admin("PUT", "faults", {"http_error_rate": 1.0})
    response = await cvm.send("RunInstances", spot())
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("text/html")
    with pytest.raises(ValueError, match="Expecting value"):
        response.json()
    assert await cvm.instances() == {}
    assert (await cvm.admin("GET", "stats"))["calls_by_action_and_code"] == {
        "RunInstances": {"HTTP503": 1}
    }


async def test_a_timeout_happens_after_the_effect_and_client_token_makes_the_retry_safe(
    cvm: Cvm,
) -> None:
    await cvm.admin("PUT", "faults", {"timeout_rate": 1.0, "timeout_hang_s": 30})
    params = spot(count=2, ClientToken="retry-me")
    with pytest.raises(TimeoutError):
        with anyio.fail_after(0.2):
            await cvm.send("RunInstances", params)
    launched = await cvm.instances()
    assert len(launched) == 2  # the call did its work before hanging
    await cvm.admin("PUT", "faults", {"timeout_rate": 0.0})
    retry = await cvm.ok("RunInstances", params)
    assert sorted(retry["InstanceIdSet"]) == sorted(launched)
    assert len(await cvm.instances()) == 2


def test_a_hanging_call_over_loopback_times_out_the_client_and_the_server_stops_promptly() -> None:
    config = SimulatorConfig(secret_id="AKIDtest", secret_key="k", auth_enabled=False)
    config.faults.timeout_rate = 1.0
    config.faults.timeout_hang_s = 60.0
    sim = Simulator(config, seed=1)
    with background_server(sim) as url:
        with httpx.Client(base_url=url, timeout=0.3) as http, pytest.raises(httpx.ReadTimeout):
            http.post(
                "/",
                json=spot(),
                headers={
                    "X-TC-Action": "RunInstances",
                    "X-TC-Version": "2017-03-12",
                    "X-TC-Region": "ap-guangzhou",
                },
            )
        with httpx.Client(base_url=url, timeout=5) as http:
            assert len(http.get("/_sim/instances").json()["instances"]) == 1
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 3.0


async def test_latency_is_added_to_api_calls_only(cvm: Cvm) -> None:
    await cvm.admin("PUT", "faults", {"latency_ms": 150})
    started = time.monotonic()
    await cvm.ok("DescribeInstances", {})
    assert time.monotonic() - started >= 0.15
    started = time.monotonic()
    await cvm.admin("GET", "stats")
    assert time.monotonic() - started < 0.15


async def test_rate_limits_are_token_buckets_on_the_simulator_clock(
    cvm: Cvm, clock: FakeClock
) -> None:
    await cvm.admin("PUT", "faults", {"rate_limits": {"RunInstances": 2}})
    assert len(await cvm.launch()) == 1
    assert len(await cvm.launch()) == 1
    assert await cvm.code("RunInstances", spot()) == "RequestLimitExceeded"
    assert (await cvm.ok("DescribeInstances", {}))["TotalCount"] == 2  # other actions unaffected
    clock.advance(0.5)
    assert len(await cvm.launch()) == 1
    assert await cvm.code("RunInstances", spot()) == "RequestLimitExceeded"
    await cvm.admin("PUT", "faults", {"rate_limits": {"RunInstances": None}})
    for _ in range(5):
        await cvm.launch()
    stats = await cvm.admin("GET", "stats")
    assert stats["errors"] == {"RequestLimitExceeded": 2}
    assert stats["faults"] == {"throttled": 2}


async def test_default_rate_limits_are_tencents(clock: FakeClock) -> None:
    config = SimulatorConfig(secret_id="AKIDtest", secret_key="k")
    sim = Simulator(config, seed=1, clock=clock)
    async with in_process(sim, clock) as cvm:
        for _ in range(40):
            await cvm.ok("DescribeInstances", {})
        assert await cvm.code("DescribeInstances", {}) == "RequestLimitExceeded"
        faults = (await cvm.admin("GET", "faults"))["faults"]
        assert faults["rate_limits"] == dict(TENCENT_RATE_LIMITS)
        await cvm.admin("PUT", "faults", {"rate_limits": None})
        assert (await cvm.admin("GET", "faults"))["faults"]["rate_limits"] == {}
        await cvm.ok("DescribeInstances", {})


async def test_fault_rolls_are_deterministic_per_seed(config: SimulatorConfig) -> None:
    config.faults.error_rate = 0.5

    async def pattern(seed: int) -> list[str]:
        clock = FakeClock()
        sim = Simulator(config, seed=seed, clock=clock)
        async with in_process(sim, clock) as cvm:
            codes = []
            for _ in range(30):
                result = await cvm.call("DescribeInstances", {})
                codes.append(result.get("Error", {}).get("Code", "OK"))
            return codes

    first = await pattern(11)
    assert {"OK", "InternalError"} == set(first)
    assert await pattern(11) == first
