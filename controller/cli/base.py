"""What every command shares: one-line errors with exit 2, the settings, the store.

No command migrates the database: only ``db upgrade`` and the daemon do. Every other command
opens the store as it is, and a database that is not at the schema this code knows is refused
in one line (``run spot-controller db upgrade``, or which revisions differ) before anything
is read or written; a SQLite file that does not exist yet is not created.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, NoReturn, TypeVar

import anyio
import click

from controller.errors import ConfigError, SpotControllerError, StoreError, ValidationFailed
from controller.service import Environments
from controller.settings import Settings
from controller.store.store import Store

T = TypeVar("T")
EXIT_USAGE = 2


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


class _OneLineUsageError(click.ClickException):
    """A usage error shown like every other error of the CLI: one line on stderr, exit 2."""

    exit_code = EXIT_USAGE

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


# click >= 8.2 shows a group's help through this error when no subcommand is given: keep it.
_HELP_SHOWN = getattr(click.exceptions, "NoArgsIsHelpError", ())


@contextmanager
def _one_line_usage_errors() -> Iterator[None]:
    try:
        yield
    except _HELP_SHOWN:
        raise
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "spot-controller"
        raise _OneLineUsageError(f"{exc.format_message()} (see `{where} --help`)") from None


class OneLineErrorsGroup(click.Group):
    """The top-level group: click's multi-line usage errors become our one-line form."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        with _one_line_usage_errors():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        with _one_line_usage_errors():
            return super().invoke(ctx)


def run_async(coro_fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine; our errors become one line on stderr and exit 2, never a traceback."""
    try:
        return anyio.run(coro_fn)
    except (ConfigError, ValidationFailed, StoreError) as exc:
        fail(str(exc))
    except SpotControllerError as exc:
        fail(str(exc), 1)


def settings_of(ctx: click.Context) -> Settings:
    settings: Settings = ctx.obj
    return settings


def with_environments(fn: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T]:
    """Run ``fn(environments, **kwargs)`` over the store as it is (never migrated)."""

    @wraps(fn)
    def wrapper(**kwargs: Any) -> T:
        settings = settings_of(click.get_current_context())

        async def go() -> T:
            store = await Store.open(settings.database_url, migrate_schema=False)
            try:
                return await fn(Environments(store, settings.region), **kwargs)
            finally:
                await store.close()

        return run_async(go)

    return wrapper
