"""The capacity policy's arithmetic as tables: split, compensation, the way back, scale-in order.

Each row is a fleet (members by group and state) and what spot / pay-as-you-go can be had;
the expected outcome is what to terminate (by group) and what to launch (charge type, role,
count). The planner wiring is tested against the simulator in tests/reconcile.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from controller.core.allocation import Members, allocate, group_of, split
from controller.core.capacity import CapacityPolicy, validate_capacity
from controller.core.instances import ON_DEMAND, SPOT
from controller.core.model import Node, NodeState, Role
from controller.errors import ValidationFailed

T0 = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("desired", "base", "percentage", "expected"),
    [
        (5, 0, 50, (3, 2)),  # the example: rounded up
        (5, 0, 0, (0, 5)),
        (5, 0, 100, (5, 0)),
        (10, 2, 50, (6, 4)),
        (10, 2, 0, (2, 8)),
        (1, 3, 0, (1, 0)),  # the base is capped at desired
        (0, 2, 50, (0, 0)),
        (7, 0, 1, (1, 6)),  # any share above the base rounds up to one
        (3, 1, 70, (3, 0)),  # 1 + ceil(2 x 0.7) = 3
    ],
)
def test_split_base_first_then_percentage_rounded_up(
    desired: int, base: int, percentage: int, expected: tuple[int, int]
) -> None:
    policy = CapacityPolicy(on_demand_base_count=base, on_demand_percentage=percentage)
    assert split(desired, policy) == expected


def _nodes(spec: str) -> tuple[list[Node], list[Node], frozenset[str]]:
    """``"S:R S:P C:R O:R B:R s"``: spot / compensation / on-demand / base, Running / Pending;
    a lowercase letter alone is a submitted (unanswered) node. Later nodes are newer."""
    alive: list[Node] = []
    submitted: list[Node] = []
    running: set[str] = set()
    for index, token in enumerate(spec.split()):
        kind, _, how = token.partition(":")
        role = {"S": Role.SPOT, "C": Role.COMPENSATION, "O": Role.ON_DEMAND, "B": Role.BASE}[
            kind.upper()
        ]
        node = Node(
            id=f"node-{index:03d}",
            env_id="env-1",
            state=NodeState.SUBMITTED,
            zone="ap-guangzhou-3",
            instance_type="S5.MEDIUM4",
            created_at=T0 + timedelta(seconds=index),
            instance_id=f"ins-{index:03d}",
            charge_type=SPOT if role == Role.SPOT else ON_DEMAND,
            role=role.value,
        )
        if kind.islower():
            submitted.append(node)
            continue
        node.state = NodeState.RUNNING if how == "R" else NodeState.CREATING
        if how == "R":
            running.add(node.id)
        alive.append(node)
    return alive, submitted, frozenset(running)


def _rank(node: Node) -> tuple[int, float]:
    return (1 if node.state == NodeState.CREATING else 2), -node.created_at.timestamp()


def _run(
    desired: int, policy: CapacityPolicy, fleet: str, **kw: bool
) -> tuple[list[str], list[tuple[str, str, int]]]:
    alive, submitted, running = _nodes(fleet)
    options = {"spot_open": True, "on_demand_open": True, "compensation_due": False, **kw}
    result = allocate(desired, policy, Members(alive, submitted, running), rank=_rank, **options)
    victims = [f"{group_of(n)}:{'R' if n.id in running else 'P'}" for n, _ in result.victims]
    wants = [(w.charge_type, w.role.value, w.count) for w in result.wants]
    return victims, wants


COMP = CapacityPolicy(compensate_with_on_demand=True, disruption_budget=2)


@pytest.mark.parametrize(
    ("desired", "policy", "fleet", "options", "victims", "wants"),
    [
        # a new environment: the base and the share launched whole, at once
        (
            5,
            CapacityPolicy(on_demand_percentage=50),
            "",
            {},
            [],
            [(ON_DEMAND, "on_demand", 3), (SPOT, "spot", 2)],
        ),
        (
            4,
            CapacityPolicy(on_demand_base_count=1),
            "",
            {},
            [],
            [(ON_DEMAND, "base", 1), (SPOT, "spot", 3)],
        ),
        # spot gone, not yet for long enough: nothing (the status says when)
        (3, COMP, "S:R", {"spot_open": False}, [], []),
        # spot gone for compensate_after_s: pay-as-you-go for the gap
        (
            3,
            COMP,
            "S:R",
            {"spot_open": False, "compensation_due": True},
            [],
            [(ON_DEMAND, "compensation", 2)],
        ),
        # compensation already covers the gap: nothing more
        (3, COMP, "S:R C:R C:R", {"spot_open": False, "compensation_due": True}, [], []),
        # without compensation on, a gap stays a gap
        (
            3,
            CapacityPolicy(disruption_budget=2),
            "S:R",
            {"spot_open": False, "compensation_due": True},
            [],
            [],
        ),
        # spot back: replacements launched within the budget, nothing terminated yet
        (4, COMP, "S:R C:R C:R C:R", {}, [], [(SPOT, "spot", 2)]),
        # replacements pending: no more launches (budget used), no termination (would go below)
        (4, COMP, "S:R C:R C:R C:R S:P S:P", {}, [], []),
        # replacements running: the compensation they replace goes; the next batch waits
        # until it is gone (what is being terminated still counts within the budget)
        (
            4,
            COMP,
            "S:R C:R C:R C:R S:R S:R",
            {},
            ["compensation:R", "compensation:R"],
            [],
        ),
        # one replacement running: exactly one compensation instance goes
        (4, COMP, "S:R C:R C:R C:R S:R S:P", {}, ["compensation:R"], []),
        # scale-in order: compensation first, then pay-as-you-go above share, then spot
        (2, COMP, "S:R S:R C:R", {}, ["compensation:R"], []),
        (
            1,
            CapacityPolicy(on_demand_base_count=1, disruption_budget=1),
            "B:R O:R S:R",
            {},
            ["on_demand:R", "spot:R"],
            [],
        ),
        # scale-in takes pending surplus at once, running only beyond desired
        (1, CapacityPolicy(disruption_budget=1), "S:R S:P S:P", {}, ["spot:P", "spot:P"], []),
        # a policy change (0 % -> 50 %): pay-as-you-go launched within the budget first
        (
            4,
            CapacityPolicy(on_demand_percentage=50, disruption_budget=1),
            "S:R S:R S:R S:R",
            {},
            [],
            [(ON_DEMAND, "on_demand", 1)],
        ),
        # ... and once it runs, one spot above the share goes
        (
            4,
            CapacityPolicy(on_demand_percentage=50, disruption_budget=1),
            "S:R S:R S:R S:R O:R",
            {},
            ["spot:R"],
            [],
        ),
        # ... and once it is gone, the next pay-as-you-go instance starts
        (
            4,
            CapacityPolicy(on_demand_percentage=50, disruption_budget=1),
            "S:R S:R S:R O:R",
            {},
            [],
            [(ON_DEMAND, "on_demand", 1)],
        ),
        # nothing changed: nothing churned
        (4, CapacityPolicy(on_demand_percentage=50), "S:R S:R O:R O:R", {}, [], []),
        # submitted launches count as in flight
        (3, COMP, "S:R s s", {"spot_open": False, "compensation_due": True}, [], []),
        # on-demand sold out too: nothing (the environment stays short, with a reason)
        (
            3,
            COMP,
            "S:R",
            {"spot_open": False, "on_demand_open": False, "compensation_due": True},
            [],
            [],
        ),
    ],
)
def test_allocation(
    desired: int,
    policy: CapacityPolicy,
    fleet: str,
    options: dict[str, bool],
    victims: list[str],
    wants: list[tuple[str, str, int]],
) -> None:
    assert _run(desired, policy, fleet, **options) == (victims, wants)


def test_the_way_back_never_leaves_desired_nor_exceeds_the_budget() -> None:
    """Step a fleet of 10 compensation instances back to spot: every step stays within
    [desired, desired + budget] counting what runs and what is pending."""
    desired, budget = 10, 3
    policy = CapacityPolicy(compensate_with_on_demand=True, disruption_budget=budget)
    fleet = ["C:R"] * desired
    for _ in range(20):
        alive, submitted, running = _nodes(" ".join(fleet))
        result = allocate(
            desired,
            policy,
            Members(alive, submitted, running),
            rank=_rank,
            spot_open=True,
            on_demand_open=True,
            compensation_due=False,
        )
        gone = {n.id for n, _ in result.victims}
        fleet = [t for n, t in zip(alive, fleet, strict=True) if n.id not in gone]
        assert sum(t.endswith(":R") for t in fleet) >= desired
        fleet = [t.replace(":P", ":R") for t in fleet]  # what was pending now runs
        fleet += ["S:P"] * sum(w.count for w in result.wants)
        assert desired <= len(fleet) <= desired + budget
        if fleet == ["S:R"] * desired:
            break
    assert sorted(fleet) == ["S:R"] * desired


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"on_demand_percentage": "101"}, "on_demand_percentage"),
        ({"on_demand_percentage": "-1"}, "on_demand_percentage"),
        ({"on_demand_base_count": "x"}, "on_demand_base_count"),
        ({"compensate_with_on_demand": "maybe"}, "compensate_with_on_demand"),
        ({"compensate_after_s": "-5"}, "compensate_after_s"),
        ({"disruption_budget": "0"}, "disruption_budget"),
        ({"max_hourly_spend": "0"}, "max_hourly_spend"),
        ({"max_hourly_spend": "abc"}, "max_hourly_spend"),
    ],
)
def test_invalid_policy_names_the_field(row: dict[str, str], field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_capacity(row)
    assert caught.value.field == field


def test_defaults_are_the_all_spot_policy_and_budget_is_ten_percent_rounded_up() -> None:
    policy = validate_capacity({})
    assert policy.is_default
    assert [policy.budget(n) for n in (0, 1, 10, 11, 200)] == [1, 1, 1, 2, 20]
    assert validate_capacity({"compensate_with_on_demand": 1, "max_hourly_spend": "3.5"}) == (
        CapacityPolicy(compensate_with_on_demand=True, max_hourly_spend=Decimal("3.5"))
    )
