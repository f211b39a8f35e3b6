"""Typed values that cross the CVM client's boundary.

The reconcile daemon speaks these, never JSON dicts: a launch is described once as a
:class:`LaunchRequest`, so the same value can be retried (same ``client_token``, same body) and
priced. They are frozen so that a value handed to the client cannot change between a timeout and
its retry. No httpx here: the models are shared with code that must not import the wire layer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType

from controller.errors import ValidationFailed

#: Tencent rejects longer tokens with ``InvalidClientToken.TooLong``.
CLIENT_TOKEN_MAX = 64
_DECIMAL = re.compile(r"^\d+(\.\d+)?$")


def _frozen_mapping(value: Mapping[str, str]) -> Mapping[str, str]:
    """A read-only copy, so a caller mutating its dict cannot change a request in flight."""
    return MappingProxyType(dict(value))


#: Tencent's charge types: spot, and pay-as-you-go (on-demand, billed by the hour).
SPOT = "SPOTPAID"
ON_DEMAND = "POSTPAID_BY_HOUR"
CHARGE_TYPES = (SPOT, ON_DEMAND)


@dataclass(frozen=True)
class Offering:
    """A (zone, instance type, charge type) market: the key capacity is tried and backed off by.

    Spot and pay-as-you-go stock of one pool are sold (and run out) separately, so a sold-out
    spot pool must not block its pay-as-you-go twin. ``str`` is the form status reasons and
    logs show: ``ap-guangzhou-3/S2.MEDIUM4`` for spot, exactly as before charge types existed,
    and ``ap-guangzhou-3/S2.MEDIUM4 pay-as-you-go`` otherwise.
    """

    zone: str
    instance_type: str
    charge_type: str = SPOT

    @property
    def spot(self) -> bool:
        return self.charge_type == SPOT

    def as_charge(self, charge_type: str) -> Offering:
        return Offering(self.zone, self.instance_type, charge_type)

    def __str__(self) -> str:
        shown = f"{self.zone}/{self.instance_type}"
        return shown if self.spot else f"{shown} pay-as-you-go"


@dataclass(frozen=True)
class LaunchRequest:
    """One RunInstances call, complete enough to be repeated byte for byte.

    ``client_token`` is the idempotency key: the client never invents one, so the caller derives
    it from the exact request (a changed parameter needs a new token). ``max_price`` is a decimal
    string because Tencent takes ``MaxPrice`` as a string and a float would round-trip badly.
    ``tags`` are sent as ``TagSpecification`` with ``ResourceType=instance``; ``user_data`` is
    base64 and is never shown in a repr or an error message. ``charge_type`` is spot unless
    the launch is pay-as-you-go, which is sent without market options (``max_price`` is then
    kept only as the environment's bid, not sent).
    """

    zone: str
    instance_type: str
    image_id: str
    max_price: str
    count: int
    client_token: str
    tags: Mapping[str, str]
    instance_name: str | None = None
    project_id: int | None = None
    security_group_ids: tuple[str, ...] = ()
    vpc_id: str | None = None
    subnet_id: str | None = None
    key_ids: tuple[str, ...] = ()
    user_data: str | None = field(default=None, repr=False)
    charge_type: str = SPOT
    launch_options: str | None = None  # canonical JSON: SystemDisk, DataDisks, ... as given

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", _frozen_mapping(self.tags))
        object.__setattr__(self, "security_group_ids", tuple(self.security_group_ids))
        object.__setattr__(self, "key_ids", tuple(self.key_ids))
        if self.charge_type not in CHARGE_TYPES:
            raise ValidationFailed("charge_type", f"must be one of {', '.join(CHARGE_TYPES)}")
        if not self.client_token or len(self.client_token) > CLIENT_TOKEN_MAX:
            raise ValidationFailed("client_token", f"must be 1 to {CLIENT_TOKEN_MAX} characters")
        if not self.client_token.isascii() or not self.client_token.isprintable():
            raise ValidationFailed("client_token", "must be printable ASCII")
        if self.count < 1:
            raise ValidationFailed("count", "must be at least 1")
        if not _DECIMAL.match(self.max_price):
            raise ValidationFailed("max_price", "must be a decimal string such as 0.60")
        if Decimal(self.max_price) <= 0:
            raise ValidationFailed("max_price", "must be greater than 0")
        for name in ("zone", "instance_type", "image_id"):
            if not getattr(self, name):
                raise ValidationFailed(name, "must not be empty")
        if (self.vpc_id is None) != (self.subnet_id is None):
            raise ValidationFailed("vpc_id", "vpc_id and subnet_id go together")


@dataclass(frozen=True)
class Instance:
    """One CVM instance as DescribeInstances shows it.

    ``created_time`` is tz-aware UTC (``None`` when Tencent omits it); ``latest_operation_error``
    carries ``LatestOperationErrorMsg``, the only explanation of a ``LAUNCH_FAILED``.
    """

    instance_id: str
    state: str
    zone: str
    instance_type: str
    created_time: datetime | None
    tags: Mapping[str, str]
    image_id: str | None = None
    instance_name: str | None = None
    charge_type: str | None = None
    latest_operation_error: str | None = None
    private_ips: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", _frozen_mapping(self.tags))
        object.__setattr__(self, "private_ips", tuple(self.private_ips))


@dataclass(frozen=True)
class LaunchResult:
    """RunInstances accepted the launch: the ids exist (``PENDING``), they are not yet running."""

    instance_ids: tuple[str, ...]
    request_id: str


@dataclass(frozen=True)
class PoolOffering:
    """One pool (zone, instance type, charge type) from DescribeZoneInstanceConfigInfos.

    ``status`` is ``SELL`` or ``SOLD_OUT``; ``status_category`` grades the stock
    (``EnoughStock`` ... ``WithoutStock``); ``unit_price`` is the spot price per hour (the
    discounted price when Tencent gives one); ``memory`` is in GB as Tencent reports it.
    """

    zone: str
    instance_type: str
    status: str
    status_category: str | None
    unit_price: float | None
    cpu: int | None
    memory: int | None
    charge_type: str = SPOT
