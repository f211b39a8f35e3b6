"""What an environment cost over a period: instance-hours and spend by charge type.

Read from the node records alone (each instance from its launch to its end, or to now), at
the hourly price it was bought at; an instance without a known price is counted in hours and
left out of the spend, and the view says how many were.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from controller.service.views import View


@dataclass(frozen=True)
class CostView(View):
    charge_type: str
    instances: int  # that ran within the period
    instance_hours: Decimal
    spend: Decimal  # CNY, of the instances with a known price
    unpriced: int  # instances counted in hours, not in spend: their price is not known


def cost_by_charge_type(
    nodes: Iterable[Mapping[str, Any]], since: datetime, until: datetime
) -> tuple[CostView, ...]:
    totals: dict[str, dict[str, Any]] = {}
    for node in nodes:
        start = node.get("launched_at") or node.get("running_at")
        if start is None:
            continue  # never launched: nothing was billed
        end = node.get("ended_at") or until
        hours = _hours(max(start, since), min(end, until))
        if hours <= 0:
            continue
        charge = str(node.get("charge_type") or "SPOTPAID")
        total = totals.setdefault(
            charge, {"instances": 0, "hours": Decimal(0), "spend": Decimal(0), "unpriced": 0}
        )
        total["instances"] += 1
        total["hours"] += hours
        price = _price(node.get("hourly_price"))
        if price is None:
            total["unpriced"] += 1
        else:
            total["spend"] += hours * price
    return tuple(
        CostView(
            charge,
            t["instances"],
            t["hours"].quantize(Decimal("0.001")),
            t["spend"].quantize(Decimal("0.01")),
            t["unpriced"],
        )
        for charge, t in sorted(totals.items())
    )


def _hours(start: datetime, end: datetime) -> Decimal:
    return Decimal(str((end - start).total_seconds())) / Decimal(3600)


def _price(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None
