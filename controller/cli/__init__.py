"""The ``spot-controller`` command line: run the daemon, manage environments, migrate the store.

One module per command group (``env``, ``db``, ``notify``, the daemon's ``run`` and
``status``); this one builds the top-level group. Bad input gets one line naming the field
and the rule, and exit code 2; nothing is written. Only ``db upgrade`` and the daemon
migrate the database.
"""

from __future__ import annotations

import click

from controller import __version__
from controller.cli.api import api, api_key
from controller.cli.base import OneLineErrorsGroup, fail, settings_of
from controller.cli.console import console
from controller.cli.daemon import run, status
from controller.cli.db import db
from controller.cli.env import env
from controller.cli.notify import notify
from controller.cli.offerings import offerings
from controller.cli.output import OUTPUT_OPTION, SETTING_COLUMNS, emit
from controller.cli.whatif import whatif
from controller.errors import ConfigError
from controller.settings import Settings


@click.group(cls=OneLineErrorsGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
        fail(str(exc))


@main.command("config")
@OUTPUT_OPTION
@click.pass_context
def show_config(ctx: click.Context, output: str) -> None:
    """Show every setting, its current value (secrets masked), unit and meaning.

    The database is not opened: the settings are what a user checks when it cannot be.
    """
    emit(settings_of(ctx).describe(), output, SETTING_COLUMNS)


for command in (run, status, db, env, console, offerings, whatif, api, api_key, notify):
    main.add_command(command)


def _attach_simulator() -> None:
    try:
        from controller.simulator.cli import simulator
    except ImportError:  # pragma: no cover - the simulator ships with the package
        return
    main.add_command(simulator)


_attach_simulator()
