"""Fixtures of the reliability tests: a fleet per database backend, seeded CLI databases."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from controller.service import Environments
from controller.store.store import Store
from tests.conftest import _pg_admin, _pg_url_for
from tests.reliability.fleet import HEALTHY, Fleet, connected, daemon_environ
from tests.reliability.helpers import running_daemon
from tests.support.polling import eventually
from tests.support.world import converged, fast_simulator, simulator_server

REGION = "ap-guangzhou"
# The CLI cases' database: two environments and nothing else.
CLI_SEED = [
    {**HEALTHY, "name": "web", "desired_count": 2, "tags": '{"team": "ml"}'},
    {**HEALTHY, "name": "batch", "instance_type": "S5.MEDIUM4", "max_price": "0.35"},
]


async def _migrate_and_seed(url: str, rows: list[dict[str, object]]) -> list[str]:
    store = await Store.open(url, migrate_schema=True)
    try:
        return [(await Environments(store, REGION).create(row)).id for row in rows]
    finally:
        await store.close()


@contextmanager
def _fleet_database(request: pytest.FixtureRequest, workdir: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{workdir}/fleet.db"
        return
    template: str = request.getfixturevalue("pg_template")
    name = f"spot_controller_fleet_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    try:
        yield _pg_url_for(name)
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def fleet(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    """The real daemon with one healthy environment converged; it must still exit 0 at the end."""
    workdir = tmp_path_factory.mktemp(f"fleet-{request.param}")
    with _fleet_database(request, workdir) as url:
        (healthy_id,) = asyncio.run(_migrate_and_seed(url, [HEALTHY]))
        sim = fast_simulator(launch_delay_s=0.0, terminate_delay_s=0.05)
        with (
            simulator_server(sim) as sim_url,
            running_daemon(daemon_environ(url, sim_url), workdir) as daemon,
        ):
            fleet = Fleet(request.param, url, sim_url, daemon, healthy_id)

            async def started() -> None:
                async with connected(fleet) as (store, world):
                    await eventually(
                        lambda: converged(world, store, healthy_id, 1),
                        within_s=30,
                        what="the healthy environment at start",
                    )

            asyncio.run(started())
            yield fleet
            assert daemon.alive(), daemon.stderr()
            assert daemon.stop() == 0, daemon.stderr()
            assert "Traceback" not in daemon.stderr(), daemon.stderr()


@pytest.fixture(scope="module")
def cli_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli-template") / "spot-controller.db"
    asyncio.run(_migrate_and_seed(f"sqlite+aiosqlite:///{path}", CLI_SEED))
    return path


@pytest.fixture
def cli_db(cli_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the seeded SQLite database for one CLI case."""
    path = tmp_path / "spot-controller.db"
    for suffix in ("", "-wal", "-shm"):
        source = cli_template.with_name(cli_template.name + suffix)
        if source.exists():
            shutil.copyfile(source, path.with_name(path.name + suffix))
    return path
