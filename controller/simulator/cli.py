"""``simulator serve``: run the CVM simulator in the foreground (attached to the main CLI)."""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import click

from controller.errors import ConfigError
from controller.simulator import trace, tracegen
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
@click.option(
    "--trace",
    "trace_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Market trace CSV (t_s,zone,instance_type,price,stock[,on_demand_price,"
    "on_demand_stock]) replayed from the start.",
)
@click.option(
    "--speed",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Trace seconds per real second (60: an hour of market a minute).",
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
    trace_path: Path | None,
    speed: float,
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
        on_tick = None if trace_path is None else _trace_ticker(sim, trace.load(trace_path), speed)
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
            serve_forever(
                sim, host, port, log_level="warning", access_log=False, tls=pair, on_tick=on_tick
            )
        else:
            serve_forever(sim, host, port, tls=pair, on_tick=on_tick)


def _trace_ticker(sim: Simulator, market: trace.Trace, speed: float) -> Callable[[], None]:
    """Applies the trace's rows as (wall time since start) x ``speed`` reaches them; the
    instances' timings and the signatures stay on the simulator's own clock."""
    player = trace.TracePlayer(sim, market)
    started = time.monotonic()
    player.apply_due(0.0)

    def tick() -> None:
        player.apply_due((time.monotonic() - started) * speed)

    return tick


@simulator.command("trace")
@click.option("--seed", default=16, show_default=True, type=int, help="Seed of the model.")
@click.option("--hours", default=24.0, show_default=True, type=click.FloatRange(0, 24 * 31))
@click.option("--storms-per-day", default=2.0, show_default=True, type=click.FloatRange(0, 100))
@click.option(
    "--output",
    "output_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="CSV file to write.",
)
def make_trace(seed: int, hours: float, storms_per_day: float, output_path: Path) -> None:
    """Write a synthetic market trace (the model is in controller/simulator/tracegen.py)."""
    rows = tracegen.generate(
        tracegen.shipped_pools(seed), seed=seed, hours=hours, storms_per_day=storms_per_day
    )
    trace.write(output_path, rows)
    click.echo(f"{len(rows)} rows, {hours:g} h, to {output_path}", err=True)
