"""``spot-controller console``: what the web console needs from a person at a shell."""

from __future__ import annotations

import getpass
import sys

import click

from controller.cli.base import fail
from controller.console.auth import hash_password

MIN_PASSWORD_LENGTH = 8


@click.group()
def console() -> None:
    """The web console (served under /console/ of SPOT_CONTROLLER_HTTP_ADDR)."""


@console.command("hash-password")
def hash_password_command() -> None:
    """Read a password on standard input (never the command line) and print its argon2 hash.

    The hash is alone on the last line: put it in SPOT_CONTROLLER_CONSOLE_PASSWORD_HASH (or
    SPOT_CONTROLLER_CONSOLE_READONLY_PASSWORD_HASH). At a terminal the password is asked for
    twice without echo; otherwise the first line of standard input is the password.
    """
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            fail("the two passwords differ; nothing was printed")
    else:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    if len(password) < MIN_PASSWORD_LENGTH:
        fail(f"password: must be at least {MIN_PASSWORD_LENGTH} characters")
    click.echo(hash_password(password))
