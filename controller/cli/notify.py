"""``spot-controller notify``: where events are sent (webhooks, WeCom and DingTalk robots).

A webhook's signing secret is generated and printed once by ``add`` (or read from standard
input with ``--secret-stdin``), never taken from the command line, where it would stay in the
shell's history and the process list. URLs are shown masked.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from controller.cli.base import fail, run_async, settings_of
from controller.cli.output import OUTPUT_OPTION, emit, emit_one
from controller.notifications.delivery import Outcome
from controller.notifications.service import Targets
from controller.notifications.targets import event_names
from controller.store.schema import NOTIFICATION_KINDS
from controller.store.store import Store

TARGET_COLUMNS = (
    ("name", "name"),
    ("kind", "kind"),
    ("url", "url"),
    ("signed", "signed"),
    ("events", "events"),
    ("environments", "environments"),
    ("pending", "pending"),
    ("delivered", "delivered"),
    ("refused", "rejected"),
    ("dropped", "dropped"),
    ("last delivered", "last_delivered_at"),
    ("next attempt", "next_attempt_at"),
    ("last error", "last_error"),
)


def _with_targets(fn: Any) -> Any:
    settings = settings_of(click.get_current_context())

    async def go() -> Any:
        store = await Store.open(settings.database_url, migrate_schema=False)
        try:
            return await fn(Targets(store, settings.cluster, settings.notify_timeout_s))
        finally:
            await store.close()

    return run_async(go)


def _shown(views: Sequence[dict[str, Any]], output: str) -> list[dict[str, Any]]:
    """Lists as comma-separated cells in a table; JSON keeps them lists."""
    if output == "json":
        return list(views)
    return [{k: ",".join(v) if isinstance(v, list) else v for k, v in r.items()} for r in views]


def _split(values: Sequence[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


@click.group()
def notify() -> None:
    """Send events (BatchCompute's compute-environment events and more) to webhooks."""


@notify.command("add")
@click.argument("name")
@click.option("--url", required=True, help="Where to POST (a robot's webhook URL with its token).")
@click.option("--kind", type=click.Choice(NOTIFICATION_KINDS), default="webhook", show_default=True)
@click.option(
    "--events",
    "events",
    multiple=True,
    help="Comma-separated event names (default: every event): " + ", ".join(event_names()),
)
@click.option("--env", "envs", multiple=True, help="Only events of this environment (repeat).")
@click.option(
    "--secret-stdin",
    is_flag=True,
    help="Read the signing secret from standard input (webhook: instead of a generated one; "
    "dingtalk: the robot's SEC... secret, for its signed mode).",
)
@OUTPUT_OPTION
def add(
    name: str,
    url: str,
    kind: str,
    events: tuple[str, ...],
    envs: tuple[str, ...],
    secret_stdin: bool,
    output: str,
) -> None:
    """Add a notification target NAME."""
    secret = sys.stdin.read().strip() if secret_stdin else None
    view, generated = _with_targets(
        lambda targets: targets.add(name, url, kind, _split(events), envs, secret)
    )
    if output == "json":
        emit_one({**view, "secret": generated} if generated else view, output)
        return
    emit(_shown([view], output), output, TARGET_COLUMNS)
    if generated:
        click.echo(f"signing secret: {generated}")
        click.echo(
            "It is shown once: give it to the receiver to verify X-Spot-Controller-Signature."
        )


@notify.command("list")
@OUTPUT_OPTION
def list_targets(output: str) -> None:
    """Targets with their delivery state (URLs masked, secrets never shown)."""
    views = _with_targets(lambda targets: targets.list())
    emit(_shown(views, output), output, TARGET_COLUMNS)


@notify.command("remove")
@click.argument("name")
def remove(name: str) -> None:
    """Remove target NAME and the events still waiting for it."""
    _with_targets(lambda targets: targets.remove(name))
    click.echo(f"removed notification target {name}")


@notify.command("test")
@click.argument("name")
def test(name: str) -> None:
    """Send a test event to NAME now and say what it answered (exit 1 if not delivered)."""
    view, result = _with_targets(lambda targets: targets.test(name))
    if result.outcome == Outcome.DELIVERED:
        click.echo(f"delivered a test event to {name} ({view['url']})")
        return
    fail(f"test event to {name} ({view['url']}) not delivered: {result.error}", 1)
