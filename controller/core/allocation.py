"""How an environment with a capacity policy splits, compensates and returns to spot.

Pure arithmetic over counts and nodes, tested as tables: the planner
(:mod:`controller.core.mixed`) hands it the environment's members and whether spot can be
had, and gets back which members to terminate and what to launch, by charge type and role.

The rules (issue 15):
- the split: the first ``on_demand_base_count`` instances are pay-as-you-go, and of the rest
  ``on_demand_percentage`` %, rounded up (Tencent Auto Scaling's rounding);
- compensation: the spot part that spot cannot fill (every spot offering blocked) for
  ``compensate_after_s`` is filled with pay-as-you-go instances of role ``compensation``;
- the way back, and a rebalance after a policy change: a replacement is launched first, and
  what it replaces is terminated only once enough instances run that the environment stays
  at desired; the environment never holds more than desired + the disruption budget;
- scale-in order: compensation first, then pay-as-you-go above the policy's share, then spot
  above its share; within each group unhealthy, pending, then the newest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from controller.core.capacity import CapacityPolicy
from controller.core.instances import ON_DEMAND, SPOT
from controller.core.model import Node, Role


def split(desired: int, policy: CapacityPolicy) -> tuple[int, int]:
    """(pay-as-you-go, spot) of ``desired``: the base first, then the percentage rounded up."""
    base = min(policy.on_demand_base_count, desired)
    above = desired - base
    on_demand = base + -(-above * policy.on_demand_percentage // 100)
    return on_demand, desired - on_demand


def group_of(node: Node) -> str:
    """``compensation``, ``on_demand`` (base or share) or ``spot``: what a member stands for."""
    if node.role == Role.COMPENSATION.value:
        return "compensation"
    return "on_demand" if node.charge_type == ON_DEMAND else "spot"


@dataclass(frozen=True)
class Members:
    """An environment's instances as allocation counts them.

    ``alive`` are CREATING or RUNNING nodes (the only ones that can be terminated);
    ``submitted`` are nodes whose launch is not answered; ``unnamed`` counts capacity in
    flight without a node yet (adopted this pass), counted as spot; ``deleting`` counts
    instances being terminated, which no longer count toward desired but still exist.
    """

    alive: Sequence[Node]
    submitted: Sequence[Node]
    running: frozenset[str]  # ids of the alive nodes that run (as they will after this plan)
    unnamed: int = 0
    deleting: int = 0  # being terminated: still in the cloud, so still within the budget

    def total(self, group: str) -> int:
        count = sum(group_of(n) == group for n in (*self.alive, *self.submitted))
        return count + (self.unnamed if group == "spot" else 0)

    @property
    def size(self) -> int:
        return len(self.alive) + len(self.submitted) + self.unnamed


@dataclass(frozen=True)
class Want:
    """Launch ``count`` instances of ``charge_type`` in role ``role``."""

    charge_type: str
    role: Role
    count: int
    replaces: tuple[str, ...] = ()  # instance ids of the compensation instances it replaces


@dataclass
class Allocation:
    victims: list[tuple[Node, str]] = field(default_factory=list)  # node, why
    wants: list[Want] = field(default_factory=list)
    gap: int = 0  # spot capacity missing that compensation does not (yet) cover
    compensation_due: bool = False  # the gap may be filled with pay-as-you-go now
    compensating: int = 0  # compensation members after this plan
    compensation_ended: bool = False  # the last compensation member is being terminated


def allocate(
    desired: int,
    policy: CapacityPolicy,
    members: Members,
    *,
    spot_open: bool,
    on_demand_open: bool,
    compensation_due: bool,
    rank: Callable[[Node], tuple[int, float]],
) -> Allocation:
    """What to terminate and launch so the environment moves toward its split.

    ``spot_open``/``on_demand_open``: some offering of that charge type may be tried now.
    ``compensation_due``: every spot offering has been unavailable for ``compensate_after_s``.
    ``rank`` orders members within a group for termination (lowest first).
    """
    out = Allocation()
    od_target, spot_target = split(desired, policy)
    budget = policy.budget(desired)
    totals = {g: members.total(g) for g in ("compensation", "on_demand", "spot")}
    by_group: dict[str, list[Node]] = {"compensation": [], "on_demand": [], "spot": []}
    for node in members.alive:
        by_group[group_of(node)].append(node)
    # Unwanted, in scale-in order: compensation no longer standing in for missing spot, then
    # each charge type above its share.
    still_needed = max(0, spot_target - totals["spot"])
    excess = {
        "compensation": max(0, totals["compensation"] - still_needed),
        "on_demand": max(0, totals["on_demand"] - od_target),
        "spot": max(0, totals["spot"] - spot_target),
    }
    unwanted: list[tuple[Node, str]] = []
    for group, why in (
        ("compensation", "spot capacity is back"),
        ("on_demand", "pay-as-you-go above the policy's share"),
        ("spot", "spot above the policy's share"),
    ):
        ranked = sorted(by_group[group], key=rank)
        unwanted += [(n, why) for n in ranked[: excess[group]]]
    running = len(members.running)
    pending_unwanted = sum(n.id not in members.running for n, _ in unwanted)
    # Remove what runs beyond desired (a replacement has taken over), and whatever is pending
    # and unwanted (a scale-in), never what would leave fewer than desired while the
    # replacements are still coming up.
    k = min(len(unwanted), max(0, running - desired + pending_unwanted))
    out.victims = unwanted[:k]
    for node, _ in out.victims:
        totals[group_of(node)] -= 1
    out.compensating = totals["compensation"]
    out.compensation_ended = (
        bool(out.victims)
        and totals["compensation"] == 0
        and any(group_of(n) == "compensation" for n, _ in out.victims)
    )
    size = members.size - k
    # At most desired + budget in the cloud, counting what is still being terminated: a
    # shortage is launched whole, a replacement only within the budget.
    in_cloud = size + members.deleting + k
    room = max(0, desired + budget - in_cloud)
    od_missing = max(0, od_target - totals["on_demand"])
    if od_missing and on_demand_open:
        count = min(od_missing, max(desired - size, room))
        if count:
            base_left = max(0, min(policy.on_demand_base_count, desired) - _base(members, out))
            if base_left:
                out.wants.append(Want(ON_DEMAND, Role.BASE, min(count, base_left)))
            if count > base_left:
                out.wants.append(Want(ON_DEMAND, Role.ON_DEMAND, count - base_left))
            size += count
            in_cloud += count
    spot_missing = max(0, spot_target - totals["spot"])
    out.gap = max(0, spot_missing - totals["compensation"])
    if spot_missing and spot_open:
        # A real shortage (the gap) is launched whole; replacing compensation is budgeted.
        replacing = min(spot_missing - out.gap, max(0, desired + budget - in_cloud - out.gap))
        count = out.gap + replacing
        if count:
            comp_ids = tuple(
                n.instance_id or n.id for n in sorted(by_group["compensation"], key=rank)
            )
            out.wants.append(Want(SPOT, Role.SPOT, count, comp_ids[:replacing]))
            out.gap = 0
    elif out.gap and compensation_due and policy.compensate_with_on_demand and on_demand_open:
        count = min(out.gap, max(0, desired - size))
        if count:
            out.wants.append(Want(ON_DEMAND, Role.COMPENSATION, count))
            out.compensation_due = True
    return out


def _base(members: Members, out: Allocation) -> int:
    """Base members still there after this plan's terminations."""
    leaving = {n.id for n, _ in out.victims}
    return sum(
        n.role == Role.BASE.value and n.id not in leaving
        for n in (*members.alive, *members.submitted)
    )
