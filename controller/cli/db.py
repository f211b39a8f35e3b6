"""``spot-controller db``: the only commands that change the schema (with the daemon's start)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click

from controller.cli.base import run_async, settings_of
from controller.store import migrate
from controller.store.database import check_connection, create_engine

T = TypeVar("T")


@click.group()
def db() -> None:
    """Database migrations."""


def _with_engine(ctx: click.Context, fn: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
    settings = settings_of(ctx)

    async def go() -> T:
        engine = create_engine(settings.database_url)
        try:
            await check_connection(engine)
            return await fn(engine)
        finally:
            await engine.dispose()

    return run_async(go)


@db.command()
@click.argument("revision", default="head")
@click.pass_context
def upgrade(ctx: click.Context, revision: str) -> None:
    """Apply migrations up to REVISION (default: head)."""
    _with_engine(ctx, lambda e: migrate.upgrade(e, revision))
    click.echo(f"database at {revision}")


@db.command()
@click.argument("revision")
@click.pass_context
def downgrade(ctx: click.Context, revision: str) -> None:
    """Revert migrations down to REVISION ('base' removes every table)."""
    _with_engine(ctx, lambda e: migrate.downgrade(e, revision))
    click.echo(f"database at {revision}")


@db.command()
@click.pass_context
def current(ctx: click.Context) -> None:
    """Show the database's revision and the head revision."""
    rev = _with_engine(ctx, migrate.current_revision)
    click.echo(f"current: {rev or 'none (empty database)'}\nhead: {migrate.head_revision()}")
