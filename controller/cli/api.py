"""``spot-controller api serve`` and ``api-key create/list/revoke``.

A key's secret is printed once, at creation, and stored only encrypted with
SPOT_CONTROLLER_API_MASTER_KEY; `api-key list` never shows it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click

from controller import logs
from controller.api.keys import Cipher, KeyRing
from controller.cli.base import run_async, settings_of
from controller.cli.output import OUTPUT_OPTION, emit, emit_one
from controller.store.store import Store

T = TypeVar("T")
KEY_COLUMNS = (
    ("name", "name"),
    ("secret id", "secret_id"),
    ("read-only", "read_only"),
    ("created", "created_at"),
    ("revoked", "revoked_at"),
)


@click.group("api")
def api() -> None:
    """The BatchCompute-compatible API (tccli batch, the batch SDK)."""


@api.command("serve")
@click.pass_context
def serve(ctx: click.Context) -> None:
    """Serve the API at SPOT_CONTROLLER_API_ADDR, apart from the daemon, on the same database."""
    from controller.api.listener import serve_alone
    from controller.errors import ConfigError

    settings = settings_of(ctx)
    logs.configure(settings.log_format, settings.log_level)

    async def go() -> int:
        if not settings.api_addr:
            raise ConfigError("SPOT_CONTROLLER_API_ADDR must be set (host:port) to serve the API")
        store = await Store.open(settings.database_url, migrate_schema=False)
        try:
            return await serve_alone(settings, store)
        finally:
            await store.close()

    code = run_async(go)
    sys.stdout.flush()
    os._exit(code)  # as `run`: a driver thread must not hold the exit


AUDIT_COLUMNS = (
    ("at", "at"),
    ("key", "key_name"),
    ("action", "action"),
    ("environment", "env_id"),
    ("result", "result"),
    ("request id", "request_id"),
)


@api.command("audit")
@click.option(
    "--limit", default=50, show_default=True, type=click.IntRange(1, 10000), help="Newest N."
)
@OUTPUT_OPTION
@click.pass_context
def audit(ctx: click.Context, limit: int, output: str) -> None:
    """The audit log: every mutating API call, newest first (never a secret or a body)."""
    settings = settings_of(ctx)

    async def go() -> list[dict[str, object]]:
        store = await Store.open(settings.database_url, migrate_schema=False)
        try:
            rows = await store.list_audit(limit)
        finally:
            await store.close()
        return [
            {k: (v.strftime("%Y-%m-%dT%H:%M:%SZ") if k == "at" else v) for k, v in r.items()}
            for r in rows
        ]

    emit(run_async(go), output, AUDIT_COLUMNS)


@click.group("api-key")
def api_key() -> None:
    """API keys of the BatchCompute-compatible API."""


def _keyring_call(ctx: click.Context, work: Callable[[KeyRing], Awaitable[T]]) -> T:
    """Run ``work`` over the keys of the database as it is (never migrated)."""
    settings = settings_of(ctx)

    async def go() -> T:
        cipher = Cipher(settings.api_master_key)
        store = await Store.open(settings.database_url, migrate_schema=False)
        try:
            return await work(KeyRing(store, cipher))
        finally:
            await store.close()

    return run_async(go)


@api_key.command("create")
@click.argument("name")
@click.option("--read-only", is_flag=True, help="The key may call Describe* actions only.")
@OUTPUT_OPTION
@click.pass_context
def create(ctx: click.Context, name: str, read_only: bool, output: str) -> None:
    """Create a key; its SecretKey is printed now and never again."""

    async def work(keys: KeyRing) -> dict[str, object]:
        key, secret = await keys.create(name, read_only=read_only)
        return {**key.to_json(), "secret_key": secret.reveal()}

    emit_one(_keyring_call(ctx, work), output)


@api_key.command("list")
@OUTPUT_OPTION
@click.pass_context
def list_keys(ctx: click.Context, output: str) -> None:
    """The keys, live and revoked (never their secrets)."""

    async def work(keys: KeyRing) -> list[dict[str, object]]:
        return [k.to_json() for k in await keys.list()]

    emit(_keyring_call(ctx, work), output, KEY_COLUMNS)


@api_key.command("revoke")
@click.argument("name")
@click.pass_context
def revoke(ctx: click.Context, name: str) -> None:
    """Revoke a key: its next call is refused."""

    async def work(keys: KeyRing) -> None:
        await keys.revoke(name)

    _keyring_call(ctx, work)
    click.echo(f"revoked {name}")
