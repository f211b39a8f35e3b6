"""``spot-controller env``: compute environments, through the service layer.

The commands turn options into the service's fields and print its views; every rule is the
service's. Bad input is one line naming the field and the rule, exit 2, and nothing written.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from controller.cli.base import with_environments
from controller.cli.output import (
    ACTIVITY_COLUMNS,
    COST_COLUMNS,
    ENVIRONMENT_COLUMNS,
    NODE_COLUMNS,
    OUTPUT_OPTION,
    emit,
    emit_one,
)
from controller.errors import ValidationFailed
from controller.service import Environments


@click.group()
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
    click.option(
        "--on-demand-base",
        "on_demand_base_count",
        type=int,
        help="The first N instances are pay-as-you-go, always (default 0).",
    ),
    click.option(
        "--on-demand-percentage",
        type=int,
        help="Of the instances above the base, this percentage is pay-as-you-go (0 to 100).",
    ),
    click.option(
        "--compensate-with-on-demand/--no-compensate-with-on-demand",
        default=None,
        help="Fill a spot shortfall with pay-as-you-go instances, replaced by spot later.",
    ),
    click.option(
        "--compensate-after",
        "compensate_after_s",
        type=int,
        help="Seconds every spot offering must be unavailable before compensating (60).",
    ),
    click.option(
        "--disruption-budget",
        type=int,
        help="Replacements at a time on the way back to spot (default 10 %% of desired).",
    ),
    click.option(
        "--max-hourly-spend",
        help="Cap on the environment's hourly spend, CNY per hour (default: none).",
    ),
    click.option(
        "--allocation-strategy",
        help="PRIORITY (default: types then zones in order), COST_OPTIMIZED, "
        "CAPACITY_OPTIMIZED or PRICE_CAPACITY_OPTIMIZED.",
    ),
    click.option(
        "--zone-balance",
        help="PRIORITY (default) or EQUALITY: spread the instances evenly over the zones.",
    ),
    click.option(
        "--max-pool-share",
        type=int,
        help="At most this percentage of the instances in one zone and type (1 to 100).",
    ),
    click.option(
        "--instance-cpu", type=int, help="Also use the market's types with this many vCPUs."
    ),
    click.option(
        "--instance-memory", type=int, help="Also use the market's types with this memory (GB)."
    ),
    click.option(
        "--instance-families",
        help="Comma-separated families (e.g. S5,SA2) whose types may also be used.",
    ),
    click.option(
        "--launch-options",
        metavar="JSON",
        help="RunInstances fields passed on: SystemDisk, DataDisks, InternetAccessible, "
        'EnhancedService, e.g. \'{"SystemDisk": {"DiskType": "CLOUD_PREMIUM", "DiskSize": 100}}\'.',
    ),
    click.option("--description", help="Free text (at most 1000 characters)."),
]


def launch_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_LAUNCH_OPTIONS):
        fn = option(fn)
    return fn


def _launch_values(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The options as the service's fields; options not given are left out."""
    values = dict(kwargs)
    values["user_data"] = _user_data(
        values.pop("user_data", None), values.pop("user_data_file", None)
    )
    values["tags"] = _split_tags(values.pop("tags", ()))
    return {k: v for k, v in values.items() if v is not None}


@env.command("create")
@click.argument("name")
@click.option("--zone", required=True, help="Availability zone, e.g. ap-guangzhou-3.")
@click.option(
    "--instance-type",
    help="Instance type, e.g. S2.MEDIUM4 (required unless --instance-cpu, --instance-memory "
    "or --instance-families choose the types).",
)
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
@OUTPUT_OPTION
@with_environments
async def env_create(environments: Environments, name: str, output: str, **kwargs: Any) -> None:
    """Create a compute environment NAME."""
    created = await environments.create({"name": name, **_launch_values(kwargs)})
    emit_one(created.to_json(), output)


@env.command("list")
@OUTPUT_OPTION
@with_environments
async def env_list(environments: Environments, output: str) -> None:
    """List compute environments with desired, running and pending counts and status."""
    rows = [e.to_json() for e in await environments.list()]
    emit(rows, output, ENVIRONMENT_COLUMNS)


@env.command("show")
@click.argument("name")
@OUTPUT_OPTION
@with_environments
async def env_show(environments: Environments, name: str, output: str) -> None:
    """Show one environment (by name or id)."""
    emit_one((await environments.show(name)).to_json(), output)


# ignore_unknown_options: "-1" is a (bad) count to report, not an unknown option.
@env.command("scale", context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("desired", type=int)
@with_environments
async def env_scale(environments: Environments, name: str, desired: int) -> None:
    """Set the desired count of NAME to DESIRED (0 to 2000)."""
    scaled = await environments.scale(name, desired)
    click.echo(f"{scaled.name}: desired_count = {scaled.desired_count}")


@env.command("update")
@click.argument("name")
@click.option("--rename", "new_name", help="New name.")
@click.option("--zone")
@click.option("--instance-type")
@click.option("--image-id")
@click.option("--max-price")
@click.option("--desired", "desired_count", type=int)
@launch_options
@OUTPUT_OPTION
@with_environments
async def env_update(
    environments: Environments, name: str, new_name: str | None, output: str, **kwargs: Any
) -> None:
    """Change fields of NAME; new values apply to new launches, running instances are kept."""
    changes = _launch_values(kwargs)
    if new_name is not None:
        changes["name"] = new_name
    emit_one((await environments.update(name, changes)).to_json(), output)


@env.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_environments
async def env_delete(environments: Environments, name: str, yes: bool) -> None:
    """Delete NAME; the daemon terminates its instances. Its history is kept."""
    target = await environments.show(name)
    if not yes and sys.stdin.isatty():
        click.confirm(
            f"Delete {target.name} and terminate its {target.running_count} running instances?",
            abort=True,
        )
    deleted = await environments.delete(target.id)
    click.echo(f"deleted {deleted.name} ({deleted.id}); the daemon terminates its instances")


@env.command("activities")
@click.argument("name")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10000))
@OUTPUT_OPTION
@with_environments
async def env_activities(environments: Environments, name: str, limit: int, output: str) -> None:
    """Show the activity history of NAME (also of a deleted environment, by id)."""
    rows = [a.to_json() for a in await environments.activities(name, limit)]
    emit(rows, output, ACTIVITY_COLUMNS)


@env.command("nodes")
@click.argument("name")
@click.option("--all", "show_all", is_flag=True, help="Include ended nodes.")
@OUTPUT_OPTION
@with_environments
async def env_nodes(environments: Environments, name: str, show_all: bool, output: str) -> None:
    """Show the compute nodes (instances) of NAME (also of a deleted environment, by id)."""
    rows = [n.to_json() for n in await environments.nodes(name, include_ended=show_all)]
    emit(rows, output, NODE_COLUMNS)


@env.command("cost")
@click.argument("name")
@click.option(
    "--since",
    default="24h",
    show_default=True,
    help="Start of the period: an ISO 8601 UTC time, or hours (24h) or days (7d) ago.",
)
@OUTPUT_OPTION
@with_environments
async def env_cost(environments: Environments, name: str, since: str, output: str) -> None:
    """Instance-hours and spend of NAME by charge type since --since, from its node records."""
    until = datetime.now(UTC)
    rows = [c.to_json() for c in await environments.cost(name, parse_since(since, until), until)]
    emit(rows, output, COST_COLUMNS)


def parse_since(text: str, now: datetime) -> datetime:
    """``24h``, ``7d`` or an ISO 8601 time (UTC when it names no zone)."""
    value = text.strip()
    if value[-1:] in ("h", "d") and value[:-1].isdigit():
        return now - timedelta(**{"hours" if value[-1] == "h" else "days": int(value[:-1])})
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationFailed(
            "since",
            f"must be an ISO 8601 time or a number of hours or days, like 24h or 7d; got {text!r}",
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
