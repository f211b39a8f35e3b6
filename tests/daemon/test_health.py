"""The health and metrics listener, over real HTTP, against a running engine."""

from __future__ import annotations

import anyio
import httpx
import pytest

from controller import health
from controller.cloud.client import CvmClient
from controller.reconcile.engine import Engine
from controller.service import Environments
from controller.store.database import create_engine
from controller.store.store import Store
from tests.support.polling import eventually
from tests.support.world import ENVIRONMENT, World, running_engine, settings_for

SEED = ENVIRONMENT


async def test_healthz_readyz_and_metrics_of_a_running_daemon(
    database_url: str, sim_url: str, world: World
) -> None:
    settings = settings_for(database_url, sim_url)
    store = await Store.open(database_url)
    try:
        env = await Environments(store, "ap-guangzhou").create(SEED)
        async with running_engine(settings, store) as engine:
            sock = health.bind("127.0.0.1:0")
            port = sock.getsockname()[1]
            stop = anyio.Event()
            async with (
                anyio.create_task_group() as tg,
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http,
            ):
                tg.start_soon(health.serve, engine.view, sock, stop)

                async def converged() -> bool:
                    return await world.running(env.id) == 2

                await eventually(converged, what="2 running")

                async def metrics_show_it() -> bool:
                    try:
                        text = (await http.get("/metrics")).text
                    except httpx.TransportError:
                        return False
                    return (
                        f'spot_controller_environment_running{{env="web",env_id="{env.id}"}} 2.0'
                        in text
                    )

                await eventually(metrics_show_it, what="metrics")
                text = (await http.get("/metrics")).text
                assert (
                    f'spot_controller_environment_desired{{env="web",env_id="{env.id}"}} 2.0'
                    in text
                )
                assert f'spot_controller_instances_launched_total{{env_id="{env.id}"}} 2.0' in text
                assert (
                    'spot_controller_cloud_calls_total{action="RunInstances",code="OK"} 1.0' in text
                )
                assert "spot_controller_pass_duration_seconds" in text

                live = await http.get("/healthz")
                assert live.status_code == 200
                assert live.json()["status"] == "ok"
                ready = await http.get("/readyz")
                assert ready.status_code == 200, ready.text
                assert ready.json()["checks"] == {
                    "database": "ok",
                    "migrations": "ok",
                    "observation": "ok",
                }
                stop.set()
    finally:
        await store.close()


async def test_a_loop_that_does_not_run_is_unhealthy_and_unready(
    sqlite_url: str, sim_url: str
) -> None:
    settings = settings_for(sqlite_url, sim_url)
    # A store whose database cannot be reached, and an engine that never runs a pass.
    store = Store(create_engine("postgresql://nobody@127.0.0.1:1/none"))
    try:
        async with CvmClient(settings) as client:
            engine = Engine(settings, store, client)
            app = health.build_app(engine.view)
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://health"
            ) as http:
                live = await http.get("/healthz")
                assert live.status_code == 503
                assert live.json()["status"] == "stuck"
                ready = await http.get("/readyz")
                assert ready.status_code == 503
                checks = ready.json()["checks"]
                assert checks["database"].startswith("unreachable")
                assert checks["observation"] == "waiting for first sweep"
    finally:
        await store.close()


def test_taken_port_is_a_clear_error() -> None:
    from controller.errors import ConfigError

    first = health.bind("127.0.0.1:0")
    try:
        port = first.getsockname()[1]
        first.listen()
        with pytest.raises(ConfigError, match="SPOT_CONTROLLER_HTTP_ADDR: cannot listen on"):
            health.bind(f"127.0.0.1:{port}")
    finally:
        first.close()
