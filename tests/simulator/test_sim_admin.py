"""The admin API, timed scenario events, reset and determinism."""

from __future__ import annotations

from typing import Any

import pytest

from controller.simulator import ScenarioEvent, Simulator, SimulatorConfig
from tests.simulator.helpers import TYPE, ZONE, Cvm, FakeClock, in_process, spot


async def test_instances_view(cvm: Cvm, clock: FakeClock) -> None:
    [instance_id] = await cvm.launch(tags={"env": "e1"}, ClientToken="t1", max_price="0.5")
    view = (await cvm.instances())[instance_id]
    assert view == {
        "InstanceId": instance_id,
        "InstanceState": "PENDING",
        "Region": "ap-guangzhou",
        "Zone": ZONE,
        "InstanceType": TYPE,
        "ImageId": "img-pmqg1cw7",
        "InstanceName": "未命名",
        "InstanceChargeType": "SPOTPAID",
        "MaxPrice": 0.5,
        "Price": 0.12,
        "Tags": {"env": "e1"},
        "CreatedTime": "2023-11-14T22:13:20Z",
        "RunningTime": None,
        "ClientToken": "t1",
        "PrivateIpAddress": view["PrivateIpAddress"],
        "LatestOperation": "RunInstances",
        "LatestOperationState": "OPERATING",
        "LatestOperationErrorMsg": "",
        "LaunchFailed": False,
        "EndedTime": None,
        "EndReason": None,
    }


async def test_faults_endpoint(cvm: Cvm) -> None:
    changed = await cvm.admin(
        "PUT", "faults", {"error_rate": 0.25, "latency_ms": 0, "rate_limits": {"RunInstances": 3}}
    )
    assert changed["faults"]["error_rate"] == 0.25
    assert changed["faults"]["rate_limits"] == {"RunInstances": 3.0}
    assert (await cvm.admin("GET", "faults")) == changed


@pytest.mark.parametrize(
    ("method", "path", "payload", "field"),
    [
        ("PUT", "faults", {"error_rate": 2}, "error_rate"),
        ("PUT", "faults", {"latency_ms": -1}, "latency_ms"),
        ("PUT", "faults", {"eror_rate": 0.1}, "eror_rate"),
        ("PUT", "faults", {"rate_limits": {"RunInstances": "fast"}}, "rate_limits.RunInstances"),
        ("PUT", "faults", {"rate_limits": [1]}, "rate_limits"),
        ("PUT", "market", {"instance_type": TYPE, "stock": 1}, "zone"),
        ("PUT", "market", {"zone": ZONE, "instance_type": "tiny"}, "instance_type"),
        ("PUT", "market", {"zone": ZONE, "instance_type": TYPE, "stock": -1}, "stock"),
        ("PUT", "market", {"zone": ZONE, "instance_type": TYPE, "price": "1"}, "price"),
        ("PUT", "market", {"zone": ZONE, "instance_type": "S9.LARGE8"}, "price"),
        ("POST", "reclaim", {"count": 1, "fraction": 0.5}, "instance_ids"),
        ("POST", "reclaim", {"fraction": 1.5}, "fraction"),
        ("POST", "reclaim", {"instance_ids": ["ins-zzzzzzzz"]}, "instance_ids"),
        ("POST", "release", {}, "instance_ids"),
        ("POST", "release", {"instance_ids": "ins-zzzzzzzz"}, "instance_ids"),
        ("POST", "release", [], "body"),
    ],
)
async def test_bad_admin_payloads_get_400_naming_the_field(
    cvm: Cvm, method: str, path: str, payload: Any, field: str
) -> None:
    error = await cvm.admin_error(method, path, payload)
    assert error["field"] == field
    assert error["message"]


async def test_invalid_json_gets_400(cvm: Cvm) -> None:
    response = await cvm.http.put("/_sim/faults", content=b"{oops")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "body"


async def test_stats(cvm: Cvm, clock: FakeClock) -> None:
    ids = await cvm.launch(count=3)
    await cvm.code("RunInstances", spot(max_price="0.01"))
    clock.advance(3)
    await cvm.ok("TerminateInstances", {"InstanceIds": ids[:1]})
    stats = await cvm.admin("GET", "stats")
    assert stats["calls"] == {"RunInstances": 2, "TerminateInstances": 1}
    assert stats["errors"] == {"InvalidParameterValue.InsufficientPrice": 1}
    assert stats["calls_by_action_and_code"] == {
        "RunInstances": {"OK": 1, "InvalidParameterValue.InsufficientPrice": 1},
        "TerminateInstances": {"OK": 1},
    }
    assert stats["launched_total"] == 3
    assert stats["alive"] == 3
    assert stats["alive_by_state"] == {"RUNNING": 2, "TERMINATING": 1}


async def test_reset_returns_to_the_config_and_restarts_the_seed(
    cvm: Cvm, clock: FakeClock
) -> None:
    first = await cvm.launch(count=2, ClientToken="t")
    await cvm.admin("PUT", "market", {"zone": ZONE, "instance_type": TYPE, "stock": 0})
    await cvm.admin("PUT", "faults", {"error_rate": 0.5})
    assert await cvm.admin("POST", "reset") == {"reset": True}
    assert await cvm.instances(include_gone=True) == {}
    assert (await cvm.admin("GET", "faults"))["faults"]["error_rate"] == 0.0
    assert (await cvm.admin("GET", "stats"))["calls"] == {}
    assert await cvm.launch(count=2, ClientToken="t") == first


async def test_scenario_events_fire_at_their_times(
    config: SimulatorConfig, clock: FakeClock
) -> None:
    config.scenario = [
        ScenarioEvent(10, "market", {"zone": ZONE, "instance_type": TYPE, "stock": 1}),
        ScenarioEvent(20, "faults", {"error_rate": 1.0}),
        ScenarioEvent(25, "faults", {"error_rate": 0.0}),
        ScenarioEvent(30, "reclaim", {"fraction": 1.0}),
        ScenarioEvent(30, "release", {"instance_ids": ["ins-zzzzzzzz"]}),
    ]
    sim = Simulator(config, seed=1, clock=clock)
    async with in_process(sim, clock) as cvm:
        ids = await cvm.launch(count=3)
        clock.advance(9.9)
        assert set((await cvm.states()).values()) == {"RUNNING"}
        clock.advance(0.1)
        states = await cvm.states()
        assert sorted(states.values()) == ["RUNNING", "TERMINATING", "TERMINATING"]
        clock.advance(10)
        assert await cvm.code("DescribeInstances", {}) == "InternalError"
        clock.advance(10)
        assert list((await cvm.states()).values()) == ["TERMINATING"]  # the survivor of the cut
        clock.advance(1)
        assert await cvm.states() == {}
        log = (await cvm.admin("GET", "stats"))["scenario"]
        assert [(e["at_s"], e["action"]) for e in log] == [
            (10, "market"),
            (20, "faults"),
            (25, "faults"),
            (30, "reclaim"),
            (30, "release"),
        ]
        assert len(log[0]["result"]["reclaimed"]) == 2
        assert log[0]["fired_at"] == "2023-11-14T22:13:30Z"
        assert "ins-zzzzzzzz" in log[4]["error"]
        gone = await cvm.instances(include_gone=True)
        assert {gone[i]["EndReason"] for i in ids} == {"reclaimed"}
        await cvm.admin("POST", "reset")
        assert (await cvm.admin("GET", "stats"))["scenario"] == []
        clock.advance(10)
        assert len((await cvm.admin("GET", "stats"))["scenario"]) == 1  # restarted at reset


async def _session(seed: int) -> list[Any]:
    """A fixed sequence of calls; returns every response body."""
    config = SimulatorConfig(secret_id="AKIDtest", secret_key="k", launch_failure_rate=0.3)
    config.faults.rate_limits = {}
    config.faults.error_rate = 0.1
    config.reclaim_rate_per_hour = 0.9
    clock = FakeClock()
    sim = Simulator(config, seed=seed, clock=clock)
    bodies: list[Any] = []
    async with in_process(sim, clock) as cvm:
        for step in range(12):
            bodies.append(await cvm.call("RunInstances", spot(count=5, tags={"s": str(step)})))
            clock.advance(600)
            bodies.append(await cvm.call("DescribeInstances", {"Limit": 100}))
        bodies.append(await cvm.admin("POST", "reclaim", {"fraction": 0.3}))
        bodies.append(await cvm.instances(include_gone=True))
    return bodies


async def test_same_seed_same_calls_same_responses() -> None:
    first = await _session(42)
    assert await _session(42) == first
    assert await _session(43) != first
