"""What an operator can do to the simulated world: change a pool, reclaim, release, set faults.

The admin API and the config's timed scenario send the same commands, so both are parsed
here, once, into small frozen values. Parsing is strict: an unknown key or a wrong type raises
:class:`~controller.errors.ValidationFailed` naming the field, which the admin API answers
with HTTP 400 and the config loader with a :class:`~controller.errors.ConfigError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller.errors import ValidationFailed
from controller.simulator.market import INSTANCE_TYPE_PATTERN, ZONE_PATTERN

# Actions a scenario event may take, and the admin endpoint each mirrors.
ACTIONS = ("market", "reclaim", "release", "faults")

FAULT_RATES = ("error_rate", "http_error_rate", "timeout_rate")
FAULT_DURATIONS = ("timeout_hang_s", "latency_ms", "describe_lag_s")
FAULT_FIELDS = (*FAULT_RATES, *FAULT_DURATIONS, "rate_limits")


@dataclass(frozen=True)
class MarketUpdate:
    """Create or change one pool; ``None`` leaves a field as it is.

    ``stock`` is what the pool can sell counting the instances already alive in it (its
    capacity): set below the live count, the excess running instances are reclaimed at once.
    """

    zone: str
    instance_type: str
    price: float | None = None
    stock: int | None = None
    quota: int | None = None
    cpu: int | None = None
    memory: int | None = None
    on_demand_price: float | None = None
    on_demand_stock: int | None = None  # pay-as-you-go capacity, sold apart from spot


@dataclass(frozen=True)
class ReclaimOrder:
    """Reclaim running spot instances: named ones, ``count`` of them or a ``fraction``."""

    instance_ids: tuple[str, ...] | None = None
    count: int | None = None
    fraction: float | None = None
    zone: str | None = None
    instance_type: str | None = None


@dataclass(frozen=True)
class ReleaseOrder:
    """Make instances vanish at once, as if released from the console."""

    instance_ids: tuple[str, ...]


@dataclass(frozen=True)
class FaultsUpdate:
    """Fault settings to change; only the keys present are changed.

    ``rate_limits`` entries are merged into the current table (``None`` or 0 turns an
    action's limit off); ``rate_limits`` itself ``None`` turns every limit off.
    """

    values: Mapping[str, float]
    rate_limits: Mapping[str, float | None] | None = None
    clear_rate_limits: bool = False


Command = MarketUpdate | ReclaimOrder | ReleaseOrder | FaultsUpdate


def parse(action: str, payload: Mapping[str, Any]) -> Command:
    """Parse the payload of ``action`` (one of :data:`ACTIONS`)."""
    if action == "market":
        return parse_market(payload)
    if action == "reclaim":
        return parse_reclaim(payload)
    if action == "release":
        return parse_release(payload)
    if action == "faults":
        return parse_faults(payload)
    raise ValidationFailed("action", f"must be one of {', '.join(ACTIONS)}, got {action!r}")


def parse_market(payload: Mapping[str, Any]) -> MarketUpdate:
    _only(
        payload,
        (
            "zone",
            "instance_type",
            "price",
            "stock",
            "quota",
            "cpu",
            "memory",
            "on_demand_price",
            "on_demand_stock",
        ),
    )
    zone = _string(payload, "zone", required=True)
    if not ZONE_PATTERN.match(zone):
        raise ValidationFailed("zone", f"must look like ap-guangzhou-3, got {zone!r}")
    instance_type = _string(payload, "instance_type", required=True)
    if not INSTANCE_TYPE_PATTERN.match(instance_type):
        raise ValidationFailed("instance_type", f"must look like S5.MEDIUM4, got {instance_type!r}")
    return MarketUpdate(
        zone=zone,
        instance_type=instance_type,
        price=_number(payload, "price", minimum=0.0, positive=True),
        stock=_integer(payload, "stock", minimum=0),
        quota=_integer(payload, "quota", minimum=0),
        cpu=_integer(payload, "cpu", minimum=1),
        memory=_integer(payload, "memory", minimum=1),
        on_demand_price=_number(payload, "on_demand_price", minimum=0.0, positive=True),
        on_demand_stock=_integer(payload, "on_demand_stock", minimum=0),
    )


def parse_reclaim(payload: Mapping[str, Any]) -> ReclaimOrder:
    _only(payload, ("instance_ids", "count", "fraction", "zone", "instance_type"))
    chosen = [key for key in ("instance_ids", "count", "fraction") if payload.get(key) is not None]
    if len(chosen) != 1:
        raise ValidationFailed(
            "instance_ids", "give exactly one of instance_ids, count or fraction"
        )
    ids = _id_list(payload, "instance_ids") if "instance_ids" in chosen else None
    fraction = _number(payload, "fraction", minimum=0.0)
    if fraction is not None and fraction > 1:
        raise ValidationFailed("fraction", f"must be between 0 and 1, got {fraction}")
    return ReclaimOrder(
        instance_ids=ids,
        count=_integer(payload, "count", minimum=0),
        fraction=fraction,
        zone=_string(payload, "zone"),
        instance_type=_string(payload, "instance_type"),
    )


def parse_release(payload: Mapping[str, Any]) -> ReleaseOrder:
    _only(payload, ("instance_ids",))
    if payload.get("instance_ids") is None:
        raise ValidationFailed("instance_ids", "is required")
    return ReleaseOrder(instance_ids=_id_list(payload, "instance_ids"))


def parse_faults(payload: Mapping[str, Any]) -> FaultsUpdate:
    _only(payload, FAULT_FIELDS)
    values: dict[str, float] = {}
    for key in FAULT_RATES:
        rate = _number(payload, key, minimum=0.0)
        if rate is not None:
            if rate > 1:
                raise ValidationFailed(key, f"must be between 0 and 1, got {rate}")
            values[key] = rate
    for key in FAULT_DURATIONS:
        duration = _number(payload, key, minimum=0.0)
        if duration is not None:
            values[key] = duration
    if "rate_limits" not in payload:
        return FaultsUpdate(values=values)
    raw = payload["rate_limits"]
    if raw is None:
        return FaultsUpdate(values=values, clear_rate_limits=True)
    return FaultsUpdate(values=values, rate_limits=parse_rate_limits(raw, "rate_limits"))


def parse_rate_limits(raw: Any, field: str) -> dict[str, float | None]:
    """``{action: calls per second}``; ``None`` or 0 means unlimited."""
    if not isinstance(raw, Mapping):
        raise ValidationFailed(field, f"must be a table of action = calls per second, got {raw!r}")
    limits: dict[str, float | None] = {}
    for action, rate in raw.items():
        where = f"{field}.{action}"
        if not isinstance(action, str) or not action.isalnum():
            raise ValidationFailed(where, "must be an API action name such as RunInstances")
        if rate is None:
            limits[action] = None
            continue
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not math.isfinite(rate):
            raise ValidationFailed(where, f"expected a number of calls per second, got {rate!r}")
        if rate < 0:
            raise ValidationFailed(where, f"must be 0 (unlimited) or more, got {rate}")
        limits[action] = float(rate) if rate > 0 else None
    return limits


def _only(payload: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    if not isinstance(payload, Mapping):
        raise ValidationFailed("body", "must be a JSON object")
    for key in payload:
        if key not in allowed:
            raise ValidationFailed(
                str(key), f"unknown field (expected one of {', '.join(allowed)})"
            )


def _string(payload: Mapping[str, Any], key: str, *, required: bool = False) -> Any:
    value = payload.get(key)
    if value is None:
        if required:
            raise ValidationFailed(key, "is required")
        return None
    if not isinstance(value, str) or not value:
        raise ValidationFailed(key, f"expected a non-empty string, got {value!r}")
    return value


def _number(
    payload: Mapping[str, Any], key: str, *, minimum: float, positive: bool = False
) -> float | None:
    value = payload.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationFailed(key, f"expected a number, got {value!r}")
    if value < minimum or (positive and value <= 0):
        rule = "greater than" if positive else "at least"
        raise ValidationFailed(key, f"must be {rule} {minimum:g}, got {value}")
    return float(value)


def _integer(payload: Mapping[str, Any], key: str, *, minimum: int) -> int | None:
    value = payload.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationFailed(key, f"expected a whole number, got {value!r}")
    if value < minimum:
        raise ValidationFailed(key, f"must be at least {minimum}, got {value}")
    return value


def _id_list(payload: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = payload.get(key)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationFailed(key, f"expected a list of instance ids, got {value!r}")
    return tuple(value)
