"""The placement strategies as tables: candidates + market + what is held -> where to launch.

Pure: no database, no HTTP, no clock. The planner-level cases (a snapshot with a market)
are at the end, for the spot/on-demand mix and the default's unchanged path.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from controller.core.capacity import CapacityPolicy
from controller.core.instances import ON_DEMAND, SPOT, Offering
from controller.core.placement import (
    DEFAULT_PLACEMENT,
    MAX_ATTRIBUTE_TYPES,
    MarketOffer,
    PlacementPolicy,
    attribute_types,
    place,
    validate_placement,
)
from controller.core.plan import Snapshot
from controller.core.planner import plan
from controller.core.spec import EnvironmentSpec, parse_environment
from controller.errors import ValidationFailed

G3, G4, G6 = "ap-guangzhou-3", "ap-guangzhou-4", "ap-guangzhou-6"
A = Offering(G3, "S2.MEDIUM4")  # 2 vCPUs
B = Offering(G4, "S2.MEDIUM4")
C = Offering(G6, "S5.LARGE8")  # 4 vCPUs
D = Offering(G3, "S5.LARGE8")
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def offer(
    price: str, stock: str = "EnoughStock", cpu: int = 2, status: str = "SELL"
) -> MarketOffer:
    return MarketOffer(status, stock, Decimal(price), cpu, cpu * 2)


# A: 0.060/vCPU, Enough; B: 0.050/vCPU, UnderStock; C: 0.045/vCPU, Normal; D: 0.055, Enough.
MARKET = {
    A: offer("0.12"),
    B: offer("0.10", "UnderStock"),
    C: offer("0.18", "NormalStock", cpu=4),
    D: offer("0.22", cpu=4),
}
CANDIDATES = (A, B, C, D)


def run(
    count: int,
    held: dict[tuple[str, str], int] | None = None,
    market: dict[Offering, MarketOffer] | None = None,
    blocked: tuple[Offering, ...] = (),
    bid: str = "0.60",
    **policy: Any,
) -> list[tuple[Offering, int]]:
    result = place(
        count,
        PlacementPolicy(**policy),
        CANDIDATES,
        MARKET if market is None else market,
        Counter(held or {}),
        is_open=lambda o: o not in blocked,
        bid=Decimal(bid),
    )
    return [(p.offering, p.count) for p in result]


@pytest.mark.parametrize(
    ("policy", "kwargs", "expected"),
    [
        # PRIORITY: the first open offering in order, whatever it costs.
        ({}, {}, [(A, 4)]),
        ({}, {"blocked": (A,)}, [(B, 4)]),
        # COST_OPTIMIZED: cheapest per vCPU (B at 0.05 beats A at 0.06; C at 0.045 beats B).
        ({"allocation_strategy": "COST_OPTIMIZED"}, {}, [(C, 4)]),
        ({"allocation_strategy": "COST_OPTIMIZED"}, {"blocked": (C,)}, [(B, 4)]),
        # CAPACITY_OPTIMIZED: best stock class, ties by priority (A and D Enough: A first).
        ({"allocation_strategy": "CAPACITY_OPTIMIZED"}, {}, [(A, 4)]),
        ({"allocation_strategy": "CAPACITY_OPTIMIZED"}, {"blocked": (A, D)}, [(C, 4)]),
        # PRICE_CAPACITY_OPTIMIZED: drop UnderStock B, then cheapest per vCPU: C.
        ({"allocation_strategy": "PRICE_CAPACITY_OPTIMIZED"}, {"blocked": (C,)}, [(D, 4)]),
        ({"allocation_strategy": "PRICE_CAPACITY_OPTIMIZED"}, {}, [(C, 4)]),
        # above the bid: never chosen for spot (C costs 0.18, D 0.22)
        ({"allocation_strategy": "COST_OPTIMIZED"}, {"bid": "0.15"}, [(B, 4)]),
        ({"allocation_strategy": "PRICE_CAPACITY_OPTIMIZED"}, {"bid": "0.15"}, [(A, 4)]),
        # EQUALITY: spread over the zones with stock (G4 sells only UnderStock B: left out)
        (
            {"allocation_strategy": "PRICE_CAPACITY_OPTIMIZED", "zone_balance": "EQUALITY"},
            {},
            [(C, 2), (D, 2)],
        ),
        (
            {"allocation_strategy": "COST_OPTIMIZED", "zone_balance": "EQUALITY"},
            {},
            [(C, 2), (B, 1), (D, 1)],
        ),
        # EQUALITY tops up the emptiest zone first
        (
            {"zone_balance": "EQUALITY"},
            {"held": {(G3, "S2.MEDIUM4"): 3}},
            [(B, 2), (C, 2)],
        ),
        # max_pool_share 50: of 4 instances, at most 2 in one pool
        ({"allocation_strategy": "COST_OPTIMIZED", "max_pool_share": 50}, {}, [(C, 2), (B, 2)]),
        # when nothing else can sell, the cap gives way
        ({"max_pool_share": 25}, {"blocked": (B, C, D)}, [(A, 4)]),
    ],
)
def test_strategies(policy: dict[str, Any], kwargs: dict[str, Any], expected: Any) -> None:
    assert run(4, **policy, **kwargs) == expected


def test_sold_out_and_without_stock_are_skipped_by_market_strategies() -> None:
    market = {**MARKET, C: offer("0.18", "WithoutStock", cpu=4), B: offer("0.1", status="SOLD_OUT")}
    assert run(2, market=market, allocation_strategy="COST_OPTIMIZED") == [(D, 2)]
    assert run(2, market=market) == [(A, 2)]  # PRIORITY reads no market


def test_price_capacity_keeps_low_stock_when_nothing_better_sells() -> None:
    market = {o: offer("0.1", "UnderStock") for o in CANDIDATES}
    market[B] = offer("0.05", "UnderStock")
    assert run(3, market=market, allocation_strategy="PRICE_CAPACITY_OPTIMIZED") == [(B, 3)]


def test_unknown_offerings_come_after_priced_ones() -> None:
    assert run(1, market={B: offer("0.5")}, allocation_strategy="COST_OPTIMIZED") == [(B, 1)]
    assert run(1, market={}, allocation_strategy="COST_OPTIMIZED") == [(A, 1)]


def test_equality_counts_differ_by_at_most_one() -> None:
    result = run(10, zone_balance="EQUALITY", allocation_strategy="COST_OPTIMIZED")
    zones = Counter[str]()
    for offering, n in result:
        zones[offering.zone] += n
    assert sorted(zones.values()) == [3, 3, 4]


def test_why_names_the_offering_its_price_and_stock() -> None:
    [chosen] = place(
        2,
        PlacementPolicy(allocation_strategy="PRICE_CAPACITY_OPTIMIZED"),
        CANDIDATES,
        MARKET,
        Counter(),
        is_open=lambda o: True,
        bid=Decimal("0.6"),
    )
    assert chosen.why == (
        "cheapest per vCPU with stock: S5.LARGE8 in ap-guangzhou-6 at 0.045 CNY/vCPU-h, NormalStock"
    )


def test_nothing_open_places_nothing() -> None:
    assert run(3, blocked=CANDIDATES) == []
    assert run(0) == []


def test_attribute_types_match_cpu_memory_family_capped() -> None:
    market = {Offering(G3, f"S{i}.LARGE8"): offer(f"0.{10 + i}", cpu=4) for i in range(1, 15)}
    market[Offering(G3, "SA2.MEDIUM4")] = offer("0.01")
    market[Offering(G4, "M5.LARGE8")] = offer("0.01", cpu=4)  # zone not the environment's
    by_cpu = attribute_types(PlacementPolicy(instance_cpu=4), [G3], market, SPOT)
    assert len(by_cpu) == MAX_ATTRIBUTE_TYPES
    assert by_cpu[0] == "S1.LARGE8"
    by_family = attribute_types(PlacementPolicy(instance_families=("SA2",)), [G3], market, SPOT)
    assert by_family == ["SA2.MEDIUM4"]
    by_memory = attribute_types(PlacementPolicy(instance_memory=4), [G3, G4], market, SPOT)
    assert by_memory == ["SA2.MEDIUM4"]
    assert attribute_types(PlacementPolicy(instance_cpu=4), [G3], market, ON_DEMAND) == []
    assert attribute_types(DEFAULT_PLACEMENT, [G3], market, SPOT) == []


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"allocation_strategy": "CHEAPEST"}, "allocation_strategy"),
        ({"zone_balance": "ROUND_ROBIN"}, "zone_balance"),
        ({"max_pool_share": "0"}, "max_pool_share"),
        ({"max_pool_share": "101"}, "max_pool_share"),
        ({"max_pool_share": "1_0"}, "max_pool_share"),
        ({"instance_cpu": "0"}, "instance_cpu"),
        ({"instance_memory": "abc"}, "instance_memory"),
        ({"instance_families": "S5,s-5"}, "instance_families"),
    ],
)
def test_invalid_placement_names_the_field(row: dict[str, str], field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_placement(row)
    assert caught.value.field == field


def test_defaults_and_parsing() -> None:
    assert validate_placement({}) == DEFAULT_PLACEMENT
    assert DEFAULT_PLACEMENT.is_default
    assert not DEFAULT_PLACEMENT.needs_market
    parsed = validate_placement(
        {
            "allocation_strategy": "price_capacity_optimized",
            "zone_balance": "EQUALITY",
            "max_pool_share": "40",
            "instance_cpu": "2",
            "instance_families": "S5, SA2,S5",
        }
    )
    assert parsed == PlacementPolicy(
        "PRICE_CAPACITY_OPTIMIZED", "EQUALITY", 40, 2, None, ("S5", "SA2")
    )


# ---- through the planner -------------------------------------------------------------------


def spec(**placement: Any) -> EnvironmentSpec:
    row = {
        "id": "env-aaaaaaaa",
        "name": "batch",
        "zone": G3,
        "fallback_zones": f"{G4},{G6}",
        "instance_type": "S2.MEDIUM4",
        "fallback_instance_types": "S5.LARGE8",
        "image_id": "img-pmqg1cw7",
        "max_price": "0.6",
        "desired_count": 6,
        **placement,
    }
    return parse_environment(row, "ap-guangzhou")


def snapshot(env: EnvironmentSpec, market: dict[Offering, MarketOffer]) -> Snapshot:
    return Snapshot(
        now=NOW,
        environments={env.id: env},
        invalid={},
        nodes=[],
        launches=[],
        launches_in_flight=frozenset(),
        observation=None,
        blocks={},
        holds={},
        market=market,
    )


WIDE = {
    Offering(G3, "S2.MEDIUM4"): offer("0.12"),
    Offering(G4, "S2.MEDIUM4"): offer("0.13"),
    Offering(G6, "S2.MEDIUM4"): offer("0.08", "UnderStock"),
    Offering(G3, "S5.LARGE8"): offer("0.20", cpu=4),
    Offering(G4, "S5.LARGE8"): offer("0.18", cpu=4),
    Offering(G6, "S5.LARGE8"): offer("0.16", cpu=4),
}


def test_planner_default_keeps_the_first_offering() -> None:
    out = plan(snapshot(spec(), WIDE))
    assert [(o.offering, o.count) for o in out.launches] == [(Offering(G3, "S2.MEDIUM4"), 6)]
    assert out.launches[0].cause == "increase the capacity from 0 to 6"


def test_planner_price_capacity_with_equality_spreads_cheap_pools_with_stock() -> None:
    env = spec(allocation_strategy="PRICE_CAPACITY_OPTIMIZED", zone_balance="EQUALITY")
    out = plan(snapshot(env, WIDE))
    placed = {(o.offering.zone, o.offering.instance_type): o.count for o in out.launches}
    # G6/S2 is UnderStock: left out; cheapest per vCPU with stock: S5.LARGE8 in each zone
    assert placed == {(G6, "S5.LARGE8"): 2, (G4, "S5.LARGE8"): 2, (G3, "S5.LARGE8"): 2}
    assert "cheapest per vCPU with stock: S5.LARGE8 in ap-guangzhou-6" in out.launches[0].cause
    assert out.launches[0].cause.startswith("increase the capacity from 0 to 6")


def test_planner_mix_places_on_demand_by_its_own_prices() -> None:
    env = spec(allocation_strategy="COST_OPTIMIZED")
    env = EnvironmentSpec(**{**env.__dict__, "capacity": CapacityPolicy(on_demand_base_count=2)})
    market = dict(WIDE)
    market[Offering(G4, "S2.MEDIUM4", ON_DEMAND)] = offer("0.40")
    market[Offering(G3, "S2.MEDIUM4", ON_DEMAND)] = offer("0.50")
    out = plan(snapshot(env, market))
    placed = [(o.offering, o.count, o.role) for o in out.launches]
    assert placed == [
        (Offering(G4, "S2.MEDIUM4", ON_DEMAND), 2, "base"),
        (Offering(G6, "S2.MEDIUM4"), 4, "spot"),
    ]


def test_planner_attribute_types_join_the_candidates() -> None:
    env = spec(allocation_strategy="COST_OPTIMIZED", instance_families="SA2")
    market = {**WIDE, Offering(G4, "SA2.MEDIUM4"): offer("0.02")}
    out = plan(snapshot(env, market))
    assert [(o.offering, o.count) for o in out.launches] == [(Offering(G4, "SA2.MEDIUM4"), 6)]


def test_planner_attributes_may_stand_instead_of_named_types() -> None:
    env = spec(
        instance_type="",
        fallback_instance_types="",
        allocation_strategy="COST_OPTIMIZED",
        instance_cpu="4",
    )
    assert env.offerings == ()
    assert env.zones == (G3, G4, G6)
    out = plan(snapshot(env, WIDE))
    assert [(o.offering, o.count) for o in out.launches] == [(Offering(G6, "S5.LARGE8"), 6)]


def test_a_type_is_required_without_attributes() -> None:
    with pytest.raises(ValidationFailed) as caught:
        spec(instance_type="", fallback_instance_types="")
    assert caught.value.field == "instance_type"
    assert "instance_families" in str(caught.value)
