"""``spot-controller whatif``: replay a market trace against the real planner and engine.

The environment is one the store holds (``--env NAME``), a JSON file of its columns
(``--spec FILE``) or the flags of ``env create``; it is checked as ``env create`` checks it.
Each strategy runs on a fresh in-process simulator and a throw-away store, so nothing of a
real environment is touched and nothing is launched in the cloud.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
import structlog

from controller import logs
from controller.cli.base import run_async, settings_of
from controller.cli.env import _launch_values, launch_options
from controller.cli.output import OUTPUT_OPTION, emit
from controller.core.placement import STRATEGIES
from controller.core.spec import USER_COLUMNS
from controller.errors import ValidationFailed
from controller.service.environments import validate_new_environment
from controller.settings import Settings
from controller.simulator import trace as traces
from controller.store.store import Store
from controller.whatif import floor, replay, report

CREATE_FLAGS = ("zone", "instance_type", "image_id", "max_price", "desired_count")


def parse_strategies(text: str) -> list[str]:
    chosen = [s.strip().upper() for s in text.split(",") if s.strip()]
    for name in chosen:
        if name not in STRATEGIES:
            raise ValidationFailed(
                "strategy", f"must be among {', '.join(STRATEGIES)}, got {name!r}"
            )
    if not chosen:
        raise ValidationFailed("strategy", "give at least one strategy")
    return list(dict.fromkeys(chosen))


def _from_spec(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValidationFailed("spec", f"{path} is not a JSON file ({exc})") from None
    if not isinstance(data, dict):
        raise ValidationFailed("spec", f"{path} must hold a JSON object of environment columns")
    return {"name": "whatif", **data}


async def _from_store(database_url: str, name: str) -> dict[str, Any]:
    store = await Store.open(database_url, migrate_schema=False)
    try:
        row = await store.get_environment(name)
    finally:
        await store.close()
    if row is None:
        raise ValidationFailed("env", f"no environment named {name!r}")
    return {k: row[k] for k in USER_COLUMNS if row.get(k) is not None}


@click.command("whatif")
@click.option(
    "--trace",
    "trace_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Market trace CSV (see `simulator serve --trace`).",
)
@click.option("--env", "env_name", help="Replay this environment of the store.")
@click.option(
    "--spec",
    "spec_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Replay the environment of this JSON file (the columns of env create).",
)
@click.option("--name", default="whatif", show_default=True, help="Name, with the env flags.")
@click.option("--zone", help="With the env create flags: the zone.")
@click.option("--instance-type", help="With the env create flags: the instance type.")
@click.option("--image-id", help="With the env create flags: the image id.")
@click.option("--max-price", help="With the env create flags: the spot bid, CNY per hour.")
@click.option("--desired", "desired_count", type=int, help="With the env create flags.")
@launch_options
@click.option(
    "--strategy",
    "strategy_list",
    default=",".join(STRATEGIES),
    show_default=True,
    help="Comma-separated allocation strategies to replay.",
)
@click.option(
    "--step",
    "step_s",
    default=replay.DEFAULT_STEP_S,
    show_default=True,
    type=click.FloatRange(1, 3600),
    help="Seconds of trace between two looks of the engine.",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="PNG of running vs desired and spend over time per strategy (needs matplotlib).",
)
@OUTPUT_OPTION
@click.pass_context
def whatif(
    ctx: click.Context,
    /,
    trace_path: Path,
    env_name: str | None,
    spec_path: Path | None,
    name: str,
    strategy_list: str,
    step_s: float,
    plot_path: Path | None,
    output: str,
    **kwargs: Any,
) -> None:
    """Replay a trace: cost, interruptions and coverage per strategy, and the hindsight floor."""
    settings = settings_of(ctx)
    # The replayed engine's log lines would bury the table: errors only, on stderr (and the
    # logging as it was afterwards, for a caller that runs more than this command).
    before = structlog.get_config()
    logs.configure(settings.log_format, level="error", stream=sys.stderr)
    try:
        _whatif(
            settings,
            trace_path,
            env_name,
            spec_path,
            name,
            strategy_list,
            step_s,
            plot_path,
            output,
            kwargs,
        )
    finally:
        structlog.configure(**before)


def _whatif(
    settings: Settings,
    trace_path: Path,
    env_name: str | None,
    spec_path: Path | None,
    name: str,
    strategy_list: str,
    step_s: float,
    plot_path: Path | None,
    output: str,
    kwargs: dict[str, Any],
) -> None:
    created = {k: kwargs.pop(k) for k in CREATE_FLAGS}
    launch = _launch_values(kwargs)

    async def go() -> list[dict[str, Any]]:
        strategies = parse_strategies(strategy_list)
        flags = {k: v for k, v in created.items() if v is not None}
        sources = [env_name is not None, spec_path is not None, bool(flags)]
        if sum(sources) != 1:
            raise ValidationFailed(
                "environment", "give one of --env NAME, --spec FILE or the env create flags"
            )
        if env_name is not None:
            values = await _from_store(settings.database_url, env_name)
        elif spec_path is not None:
            values = _from_spec(spec_path)
        else:
            values = {"name": name, **flags}
        values = {**values, **launch}
        market = traces.load(trace_path)
        region = market.rows[0].zone.rsplit("-", 1)[0]
        values = validate_new_environment(values, region)
        results = [await replay.run(market, [values], s, step_s=step_s) for s in strategies]
        if plot_path is not None:
            report.plot(results, plot_path)
        return report.rows(results, floor.floor_cost(market, [values], region))

    emit(run_async(go), output, report.COLUMNS)
