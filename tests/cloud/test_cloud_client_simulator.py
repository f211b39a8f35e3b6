"""The client against the CVM simulator, in-process (ASGITransport) and over real HTTP.

Every action, every error class, paging, client-side rate limiting, timeouts and the proof
that a launch retried after a timeout (the simulator did the work, then hung) launches once.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any

import anyio
import httpx
import pytest

from controller.cloud.client import CvmClient
from controller.core.instances import LaunchRequest
from controller.errors import (
    AuthError,
    CapacityError,
    InvalidSpec,
    OperationRejected,
    PriceTooLow,
    QuotaExceeded,
    Throttled,
    TransientError,
)
from controller.settings import SIMULATOR_SECRET_ID, SIMULATOR_SECRET_KEY, Settings
from controller.simulator import FaultsConfig, Simulator, SimulatorConfig
from controller.simulator.server import background_server
from tests.cloud.cloud_fakes import SECRET_ID, SECRET_KEY, make_settings
from tests.support.polling import eventually

ZONE = "ap-guangzhou-3"
TYPE = "S5.MEDIUM4"  # 0.10 CNY/hour in ZONE in the default market
IMAGE = "img-pmqg1cw7"
ENV_TAG = "spot-controller:env"

MODES = ["asgi", "http"]


def launch(token: str, *, count: int = 1, env: str = "env-1", **changes: Any) -> LaunchRequest:
    request = LaunchRequest(
        zone=ZONE,
        instance_type=TYPE,
        image_id=IMAGE,
        max_price="0.60",
        count=count,
        client_token=token,
        tags={ENV_TAG: env, "spot-controller:cluster": "default"},
        instance_name="node",
    )
    return replace(request, **changes)


def sim_config(**changes: Any) -> SimulatorConfig:
    """Fast transitions, no rate limits unless a test sets them, explicit credentials."""
    values: dict[str, Any] = {
        "secret_id": SECRET_ID,
        "secret_key": SECRET_KEY,
        "region": "ap-guangzhou",
        "launch_delay_s": 0.05,
        "terminate_delay_s": 0.05,
        "faults": FaultsConfig(rate_limits={}, timeout_hang_s=2.0),
    }
    values.update(changes)
    return SimulatorConfig(**values)


@dataclass
class Rig:
    """A simulator reachable in one mode, its admin API, and client factories."""

    sim: Simulator
    mode: str
    base_url: str
    transport_app: Any  # what the ASGI transport serves (the sim app, or a recorder around it)
    admin: httpx.AsyncClient

    def settings(self, **overrides: Any) -> Settings:
        return make_settings(cvm_endpoint=self.base_url, **overrides)

    def client(self, settings: Settings | None = None, **kwargs: Any) -> CvmClient:
        transport = httpx.ASGITransport(app=self.transport_app) if self.mode == "asgi" else None
        return CvmClient(settings or self.settings(), transport=transport, **kwargs)

    async def put(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        response = await self.admin.put(path, json=payload)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def instances(self, *, include_gone: bool = False) -> list[dict[str, Any]]:
        response = await self.admin.get(
            "/_sim/instances", params={"include_gone": "1"} if include_gone else {}
        )
        items: list[dict[str, Any]] = response.json()["instances"]
        return items

    async def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = (await self.admin.get("/_sim/stats")).json()
        return result


@contextlib.asynccontextmanager
async def open_rig(
    mode: str, config: SimulatorConfig, app_wrapper: Any = None
) -> AsyncIterator[Rig]:
    sim = Simulator(config, seed=1, clock=time.time)
    app = sim.app if app_wrapper is None else app_wrapper(sim.app)
    if mode == "asgi":
        base_url = "http://127.0.0.1:9000"
        admin_transport = httpx.ASGITransport(app=sim.app)
        async with httpx.AsyncClient(transport=admin_transport, base_url=base_url) as admin:
            yield Rig(sim, mode, base_url, app, admin)
        return
    with background_server(sim, host="127.0.0.1", port=0) as base_url:
        async with httpx.AsyncClient(base_url=base_url, timeout=5.0) as admin:
            yield Rig(sim, mode, base_url, app, admin)


@pytest.fixture(params=MODES)
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    async with open_rig(request.param, sim_config()) as opened:
        yield opened


# -- every action ---------------------------------------------------------------------------


async def test_every_action_round_trips(rig: Rig) -> None:
    async with rig.client() as client:
        [offering] = await client.describe_zone_instance_config_infos(zone=ZONE, instance_type=TYPE)
        assert (offering.zone, offering.instance_type, offering.status) == (ZONE, TYPE, "SELL")
        assert offering.unit_price == pytest.approx(0.10)
        assert offering.status_category == "EnoughStock"
        assert (offering.cpu, offering.memory) == (2, 4)
        everything = await client.describe_zone_instance_config_infos()
        assert len(everything) > 10
        assert all(o.unit_price is not None for o in everything)

        assert await client.inquiry_price_run_instances(launch("t0", count=3)) == pytest.approx(
            0.10
        )

        result = await client.run_instances(launch("t1", count=3))
        ids = result.instance_ids
        assert len(ids) == 3
        assert result.request_id

        async def all_running() -> bool:
            states = await client.describe_instances_status(ids)
            return set(states) == set(ids) and set(states.values()) == {"RUNNING"}

        await eventually(all_running, within_s=5, interval_s=0.02)

        found = await client.describe_instances(instance_ids=ids)
        assert sorted(i.instance_id for i in found) == sorted(ids)
        for instance in found:
            assert instance.state == "RUNNING"
            assert (instance.zone, instance.instance_type, instance.image_id) == (ZONE, TYPE, IMAGE)
            assert instance.charge_type == "SPOTPAID"
            assert instance.tags[ENV_TAG] == "env-1"
            assert instance.created_time is not None
            assert instance.created_time.tzinfo is not None
            assert instance.private_ips

        await client.terminate_instances(ids)

        async def all_gone() -> bool:
            return await client.describe_instances(instance_ids=ids) == []

        await eventually(all_gone, within_s=5, interval_s=0.02)
        assert client.stats.keys() == {
            ("DescribeZoneInstanceConfigInfos", "OK"),
            ("InquiryPriceRunInstances", "OK"),
            ("RunInstances", "OK"),
            ("DescribeInstancesStatus", "OK"),
            ("DescribeInstances", "OK"),
            ("TerminateInstances", "OK"),
        }
    gone = await rig.instances(include_gone=True)
    assert {i["InstanceId"]: i["EndReason"] for i in gone} == dict.fromkeys(ids, "terminated")


async def test_terminate_skips_ids_already_gone(rig: Rig) -> None:
    async with rig.client() as client:
        ids = (await client.run_instances(launch("t-gone", count=2))).instance_ids

        async def running() -> bool:
            return set((await client.describe_instances_status(ids)).values()) == {"RUNNING"}

        await eventually(running, within_s=5, interval_s=0.02)
        await client.terminate_instances([*ids, "ins-zzzzzzzz"])
        await client.terminate_instances(["ins-yyyyyyyy"])
    states = {i["InstanceId"]: i["InstanceState"] for i in await rig.instances()}
    assert all(states.get(i, "TERMINATED") in ("TERMINATING", "TERMINATED") for i in ids)


async def test_default_credentials_match_the_simulator_defaults(rig: Rig) -> None:
    config = sim_config(secret_id=SIMULATOR_SECRET_ID, secret_key=SIMULATOR_SECRET_KEY)
    async with open_rig(rig.mode, config) as fresh:
        settings = Settings.from_env({}, cvm_endpoint=fresh.base_url, cvm_timeout_s=2.0)
        async with fresh.client(settings) as client:
            assert await client.describe_instances(filters={}) == []


# -- every error class ----------------------------------------------------------------------


async def test_bid_below_market_is_price_too_low(rig: Rig) -> None:
    await rig.put("/_sim/market", {"zone": ZONE, "instance_type": TYPE, "price": 0.9})
    async with rig.client() as client:
        with pytest.raises(PriceTooLow) as info:
            await client.run_instances(launch("t-price"))
    assert info.value.code == "InvalidParameterValue.InsufficientPrice"
    assert info.value.request_id
    assert info.value.action == "RunInstances"
    assert await rig.instances() == []


async def test_no_stock_is_capacity_error(rig: Rig) -> None:
    await rig.put("/_sim/market", {"zone": ZONE, "instance_type": TYPE, "stock": 0})
    async with rig.client() as client:
        with pytest.raises(CapacityError) as info:
            await client.run_instances(launch("t-stock"))
    assert type(info.value) is CapacityError
    assert info.value.code.startswith("ResourceInsufficient")


async def test_quota_is_quota_exceeded_not_capacity(rig: Rig) -> None:
    await rig.put("/_sim/market", {"zone": ZONE, "instance_type": TYPE, "quota": 1})
    async with rig.client() as client:
        with pytest.raises(QuotaExceeded) as info:
            await client.run_instances(launch("t-quota", count=2))
    assert not isinstance(info.value, CapacityError)
    assert info.value.code == "LimitExceeded.SpotQuota"


async def test_unknown_image_is_invalid_spec(rig: Rig) -> None:
    async with rig.client() as client:
        with pytest.raises(InvalidSpec) as info:
            await client.run_instances(launch("t-image", image_id="img-zzzzzzzz"))
    assert info.value.code == "InvalidImageId.NotFound"


async def test_unknown_instance_type_is_invalid_spec(rig: Rig) -> None:
    async with rig.client() as client:
        with pytest.raises(InvalidSpec):
            await client.run_instances(launch("t-type", instance_type="ZZ9.HUGE999"))


async def test_wrong_secret_key_is_auth_error(rig: Rig) -> None:
    settings = make_settings(cvm_endpoint=rig.base_url)
    settings = replace(settings, secret_key=type(settings.secret_key)("wrong-key"))
    async with rig.client(settings) as client:
        with pytest.raises(AuthError) as info:
            await client.describe_instances(filters={})
    assert info.value.code.startswith("AuthFailure")
    assert "wrong-key" not in str(info.value)
    assert len(client.stats) == 1  # not retried


async def test_terminating_a_pending_instance_is_operation_rejected(rig: Rig) -> None:
    async with open_rig(rig.mode, sim_config(launch_delay_s=60.0)) as slow:
        client = slow.client()
        async with client:
            ids = (await client.run_instances(launch("t-pending"))).instance_ids
            with pytest.raises(OperationRejected) as info:
                await client.terminate_instances(ids)
    assert info.value.code == "UnsupportedOperation.InstanceStatePending"


async def test_server_faults_are_transient_after_retries(rig: Rig) -> None:
    await rig.put("/_sim/faults", {"error_rate": 1.0})
    async with rig.client(rig.settings(cvm_max_attempts=3)) as client:
        with pytest.raises(TransientError) as info:
            await client.describe_instances(filters={})
    assert info.value.code == "InternalError"
    assert client.stats == {("DescribeInstances", "InternalError"): 3}

    await rig.put("/_sim/faults", {"error_rate": 0.0, "http_error_rate": 1.0})
    async with rig.client(rig.settings(cvm_max_attempts=2)) as client:
        with pytest.raises(TransientError) as info:
            await client.terminate_instances(["ins-aaaaaaaa"])
    assert info.value.code == "Http.503"


async def test_server_side_throttling_is_throttled_after_retries(rig: Rig) -> None:
    await rig.put("/_sim/faults", {"rate_limits": {"DescribeInstancesStatus": 1}})
    async with rig.client(rig.settings(cvm_max_attempts=2)) as client:
        await client.describe_instances_status(["ins-aaaaaaaa"])  # the one token
        with pytest.raises(Throttled) as info:
            await client.describe_instances_status(["ins-aaaaaaaa"])
    assert info.value.code == "RequestLimitExceeded"


async def test_slow_answer_is_a_timeout(rig: Rig) -> None:
    await rig.put("/_sim/faults", {"latency_ms": 400})
    settings = rig.settings(cvm_timeout_s=0.1, cvm_connect_timeout_s=0.1, cvm_max_attempts=2)
    start = anyio.current_time()
    async with rig.client(settings) as client:
        with pytest.raises(TransientError) as info:
            await client.describe_instances_status(["ins-aaaaaaaa"])
    assert info.value.code == "Network.Timeout"
    assert anyio.current_time() - start < 2.0


# -- paging ---------------------------------------------------------------------------------


async def test_describe_pages_over_260_tagged_instances(rig: Rig) -> None:
    async with rig.client() as client:
        for n, count in enumerate([100, 100, 60]):
            await client.run_instances(launch(f"t-page-{n}", count=count, env="env-big"))
        await client.run_instances(launch("t-other", count=20, env="env-other"))
        found = await client.describe_instances(filters={f"tag:{ENV_TAG}": ["env-big"]})
        everything = await client.describe_instances(filters={})
    assert len(found) == 260
    assert len({i.instance_id for i in found}) == 260
    assert {i.tags[ENV_TAG] for i in found} == {"env-big"}
    assert len(everything) == 280
    assert client.stats[("DescribeInstances", "OK")] == 3 + 3


# -- client-side rate limit -----------------------------------------------------------------


def arrival_recorder(times: list[tuple[float, str]]) -> Callable[[Any], Any]:
    """An ASGI wrapper noting when each API call reaches the simulator."""

    def wrap(app: Any) -> Any:
        async def recorded(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["path"] == "/":
                action = dict(scope["headers"]).get(b"x-tc-action", b"").decode()
                times.append((time.monotonic(), action))
            await app(scope, receive, send)

        return recorded

    return wrap


def _max_in_window(times: list[float], window: float) -> int:
    return max(sum(1 for t in times[i:] if t <= start + window) for i, start in enumerate(times))


@pytest.mark.parametrize("mode", MODES)
async def test_burst_of_50_launches_stays_under_the_client_rate(mode: str) -> None:
    """50 concurrent launches at a client rate of 20/s: the simulator, limiting at a little
    more than that, never throttles, and sees no more than the bucket allows in any window."""
    arrivals: list[tuple[float, str]] = []
    faults = FaultsConfig(rate_limits={"RunInstances": 25})
    async with open_rig(mode, sim_config(faults=faults), arrival_recorder(arrivals)) as rig:
        settings = rig.settings(rate_limits={"RunInstances": 20.0}, cvm_max_attempts=1)
        async with rig.client(settings) as client, anyio.create_task_group() as tg:
            for n in range(50):
                tg.start_soon(client.run_instances, launch(f"t-burst-{n}"))
        stats = await rig.stats()
    assert stats["calls_by_action_and_code"]["RunInstances"] == {"OK": 50}
    assert stats["launched_total"] == 50
    if mode == "asgi":  # the recorder sees the in-process calls
        times = sorted(t for t, action in arrivals if action == "RunInstances")
        assert len(times) == 50
        assert times[-1] - times[0] >= 1.5 - 0.05  # burst of 20, then 30 at 20/s
        assert _max_in_window(times, 1.0) <= 20 + 20 + 1


@pytest.mark.parametrize("mode", MODES)
async def test_without_the_client_limit_the_same_burst_is_throttled(mode: str) -> None:
    """The control experiment: the simulator's limit is real, so the test above means it."""
    faults = FaultsConfig(rate_limits={"RunInstances": 25})
    async with open_rig(mode, sim_config(faults=faults)) as rig:
        settings = rig.settings(rate_limits={"RunInstances": 10_000.0}, cvm_max_attempts=1)
        throttled = 0

        async def one(n: int) -> None:
            nonlocal throttled
            try:
                await client.run_instances(launch(f"t-free-{n}"))
            except Throttled:
                throttled += 1

        async with rig.client(settings) as client, anyio.create_task_group() as tg:
            for n in range(50):
                tg.start_soon(one, n)
        stats = await rig.stats()
    assert throttled > 0
    assert stats["calls_by_action_and_code"]["RunInstances"].get("RequestLimitExceeded", 0) > 0


# -- idempotency ----------------------------------------------------------------------------


async def test_launch_retried_after_a_timeout_launches_exactly_once(rig: Rig) -> None:
    """The simulator launches, then hangs; the client times out and retries with the same
    ClientToken; the retry gets the first attempt's instances and nothing new is launched."""
    await rig.put("/_sim/faults", {"timeout_rate": 1.0})
    sleeps: list[float] = []

    async def backoff_then_heal(delay: float) -> None:
        sleeps.append(delay)
        await rig.put("/_sim/faults", {"timeout_rate": 0.0})  # only the first call hangs
        await anyio.sleep(delay)

    settings = rig.settings(cvm_timeout_s=0.3, cvm_connect_timeout_s=0.2, cvm_max_attempts=3)
    async with rig.client(settings, sleep=backoff_then_heal) as client:
        result = await client.run_instances(launch("t-once", count=3))
    assert len(sleeps) == 1
    assert client.stats == {("RunInstances", "Network.Timeout"): 1, ("RunInstances", "OK"): 1}
    stats = await rig.stats()
    assert stats["calls_by_action_and_code"]["RunInstances"] == {"OK": 2}
    assert stats["faults"]["timeout"] == 1
    launched = await rig.instances(include_gone=True)
    assert len(launched) == 3
    assert {i["ClientToken"] for i in launched} == {"t-once"}
    assert sorted(i["InstanceId"] for i in launched) == sorted(result.instance_ids)
    assert stats["launched_total"] == 3
