"""An environment's placement policy: which offering each launch goes to, and why.

Pure, tested as tables. The planner hands :func:`place` the environment's candidate
offerings in priority order (types, then zones), the offering cache's view of the market,
what the environment already holds per pool, and which offerings are open (no backoff);
it gets back (offering, count, why) per launch batch. Running instances are never moved.

Strategies (the names of Tencent Auto Scaling and EC2 Fleet):
- ``PRIORITY``: the first open offering in the user's order (the controller's behaviour
  before this policy existed);
- ``COST_OPTIMIZED``: the cheapest per vCPU among the offerings on sale;
- ``CAPACITY_OPTIMIZED``: the best stock class first, ties by priority;
- ``PRICE_CAPACITY_OPTIMIZED``: leave out ``UnderStock`` and ``WithoutStock`` while a better
  class is on sale, then the cheapest per vCPU.
Spot offerings priced above the bid are never chosen (by any strategy but PRIORITY, which
knows no prices and learns from the launch's refusal, as before). ``zone_balance EQUALITY``
spreads the environment over its zones, and ``max_pool_share`` caps any one (zone, type).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from controller.core.capacity import INTEGER_RE
from controller.core.instances import Offering
from controller.errors import ValidationFailed

PRIORITY = "PRIORITY"
COST_OPTIMIZED = "COST_OPTIMIZED"
CAPACITY_OPTIMIZED = "CAPACITY_OPTIMIZED"
PRICE_CAPACITY_OPTIMIZED = "PRICE_CAPACITY_OPTIMIZED"
STRATEGIES = (PRIORITY, COST_OPTIMIZED, CAPACITY_OPTIMIZED, PRICE_CAPACITY_OPTIMIZED)
EQUALITY = "EQUALITY"
ZONE_BALANCES = (PRIORITY, EQUALITY)
# Tencent's StatusCategory, best first.
STOCK_CLASSES = ("EnoughStock", "NormalStock", "UnderStock", "WithoutStock")
LOW_STOCK = frozenset({"UnderStock", "WithoutStock"})
MAX_ATTRIBUTE_TYPES = 10  # types matched by instance_cpu/memory/families (as InstanceTypes)
MAX_INSTANCE_CPU = 256
MAX_INSTANCE_MEMORY = 4096  # GB
MAX_FAMILIES = 10
FAMILY_RE = re.compile(r"[A-Z][A-Z0-9]*[a-z]?")

PLACEMENT_COLUMNS = (
    "allocation_strategy",
    "zone_balance",
    "max_pool_share",
    "instance_cpu",
    "instance_memory",
    "instance_families",
)


@dataclass(frozen=True)
class PlacementPolicy:
    """How an environment chooses among its offerings; the defaults are the user's order."""

    allocation_strategy: str = PRIORITY
    zone_balance: str = PRIORITY
    max_pool_share: int = 100  # percent of the environment's instances in one (zone, type)
    instance_cpu: int | None = None  # attribute-based types: vCPUs, exactly
    instance_memory: int | None = None  # GB, exactly
    instance_families: tuple[str, ...] = ()  # e.g. ("S5", "SA2")

    @property
    def is_default(self) -> bool:
        return self == DEFAULT_PLACEMENT

    @property
    def by_attributes(self) -> bool:
        return (
            self.instance_cpu is not None
            or self.instance_memory is not None
            or bool(self.instance_families)
        )

    @property
    def needs_market(self) -> bool:
        """The offering cache must be read for this environment."""
        return self.allocation_strategy != PRIORITY or self.by_attributes


DEFAULT_PLACEMENT = PlacementPolicy()


@dataclass(frozen=True)
class MarketOffer:
    """One offering as the cache last saw it (DescribeZoneInstanceConfigInfos)."""

    status: str  # SELL | SOLD_OUT
    stock_class: str | None  # StatusCategory
    price: Decimal | None  # CNY per hour (the discounted price)
    cpu: int | None
    memory: int | None  # GB

    @property
    def on_sale(self) -> bool:
        return self.status == "SELL" and self.stock_class != "WithoutStock"

    def per_vcpu(self) -> Decimal | None:
        if self.price is None:
            return None
        return self.price / self.cpu if self.cpu else self.price


@dataclass(frozen=True)
class Placement:
    """``count`` instances to launch in ``offering``; ``why`` it was chosen."""

    offering: Offering
    count: int
    why: str


def _family(instance_type: str) -> str:
    return instance_type.partition(".")[0]


def attribute_types(
    policy: PlacementPolicy,
    zones: Sequence[str],
    market: Mapping[Offering, MarketOffer],
    charge_type: str,
) -> list[str]:
    """Types of the market matching the policy's attributes in one of ``zones``: at most
    :data:`MAX_ATTRIBUTE_TYPES`, the cheapest per vCPU first (then by name, stably)."""
    if not policy.by_attributes:
        return []
    best: dict[str, Decimal] = {}
    for offering, offer in market.items():
        if offering.charge_type != charge_type or offering.zone not in zones:
            continue
        if policy.instance_cpu is not None and offer.cpu != policy.instance_cpu:
            continue
        if policy.instance_memory is not None and offer.memory != policy.instance_memory:
            continue
        if policy.instance_families and _family(offering.instance_type) not in (
            policy.instance_families
        ):
            continue
        price = offer.per_vcpu()
        key = price if price is not None else Decimal("Infinity")
        best[offering.instance_type] = min(best.get(offering.instance_type, key), key)
    ranked = sorted(best, key=lambda t: (best[t], t))
    return ranked[:MAX_ATTRIBUTE_TYPES]


def stock_level(offer: MarketOffer) -> int:
    """3 EnoughStock, 2 NormalStock, 1 UnderStock, 0 WithoutStock or not on sale."""
    if offer.status != "SELL" or offer.stock_class not in STOCK_CLASSES:
        return 0 if offer.status != "SELL" else 2
    return 3 - STOCK_CLASSES.index(offer.stock_class)


def _class_rank(offer: MarketOffer | None) -> int:
    if offer is None or offer.stock_class not in STOCK_CLASSES:
        return 1  # unknown: as NormalStock, so a cold cache neither prefers nor drops it
    return STOCK_CLASSES.index(offer.stock_class)


def _ranked(
    strategy: str,
    candidates: Sequence[Offering],
    market: Mapping[Offering, MarketOffer],
) -> tuple[list[Offering], str]:
    """The candidates in the strategy's order, and the reason the first one leads."""
    index = {o: i for i, o in enumerate(candidates)}
    infinity = Decimal("Infinity")

    def price(o: Offering) -> Decimal:
        offer = market.get(o)
        value = offer.per_vcpu() if offer is not None else None
        return infinity if value is None else value

    if strategy == COST_OPTIMIZED:
        return sorted(candidates, key=lambda o: (price(o), index[o])), "cheapest per vCPU"
    if strategy == CAPACITY_OPTIMIZED:
        ranked = sorted(candidates, key=lambda o: (_class_rank(market.get(o)), index[o]))
        return ranked, "most stock"
    if strategy == PRICE_CAPACITY_OPTIMIZED:
        best = min((_class_rank(market.get(o)) for o in candidates), default=0)
        kept = [o for o in candidates if best >= 2 or _class_rank(market.get(o)) < 2]
        return sorted(kept, key=lambda o: (price(o), index[o])), "cheapest per vCPU with stock"
    return list(candidates), "first open in priority order"


def eligible(
    candidates: Sequence[Offering],
    market: Mapping[Offering, MarketOffer],
    is_open: Callable[[Offering], bool],
    bid: Decimal | None,
    strategy: str,
) -> list[Offering]:
    """The candidates that may be tried now: open, and for a strategy that reads the
    market, not sold out and (spot) not priced above the bid."""
    out = []
    for offering in candidates:
        if not is_open(offering):
            continue
        offer = market.get(offering)
        if strategy != PRIORITY and offer is not None:
            if not offer.on_sale:
                continue
            too_dear = offer.price is not None and bid is not None and offer.price > bid
            if offering.spot and too_dear:
                continue
        out.append(offering)
    return out


def _describe(why: str, offering: Offering, offer: MarketOffer | None) -> str:
    if offer is None or offer.price is None:
        return f"{why}: {offering.instance_type} in {offering.zone}"
    per = offer.per_vcpu()
    unit = "CNY/vCPU-h" if offer.cpu else "CNY/h"
    stock = f", {offer.stock_class}" if offer.stock_class else ""
    return f"{why}: {offering.instance_type} in {offering.zone} at {per:.3f} {unit}{stock}"


def place(
    count: int,
    policy: PlacementPolicy,
    candidates: Sequence[Offering],
    market: Mapping[Offering, MarketOffer],
    held: Mapping[tuple[str, str], int],
    *,
    is_open: Callable[[Offering], bool],
    bid: Decimal | None,
) -> list[Placement]:
    """Where to launch ``count`` instances; empty when no candidate may be tried.

    ``held``: the environment's instances alive or in flight per (zone, type), of every
    charge type (a reclaim storm takes a pool's instances whatever they cost).
    """
    if count <= 0:
        return []
    strategy = policy.allocation_strategy
    open_ = eligible(candidates, market, is_open, bid, strategy)
    if not open_:
        return []
    ranked, why = _ranked(strategy, open_, market)
    total = sum(held.values()) + count
    cap = max(1, total * policy.max_pool_share // 100)
    pools: Counter[tuple[str, str]] = Counter(held)
    zones: Counter[str] = Counter()
    for (zone, _), n in held.items():
        zones[zone] += n
    zone_order = list(dict.fromkeys(o.zone for o in ranked))
    chosen: Counter[Offering] = Counter()
    capped = spread = False
    for _ in range(count):
        under_cap = [o for o in ranked if pools[(o.zone, o.instance_type)] < cap]
        pick_from = under_cap or ranked  # nothing else can sell: the cap gives way
        if len(under_cap) < len(ranked):
            capped = True
        if policy.zone_balance == EQUALITY:
            open_zones = [z for z in zone_order if any(o.zone == z for o in pick_from)]
            zone = min(open_zones, key=lambda z: (zones[z], zone_order.index(z)))
            pick = next(o for o in pick_from if o.zone == zone)
            if pick != pick_from[0]:
                spread = True
        else:
            pick = pick_from[0]
        chosen[pick] += 1
        pools[(pick.zone, pick.instance_type)] += 1
        zones[pick.zone] += 1
    out = []
    for offering in ranked:
        n = chosen.get(offering, 0)
        if not n:
            continue
        text = _describe(why, offering, market.get(offering))
        if spread or (policy.zone_balance == EQUALITY and len(chosen) > 1):
            text += "; spread over zones (EQUALITY)"
        if capped and policy.max_pool_share < 100:
            text += f"; at most {policy.max_pool_share} % in one pool"
        out.append(Placement(offering, n, text))
    return out


def _whole(raw: Any, field_name: str, low: int, high: int) -> int:
    text = "" if raw is None else str(raw).strip()
    if not INTEGER_RE.fullmatch(text) or not low <= int(text) <= high:
        raise ValidationFailed(
            field_name, f"must be a whole number from {low} to {high}, got {raw!r}"
        )
    return int(text)


def _choice(raw: Any, field_name: str, allowed: Sequence[str], default: str) -> str:
    if raw is None or str(raw).strip() == "":
        return default
    value = str(raw).strip().upper()
    if value not in allowed:
        raise ValidationFailed(field_name, f"must be one of {', '.join(allowed)}, got {raw!r}")
    return value


def validate_placement(row: Mapping[str, Any]) -> PlacementPolicy:
    """The placement columns; a missing (NULL) value takes its default."""
    get = row.get
    strategy = _choice(get("allocation_strategy"), "allocation_strategy", STRATEGIES, PRIORITY)
    balance = _choice(get("zone_balance"), "zone_balance", ZONE_BALANCES, PRIORITY)
    share = get("max_pool_share")
    cpu, memory = get("instance_cpu"), get("instance_memory")
    parts = str(get("instance_families") or "").split(",")
    families = tuple(dict.fromkeys(p.strip() for p in parts if p.strip()))
    for family in families:
        if not FAMILY_RE.fullmatch(family):
            raise ValidationFailed(
                "instance_families", f"{family!r} is malformed (expected e.g. S5,SA2)"
            )
    if len(families) > MAX_FAMILIES:
        raise ValidationFailed("instance_families", f"at most {MAX_FAMILIES} families")
    return PlacementPolicy(
        allocation_strategy=strategy,
        zone_balance=balance,
        max_pool_share=100 if share is None else _whole(share, "max_pool_share", 1, 100),
        instance_cpu=None if cpu is None else _whole(cpu, "instance_cpu", 1, MAX_INSTANCE_CPU),
        instance_memory=None
        if memory is None
        else _whole(memory, "instance_memory", 1, MAX_INSTANCE_MEMORY),
        instance_families=families,
    )
