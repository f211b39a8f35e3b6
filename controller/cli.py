"""The ``spot-controller`` command line: run the daemon, manage environments, migrate the store.

Bad input gets one line naming the field and the rule, and exit code 2; nothing is written.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import anyio
import click
from rich.console import Console
from rich.table import Table

from controller import __version__, logs
from controller.errors import ConfigError, SpotControllerError, StoreError, ValidationFailed
from controller.settings import Settings
from controller.store import migrate
from controller.store.database import create_engine
from controller.store.store import Store

T = TypeVar("T")
EXIT_USAGE = 2

LIST_COLUMNS = (
    "name",
    "id",
    "zone",
    "instance_type",
    "max_price",
    "desired_count",
    "running_count",
    "pending_count",
    "launching_count",
    "status",
    "status_reason",
)


def _fail(message: str, code: int = EXIT_USAGE) -> None:
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


class _Cli(click.Group):
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


def _run(coro_fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine; our errors become one line on stderr and exit 2, never a traceback."""
    try:
        return anyio.run(coro_fn)
    except (ConfigError, ValidationFailed, StoreError) as exc:
        _fail(str(exc))
    except SpotControllerError as exc:
        _fail(str(exc), 1)
    raise AssertionError("unreachable")


def _settings(ctx: click.Context) -> Settings:
    settings: Settings = ctx.obj
    return settings


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, Decimal):
        return str(value)
    return value


def _public(row: Mapping[str, Any]) -> dict[str, Any]:
    """An environment as shown to users: user data is never printed, only its presence."""
    out = {k: _jsonable(v) for k, v in row.items()}
    if out.get("user_data"):
        out["user_data"] = f"<{len(out['user_data'])} characters of base64, not shown>"
    return out


async def _open_store(settings: Settings) -> Store:
    return await Store.open(settings.database_url, migrate_schema=settings.migrate_on_start)


def with_store(fn: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T]:
    """Run ``fn(store, settings, **kwargs)`` against an opened (and migrated) store."""

    @wraps(fn)
    def wrapper(**kwargs: Any) -> T:
        settings = _settings(click.get_current_context())

        async def go() -> T:
            store = await _open_store(settings)
            try:
                return await fn(store, settings, **kwargs)
            finally:
                await store.close()

        return _run(go)

    return wrapper


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="spot-controller")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Keep Tencent Cloud spot instance fleets at their desired count.

    Settings come from the environment (SPOT_CONTROLLER_*, TENCENTCLOUD_*); see
    `spot-controller config`.
    """
    try:
        ctx.obj = Settings.from_env()
    except ConfigError as exc:
        _fail(str(exc))


@main.command()
@click.option(
    "--simulate",
    is_flag=True,
    help="Start the built-in CVM simulator on loopback and run against it.",
)
@click.option(
    "--simulator-port",
    default=9000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port of the simulator started by --simulate (0: any free port).",
)
@click.option("--no-migrate", is_flag=True, help="Do not apply database migrations on start.")
@click.pass_context
def run(ctx: click.Context, simulate: bool, simulator_port: int, no_migrate: bool) -> None:
    """Run the reconcile daemon until SIGTERM or SIGINT."""
    from controller.daemon import run_daemon

    settings = _settings(ctx)
    if no_migrate:
        import dataclasses

        settings = dataclasses.replace(settings, migrate_on_start=False)
    logs.configure(settings.log_format, settings.log_level)
    code = _run(lambda: run_daemon(settings, simulate=simulate, simulator_port=simulator_port))
    # Everything is recorded by now. A database connection interrupted by the shutdown can
    # leave a driver thread (aiosqlite's are not daemon threads) that would keep the process
    # alive past the shutdown deadline; the exit must not wait for it.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@main.command("config")
@click.option("--output", type=click.Choice(["table", "json"]), default="table")
@click.pass_context
def show_config(ctx: click.Context, output: str) -> None:
    """Show every setting, its current value (secrets masked), unit and meaning."""
    rows = _settings(ctx).describe()
    if output == "json":
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    table = Table("variable", "value", "unit", "meaning")
    for r in rows:
        table.add_row(r["env"], r["value"], r["unit"], r["doc"])
    Console().print(table)


# ----- db -------------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database migrations."""


def _with_engine(ctx: click.Context, fn: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
    settings = _settings(ctx)

    async def go() -> T:
        from controller.store.database import check_connection

        engine = create_engine(settings.database_url)
        try:
            await check_connection(engine)
            return await fn(engine)
        finally:
            await engine.dispose()

    return _run(go)


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


# ----- env ------------------------------------------------------------------------------------


@main.group()
def env() -> None:
    """Manage compute environments (the rows of compute_environments)."""


def _split_tags(tags: Sequence[str]) -> str | None:
    if not tags:
        return None
    parsed: dict[str, str] = {}
    for item in tags:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValidationFailed("tag", f"{item!r} must be KEY=VALUE")
        parsed[key] = value
    return json.dumps(parsed)


def _user_data(text: str | None, path: Path | None) -> str | None:
    if text is not None and path is not None:
        raise ValidationFailed("user_data", "give --user-data or --user-data-file, not both")
    if path is not None:
        import base64

        return base64.b64encode(path.read_bytes()).decode()
    return text


_LAUNCH_OPTIONS: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
    click.option(
        "--fallback-instance-types",
        help="Comma-separated types tried in order after "
        "--instance-type when it is sold out (10 types in all at most).",
    ),
    click.option("--fallback-zones", help="Comma-separated zones tried after --zone."),
    click.option("--instance-name", help="InstanceName given to launched instances."),
    click.option("--security-group-ids", help="Comma-separated sg-xxxxxxxx ids."),
    click.option("--vpc-id", help="vpc-xxxxxxxx (with --subnet-id)."),
    click.option("--subnet-id", help="subnet-xxxxxxxx (with --vpc-id)."),
    click.option("--key-ids", help="Comma-separated skey-xxxxxxxx login key ids."),
    click.option("--user-data", help="Base64 user data (at most 16 KB); never printed."),
    click.option(
        "--user-data-file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="File whose bytes are sent as user data (base64-encoded for you).",
    ),
    click.option("--project-id", type=int, help="Tencent Cloud project id (default 0)."),
    click.option(
        "--tag",
        "tags",
        multiple=True,
        metavar="KEY=VALUE",
        help="Extra tag on every instance; repeat for more.",
    ),
]


def launch_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_LAUNCH_OPTIONS):
        fn = option(fn)
    return fn


def _launch_values(kwargs: dict[str, Any]) -> dict[str, Any]:
    values = dict(kwargs)
    values["user_data"] = _user_data(
        values.pop("user_data", None), values.pop("user_data_file", None)
    )
    values["tags"] = _split_tags(values.pop("tags", ()))
    return {k: v for k, v in values.items() if v is not None}


@env.command("create")
@click.argument("name")
@click.option("--zone", required=True, help="Availability zone, e.g. ap-guangzhou-3.")
@click.option("--instance-type", required=True, help="Instance type, e.g. S2.MEDIUM4.")
@click.option("--image-id", required=True, help="Image id, e.g. img-pmqg1cw7.")
@click.option("--max-price", required=True, help="Maximum spot bid, CNY per hour, e.g. 0.60.")
@click.option(
    "--desired",
    "desired_count",
    required=True,
    type=int,
    help="Number of instances to keep alive (0 to 2000).",
)
@launch_options
@click.option("--output", type=click.Choice(["table", "json"]), default="table")
@with_store
async def env_create(
    store: Store, settings: Settings, name: str, output: str, **kwargs: Any
) -> None:
    """Create a compute environment NAME."""
    values = {"name": name, **_launch_values(kwargs)}
    row = await store.create_environment(values, settings.region)
    _show_one(row, output)


@env.command("list")
@click.option("--output", type=click.Choice(["table", "json"]), default="table")
@with_store
async def env_list(store: Store, settings: Settings, output: str) -> None:
    """List compute environments with desired, running and pending counts and status."""
    rows = [_public(r) for r in await store.list_environments()]
    if output == "json":
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    table = Table(
        "name",
        "id",
        "zone",
        "type",
        "max price",
        "desired",
        "running",
        "pending",
        "launching",
        "status",
        "reason",
        "next attempt",
    )
    for r in rows:
        table.add_row(
            r["name"],
            r["id"],
            r["zone"],
            r["instance_type"],
            r["max_price"],
            str(r["desired_count"]),
            str(r["running_count"]),
            str(r["pending_count"]),
            str(r["launching_count"]),
            r["status"],
            r["status_reason"],
            r["next_attempt_at"] or "",
        )
    Console(width=200).print(table)


def _environments_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(
        "name",
        "status",
        "desired",
        "running",
        "pending",
        "launching",
        "reason",
        "next attempt",
        "last reconciled",
        title="spot-controller environments",
    )
    for r in (_public(row) for row in rows):
        table.add_row(
            r["name"],
            r["status"],
            str(r["desired_count"]),
            str(r["running_count"]),
            str(r["pending_count"]),
            str(r["launching_count"]),
            r["status_reason"],
            r["next_attempt_at"] or "",
            r["last_reconciled_at"] or "",
        )
    return table


@main.command()
@click.option(
    "--interval",
    default=2.0,
    show_default=True,
    type=click.FloatRange(0.2, 3600),
    help="Seconds between refreshes.",
)
@click.option("--once", is_flag=True, help="Print the table once and exit.")
@with_store
async def status(store: Store, settings: Settings, interval: float, once: bool) -> None:
    """A refreshing view: desired vs running, status, reason and next retry per environment."""
    console = Console(width=200)
    if once:
        console.print(_environments_table(await store.list_environments()))
        return
    from rich.live import Live

    with Live(
        _environments_table(await store.list_environments()), console=console, auto_refresh=False
    ) as live:
        while True:
            await anyio.sleep(interval)
            live.update(_environments_table(await store.list_environments()), refresh=True)


def _show_one(row: Mapping[str, Any], output: str) -> None:
    data = _public(row)
    if output == "json":
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    table = Table("field", "value", show_header=False)
    for key, value in data.items():
        table.add_row(key, "" if value is None else str(value))
    Console(width=200).print(table)


async def _require(store: Store, name: str) -> dict[str, Any]:
    row = await store.get_environment(name)
    if row is None:
        raise ValidationFailed("name", f"no environment named {name!r}")
    return row


@env.command("show")
@click.argument("name")
@click.option("--output", type=click.Choice(["table", "json"]), default="table")
@with_store
async def env_show(store: Store, settings: Settings, name: str, output: str) -> None:
    """Show one environment (by name or id)."""
    _show_one(await _require(store, name), output)


# ignore_unknown_options: "-1" is a (bad) count to report, not an unknown option.
@env.command("scale", context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("desired", type=int)
@with_store
async def env_scale(store: Store, settings: Settings, name: str, desired: int) -> None:
    """Set the desired count of NAME to DESIRED (0 to 2000)."""
    row = await store.update_environment(name, {"desired_count": desired}, settings.region)
    click.echo(f"{row['name']}: desired_count = {row['desired_count']}")


@env.command("update")
@click.argument("name")
@click.option("--rename", "new_name", help="New name.")
@click.option("--zone")
@click.option("--instance-type")
@click.option("--image-id")
@click.option("--max-price")
@click.option("--desired", "desired_count", type=int)
@launch_options
@with_store
async def env_update(
    store: Store, settings: Settings, name: str, new_name: str | None, **kwargs: Any
) -> None:
    """Change fields of NAME; new values apply to new launches, running instances are kept."""
    values = _launch_values(kwargs)
    if new_name is not None:
        values["name"] = new_name
    if not values:
        raise ValidationFailed("update", "give at least one option to change")
    row = await store.update_environment(name, values, settings.region)
    _show_one(row, "table")


@env.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_store
async def env_delete(store: Store, settings: Settings, name: str, yes: bool) -> None:
    """Delete NAME; the daemon terminates its instances. Its history is kept."""
    row = await _require(store, name)
    if not yes and sys.stdin.isatty():
        click.confirm(
            f"Delete {row['name']} and terminate its {row['running_count']} running instances?",
            abort=True,
        )
    await store.delete_environment(row["id"])
    click.echo(f"deleted {row['name']} ({row['id']}); the daemon terminates its instances")


@env.command("activities")
@click.argument("name")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10000))
@click.option("--output", type=click.Choice(["table", "json"]), default="table")
@with_store
async def env_activities(
    store: Store, settings: Settings, name: str, limit: int, output: str
) -> None:
    """Show the activity history of NAME (also of a deleted environment, by id)."""
    row = await store.get_environment(name)
    env_id = row["id"] if row else name
    if row is None and not name.startswith("env-"):
        raise ValidationFailed("name", f"no environment named {name!r}")
    rows = [
        {k: _jsonable(v) for k, v in a.items()} for a in await store.list_activities(env_id, limit)
    ]
    if output == "json":
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    table = Table(
        "activity", "type", "state", "node", "instance", "cause", "reason", "start", "end"
    )
    for a in rows:
        table.add_row(
            a["id"],
            a["activity_type"],
            a["state"],
            a["node_id"] or "",
            a["instance_id"] or "",
            a["cause"],
            a["state_reason"],
            a["start_time"],
            a["end_time"] or "",
        )
    Console(width=220).print(table)


@env.command("nodes")
@click.argument("name")
@click.option("--all", "show_all", is_flag=True, help="Include ended nodes.")
@click.option("--output", type=click.Choice(["table", "json"]), default="table")
@with_store
async def env_nodes(
    store: Store, settings: Settings, name: str, show_all: bool, output: str
) -> None:
    """Show the compute nodes (instances) of NAME (also of a deleted environment, by id)."""
    row = await store.get_environment(name)
    env_id = row["id"] if row else name
    if row is None and not name.startswith("env-"):
        raise ValidationFailed("name", f"no environment named {name!r}")
    nodes = [
        {k: _jsonable(v) for k, v in n.items()}
        for n in await store.list_nodes(env_id)
        if show_all or n["state"] != "ENDED"
    ]
    if output == "json":
        click.echo(json.dumps(nodes, indent=2, ensure_ascii=False))
        return
    table = Table(
        "node", "instance", "state", "cloud state", "zone", "type", "launched", "ended", "reason"
    )
    for n in nodes:
        table.add_row(
            n["id"],
            n["instance_id"] or "",
            n["state"],
            n["cloud_state"] or "",
            n["zone"],
            n["instance_type"],
            n["launched_at"] or "",
            n["ended_at"] or "",
            n["end_reason"] or "",
        )
    Console(width=200).print(table)


def _attach_simulator() -> None:
    try:
        from controller.simulator.cli import simulator
    except ImportError:  # pragma: no cover - the simulator ships with the package
        return
    main.add_command(simulator)


_attach_simulator()
