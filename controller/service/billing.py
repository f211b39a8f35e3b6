"""Billing mode, as BatchCompute's console offers it: Spot, or Pay-as-you-go.

Not a column: pay-as-you-go is the capacity policy with every instance above the base on
demand (``on_demand_percentage`` 100). Front ends that offer the choice (the console's
Billing mode) turn it into the policy here, so the rule lives in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controller.errors import ValidationFailed

SPOT_MODE = "spot"
PAY_AS_YOU_GO_MODE = "pay-as-you-go"
MODES = {SPOT_MODE: "Spot", PAY_AS_YOU_GO_MODE: "Pay-as-you-go"}
ALL_ON_DEMAND = 100


def with_billing_mode(values: Mapping[str, Any], mode: str) -> dict[str, Any]:
    """``values`` with the policy that ``mode`` means; a percentage that contradicts it is
    refused, naming that field."""
    if mode not in MODES:
        raise ValidationFailed("billing_mode", f"must be {' or '.join(MODES.values())}")
    row = dict(values)
    percentage = row.get("on_demand_percentage")
    if mode == SPOT_MODE or percentage in (None, ""):
        if mode == PAY_AS_YOU_GO_MODE:
            row["on_demand_percentage"] = ALL_ON_DEMAND
        return row
    if str(percentage).strip() != str(ALL_ON_DEMAND):
        raise ValidationFailed(
            "on_demand_percentage",
            f"is {ALL_ON_DEMAND} with Billing mode Pay-as-you-go (every instance above the "
            f"base on demand), got {percentage!r}",
        )
    return row


def billing_mode_of(on_demand_base_count: Any, on_demand_percentage: Any) -> str:
    """How an environment bills, in the console's words: Spot, Pay-as-you-go or mixed."""
    try:
        base, percentage = int(on_demand_base_count or 0), int(on_demand_percentage or 0)
    except (TypeError, ValueError):
        return "?"
    if percentage >= ALL_ON_DEMAND:
        return MODES[PAY_AS_YOU_GO_MODE]
    if base == 0 and percentage == 0:
        return MODES[SPOT_MODE]
    return f"mixed: base {base}, {percentage} % on demand"
