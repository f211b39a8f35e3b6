"""Schema migrations (alembic), applied programmatically on the async engine."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from controller.errors import StoreError


def migrations_dir() -> Path:
    """``controller/_migrations`` in an installed wheel, else the repository's ``migrations/``."""
    package_dir = Path(__file__).resolve().parent.parent
    for candidate in (package_dir / "_migrations", package_dir.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise StoreError("migrations directory not found next to the controller package")


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise StoreError("no migrations found")
    return head


async def _run(engine: AsyncEngine, fn: Callable[[Config], Any]) -> Any:
    def run_sync(conn: Connection) -> Any:
        config = alembic_config()
        config.attributes["connection"] = conn
        return fn(config)

    try:
        async with engine.begin() as conn:
            return await conn.run_sync(run_sync)
    except SQLAlchemyError as exc:
        detail = str(getattr(exc, "orig", None) or exc).splitlines()
        first = detail[0] if detail else type(exc).__name__
        raise StoreError(f"migration failed: {first}") from None


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    await _run(engine, lambda config: command.upgrade(config, revision))


async def downgrade(engine: AsyncEngine, revision: str = "base") -> None:
    await _run(engine, lambda config: command.downgrade(config, revision))


async def check(engine: AsyncEngine) -> None:
    """Raise if the migrated schema differs from the models (``alembic check``)."""
    await _run(engine, lambda config: command.check(config))


async def current_revision(engine: AsyncEngine) -> str | None:
    def read(conn: Connection) -> str | None:
        return MigrationContext.configure(conn).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(read)


async def is_at_head(engine: AsyncEngine) -> bool:
    return await current_revision(engine) == head_revision()


def known_revisions() -> frozenset[str]:
    """Every revision this installed code has a migration for."""
    script = ScriptDirectory.from_config(alembic_config())
    return frozenset(rev.revision for rev in script.walk_revisions())


class SchemaNotCurrent(StoreError):
    """The database is not at the schema this code was written for: nothing may read or write
    it until it is migrated (or, when it is newer, until a newer spot-controller is installed)."""


def no_schema(where: str) -> SchemaNotCurrent:
    """The refusal for a database without a schema (alembic has never run on it)."""
    return SchemaNotCurrent(
        f"database {where} has no schema (revision none, this spot-controller needs "
        f"{head_revision()}): run `spot-controller db upgrade`"
    )


def schema_not_current(where: str, current: str | None) -> SchemaNotCurrent | None:
    """The one-line refusal for a database at ``current`` (None: no schema), or None at head.

    Three cases a user acts on differently: an empty database and an older one are migrated
    with ``db upgrade``; a newer one was migrated by a newer release, which this one must not
    read, and no upgrade command of this release can help.
    """
    head = head_revision()
    if current == head:
        return None
    if current is None:
        return no_schema(where)
    if current in known_revisions():
        return SchemaNotCurrent(
            f"database {where} is at revision {current}, older than {head} which this "
            "spot-controller needs: run `spot-controller db upgrade`"
        )
    return SchemaNotCurrent(
        f"database {where} is at revision {current}, newer than {head}, the newest this "
        "spot-controller knows: install the spot-controller that migrated it"
    )
