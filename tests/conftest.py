"""Shared fixtures: real SQLite files and real PostgreSQL databases, one per test.

PostgreSQL comes from SPOT_CONTROLLER_TEST_POSTGRES_URL (default the local server). Each test
gets its own database cloned from a migrated template, so tests never see each other's rows.
Where no server answers, PostgreSQL tests skip with the reason, except under CI=true, where
that is a failure.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
import sqlalchemy as sa

from controller.store import migrate
from controller.store.database import create_engine
from controller.store.store import Store

PG_URL = os.environ.get(
    "SPOT_CONTROLLER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def _pg_admin_dsn() -> str:
    return sa.make_url(PG_URL).set(drivername="postgresql").render_as_string(hide_password=False)


def _pg_url_for(database: str) -> str:
    return sa.make_url(PG_URL).set(database=database).render_as_string(hide_password=False)


async def _pg_admin(*statements: str) -> None:
    conn = await asyncpg.connect(_pg_admin_dsn(), timeout=5)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _migrate(url: str) -> None:
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    name = f"spot_controller_template_{os.getpid()}"
    try:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        message = f"PostgreSQL at {sa.make_url(PG_URL).render_as_string()} unavailable: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    asyncio.run(_migrate(_pg_url_for(name)))
    yield name
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    name = f"spot_controller_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    yield _pg_url_for(name)
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def sqlite_url(tmp_path: object) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path}/spot-controller.db"
    asyncio.run(_migrate(url))
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """A migrated, empty database of each backend."""
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(database_url)
    yield opened
    await opened.close()


@pytest.fixture(autouse=True)
def _logs() -> None:
    """Readable logs in test output, debug level when SPOT_CONTROLLER_TEST_DEBUG=1."""
    from controller import logs

    logs.configure("console", "debug" if os.environ.get("SPOT_CONTROLLER_TEST_DEBUG") else "info")
