"""``simulator serve``: run the CVM simulator in the foreground (attached to the main CLI)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import click

from controller.errors import ConfigError
from controller.simulator.config import SimulatorConfig
from controller.simulator.server import serve as serve_forever
from controller.simulator.simulator import Simulator

EXIT_USAGE = 2


@click.group()
def simulator() -> None:
    """A local simulator of Tencent's CVM API 3.0 for development and tests."""


@simulator.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=9000, show_default=True, type=int, help="Port to listen on.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of every random choice.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON or TOML file: market, timings, faults, scenario.",
)
@click.option("--no-auth", is_flag=True, help="Accept unsigned requests.")
@click.option(
    "--quiet", is_flag=True, help="Log warnings only, no line per request (for benchmarks)."
)
def serve(
    host: str, port: int, seed: int, config_path: Path | None, no_auth: bool, quiet: bool
) -> None:
    """Serve the simulated CVM API at http://HOST:PORT/ and its admin API under /_sim."""
    try:
        config = (
            SimulatorConfig.from_file(config_path)
            if config_path is not None
            else SimulatorConfig.default()
        )
        if no_auth:
            config.auth_enabled = False
        sim = Simulator(config, seed=seed)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    auth = f"SecretId {config.secret_id}" if config.auth_enabled else "no auth"
    regions = ", ".join(sorted(sim.world.regions()))
    click.echo(
        f"CVM simulator on http://{host}:{port} ({auth}; regions {regions}; seed {seed})",
        err=True,
    )
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises SIGINT after shutdown
        if quiet:
            serve_forever(sim, host, port, log_level="warning", access_log=False)
        else:
            serve_forever(sim, host, port)
