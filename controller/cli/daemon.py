"""``spot-controller run`` (the daemon) and ``status`` (a refreshing view of what it does)."""

from __future__ import annotations

import dataclasses
import os
import sys

import anyio
import click
from rich.console import Console
from rich.table import Table

from controller import logs
from controller.cli.base import run_async, settings_of, with_environments
from controller.cli.output import STATUS_COLUMNS, TABLE_WIDTH, table
from controller.service import Environments


@click.command()
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

    settings = settings_of(ctx)
    if no_migrate:
        settings = dataclasses.replace(settings, migrate_on_start=False)
    logs.configure(settings.log_format, settings.log_level)
    code = run_async(lambda: run_daemon(settings, simulate=simulate, simulator_port=simulator_port))
    # Everything is recorded by now. A database connection interrupted by the shutdown can
    # leave a driver thread (aiosqlite's are not daemon threads) that would keep the process
    # alive past the shutdown deadline; the exit must not wait for it.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


async def _status_table(environments: Environments) -> Table:
    rows = [e.to_json() for e in await environments.list()]
    return table(rows, STATUS_COLUMNS, title="spot-controller environments")


@click.command()
@click.option(
    "--interval",
    default=2.0,
    show_default=True,
    type=click.FloatRange(0.2, 3600),
    help="Seconds between refreshes.",
)
@click.option("--once", is_flag=True, help="Print the table once and exit.")
@with_environments
async def status(environments: Environments, interval: float, once: bool) -> None:
    """A refreshing view: desired vs running, status, reason and next retry per environment."""
    console = Console(width=TABLE_WIDTH)
    if once:
        console.print(await _status_table(environments))
        return
    from rich.live import Live

    with Live(await _status_table(environments), console=console, auto_refresh=False) as live:
        while True:
            await anyio.sleep(interval)
            live.update(await _status_table(environments), refresh=True)
