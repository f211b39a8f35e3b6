"""Alembic environment: runs migrations on the async engine spot-controller hands it.

``controller.store.migrate`` passes an open connection in ``config.attributes["connection"]``;
standalone use falls back to SPOT_CONTROLLER_DATABASE_URL.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from controller.settings import Settings
from controller.store.database import create_engine
from controller.store.schema import metadata

config = context.config


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_standalone() -> None:
    engine = create_engine(Settings.from_env().database_url)
    async with engine.connect() as conn:
        await conn.run_sync(_configure_and_run)
        await conn.commit()
    await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported")

connection = config.attributes.get("connection")
if connection is None:
    asyncio.run(_run_standalone())
else:
    _configure_and_run(connection)
