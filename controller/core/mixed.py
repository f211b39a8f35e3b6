"""Planning for an environment with a capacity policy: offerings, prices, the cap, statuses.

Pure, like the planner that calls it for every environment whose policy is not the default
(an all-spot environment without a cap keeps the planner's own path, byte for byte). What to
terminate and to launch by charge type and role comes from :mod:`controller.core.allocation`;
this module picks the offering for each (the environment's priority order, spot or
pay-as-you-go), holds launches to ``max_hourly_spend``, and says why in statuses and notes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

from controller.core.allocation import Members, Want, allocate, group_of
from controller.core.backoff import Block
from controller.core.choose import candidates, choose, held_by_pool, open_candidates
from controller.core.events import Event
from controller.core.instances import ON_DEMAND, SPOT, Offering
from controller.core.model import (
    GOING_CLOUD_STATES,
    UNHEALTHY_CLOUD_STATES,
    EndReason,
    Node,
    NodeState,
    Role,
)
from controller.core.plan import (
    Change,
    EnvStatus,
    LaunchOrder,
    Note,
    Plan,
    Snapshot,
    StatusReport,
    older_than,
)
from controller.core.spec import EnvironmentSpec

STAMP = "%Y-%m-%dT%H:%M:%SZ"


def open_offering(
    snap: Snapshot, env_id: str, offerings: Sequence[Offering]
) -> tuple[Offering | None, list[Block]]:
    """The first offering no active block covers, and the blocks met before it."""
    blocked: list[Block] = []
    for offering in offerings:
        blocks = [
            b
            for b in (snap.blocks.get((None, offering)), snap.blocks.get((env_id, offering)))
            if b is not None and b.active(snap.now)
        ]
        if not blocks:
            return offering, blocked
        blocked.extend(blocks)
    return None, blocked


def spot_down_since(
    snap: Snapshot, spec: EnvironmentSpec, offerings: Sequence[Offering]
) -> datetime | None:
    """Since when every spot offering of ``spec`` has been blocked (None: one is open)."""
    latest: datetime | None = None
    for offering in offerings:
        active = [
            b
            for b in (snap.blocks.get((None, offering)), snap.blocks.get((spec.id, offering)))
            if b is not None and b.active(snap.now)
        ]
        if not active:
            return None
        since = min((b.since or snap.now) for b in active)
        latest = since if latest is None else max(latest, since)
    return latest


def unit_price(
    offering: Offering, spec: EnvironmentSpec, prices: Mapping[Offering, Decimal]
) -> Decimal | None:
    """What one instance costs an hour: spot at the market price, never above the bid (the
    bid when the market price is not known); pay-as-you-go at its listed price (or None)."""
    known = prices.get(offering)
    if offering.spot:
        bid = Decimal(spec.max_price)
        return bid if known is None else min(known, bid)
    return known


def node_price(node: Node, spec: EnvironmentSpec, prices: Mapping[Offering, Decimal]) -> Decimal:
    if node.hourly_price:
        return Decimal(node.hourly_price)
    return unit_price(node.offering, spec, prices) or Decimal(0)


def _still_in_cloud(
    snap: Snapshot, node: Node, state: Mapping[str, NodeState], cloud: Mapping[str, str | None]
) -> bool:
    """Being terminated and still PENDING or RUNNING: within the disruption budget. Once the
    cloud shows it going, or has just accepted its TerminateInstances, it runs no more (an
    accepted request that has not taken effect by the retry counts again)."""
    if state.get(node.id, node.state) != NodeState.DELETING:
        return False
    if cloud.get(node.id, node.cloud_state) in GOING_CLOUD_STATES:
        return False
    asked = snap.terminate_requested.get(node.instance_id or "")
    return asked is None or older_than(asked, snap.now, snap.policy.terminate_retry_s)


def plan_mixed(
    snap: Snapshot,
    spec: EnvironmentSpec,
    nodes: list[Node],
    launching: int,
    adopted: int,
    state: Mapping[str, NodeState],
    cloud: Mapping[str, str | None],
    out: Plan,
    change: Change,
) -> None:
    policy = spec.capacity
    desired = spec.desired_count
    alive = [
        n for n in nodes if state.get(n.id, n.state) in (NodeState.CREATING, NodeState.RUNNING)
    ]
    submitted = [n for n in nodes if state.get(n.id, n.state) == NodeState.SUBMITTED]
    running_ids = frozenset(n.id for n in alive if state.get(n.id, n.state) == NodeState.RUNNING)
    deleting = sum(_still_in_cloud(snap, n, state, cloud) for n in nodes)
    unnamed = adopted + max(0, launching - len(submitted))
    members = Members(alive, submitted, running_ids, unnamed, deleting)

    def rank(node: Node) -> tuple[int, float]:
        cs = cloud.get(node.id, node.cloud_state)
        now_state = state.get(node.id, node.state)
        group = 0 if cs in UNHEALTHY_CLOUD_STATES else 1 if now_state == NodeState.CREATING else 2
        if node.id in spec.terminate_node_ids:  # asked by TerminateComputeNodes
            group = -1
        return group, -(node.launched_at or node.created_at).timestamp()

    placing = not spec.placement.is_default
    in_pools = held_by_pool((*alive, *submitted))
    if placing:  # the strategy chooses among the candidates on sale, per launch
        spot_offerings = candidates(snap, spec, SPOT)
        od_offerings = candidates(snap, spec, ON_DEMAND)
        spot_list, spot_blocked = open_candidates(snap, spec, spot_offerings)
        od_list, od_blocked = open_candidates(snap, spec, od_offerings)
        spot = spot_list[0] if spot_list else None
        on_demand = od_list[0] if od_list else None
    else:
        spot_offerings = list(spec.offerings)
        od_offerings = [o.as_charge(ON_DEMAND) for o in spec.offerings]
        spot, spot_blocked = open_offering(snap, spec.id, spot_offerings)
        on_demand, od_blocked = open_offering(snap, spec.id, od_offerings)
    down_since = spot_down_since(snap, spec, spot_offerings)
    due_at = down_since + timedelta(seconds=policy.compensate_after_s) if down_since else None
    hold = snap.holds.get(spec.id)
    held = hold is not None and hold.active(snap.now)
    result = allocate(
        desired,
        policy,
        members,
        spot_open=spot is not None and not held,
        on_demand_open=on_demand is not None and not held,
        compensation_due=due_at is not None and snap.now >= due_at,
        rank=rank,
    )
    for node, why in result.victims:
        compensating = group_of(node) == "compensation"
        end = EndReason.REPLACED if compensating else EndReason.SCALE_IN
        if compensating:
            out.notes.append(
                Note(spec.id, Event.REPLACEMENT_DONE, {"instance_ids": [node.instance_id]})
            )
        change(node, NodeState.DELETING, Event.INSTANCE_TERMINATING, end_reason=end, detail=why)
    if result.compensation_ended:
        out.notes.append(
            Note(spec.id, Event.COMPENSATION_ENDED, {"reason": "spot capacity is back"})
        )
    size = members.size - len(result.victims)
    # Spend: what runs and is in flight, each at the price it was (or will be) bought at.
    leaving = {n.id for n, _ in result.victims}
    spend = sum(
        (node_price(n, spec, snap.prices) for n in (*alive, *submitted) if n.id not in leaving),
        Decimal(0),
    )
    capped_reason = ""
    launched = 0
    shown: Offering | None = None
    for want in result.wants:
        if placing:
            pool = spot_offerings if want.charge_type != ON_DEMAND else od_offerings
            chosen = choose(snap, spec, pool, want.count, in_pools)
            placed = [(p.offering, p.count, p.why) for p in chosen]
        else:
            offering = spot if want.charge_type != ON_DEMAND else on_demand
            assert offering is not None  # allocate() wants only what is open
            placed = [(offering, want.count, "")]
        for offering, part_count, why in placed:
            count, price, capped = _launch_part(
                snap, spec, want, offering, part_count, why, spend, size, spot_blocked, out
            )
            capped_reason = capped or capped_reason
            if count <= 0:
                continue
            spend += (price or Decimal(0)) * count
            launched += count
            size += count
            shown = shown or offering
    if capped_reason and spot is not None and not result.victims and not members.deleting:
        _make_room(spec, alive, running_ids, unit_price(spot, spec, snap.prices), rank, out, change)
    waiting = due_at if policy.compensate_with_on_demand and result.gap else None
    if waiting is not None and snap.now < waiting:
        out.wake_at.append(waiting)  # compensation becomes due then, with nothing else new
    counts = _counts(nodes, state)
    status: EnvStatus
    reason: str
    next_attempt: datetime | None
    if held and hold is not None:
        status, reason, next_attempt = EnvStatus.ERROR, hold.reason, hold.until
    elif capped_reason:
        status, reason, next_attempt = EnvStatus.CAPPED, capped_reason, None
    elif size < desired and not launched:
        status, reason, next_attempt = _short(desired - size, spot_blocked + od_blocked, waiting)
    elif launched:
        status, reason, next_attempt = EnvStatus.SCALING, f"launching {launched} in {shown}", None
    elif counts["pending"] or launching or counts["deleting"]:
        parts = [
            f"{n} {what}"
            for n, what in (
                (launching, "launching"),
                (counts["pending"], "pending"),
                (counts["deleting"], "terminating"),
            )
            if n
        ]
        status, reason, next_attempt = EnvStatus.SCALING, "waiting for " + ", ".join(parts), None
    else:
        split = _split_text(nodes, state)
        status, reason = EnvStatus.READY, f"{counts['running']} of {desired} running{split}"
        next_attempt = None
    out.statuses.append(
        StatusReport(
            spec.id,
            status,
            reason,
            counts["running"],
            counts["pending"],
            launching + launched,
            next_attempt,
        )
    )


def _launch_part(
    snap: Snapshot,
    spec: EnvironmentSpec,
    want: Want,
    offering: Offering,
    count: int,
    why: str,
    spend: Decimal,
    size: int,
    spot_blocked: list[Block],
    out: Plan,
) -> tuple[int, Decimal | None, str]:
    """Launch orders for ``count`` of ``want`` in ``offering``, held to the spend cap:
    (how many, at what unit price, why capped or "")."""
    policy = spec.capacity
    price = unit_price(offering, spec, snap.prices)
    capped_reason = ""
    if policy.max_hourly_spend is not None:
        if price is None or price <= 0:
            capped_reason = (
                f"capped by max_hourly_spend {policy.max_hourly_spend:.2f} CNY/h: "
                f"no price known for {offering} yet"
            )
            count = 0
        else:
            affordable = int(
                ((policy.max_hourly_spend - spend) / price).to_integral_value(ROUND_FLOOR)
            )
            if affordable < count:
                count = max(0, affordable)
                capped_reason = (
                    f"capped by max_hourly_spend {policy.max_hourly_spend:.2f} CNY/h: "
                    f"{spend:.2f} CNY/h running, next instance {price:.2f} CNY/h"
                )
    if count <= 0:
        return 0, price, capped_reason
    cause = _cause(want, count, size, spec.desired_count, spot_blocked, policy.compensate_after_s)
    _note_launch(out, spec.id, want, count, cause)
    if why:
        cause = f"{cause}; {why}"
    remaining = count
    while remaining > 0:
        batch = min(remaining, snap.policy.launch_batch_max)
        out.launches.append(
            LaunchOrder(spec.id, offering, batch, cause, want.role.value, _price_text(price))
        )
        remaining -= batch
    return count, price, capped_reason


def _counts(nodes: list[Node], state: Mapping[str, NodeState]) -> dict[str, int]:
    counts = {"running": 0, "pending": 0, "deleting": 0}
    for n in nodes:
        now_state = state.get(n.id, n.state)
        if now_state == NodeState.RUNNING:
            counts["running"] += 1
        elif now_state == NodeState.CREATING:
            counts["pending"] += 1
        elif now_state == NodeState.DELETING:
            counts["deleting"] += 1
    return counts


def _split_text(nodes: list[Node], state: Mapping[str, NodeState]) -> str:
    groups = {"spot": 0, "on_demand": 0, "compensation": 0}
    for n in nodes:
        if state.get(n.id, n.state) == NodeState.RUNNING:
            groups[group_of(n)] += 1
    od = groups["on_demand"] + groups["compensation"]
    if not od:
        return ""
    comp = f", {groups['compensation']} compensating" if groups["compensation"] else ""
    return f" ({groups['spot']} spot, {od} pay-as-you-go{comp})"


def _short(
    deficit: int, blocked: list[Block], waiting: datetime | None
) -> tuple[EnvStatus, str, datetime | None]:
    """Short and nothing to launch: why, and when the next attempt (or compensation) is."""
    if not blocked:
        return EnvStatus.BACKOFF, f"short by {deficit}", waiting
    errors = [b for b in blocked if b.is_error]
    soonest = min(blocked, key=lambda b: b.until)
    next_attempt = soonest.until if waiting is None else min(soonest.until, waiting)
    status = EnvStatus.ERROR if errors and len(errors) == len(blocked) else EnvStatus.BACKOFF
    shown = errors[0] if status == EnvStatus.ERROR else soonest
    reason = f"short by {deficit}: {shown.reason}; next attempt at {soonest.until.strftime(STAMP)}"
    if waiting is not None:
        reason += f"; pay-as-you-go compensation at {waiting.strftime(STAMP)}"
    return status, reason, next_attempt


def _cause(
    want: Want, count: int, size: int, desired: int, spot_blocked: list[Block], after_s: int
) -> str:
    if want.role == Role.COMPENSATION:
        codes = list(dict.fromkeys(b.reason.split(" in ")[0] for b in spot_blocked))
        return (
            f"compensate for {count} spot instances unavailable: "
            f"{', '.join(codes) or 'no spot offering open'} in every spot offering for {after_s} s"
        )
    if want.replaces:
        plural = "s" if len(want.replaces) > 1 else ""
        return f"replace compensation instance{plural} {', '.join(want.replaces)} with spot"
    if size >= desired:
        return f"rebalance to the capacity policy: {count} {want.role.value} replacing others"
    return f"increase the capacity from {size} to {desired}"


def _note_launch(out: Plan, env_id: str, want: Want, count: int, cause: str) -> None:
    if want.role == Role.COMPENSATION:
        out.notes.append(Note(env_id, Event.COMPENSATION_STARTED, {"count": count, "cause": cause}))
    elif want.replaces:
        fields = {"count": count, "replaces": list(want.replaces), "cause": cause}
        out.notes.append(Note(env_id, Event.REPLACEMENT_STARTED, fields))


def _make_room(
    spec: EnvironmentSpec,
    alive: list[Node],
    running_ids: frozenset[str],
    spot_price: Decimal | None,
    rank: Callable[[Node], tuple[int, float]],
    out: Plan,
    change: Change,
) -> None:
    """Capped with compensation running while spot is back: launch-before-terminate has no
    headroom under the cap, so the way back would never start. One compensation instance that
    costs more than its spot replacement is terminated first (one at a time, only when nothing
    else is being terminated): its price buys more spot than it gave. The environment is
    short because of the cap already, not because of the replacement."""
    candidates = [
        n
        for n in alive
        if n.id in running_ids
        and group_of(n) == "compensation"
        and spot_price is not None
        and node_price(n, spec, {}) > spot_price
    ]
    if not candidates:
        return
    victim = sorted(candidates, key=rank)[0]
    detail = "making room under max_hourly_spend for cheaper spot"
    out.notes.append(Note(spec.id, Event.REPLACEMENT_DONE, {"instance_ids": [victim.instance_id]}))
    change(
        victim,
        NodeState.DELETING,
        Event.INSTANCE_TERMINATING,
        end_reason=EndReason.REPLACED,
        detail=detail,
    )


def _price_text(price: Decimal | None) -> str | None:
    return None if price is None else format(price.normalize(), "f")
