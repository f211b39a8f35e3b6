"""A real engine against a real simulator over loopback HTTP, on a real database.

Assertions read the simulator's ground truth (``/_sim/instances``) and the database rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from types import MappingProxyType
from typing import Any

import anyio
import httpx

from controller.cloud.client import CvmClient
from controller.core.model import ENV_TAG
from controller.daemon import simulator_settings
from controller.reconcile.engine import Engine
from controller.settings import SIMULATOR_SECRET_ID, SIMULATOR_SECRET_KEY, Settings
from controller.simulator import Simulator, SimulatorConfig
from controller.simulator.server import background_server
from controller.store.store import Store

# The environment row most tests start from: one pool, the simulator's default image.
ENVIRONMENT: Mapping[str, object] = MappingProxyType(
    {
        "name": "web",
        "zone": "ap-guangzhou-3",
        "instance_type": "S2.MEDIUM4",
        "image_id": "img-pmqg1cw7",
        "max_price": "0.60",
        "desired_count": 2,
    }
)

FAST = {
    "poll_interval_s": 0.05,
    "resync_interval_s": 0.3,
    "backoff_base_s": 0.2,
    "backoff_max_s": 1.0,
    "error_retry_s": 1.0,
    "orphan_grace_s": 0.5,
    "launch_timeout_s": 5.0,
    "cvm_timeout_s": 2.0,
    "cvm_connect_timeout_s": 1.0,
    "cvm_retry_base_s": 0.05,
    "cvm_retry_max_s": 0.2,
    "lease_duration_s": 3.0,
    "lease_renew_deadline_s": 2.0,
    "lease_retry_s": 0.3,
    "visibility_grace_s": 5.0,
}


def fast_simulator(**overrides: Any) -> Simulator:
    # The simulator's documented credentials on both sides, whatever the developer has exported.
    values = {
        "launch_delay_s": 0.2,
        "terminate_delay_s": 0.2,
        "secret_id": SIMULATOR_SECRET_ID,
        "secret_key": SIMULATOR_SECRET_KEY,
        **overrides,
    }
    config = dataclasses.replace(SimulatorConfig.default(), **values)
    return Simulator(config, seed=7)


@contextmanager
def simulator_server(sim: Simulator) -> Iterator[str]:
    with background_server(sim, host="127.0.0.1", port=0) as base_url:
        yield base_url


def settings_for(database_url: str, base_url: str, **overrides: Any) -> Settings:
    settings = Settings.from_env({}, database_url=database_url, **{**FAST, **overrides})
    return simulator_settings(settings, base_url)


class World:
    """The ground truth, read from the simulator's admin API."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=10)

    async def instances(self, *, include_gone: bool = False) -> list[dict[str, Any]]:
        params = {"include_gone": "1"} if include_gone else {}
        response = await self.http.get("/_sim/instances", params=params)
        response.raise_for_status()
        items: list[dict[str, Any]] = response.json()["instances"]
        for item in items:
            tags = item.get("Tags")
            if isinstance(tags, list):
                item["Tags"] = {t["Key"]: t["Value"] for t in tags}
        return items

    async def alive(self, env_id: str | None = None) -> list[dict[str, Any]]:
        return [
            i
            for i in await self.instances()
            if i["InstanceState"] not in ("TERMINATING", "LAUNCH_FAILED")
            and (env_id is None or i["Tags"].get(ENV_TAG) == env_id)
        ]

    async def running(self, env_id: str) -> int:
        return sum(i["InstanceState"] == "RUNNING" for i in await self.alive(env_id))

    async def admin(self, method: str, path: str, payload: dict[str, Any]) -> Any:
        response = await self.http.request(method, f"/_sim/{path}", json=payload)
        response.raise_for_status()
        return response.json()

    async def stats(self) -> dict[str, Any]:
        response = await self.http.get("/_sim/stats")
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    async def aclose(self) -> None:
        await self.http.aclose()


@asynccontextmanager
async def running_engine(settings: Settings, store: Store, **options: Any) -> AsyncIterator[Engine]:
    """An engine running in the background of the test; stopped (gracefully) on exit."""
    async with CvmClient(settings) as client:
        engine = Engine(settings, store, client, **options)
        stop = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: engine.run(stop=stop))
            try:
                yield engine
            finally:
                stop.set()
                tg.cancel_scope.deadline = anyio.current_time() + 15  # bounded graceful stop


async def converged(world: World, store: Store, env_id: str, desired: int) -> bool:
    """Ground truth and the row agree: ``desired`` alive, all RUNNING, the row READY."""
    alive = await world.alive(env_id)
    row = await store.get_environment(env_id)
    return (
        len(alive) == desired
        and all(i["InstanceState"] == "RUNNING" for i in alive)
        and row is not None
        and row["status"] == "READY"
        and row["running_count"] == desired
    )
