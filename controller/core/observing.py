"""What an observation means for the records: instances running, reclaimed, released, found.

A complete sweep also resolves launches from their tags and finds tagged instances nobody
has a record of; a partial one (a probe) only tells what it shows. Called by the planner.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from controller.core.events import Event
from controller.core.model import (
    ENV_TAG,
    GOING_CLOUD_STATES,
    STOPPED_CLOUD_STATES,
    TERMINABLE_CLOUD_STATES,
    TOKEN_TAG,
    EndReason,
    Node,
    NodeState,
)
from controller.core.plan import (
    TERMINATE_BATCH_MAX,
    Adoption,
    Change,
    LaunchResolution,
    Observation,
    Plan,
    Snapshot,
    TerminateOrder,
    chunks,
    older_than,
)


def observe(snap: Snapshot, obs: Observation, out: Plan, change: Change) -> None:
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
                change(node, NodeState.DELETING, Event.INSTANCE_OBSERVED, cloud_state=cs)
            continue
        if cs in GOING_CLOUD_STATES:
            change(
                node,
                NodeState.ENDED,
                Event.INSTANCE_INTERRUPTED,
                cloud_state=cs,
                end_reason=EndReason.INTERRUPTED,
                detail=f"instance went {cs} without a request from the controller",
            )
        elif cs == "LAUNCH_FAILED":
            change(
                node,
                NodeState.DELETING,
                Event.LAUNCH_FAILED,
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
                Event.INSTANCE_STOPPED,
                cloud_state=cs,
                end_reason=EndReason.STOPPED,
                detail=f"instance went {cs} without a request from the controller; replaced "
                "and terminated",
            )
        elif cs == "RUNNING" and node.state == NodeState.CREATING:
            change(node, NodeState.RUNNING, Event.INSTANCE_RUNNING, cloud_state=cs)
        elif cs == "PENDING" and older_than(node.launched_at, snap.now, policy.launch_timeout_s):
            change(
                node,
                NodeState.DELETING,
                Event.LAUNCH_TIMEOUT,
                cloud_state=cs,
                end_reason=EndReason.LAUNCH_TIMEOUT,
                detail=f"PENDING for more than {policy.launch_timeout_s:g} s",
            )
        elif cs != node.cloud_state:
            change(node, node.state, Event.INSTANCE_OBSERVED, cloud_state=cs)

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
        elif inst.state in TERMINABLE_CLOUD_STATES and older_than(
            inst.created_time, snap.now, policy.orphan_grace_s
        ):
            orphans[env_id].append(inst.instance_id)
    for ids in orphans.values():
        for chunk in chunks(sorted(ids), TERMINATE_BATCH_MAX):
            out.terminations.append(TerminateOrder(None, tuple(chunk), EndReason.ORPHAN))


def _node_missing(snap: Snapshot, obs: Observation, node: Node, change: Change) -> None:
    """A recorded instance that the sweep did not return."""
    policy = snap.policy
    if node.last_seen_at is None:
        # Never seen: the sweep may lag behind the launch. Give it time before judging.
        launched = node.launched_at or node.created_at
        if launched + timedelta(seconds=policy.visibility_grace_s) > obs.started_at:
            return
        if node.state == NodeState.DELETING:
            change(node, NodeState.ENDED, Event.INSTANCE_TERMINATED, cloud_state=None)
        else:
            change(
                node,
                NodeState.ENDED,
                Event.INSTANCE_RELEASED,
                cloud_state=None,
                end_reason=EndReason.RELEASED,
                detail=f"never shown by DescribeInstances within {policy.visibility_grace_s:g} "
                "s of its launch (reclaimed or released before it was seen)",
            )
        return
    if node.state == NodeState.DELETING:
        change(node, NodeState.ENDED, Event.INSTANCE_TERMINATED, cloud_state=None)
    elif node.cloud_state in GOING_CLOUD_STATES:
        change(
            node,
            NodeState.ENDED,
            Event.INSTANCE_INTERRUPTED,
            cloud_state=None,
            end_reason=EndReason.INTERRUPTED,
            detail="reclaimed: TERMINATING, then gone",
        )
    else:
        change(
            node,
            NodeState.ENDED,
            Event.INSTANCE_RELEASED,
            cloud_state=None,
            end_reason=EndReason.RELEASED,
            detail="gone from DescribeInstances without a request from the controller",
        )
