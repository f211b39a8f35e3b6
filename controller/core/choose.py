"""The placement policy applied to a snapshot: an environment's candidate offerings, which
of them are open, and where each launch of a charge type goes.

Pure. :mod:`controller.core.placement` holds the strategies; this module feeds them from the
snapshot (backoff blocks, the offering cache, the environment's members) for the planner
(:mod:`controller.core.mixed`), which calls it only for an environment whose placement is not
the default (the default keeps the first open offering in the user's order, as before).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal

from controller.core.backoff import Block
from controller.core.instances import Offering
from controller.core.model import Node
from controller.core.placement import Placement, attribute_types, eligible, place
from controller.core.plan import Snapshot
from controller.core.spec import EnvironmentSpec


def candidates(snap: Snapshot, spec: EnvironmentSpec, charge_type: str) -> list[Offering]:
    """The named types in every zone (priority order), then the market's types matching the
    environment's attributes, in the zones that sell them."""
    named = [o.as_charge(charge_type) for o in spec.offerings]
    known = {o.instance_type for o in named}
    extra = [
        Offering(zone, itype, charge_type)
        for itype in attribute_types(spec.placement, spec.zones, snap.market, charge_type)
        if itype not in known
        for zone in spec.zones
        if Offering(zone, itype, charge_type) in snap.market
    ]
    return named + extra


def active_blocks(snap: Snapshot, env_id: str, offering: Offering) -> list[Block]:
    return [
        b
        for b in (snap.blocks.get((None, offering)), snap.blocks.get((env_id, offering)))
        if b is not None and b.active(snap.now)
    ]


def opener(snap: Snapshot, env_id: str) -> Callable[[Offering], bool]:
    return lambda offering: not active_blocks(snap, env_id, offering)


def open_candidates(
    snap: Snapshot, spec: EnvironmentSpec, offerings: Sequence[Offering]
) -> tuple[list[Offering], list[Block]]:
    """The offerings the strategy may choose now, and the blocks of the others."""
    is_open = opener(snap, spec.id)
    bid = Decimal(spec.max_price)
    chosen = eligible(offerings, snap.market, is_open, bid, spec.placement.allocation_strategy)
    blocked = [b for o in offerings for b in active_blocks(snap, spec.id, o)]
    return chosen, blocked


def held_by_pool(nodes: Iterable[Node]) -> Counter[tuple[str, str]]:
    """The environment's members per (zone, type), whatever their charge type."""
    return Counter((n.zone, n.instance_type) for n in nodes)


def choose(
    snap: Snapshot,
    spec: EnvironmentSpec,
    offerings: Sequence[Offering],
    count: int,
    held: Counter[tuple[str, str]],
) -> list[Placement]:
    """Where ``count`` instances go; ``held`` is updated with them (the next want sees them)."""
    placements = place(
        count,
        spec.placement,
        offerings,
        snap.market,
        held,
        is_open=opener(snap, spec.id),
        bid=Decimal(spec.max_price),
    )
    for p in placements:
        held[(p.offering.zone, p.offering.instance_type)] += p.count
    return placements
