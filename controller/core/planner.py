"""The pure planning core: desired state + observed state + in-flight work -> actions.

``plan(snapshot)`` performs no I/O and reads no clock: everything it needs is in the snapshot,
so every rule of the controller is tested here as a table of snapshot -> plan. The reconciler
only observes, records the plan's intents and carries them out.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from controller.core.backoff import Block
from controller.core.instances import Instance, Offering
from controller.core.model import (
    ENV_TAG,
    GOING_CLOUD_STATES,
    STOPPED_CLOUD_STATES,
    TERMINABLE_CLOUD_STATES,
    TOKEN_TAG,
    UNHEALTHY_CLOUD_STATES,
    EndReason,
    Launch,
    Node,
    NodeState,
)
from controller.core.spec import EnvironmentSpec

TERMINATE_BATCH_MAX = 100  # TerminateInstances takes at most 100 ids


class EnvStatus(StrEnum):
    NEW = "NEW"
    SCALING = "SCALING"
    READY = "READY"
    BACKOFF = "BACKOFF"  # short of capacity or outbid; retrying by itself
    ERROR = "ERROR"  # quota, credentials or spec: needs a human; retried slowly
    INVALID = "INVALID"  # the row cannot be acted on; status_reason names the field


@dataclass(frozen=True)
class Policy:
    launch_batch_max: int = 100
    launch_timeout_s: float = 300.0
    orphan_grace_s: float = 30.0
    # An instance launched this recently may not be visible to DescribeInstances yet.
    visibility_grace_s: float = 30.0
    terminate_retry_s: float = 10.0


@dataclass(frozen=True)
class Observation:
    """What DescribeInstances showed of this cluster's tagged instances.

    Complete: a full paged sweep, so a recorded instance it lacks may be gone. Partial: a
    narrow probe (instances being reclaimed), so what it shows is true and what it lacks
    means nothing: no instance is judged gone, adopted or resolved from it.
    """

    instances: Mapping[str, Instance]
    started_at: datetime  # instances launched after this cannot be in it
    complete: bool = True


@dataclass(frozen=True)
class Snapshot:
    now: datetime
    environments: Mapping[str, EnvironmentSpec]  # valid rows by id
    invalid: Mapping[str, str]  # env id -> reason naming the field
    nodes: Sequence[Node]  # every node not ENDED
    launches: Sequence[Launch]  # unresolved launches
    launches_in_flight: frozenset[str]  # client tokens whose call is running now
    observation: Observation | None  # None: nothing new observed since the last plan
    blocks: Mapping[tuple[str | None, Offering], Block]  # (env id or None for everyone, pool)
    holds: Mapping[str, Block]  # env id -> a block on the whole environment
    recently_ended: frozenset[str] = frozenset()  # instance ids we ended; may still be visible
    terminate_requested: Mapping[str, datetime] = field(default_factory=dict)  # instance -> when
    policy: Policy = Policy()


@dataclass(frozen=True)
class NodeChange:
    """A node moves to ``state``; the reconciler writes it, logs ``event`` and its activity."""

    node_id: str
    state: NodeState
    event: str
    cloud_state: str | None = None
    end_reason: EndReason | None = None
    detail: str = ""


@dataclass(frozen=True)
class LaunchOrder:
    env_id: str
    offering: Offering
    count: int
    cause: str


@dataclass(frozen=True)
class TerminateOrder:
    env_id: str | None  # None for orphans of environments that no longer exist
    instance_ids: tuple[str, ...]
    reason: EndReason


@dataclass(frozen=True)
class Adoption:
    env_id: str
    instance: Instance
    launch_token: str | None


@dataclass(frozen=True)
class LaunchResolution:
    """A pending launch whose instances were all found by their launch tag."""

    client_token: str
    instance_ids: tuple[str, ...]


@dataclass(frozen=True)
class StatusReport:
    env_id: str
    status: EnvStatus
    reason: str
    running: int
    pending: int
    launching: int
    next_attempt_at: datetime | None


@dataclass
class Plan:
    node_changes: list[NodeChange] = field(default_factory=list)
    resolutions: list[LaunchResolution] = field(default_factory=list)
    resends: list[Launch] = field(default_factory=list)
    adoptions: list[Adoption] = field(default_factory=list)
    launches: list[LaunchOrder] = field(default_factory=list)
    terminations: list[TerminateOrder] = field(default_factory=list)
    statuses: list[StatusReport] = field(default_factory=list)


def plan(snap: Snapshot) -> Plan:
    out = Plan()
    # States as they will be after this plan's changes, for the nodes it changes; every other
    # node keeps its own (``state.get(n.id, n.state)``). Only changes are stored: copying the
    # state of 100,000 nodes into two dicts on every pass was a fifth of an idle plan.
    state: dict[str, NodeState] = {}
    cloud: dict[str, str | None] = {}

    def change(node: Node, new: NodeState, event: str, **kw: object) -> None:
        state[node.id] = new
        if "cloud_state" in kw:
            cloud[node.id] = kw["cloud_state"]  # type: ignore[assignment]
        out.node_changes.append(NodeChange(node.id, new, event, **kw))  # type: ignore[arg-type]

    if snap.observation is not None:
        _observe(snap, snap.observation, out, change)

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
                    "instance_terminating",
                    end_reason=EndReason.ENV_DELETED,
                    detail="environment deleted",
                )

    adopted: Counter[str] = Counter(a.env_id for a in out.adoptions)
    for env_id, spec in snap.environments.items():
        _plan_environment(
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


def _observe(snap: Snapshot, obs: Observation, out: Plan, change: _Change) -> None:
    policy = snap.policy
    by_instance = {n.instance_id: n for n in snap.nodes if n.instance_id}
    pending_tokens = {launch.client_token: launch for launch in snap.launches}

    for node in snap.nodes:
        if node.instance_id is None or node.state in (NodeState.SUBMITTED, NodeState.ENDED):
            continue
        inst = obs.instances.get(node.instance_id)
        if inst is None:
            if obs.complete:
                _node_missing(snap, obs, node, change)
            continue
        cs = inst.state
        if node.state == NodeState.DELETING:
            if cs != node.cloud_state:
                change(node, NodeState.DELETING, "instance_observed", cloud_state=cs)
            continue
        if cs in GOING_CLOUD_STATES:
            change(
                node,
                NodeState.ENDED,
                "instance_interrupted",
                cloud_state=cs,
                end_reason=EndReason.INTERRUPTED,
                detail=f"instance went {cs} without a request from the controller",
            )
        elif cs == "LAUNCH_FAILED":
            change(
                node,
                NodeState.DELETING,
                "launch_failed",
                cloud_state=cs,
                end_reason=EndReason.LAUNCH_FAILED,
                detail=inst.latest_operation_error or "instance state LAUNCH_FAILED",
            )
        elif cs in STOPPED_CLOUD_STATES:
            # A spot instance stopped from outside does no work, yet holds its quota, disk and
            # (KEEP_CHARGING) its bill, and the controller never restarts it: replace it and
            # terminate it (as soon as it is STOPPED: CVM refuses STOPPING).
            change(
                node,
                NodeState.DELETING,
                "instance_stopped",
                cloud_state=cs,
                end_reason=EndReason.RELEASED,
                detail=f"instance went {cs} without a request from the controller; replaced "
                "and terminated",
            )
        elif cs == "RUNNING" and node.state == NodeState.CREATING:
            change(node, NodeState.RUNNING, "instance_running", cloud_state=cs)
        elif cs == "PENDING" and _older_than(node.launched_at, snap.now, policy.launch_timeout_s):
            change(
                node,
                NodeState.DELETING,
                "launch_timeout",
                cloud_state=cs,
                end_reason=EndReason.LAUNCH_TIMEOUT,
                detail=f"PENDING for more than {policy.launch_timeout_s:g} s",
            )
        elif cs != node.cloud_state:
            change(node, node.state, "instance_observed", cloud_state=cs)

    if not obs.complete:
        return

    # Pending launches whose instances are all visible by their launch tag: resolve from tags,
    # so a restart never depends on the cloud still remembering the ClientToken.
    tagged: dict[str, list[str]] = defaultdict(list)
    for inst in obs.instances.values():
        token = inst.tags.get(TOKEN_TAG)
        if token in pending_tokens and inst.instance_id not in by_instance:
            tagged[token].append(inst.instance_id)
    for launch in snap.launches:
        if launch.client_token in snap.launches_in_flight:
            continue
        ids = tagged.get(launch.client_token, [])
        if len(ids) >= launch.count:
            out.resolutions.append(LaunchResolution(launch.client_token, tuple(sorted(ids))))
        else:
            out.resends.append(launch)

    # Tagged instances nobody has a record of: adopt them, or end them if their env is gone.
    known_envs = set(snap.environments) | set(snap.invalid)
    orphans: dict[str | None, list[str]] = defaultdict(list)
    for inst in obs.instances.values():
        if inst.instance_id in by_instance or inst.instance_id in snap.recently_ended:
            continue
        if inst.tags.get(TOKEN_TAG) in pending_tokens:
            continue  # resolved by its launch above, or by re-sending its token
        if inst.state in GOING_CLOUD_STATES:
            continue
        env_id = inst.tags.get(ENV_TAG)
        if env_id in known_envs and env_id is not None:
            out.adoptions.append(Adoption(env_id, inst, inst.tags.get(TOKEN_TAG)))
        elif inst.state in TERMINABLE_CLOUD_STATES and _older_than(
            inst.created_time, snap.now, policy.orphan_grace_s
        ):
            orphans[env_id].append(inst.instance_id)
    for ids in orphans.values():
        for chunk in _chunks(sorted(ids), TERMINATE_BATCH_MAX):
            out.terminations.append(TerminateOrder(None, tuple(chunk), EndReason.ORPHAN))


def _node_missing(snap: Snapshot, obs: Observation, node: Node, change: _Change) -> None:
    """A recorded instance that the sweep did not return."""
    policy = snap.policy
    if node.last_seen_at is None:
        # Never seen: the sweep may lag behind the launch. Give it time before judging.
        launched = node.launched_at or node.created_at
        if launched + timedelta(seconds=policy.visibility_grace_s) > obs.started_at:
            return
        if node.state == NodeState.DELETING:
            change(node, NodeState.ENDED, "instance_terminated", cloud_state=None)
        else:
            change(
                node,
                NodeState.ENDED,
                "instance_released",
                cloud_state=None,
                end_reason=EndReason.RELEASED,
                detail=f"never shown by DescribeInstances within {policy.visibility_grace_s:g} "
                "s of its launch (reclaimed or released before it was seen)",
            )
        return
    if node.state == NodeState.DELETING:
        change(node, NodeState.ENDED, "instance_terminated", cloud_state=None)
    elif node.cloud_state in GOING_CLOUD_STATES:
        change(
            node,
            NodeState.ENDED,
            "instance_interrupted",
            cloud_state=None,
            end_reason=EndReason.INTERRUPTED,
            detail="reclaimed: TERMINATING, then gone",
        )
    else:
        change(
            node,
            NodeState.ENDED,
            "instance_released",
            cloud_state=None,
            end_reason=EndReason.RELEASED,
            detail="gone from DescribeInstances without a request from the controller",
        )


def _plan_environment(
    snap: Snapshot,
    spec: EnvironmentSpec,
    nodes: list[Node],
    launching: int,
    adopted: int,
    state: Mapping[str, NodeState],
    cloud: Mapping[str, str | None],
    out: Plan,
    change: _Change,
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
        for victim in _scale_in_victims(alive, cloud)[:surplus]:
            change(
                victim,
                NodeState.DELETING,
                "instance_terminating",
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


def _scale_in_victims(alive: list[Node], cloud: Mapping[str, str | None]) -> list[Node]:
    """Unhealthy first, then pending, then the newest running."""

    def rank(node: Node) -> tuple[int, float]:
        cs = cloud.get(node.id, node.cloud_state)
        group = 0 if cs in UNHEALTHY_CLOUD_STATES else 1 if node.state == NodeState.CREATING else 2
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
        if asked is not None and not _older_than(asked, snap.now, snap.policy.terminate_retry_s):
            continue
        reason = decided.get(node.id)
        by_env[(node.env_id, EndReason(reason or node.end_reason or EndReason.SCALE_IN))].append(
            node.instance_id
        )
    for (env_id, reason), ids in by_env.items():
        for chunk in _chunks(sorted(ids), TERMINATE_BATCH_MAX):
            out.terminations.append(TerminateOrder(env_id, tuple(chunk), reason))


def _older_than(when: datetime | None, now: datetime, seconds: float) -> bool:
    return when is not None and now - when > timedelta(seconds=seconds)


def _chunks(items: Sequence[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


class _Change(Protocol):
    """The signature of plan()'s local ``change`` helper."""

    def __call__(self, node: Node, new: NodeState, event: str, **kw: object) -> None: ...
