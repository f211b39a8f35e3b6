"""Faults of the world around the daemon: credentials, cloud endpoint, database, replicas."""

from __future__ import annotations

import socket
from typing import Any

import anyio
import asyncpg
import pytest
import sqlalchemy as sa

from controller.service import Environments
from controller.store.store import Store
from tests.conftest import _pg_admin_dsn
from tests.support.polling import eventually
from tests.support.world import ENVIRONMENT, World, running_engine, settings_for

SEED = ENVIRONMENT
REGION = "ap-guangzhou"


async def _status(store: Store, name: str = "web") -> dict[str, Any]:
    row = await store.get_environment(name)
    assert row is not None
    return row


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_wrong_credentials_show_on_every_environment_then_recover(
    database_url: str, sim_url: str, world: World
) -> None:
    from controller.secrets import Secret

    store = await Store.open(database_url)
    try:
        env = await Environments(store, REGION).create(SEED)
        other = await Environments(store, REGION).create({**SEED, "name": "batch"})
        wrong = settings_for(database_url, sim_url, secret_key=Secret("not-the-key"))
        async with running_engine(wrong, store):

            async def both_in_error() -> bool:
                rows = [await _status(store, n) for n in ("web", "batch")]
                return all(
                    r["status"] == "ERROR" and "AuthFailure" in r["status_reason"] for r in rows
                )

            await eventually(both_in_error, what="authentication ERROR on every environment")
        assert await world.alive() == []
        # Credentials fixed, daemon restarted: it recovers.
        async with running_engine(settings_for(database_url, sim_url), store):

            async def converged() -> bool:
                return await world.running(env.id) == 2 and await world.running(other.id) == 2

            await eventually(converged, what="recovery with the right credentials")
    finally:
        await store.close()


async def test_unreachable_cloud_is_reported_and_survived(
    database_url: str, sim_url: str, world: World
) -> None:
    store = await Store.open(database_url)
    try:
        env = await Environments(store, REGION).create(SEED)
        nowhere = settings_for(database_url, f"http://127.0.0.1:{_closed_port()}")
        async with running_engine(nowhere, store) as engine:

            async def reported() -> bool:
                row = await _status(store)
                return "Network.ConnectError" in row["status_reason"]

            await eventually(reported, what="status naming the connection failure")
            assert engine.view.passes > 0
        # A cloud answering garbage (HTTP 503, not JSON) is survived the same way.
        await world.admin("PUT", "faults", {"http_error_rate": 1.0})
        async with running_engine(settings_for(database_url, sim_url), store):

            async def garbage_reported() -> bool:
                return "Http.503" in (await _status(store))["status_reason"]

            await eventually(garbage_reported, what="status naming the HTTP 503")
            await world.admin("PUT", "faults", {"http_error_rate": 0.0})

            async def converged() -> bool:
                return await world.running(env.id) == 2

            await eventually(converged, what="recovery once the cloud answers")
    finally:
        await store.close()


async def _allow_connections(database: str, allow: bool) -> None:
    conn = await asyncpg.connect(_pg_admin_dsn(), timeout=5)
    try:
        await conn.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {str(allow).lower()}')
        if not allow:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                database,
            )
    finally:
        await conn.close()


@pytest.mark.postgres
async def test_database_lost_while_running_stops_acting_and_resumes(
    pg_url: str, sim_url: str, world: World
) -> None:
    database = sa.make_url(pg_url).database
    assert database is not None
    store = await Store.open(pg_url)
    try:
        env = await Environments(store, REGION).create(SEED)
        async with running_engine(settings_for(pg_url, sim_url), store):

            async def converged() -> bool:
                return await world.running(env.id) == 2

            await eventually(converged, what="2 running")
            await _allow_connections(database, False)
            try:
                victim = (await world.alive(env.id))[0]["InstanceId"]
                await world.admin("POST", "reclaim", {"instance_ids": [victim]})
                # Without its database the daemon cannot record intent, so it must not launch.
                await anyio.sleep(3)
                assert len(await world.alive(env.id)) == 1
            finally:
                await _allow_connections(database, True)
            await eventually(converged, what="replacement once the database is back")
        nodes = {n["instance_id"]: n for n in await store.list_nodes(env.id)}
        # Its TERMINATING state passed while the daemon was blind: seen only as gone.
        assert nodes[victim]["end_reason"] in ("interrupted", "released")
        assert len(nodes) == 3
    finally:
        await store.close()


@pytest.mark.postgres
async def test_two_replicas_one_acts_and_the_other_takes_over(
    pg_url: str, sim_url: str, world: World
) -> None:
    settings = settings_for(pg_url, sim_url)
    first = await Store.open(pg_url)
    second = await Store.open(pg_url)
    try:
        env = await Environments(first, REGION).create(SEED)
        async with running_engine(settings, second) as standby:
            async with running_engine(settings, first) as leader:

                async def one_leads() -> bool:
                    return (leader.store.fence is None) != (standby.store.fence is None)

                await eventually(one_leads, what="exactly one leader")

                async def converged() -> bool:
                    return await world.running(env.id) == 2

                await eventually(converged, what="2 running")
                was_leading = leader if leader.store.fence is not None else standby
            # The first replica stopped (and released its lease): the other one takes over.
            if was_leading is leader:

                async def took_over() -> bool:
                    return standby.store.fence is not None

                await eventually(took_over, within_s=10, what="takeover")
            await Environments(first, REGION).scale("web", 4)

            async def scaled() -> bool:
                return await world.running(env.id) == 4

            await eventually(scaled, what="scale-up after takeover")
        rows = await first.list_nodes(env.id)
        assert len(rows) == 4
        async with first.engine.begin() as conn:
            launches = (
                await conn.execute(
                    sa.text("SELECT epoch, holder FROM launches ORDER BY created_at")
                )
            ).all()
        epochs = [e for e, _ in launches]
        assert epochs == sorted(epochs)
        assert len({(e, h) for e, h in launches}) == len(set(epochs))
        assert (await world.stats())["launched_total"] == 4
    finally:
        await first.close()
        await second.close()


def test_second_daemon_on_one_sqlite_file_refuses_to_start(
    sqlite_url: str, sim_url: str, tmp_path: Any
) -> None:
    import os
    import subprocess
    import sys
    import time

    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SPOT_CONTROLLER_", "TENCENTCLOUD_"))
    }
    env.update(
        {
            "SPOT_CONTROLLER_DATABASE_URL": sqlite_url,
            "SPOT_CONTROLLER_CVM_ENDPOINT": sim_url,
            "SPOT_CONTROLLER_LOG_FORMAT": "json",
            "TENCENTCLOUD_SECRET_ID": "AKIDsimulator00000000000000000000000",
            "TENCENTCLOUD_SECRET_KEY": "simulator-secret-key-not-for-production",
        }
    )
    first = subprocess.Popen(
        [sys.executable, "-m", "controller", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        # Wait until the first daemon holds its lock (it logs daemon_started).
        deadline = time.monotonic() + 20
        assert first.stdout is not None
        for line in first.stdout:
            if b"daemon_started" in line or time.monotonic() > deadline:
                break
        second = subprocess.run(
            [sys.executable, "-m", "controller", "run"],
            env=env,
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert second.returncode == 2
        errors = [line for line in second.stderr.decode().splitlines() if line.strip()]
        assert len(errors) == 1, second.stderr
        assert "another spot-controller daemon (pid" in errors[0]
        assert "SQLite supports one daemon" in errors[0]
        assert first.poll() is None  # the first one is untouched
    finally:
        first.terminate()
        assert first.wait(timeout=30) == 0
        if first.stdout is not None:
            first.stdout.close()
