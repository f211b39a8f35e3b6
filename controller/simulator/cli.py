"""``simulator serve``: run the CVM simulator in the foreground (attached to the main CLI)."""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path

import click

from controller.errors import ConfigError
from controller.simulator.config import SimulatorConfig
from controller.simulator.server import serve as serve_forever
from controller.simulator.simulator import Simulator
from controller.simulator.tls import CertPair, self_signed

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
@click.option(
    "--tls",
    is_flag=True,
    help="Serve https with a self-signed certificate made at start (tccli speaks https only).",
)
@click.option(
    "--cert",
    "cert_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="PEM certificate to serve https with (implies --tls; needs --key).",
)
@click.option(
    "--key",
    "key_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="PEM private key of --cert.",
)
@click.option(
    "--cert-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where --tls writes cert.pem and key.pem (default: a new temporary directory).",
)
def serve(
    host: str,
    port: int,
    seed: int,
    config_path: Path | None,
    no_auth: bool,
    quiet: bool,
    tls: bool,
    cert_path: Path | None,
    key_path: Path | None,
    cert_dir: Path | None,
) -> None:
    """Serve the simulated CVM API at http(s)://HOST:PORT/ and its admin API under /_sim."""
    if (cert_path is None) != (key_path is None):
        click.echo("error: --cert and --key go together", err=True)
        sys.exit(EXIT_USAGE)
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
    pair: CertPair | None = None
    if cert_path is not None and key_path is not None:
        pair = CertPair(cert_path, key_path)
    elif tls:
        directory = cert_dir or Path(tempfile.mkdtemp(prefix="cvm-simulator-tls-"))
        pair = self_signed(directory, host)
        click.echo(f"self-signed certificate: {pair.cert}", err=True)
    auth = f"SecretId {config.secret_id}" if config.auth_enabled else "no auth"
    regions = ", ".join(sorted(sim.world.regions()))
    scheme = "http" if pair is None else "https"
    click.echo(
        f"CVM simulator on {scheme}://{host}:{port} ({auth}; regions {regions}; seed {seed})",
        err=True,
    )
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises SIGINT after shutdown
        if quiet:
            serve_forever(sim, host, port, log_level="warning", access_log=False, tls=pair)
        else:
            serve_forever(sim, host, port, tls=pair)
