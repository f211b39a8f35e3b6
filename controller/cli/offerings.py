"""``spot-controller offerings``: the market as the offering cache sees it.

It asks DescribeZoneInstanceConfigInfos itself (one call per charge type, narrowed by the
filters given), through the same client and cache the daemon uses, so what it prints is what
a placement strategy would choose from. A running daemon's unavailable offerings (a failed
launch's backoff) are on its /metrics (``spot_controller_offering_unavailable_until_seconds``)
and its console's Market page, which shows the same view (``controller.service.market``).
"""

from __future__ import annotations

import random
from typing import Any

import click

from controller.cli.base import run_async, settings_of
from controller.cli.output import OUTPUT_OPTION, emit
from controller.cloud.client import CvmClient
from controller.core.backoff import BackoffBook
from controller.core.instances import CHARGE_TYPES
from controller.core.spec import validate_instance_type, validate_zone
from controller.reconcile.clock import Clock
from controller.reconcile.offerings import OfferingCache, OfferingRow
from controller.service.market import OfferingView

OFFERING_COLUMNS = (
    ("zone", "zone"),
    ("type", "instance_type"),
    ("charge", "charge_type"),
    ("status", "status"),
    ("stock", "stock_class"),
    ("CNY/h", "price"),
    ("CNY/vCPU-h", "price_per_vcpu"),
    ("vCPUs", "cpu"),
    ("memory GB", "memory"),
    ("unavailable until", "unavailable_until"),
)


def offering_json(row: OfferingRow) -> dict[str, Any]:
    """The service's view of the row, as the console shows it too."""
    return OfferingView.of(row).to_json()


@click.command("offerings")
@click.option("--zone", help="Only this zone, e.g. ap-guangzhou-3.")
@click.option("--instance-type", help="Only this instance type, e.g. S5.MEDIUM4.")
@click.option(
    "--charge-type",
    type=click.Choice(CHARGE_TYPES),
    help="Only this charge type (default: both).",
)
@OUTPUT_OPTION
@click.pass_context
def offerings(
    ctx: click.Context,
    zone: str | None,
    instance_type: str | None,
    charge_type: str | None,
    output: str,
) -> None:
    """Show the offerings of the region: status, stock class, price, vCPUs and memory."""
    settings = settings_of(ctx)

    async def go() -> list[OfferingRow]:
        if zone is not None:
            validate_zone(zone, settings.region)
        if instance_type is not None:
            validate_instance_type(instance_type)
        clock = Clock()
        backoff = BackoffBook(base_s=1, max_s=1, error_retry_s=1, rng=random.Random(0))
        async with CvmClient(settings) as client:
            cache = OfferingCache(client, clock, backoff)
            for charge in (charge_type,) if charge_type else CHARGE_TYPES:
                await cache.load(zone, instance_type, charge)
            return cache.rows()

    rows = run_async(go)
    emit([offering_json(r) for r in rows], output, OFFERING_COLUMNS)
