"""What a plan means for the records: node rows, activities and log lines.

Pure: the planner decides that a node changes state; this module works out what that is in
BatchCompute's terms (which activity opens or closes, with what cause) and returns new copies
of the nodes, so the engine can write the records first and update its memory after.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from controller.core.events import Event
from controller.core.instances import SPOT
from controller.core.model import (
    CREATE_NODE,
    ENV_TAG,
    TERMINATE_NODE,
    ActivityRecord,
    EndReason,
    Node,
    NodeState,
    Role,
)
from controller.core.plan import Adoption, NodeChange, Observation, Plan

# What each kind of ending means for the node's activities.
END_CAUSES = {
    EndReason.INTERRUPTED: "spot instance reclaimed",
    EndReason.RELEASED: "instance released outside the controller",
    EndReason.STOPPED: "instance stopped outside the controller",
    EndReason.SCALE_IN: "scale in",
    EndReason.ENV_DELETED: "environment deleted",
    EndReason.LAUNCH_FAILED: "instance failed to launch",
    EndReason.LAUNCH_TIMEOUT: "instance did not start within the launch timeout",
    EndReason.ORPHAN: "tagged instance of an environment that no longer exists",
    EndReason.REPLACED: "replaced, its replacement running",
}

#: (node id, activity type, final state, state reason) of an activity that ends now.
FinishedActivity = tuple[str, str, str, str]


@dataclass(frozen=True)
class LogLine:
    level: str  # debug | info | warning
    event: Event
    fields: Mapping[str, object]


@dataclass
class Effects:
    changed_nodes: dict[str, Node] = field(default_factory=dict)  # node id -> new copy
    new_nodes: list[Node] = field(default_factory=list)  # adopted, or orphans to terminate
    new_activities: list[ActivityRecord] = field(default_factory=list)
    finished_activities: list[FinishedActivity] = field(default_factory=list)
    # Instances we terminated that are gone: a lagging sweep may still show them.
    terminated: list[str] = field(default_factory=list)
    ended: list[tuple[str, EndReason]] = field(default_factory=list)  # (env id, reason)
    lines: list[LogLine] = field(default_factory=list)


def effects(
    plan: Plan,
    nodes: Mapping[str, Node],
    env_names: Mapping[str, str],
    observation: Observation | None,
    now: datetime,
    new_node_id: Callable[[], str],
) -> Effects:
    """The records ``plan`` changes, without touching ``nodes`` (the engine's memory)."""
    out = Effects()
    seen = observation.instances if observation is not None else {}

    def working(node: Node) -> Node:
        copy = out.changed_nodes.get(node.id)
        if copy is None:
            copy = replace(node)
            if node.instance_id in seen:
                copy.last_seen_at = now
            out.changed_nodes[node.id] = copy
        return copy

    for node in nodes.values():
        if node.last_seen_at is None and node.instance_id and node.instance_id in seen:
            working(node)  # first sighting: recorded (later sightings stay in memory)
    for change in plan.node_changes:
        target = nodes.get(change.node_id)
        if target is not None:
            _change_node(working(target), change, now, env_names, out)
    for adoption in plan.adoptions:
        out.new_nodes.append(_adopt(adoption, now, env_names, new_node_id(), out))
    for termination in plan.terminations:
        if termination.env_id is None:
            for iid in termination.instance_ids:
                out.new_nodes.append(_orphan(iid, observation, now, new_node_id(), out))
    return out


def _change_node(
    node: Node, ch: NodeChange, now: datetime, env_names: Mapping[str, str], out: Effects
) -> None:
    previous = node.state
    node.state = ch.state
    if ch.cloud_state is not None or ch.state == NodeState.ENDED:
        node.cloud_state = ch.cloud_state if ch.cloud_state is not None else node.cloud_state
    if ch.end_reason is not None:
        node.end_reason = ch.end_reason.value
        node.end_detail = ch.detail
    fields = {
        "env": env_names.get(node.env_id, ""),
        "env_id": node.env_id,
        "instance_ids": [node.instance_id],
        "node_id": node.id,
    }
    finished = out.finished_activities
    if ch.state == NodeState.RUNNING and previous != NodeState.RUNNING:
        node.running_at = now
        finished.append((node.id, CREATE_NODE, "SUCCEED", "instance RUNNING"))
        out.lines.append(LogLine("info", Event.INSTANCE_RUNNING, fields))
    elif ch.event == Event.INSTANCE_OBSERVED:
        out.lines.append(LogLine("debug", ch.event, {"cloud_state": ch.cloud_state, **fields}))
    elif ch.state == NodeState.DELETING and previous != NodeState.DELETING:
        reason = ch.end_reason or EndReason.SCALE_IN
        if reason in (EndReason.LAUNCH_FAILED, EndReason.LAUNCH_TIMEOUT):
            finished.append((node.id, CREATE_NODE, "FAILED", ch.detail))
        out.new_activities.append(
            ActivityRecord(
                node.env_id,
                TERMINATE_NODE,
                "PROCESSING",
                f"{END_CAUSES[reason]}: {ch.detail}",
                node_id=node.id,
                instance_id=node.instance_id,
            )
        )
        line = {"reason": reason.value, "detail": ch.detail, **fields}
        out.lines.append(LogLine("info", ch.event, line))
    elif ch.state == NodeState.ENDED:
        node.ended_at = now
        if node.instance_id and previous == NodeState.DELETING:
            out.terminated.append(node.instance_id)
        reason = EndReason(node.end_reason) if node.end_reason else EndReason.RELEASED
        out.ended.append((node.env_id, reason))
        if previous == NodeState.DELETING:
            finished.append((node.id, TERMINATE_NODE, "SUCCEED", "instance gone"))
            line = {"reason": reason.value, **fields}
            out.lines.append(LogLine("info", Event.INSTANCE_TERMINATED, line))
        else:
            ok = "SUCCEED" if node.running_at else "FAILED"
            detail = ch.detail if ok == "FAILED" else "instance RUNNING"
            finished.append((node.id, CREATE_NODE, ok, detail))
            out.new_activities.append(
                ActivityRecord(
                    node.env_id,
                    TERMINATE_NODE,
                    "SUCCEED",
                    f"{END_CAUSES[reason]}: {ch.detail}",
                    node_id=node.id,
                    instance_id=node.instance_id,
                    state_reason="instance gone",
                    ended=True,
                )
            )
            line = {"reason": reason.value, "detail": ch.detail, **fields}
            out.lines.append(LogLine("warning", ch.event, line))


def _adopt(
    adoption: Adoption, now: datetime, env_names: Mapping[str, str], node_id: str, out: Effects
) -> Node:
    inst = adoption.instance
    state = NodeState.RUNNING if inst.state == "RUNNING" else NodeState.CREATING
    node = Node(
        id=node_id,
        env_id=adoption.env_id,
        state=state,
        zone=inst.zone,
        instance_type=inst.instance_type,
        created_at=now,
        instance_id=inst.instance_id,
        launch_token=adoption.launch_token,
        origin="ADOPTED",
        launched_at=inst.created_time or now,
        last_seen_at=now,
        cloud_state=inst.state,
        running_at=now if state == NodeState.RUNNING else None,
        charge_type=inst.charge_type or SPOT,
        role=Role.SPOT.value if (inst.charge_type or SPOT) == SPOT else Role.ON_DEMAND.value,
    )
    out.new_activities.append(
        ActivityRecord(
            node.env_id,
            CREATE_NODE,
            "SUCCEED" if state == NodeState.RUNNING else "PROCESSING",
            "adopted: tagged instance without a record",
            node_id=node.id,
            instance_id=inst.instance_id,
            ended=state == NodeState.RUNNING,
        )
    )
    fields = {
        "env": env_names.get(node.env_id, ""),
        "env_id": node.env_id,
        "instance_ids": [inst.instance_id],
        "node_id": node.id,
    }
    out.lines.append(LogLine("warning", Event.ORPHAN_ADOPTED, fields))
    return node


def _orphan(
    instance_id: str, obs: Observation | None, now: datetime, node_id: str, out: Effects
) -> Node:
    inst = obs.instances[instance_id] if obs is not None else None
    env_id = (inst.tags.get(ENV_TAG) if inst else None) or "unknown"
    cause = END_CAUSES[EndReason.ORPHAN]
    node = Node(
        id=node_id,
        env_id=env_id,
        state=NodeState.DELETING,
        zone=inst.zone if inst else "",
        instance_type=inst.instance_type if inst else "",
        created_at=now,
        instance_id=instance_id,
        origin="ADOPTED",
        launched_at=inst.created_time if inst else None,
        last_seen_at=now,
        cloud_state=inst.state if inst else None,
        end_reason=EndReason.ORPHAN.value,
        end_detail=cause,
    )
    out.new_activities.append(
        ActivityRecord(
            env_id, TERMINATE_NODE, "PROCESSING", cause, node_id=node.id, instance_id=instance_id
        )
    )
    fields = {"env_id": env_id, "instance_ids": [instance_id]}
    out.lines.append(LogLine("warning", Event.ORPHAN_TERMINATING, fields))
    return node
