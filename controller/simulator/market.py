"""The spot market: pools of (zone, instance type), their price, stock and quota.

A pool's *capacity* is what it can hold for this account; its *stock* (what it can still
sell) is derived as capacity minus the instances alive in it, so stock goes down on launch and
comes back when an instance ends without any bookkeeping that could drift. Lowering the
capacity below the live count is a stock cut: the caller reclaims the excess.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

ZONE_PATTERN = re.compile(r"^[a-z]+(-[a-z]+)+-[0-9]+$")
REGION_PATTERN = re.compile(r"^[a-z]+(-[a-z]+)+$")
INSTANCE_TYPE_PATTERN = re.compile(r"^[A-Z][A-Za-z0-9]*\.[0-9]*[A-Z]+[0-9]+$")

# vCPUs of the size word of an instance type name (S5.MEDIUM4 -> MEDIUM -> 2).
_SIZE_CPUS = {
    "SMALL": 1,
    "MEDIUM": 2,
    "LARGE": 4,
    "2XLARGE": 8,
    "3XLARGE": 12,
    "4XLARGE": 16,
    "6XLARGE": 24,
    "8XLARGE": 32,
    "12XLARGE": 48,
    "16XLARGE": 64,
}
_SIZE = re.compile(r"^([0-9]*[A-Z]+?)([0-9]+)$")

# Spot price = on-demand price x this, when a pool does not say otherwise (Tencent's spot
# discount is typically 80%).
SPOT_DISCOUNT = 0.2

_FAMILY_NAMES = {
    "S": "Standard",
    "SA": "Standard AMD",
    "C": "Compute",
    "M": "Memory Optimized",
    "MA": "Memory Optimized AMD",
    "IT": "High IO",
    "GN": "GPU Compute",
}


def region_of(zone: str) -> str:
    """``ap-guangzhou-3`` -> ``ap-guangzhou``: Tencent zones are their region plus a number."""
    return zone.rsplit("-", 1)[0]


def spec_of(instance_type: str) -> tuple[int, int]:
    """(vCPUs, memory GB) read from the type name, (2, 4) when the name does not tell."""
    _, _, size = instance_type.partition(".")
    match = _SIZE.match(size)
    if match is None or match.group(1) not in _SIZE_CPUS:
        return 2, 4
    return _SIZE_CPUS[match.group(1)], int(match.group(2))


def family_of(instance_type: str) -> str:
    """``SA3.LARGE8`` -> ``SA3``."""
    return instance_type.partition(".")[0]


def type_name_of(instance_type: str) -> str:
    """A human name such as ``Standard AMD SA3``, as TypeName shows it."""
    family = family_of(instance_type)
    letters = family.rstrip("0123456789")
    return f"{_FAMILY_NAMES.get(letters, 'General')} {family}"


DEFAULT_ON_DEMAND_STOCK = 1_000_000  # pay-as-you-go stock is sold apart from spot: large


# StatusCategory from the instances a pool can still sell; the thresholds are the simulator's
# choice (Tencent documents only the names): 0 WithoutStock, 1-9 UnderStock, 10-99
# NormalStock, 100 or more EnoughStock.
UNDER_STOCK_BELOW = 10
NORMAL_STOCK_BELOW = 100


def stock_class(stock: int) -> str:
    if stock <= 0:
        return "WithoutStock"
    if stock < UNDER_STOCK_BELOW:
        return "UnderStock"
    if stock < NORMAL_STOCK_BELOW:
        return "NormalStock"
    return "EnoughStock"


@dataclass
class Pool:
    """One (zone, instance type) pool as this account sees it.

    ``price`` and ``on_demand_price`` are CNY per hour; ``capacity`` and ``quota`` count
    instances; ``held`` counts the instances alive in the pool (any state until gone).
    """

    zone: str
    instance_type: str
    price: float
    capacity: int
    quota: int
    cpu: int
    memory: int
    on_demand_price: float
    held: int = 0  # alive instances of both charge types
    spot: bool = True  # False: sold pay-as-you-go only (NoInstanceTypeSupportSpot for SPOTPAID)
    on_demand_capacity: int = DEFAULT_ON_DEMAND_STOCK
    on_demand_held: int = 0  # of which pay-as-you-go

    @property
    def region(self) -> str:
        return region_of(self.zone)

    @property
    def stock(self) -> int:
        """Spot instances the pool can still sell (pay-as-you-go stock is apart)."""
        return max(0, self.capacity - (self.held - self.on_demand_held))

    @property
    def on_demand_stock(self) -> int:
        return max(0, self.on_demand_capacity - self.on_demand_held)

    @property
    def status(self) -> str:
        return "SELL" if self.stock > 0 else "SOLD_OUT"

    @property
    def status_category(self) -> str:
        """Tencent's coarse stock signal of the spot stock (see :func:`stock_class`)."""
        return stock_class(self.stock)

    @property
    def on_demand_status_category(self) -> str:
        return stock_class(self.on_demand_stock)

    def view(self) -> dict[str, object]:
        """The admin API's view of the pool."""
        return {
            "zone": self.zone,
            "region": self.region,
            "instance_type": self.instance_type,
            "price": self.price,
            "on_demand_price": self.on_demand_price,
            "capacity": self.capacity,
            "stock": self.stock,
            "alive": self.held,
            "quota": self.quota,
            "cpu": self.cpu,
            "memory": self.memory,
            "status": self.status,
            "status_category": self.status_category,
            "spot": self.spot,
        }


# Default market: spot prices in CNY/hour close to Tencent's public spot prices in 2024
# (on-demand x ~0.2), varied per zone so a controller has a cheapest pool to prefer.
_DEFAULT_TYPES: dict[str, tuple[float, tuple[str, ...]]] = {
    # type: (spot price in the reference zone, zones selling it)
    "S2.MEDIUM4": (
        0.12,
        ("ap-guangzhou-3", "ap-guangzhou-4", "ap-shanghai-2", "ap-shanghai-4"),
    ),
    "S5.SMALL2": (0.05, ()),
    "S5.MEDIUM4": (0.10, ()),
    "S5.LARGE8": (0.19, ()),
    "SA2.MEDIUM4": (0.08, ()),
    "SA2.LARGE8": (0.16, ()),
    "SA3.MEDIUM4": (
        0.09,
        ("ap-guangzhou-6", "ap-guangzhou-7", "ap-shanghai-4", "ap-shanghai-5"),
    ),
    "SA3.LARGE8": (
        0.17,
        ("ap-guangzhou-6", "ap-guangzhou-7", "ap-shanghai-4", "ap-shanghai-5"),
    ),
}
_DEFAULT_ZONES: dict[str, float] = {
    # zone: price factor; every zone is one of controller.core.regions (checked below)
    "ap-guangzhou-3": 1.00,
    "ap-guangzhou-4": 1.05,
    "ap-guangzhou-6": 0.95,
    "ap-guangzhou-7": 1.10,
    "ap-shanghai-2": 1.02,
    "ap-shanghai-4": 0.98,
    "ap-shanghai-5": 1.08,
    "ap-beijing-5": 1.04,
    "ap-beijing-6": 0.97,
    "ap-beijing-7": 1.06,
    "ap-nanjing-1": 0.92,
    "ap-nanjing-2": 0.94,
    "ap-nanjing-3": 0.96,
    "ap-chengdu-1": 0.93,
    "ap-chengdu-2": 0.99,
    "ap-hongkong-2": 1.30,
    "ap-hongkong-3": 1.25,
    "ap-singapore-3": 1.35,
    "ap-singapore-4": 1.32,
}
# Types the market sells pay-as-you-go only, in the reference zone of each region that has one:
# a SPOTPAID request for them is refused with UnsupportedOperation.NoInstanceTypeSupportSpot.
ON_DEMAND_ONLY: tuple[tuple[str, str, float], ...] = (
    # (zone, instance type, on-demand price CNY/hour)
    ("ap-guangzhou-3", "GN7.2XLARGE32", 8.68),
    ("ap-shanghai-4", "GN7.2XLARGE32", 8.68),
)
DEFAULT_STOCK = 5000
DEFAULT_QUOTA = 10000
# A wider choice in ap-guangzhou (issue 16): more families and sizes, each priced per zone
# with a spread of its own (+-10 %, fixed by the names), so the cheapest zone differs by type.
_GUANGZHOU = ("ap-guangzhou-3", "ap-guangzhou-4", "ap-guangzhou-6", "ap-guangzhou-7")
_WIDE_TYPES: dict[str, float] = {
    # type: spot price in the reference zone, CNY/hour (on-demand: / SPOT_DISCOUNT)
    "S5.2XLARGE16": 0.38,
    "S6.MEDIUM4": 0.095,
    "S6.LARGE8": 0.18,
    "S6.2XLARGE16": 0.35,
    "SA5.MEDIUM4": 0.075,
    "SA5.LARGE8": 0.145,
    "C5.LARGE8": 0.21,
    "C5.2XLARGE16": 0.41,
    "M5.MEDIUM8": 0.13,
    "M5.LARGE16": 0.25,
}


def wide_factor(zone: str, instance_type: str) -> float:
    """The per-zone price factor of a wide-market type: 0.90 to 1.10, stable across runs."""
    return 0.90 + (zlib.crc32(f"{zone}/{instance_type}".encode()) % 21) / 100


def default_pools() -> list[tuple[str, str, float]]:
    """(zone, instance type, spot price) of the default market, in a stable order."""
    pools = []
    for zone, factor in _DEFAULT_ZONES.items():
        for instance_type, (price, zones) in _DEFAULT_TYPES.items():
            if zones and zone not in zones:
                continue
            pools.append((zone, instance_type, round(price * factor, 4)))
        if zone in _GUANGZHOU:
            for instance_type, price in _WIDE_TYPES.items():
                wide = price * factor * wide_factor(zone, instance_type)
                pools.append((zone, instance_type, round(wide, 4)))
    return pools
