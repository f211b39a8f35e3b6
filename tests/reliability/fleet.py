"""A fleet: the real daemon (a subprocess) against the simulator on one database.

One fleet per database backend serves every bad-row case of a module, so that each case costs
a scale-up of a healthy environment rather than a daemon start. Reads go to the ground truth:
the rows as stored (numbers cast to text, so that a text value on SQLite reads as it is) and
the simulator's ``/_sim/instances``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from controller.core.spec import USER_COLUMNS
from controller.settings import SIMULATOR_SECRET_ID, SIMULATOR_SECRET_KEY
from controller.store.store import Store
from tests.reliability.helpers import Daemon, settings_environ
from tests.support.world import FAST, World

HEALTHY = {
    "name": "healthy",
    "zone": "ap-guangzhou-3",
    "instance_type": "S2.MEDIUM4",
    "image_id": "img-pmqg1cw7",
    "max_price": "0.60",
    "desired_count": 1,
}
# ERROR environments (a type the market does not sell) retry after error_retry_s: not during
# a module. Passes every 20 ms and sweeps every 50 ms keep a scale-up of one instance (which
# the simulator starts at once) to a fraction of a second.
FLEET_SETTINGS = {
    **FAST,
    "poll_interval_s": 0.02,
    "resync_interval_s": 0.05,
    "error_retry_s": 120.0,
    "shutdown_deadline_s": 10.0,
    "log_format": "json",
}
NUMERIC_COLUMNS = ("max_price", "desired_count", "project_id")


def daemon_environ(database_url: str, sim_url: str, **settings: Any) -> dict[str, str]:
    return {
        "SPOT_CONTROLLER_DATABASE_URL": database_url,
        "SPOT_CONTROLLER_CVM_ENDPOINT": sim_url,
        "TENCENTCLOUD_SECRET_ID": SIMULATOR_SECRET_ID,
        "TENCENTCLOUD_SECRET_KEY": SIMULATOR_SECRET_KEY,
        **settings_environ(**{**FLEET_SETTINGS, **settings}),
    }


@dataclass
class Fleet:
    backend: str
    database_url: str
    sim_url: str
    daemon: Daemon
    healthy_id: str


@asynccontextmanager
async def connected(fleet: Fleet) -> AsyncIterator[tuple[Store, World]]:
    """The test's own connections to the fleet's database and simulator."""
    assert fleet.daemon.alive(), fleet.daemon.stderr()
    store = await Store.open(fleet.database_url)
    world = World(fleet.sim_url)
    try:
        yield store, world
    finally:
        await world.aclose()
        await store.close()


def sql_literal(value: Any) -> str:
    """A value as a user types it in an INSERT."""
    if value is None:
        return "NULL"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


async def execute(store: Store, sql: str) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(sa.text(sql))


async def insert_row(store: Store, values: dict[str, Any]) -> None:
    """INSERT INTO compute_environments with literal values, as a user would with psql."""
    columns = ", ".join(values)
    literals = ", ".join(sql_literal(v) for v in values.values())
    await execute(store, f"INSERT INTO compute_environments ({columns}) VALUES ({literals})")


async def user_rows(store: Store) -> dict[str, dict[str, Any]]:
    """Every environment's user-written columns, exactly as stored (numbers as text)."""
    columns = ", ".join(
        f"CAST({c} AS TEXT) AS {c}" if c in NUMERIC_COLUMNS else c for c in USER_COLUMNS
    )
    async with store.engine.connect() as conn:
        result = await conn.execute(sa.text(f"SELECT id, {columns} FROM compute_environments"))
        return {row.id: dict(row._mapping) for row in result}


async def status_of(store: Store, name: str) -> dict[str, Any] | None:
    """The controller's columns of one environment (``Store.get_environment`` would also
    convert the user's columns, which is not what is looked at here)."""
    async with store.engine.connect() as conn:
        result = await conn.execute(
            sa.text(
                "SELECT id, status, status_reason, running_count, pending_count, "
                "launching_count FROM compute_environments WHERE name = :name"
            ),
            {"name": name},
        )
        row = result.first()
        return dict(row._mapping) if row else None


async def set_desired(store: Store, env_id: str, desired: int) -> None:
    await execute(
        store, f"UPDATE compute_environments SET desired_count = {desired} WHERE id = '{env_id}'"
    )
