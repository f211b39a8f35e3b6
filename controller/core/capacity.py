"""An environment's capacity policy: its mix of spot and pay-as-you-go, and its spend cap.

Pure. Validated like every other column (:mod:`controller.core.spec` calls
:func:`validate_capacity`): the database checks ranges with named constraints where SQL can
say them; a value it cannot check (text in a SQLite integer column, a flag spelled oddly) is
reported here, naming the field, and the row is INVALID.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from controller.errors import ValidationFailed

MAX_DESIRED_COUNT = 2000  # BatchCompute's DesiredComputeNodeCount limit (as spec.py)
INTEGER_RE = re.compile(r"[+-]?[0-9]{1,18}")
DECIMAL_RE = re.compile(r"[+-]?([0-9]{1,18}(\.[0-9]{0,18})?|\.[0-9]{1,18})([eE][+-]?[0-9]{1,3})?")

# The capacity policy's columns (issue 15): each default keeps an all-spot environment.
CAPACITY_COLUMNS = (
    "on_demand_base_count",
    "on_demand_percentage",
    "compensate_with_on_demand",
    "compensate_after_s",
    "disruption_budget",
    "max_hourly_spend",
)
MAX_COMPENSATE_AFTER_S = 86400
MAX_HOURLY_SPEND = Decimal("1000000")


@dataclass(frozen=True)
class CapacityPolicy:
    """How an environment mixes spot and pay-as-you-go, and what it may spend.

    The defaults are an all-spot environment without a cap: exactly the controller's
    behaviour before the policy existed (the planner takes its old path for them).
    """

    on_demand_base_count: int = 0
    on_demand_percentage: int = 0
    compensate_with_on_demand: bool = False
    compensate_after_s: int = 60
    disruption_budget: int | None = None  # None: max(1, 10 % of desired, rounded up)
    max_hourly_spend: Decimal | None = None  # CNY per hour; None: no cap

    @property
    def is_default(self) -> bool:
        return self == DEFAULT_CAPACITY

    def budget(self, desired: int) -> int:
        """Replacements at a time: the stated budget, else 10 % of desired rounded up."""
        if self.disruption_budget is not None:
            return self.disruption_budget
        return max(1, -(-desired // 10))


DEFAULT_CAPACITY = CapacityPolicy()


def _whole(raw: Any, field_name: str, low: int, high: int) -> int:
    text = "" if raw is None else str(raw).strip()
    if not INTEGER_RE.fullmatch(text) or not low <= int(text) <= high:
        raise ValidationFailed(
            field_name, f"must be a whole number from {low} to {high}, got {raw!r}"
        )
    return int(text)


_TRUE, _FALSE = (
    frozenset({"1", "true", "t", "yes", "on"}),
    frozenset({"0", "false", "f", "no", "off"}),
)


def validate_capacity(row: Mapping[str, Any]) -> CapacityPolicy:
    """The capacity policy's columns; a missing (NULL) value takes its default."""
    get = row.get
    base = get("on_demand_base_count")
    percentage = get("on_demand_percentage")
    compensate = get("compensate_with_on_demand")
    after = get("compensate_after_s")
    budget = get("disruption_budget")
    spend = get("max_hourly_spend")
    flag = str(compensate).strip().lower() if compensate is not None else "false"
    if flag not in _TRUE | _FALSE:
        raise ValidationFailed(
            "compensate_with_on_demand", f"must be true or false, got {compensate!r}"
        )
    cap: Decimal | None = None
    if spend is not None and str(spend).strip() != "":
        text = str(spend).strip()
        if not DECIMAL_RE.fullmatch(text):
            raise ValidationFailed(
                "max_hourly_spend", f"must be a number of CNY per hour, got {spend!r}"
            )
        cap = Decimal(text)
        if not 0 < cap <= MAX_HOURLY_SPEND:
            raise ValidationFailed(
                "max_hourly_spend",
                f"must be greater than 0 and at most {MAX_HOURLY_SPEND}, got {spend!r}",
            )
    return CapacityPolicy(
        on_demand_base_count=0
        if base is None
        else _whole(base, "on_demand_base_count", 0, MAX_DESIRED_COUNT),
        on_demand_percentage=0
        if percentage is None
        else _whole(percentage, "on_demand_percentage", 0, 100),
        compensate_with_on_demand=flag in _TRUE,
        compensate_after_s=60
        if after is None
        else _whole(after, "compensate_after_s", 0, MAX_COMPENSATE_AFTER_S),
        disruption_budget=None
        if budget is None
        else _whole(budget, "disruption_budget", 1, MAX_DESIRED_COUNT),
        max_hourly_spend=cap,
    )
