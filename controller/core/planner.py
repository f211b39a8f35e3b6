"""The pure planning core: desired state + observed state + in-flight work -> actions.

``plan(snapshot)`` performs no I/O and reads no clock: everything it needs is in the snapshot,
so every rule of the controller is tested here as a table of snapshot -> plan. The engine
only observes, records the plan's intents and carries them out. The value types are in
:mod:`controller.core.plan`; what an observation means for the nodes, in
:mod:`controller.core.observing`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from datetime import datetime

from controller.core.backoff import Block
from controller.core.events import Event
from controller.core.instances import Offering
from controller.core.mixed import plan_mixed
from controller.core.model import (
    TERMINABLE_CLOUD_STATES,
    UNHEALTHY_CLOUD_STATES,
    EndReason,
    Node,
    NodeState,
)
from controller.core.observing import observe
from controller.core.plan import (
    TERMINATE_BATCH_MAX,
    Change,
    EnvStatus,
    LaunchOrder,
    NodeChange,
    Plan,
    Snapshot,
    StatusReport,
    TerminateOrder,
    chunks,
    older_than,
)
from controller.core.spec import EnvironmentSpec


def plan(snap: Snapshot) -> Plan:
    out = Plan()
    # States as they will be after this plan's changes, for the nodes it changes; every other
    # node keeps its own (``state.get(n.id, n.state)``). Only changes are stored: copying the
    # state of 100,000 nodes into two dicts on every pass was a fifth of an idle plan.
    state: dict[str, NodeState] = {}
    cloud: dict[str, str | None] = {}

    def change(node: Node, new: NodeState, event: Event, **kw: object) -> None:
        state[node.id] = new
        if "cloud_state" in kw:
            cloud[node.id] = kw["cloud_state"]  # type: ignore[assignment]
        out.node_changes.append(NodeChange(node.id, new, event, **kw))  # type: ignore[arg-type]

    if snap.observation is not None:
        observe(snap, snap.observation, out, change)

    by_env: dict[str, list[Node]] = defaultdict(list)
    for node in snap.nodes:
        by_env[node.env_id].append(node)
    launching: dict[str, int] = defaultdict(int)
    for launch in snap.launches:
        launching[launch.env_id] += launch.count

    # Environments that no longer exist: terminate what they left behind.
    known = set(snap.environments) | set(snap.invalid)
    for env_id, nodes in by_env.items():
        if env_id in known:
            continue
        for node in nodes:
            if state.get(node.id, node.state) in (NodeState.CREATING, NodeState.RUNNING):
                change(
                    node,
                    NodeState.DELETING,
                    Event.INSTANCE_TERMINATING,
                    end_reason=EndReason.ENV_DELETED,
                    detail="environment deleted",
                )

    adopted: Counter[str] = Counter(a.env_id for a in out.adoptions)
    for env_id, spec in snap.environments.items():
        # An environment with a capacity policy mixes charge types; an all-spot one without a
        # cap keeps this module's path exactly as it was before the policy existed.
        # So does one with the default placement (the first open offering in the user's order).
        default = spec.capacity.is_default and spec.placement.is_default
        plan_env = _plan_environment if default else plan_mixed
        plan_env(
            snap,
            spec,
            by_env.get(env_id, []),
            launching[env_id],
            adopted[env_id],
            state,
            cloud,
            out,
            change,
        )
    for env_id, reason in snap.invalid.items():
        nodes = by_env.get(env_id, [])
        out.statuses.append(
            StatusReport(
                env_id,
                EnvStatus.INVALID,
                reason,
                running=sum(state.get(n.id, n.state) == NodeState.RUNNING for n in nodes),
                pending=sum(state.get(n.id, n.state) == NodeState.CREATING for n in nodes),
                launching=launching[env_id],
                next_attempt_at=None,
            )
        )

    _plan_terminations(snap, state, cloud, out)
    return out


def _plan_environment(
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
    # One pass over the environment's nodes (this runs for every node on every pass).
    alive: list[Node] = []
    running = deleting = 0
    for n in nodes:
        now_state = state.get(n.id, n.state)
        if now_state == NodeState.RUNNING:
            running += 1
            alive.append(n)
        elif now_state == NodeState.CREATING:
            alive.append(n)
        elif now_state == NodeState.DELETING:
            deleting += 1
    pending = len(alive) - running
    total = len(alive) + launching + adopted
    desired = spec.desired_count
    next_attempt: datetime | None = None
    status: EnvStatus
    reason = ""

    if total > desired:
        surplus = min(total - desired, len(alive))
        for victim in _scale_in_victims(alive, cloud, spec.terminate_node_ids)[:surplus]:
            change(
                victim,
                NodeState.DELETING,
                Event.INSTANCE_TERMINATING,
                end_reason=EndReason.SCALE_IN,
                detail=f"desired count lowered to {desired}",
            )
        pending = sum(state.get(n.id, n.state) == NodeState.CREATING for n in nodes)
        running = sum(state.get(n.id, n.state) == NodeState.RUNNING for n in nodes)
        deleting = sum(state.get(n.id, n.state) == NodeState.DELETING for n in nodes)

    hold = snap.holds.get(spec.id)
    deficit = desired - total
    if hold is not None and hold.active(snap.now):
        status, reason, next_attempt = EnvStatus.ERROR, hold.reason, hold.until
    elif deficit > 0:
        offering, blocked = _open_offering(snap, spec)
        if offering is not None:
            cause = f"increase the capacity from {total} to {desired}"
            remaining = deficit
            while remaining > 0:
                count = min(remaining, snap.policy.launch_batch_max)
                out.launches.append(LaunchOrder(spec.id, offering, count, cause))
                remaining -= count
            launching += deficit
            status, reason = EnvStatus.SCALING, f"launching {deficit} in {offering}"
        else:
            errors = [b for b in blocked if b.is_error]
            soonest = min(blocked, key=lambda b: b.until)
            next_attempt = soonest.until
            status = (
                EnvStatus.ERROR if errors and len(errors) == len(blocked) else EnvStatus.BACKOFF
            )
            shown = errors[0] if status == EnvStatus.ERROR else soonest
            reason = (
                f"short by {deficit}: {shown.reason}; next attempt at "
                f"{soonest.until.strftime('%Y-%m-%dT%H:%M:%SZ')}"
            )
    elif pending or launching or deleting:
        status = EnvStatus.SCALING
        parts = [
            f"{n} {what}"
            for n, what in (
                (launching, "launching"),
                (pending, "pending"),
                (deleting, "terminating"),
            )
            if n
        ]
        reason = "waiting for " + ", ".join(parts)
    else:
        status, reason = EnvStatus.READY, f"{running} of {desired} running"
    out.statuses.append(
        StatusReport(spec.id, status, reason, running, pending, launching, next_attempt)
    )


def _open_offering(snap: Snapshot, spec: EnvironmentSpec) -> tuple[Offering | None, list[Block]]:
    blocked: list[Block] = []
    for offering in spec.offerings:
        blocks = [
            b
            for b in (snap.blocks.get((None, offering)), snap.blocks.get((spec.id, offering)))
            if b is not None and b.active(snap.now)
        ]
        if not blocks:
            return offering, blocked
        blocked.extend(blocks)
    return None, blocked


def _scale_in_victims(
    alive: list[Node], cloud: Mapping[str, str | None], asked: frozenset[str]
) -> list[Node]:
    """The nodes a user asked to end (TerminateComputeNodes), then unhealthy ones, then
    pending, then the newest running."""

    def rank(node: Node) -> tuple[int, float]:
        cs = cloud.get(node.id, node.cloud_state)
        group = (
            -1
            if node.id in asked
            else 0
            if cs in UNHEALTHY_CLOUD_STATES
            else 1
            if node.state == NodeState.CREATING
            else 2
        )
        when = node.launched_at or node.created_at
        return group, -when.timestamp()

    return sorted(alive, key=rank)


def _plan_terminations(
    snap: Snapshot, state: Mapping[str, NodeState], cloud: Mapping[str, str | None], out: Plan
) -> None:
    """Terminate every DELETING node the cloud will accept, unless just asked."""
    by_env: dict[tuple[str, EndReason], list[str]] = defaultdict(list)
    # The reason of a node's latest change in this plan, looked up once per node rather than
    # by scanning every change for every node (quadratic in a storm of terminations).
    decided: dict[str, EndReason] = {
        c.node_id: c.end_reason for c in out.node_changes if c.end_reason is not None
    }
    for node in snap.nodes:
        if state.get(node.id, node.state) != NodeState.DELETING or node.instance_id is None:
            continue
        if cloud.get(node.id, node.cloud_state) not in TERMINABLE_CLOUD_STATES:
            continue  # PENDING is refused by the cloud; TERMINATING needs nothing more
        asked = snap.terminate_requested.get(node.instance_id)
        if asked is not None and not older_than(asked, snap.now, snap.policy.terminate_retry_s):
            continue
        reason = decided.get(node.id)
        by_env[(node.env_id, EndReason(reason or node.end_reason or EndReason.SCALE_IN))].append(
            node.instance_id
        )
    for (env_id, reason), ids in by_env.items():
        for chunk in chunks(sorted(ids), TERMINATE_BATCH_MAX):
            out.terminations.append(TerminateOrder(env_id, tuple(chunk), reason))
