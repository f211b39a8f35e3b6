"""Ending chosen nodes: a targeted scale-in, as BatchCompute's TerminateComputeNodes is.

The desired count is lowered by as many nodes as are named, and the named nodes are written
to the row's ``terminate_node_ids``, which the planner scales in first. Both in one
conditional UPDATE of the row, so a concurrent change of the desired count is never lost:
the row stays the single source of truth and the engine its only actor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from controller.core import spec
from controller.core.model import NodeState
from controller.errors import ValidationFailed

MAX_NODES_PER_CALL = 100
# BatchCompute lets CREATED, CREATION_FAILED, RUNNING and ABNORMAL nodes be terminated; ours
# that are asked for but not launched yet (SUBMITTED) have no instance to end.
TERMINABLE = (NodeState.CREATING.value, NodeState.RUNNING.value)


class NodeNotFound(ValidationFailed):
    def __init__(self, node_id: str, env_id: str) -> None:
        super().__init__("compute_node_ids", f"{node_id} is not a live node of {env_id}")


class NodeNotTerminable(ValidationFailed):
    def __init__(self, node_id: str, state: str) -> None:
        why = "already terminating" if state == NodeState.DELETING.value else "not launched yet"
        super().__init__("compute_node_ids", f"{node_id} is {state}: {why}")
        self.state = state


class NotEnoughNodes(ValidationFailed):
    def __init__(self, asked: int, desired: int) -> None:
        super().__init__(
            "compute_node_ids",
            f"{asked} nodes asked to terminate, more than the desired count {desired}",
        )


def plan_termination(
    row: dict[str, Any], live_nodes: Sequence[dict[str, Any]], node_ids: Sequence[str]
) -> dict[str, Any]:
    """The columns to set on ``row`` to end ``node_ids``; ValidationFailed when refused."""
    if not node_ids:
        raise ValidationFailed("compute_node_ids", "name at least one node")
    if len(node_ids) > MAX_NODES_PER_CALL:
        raise ValidationFailed("compute_node_ids", f"at most {MAX_NODES_PER_CALL} nodes a call")
    if len(set(node_ids)) != len(node_ids):
        raise ValidationFailed("compute_node_ids", "the same node is named twice")
    for node_id in node_ids:
        if not spec.NODE_ID_RE.match(node_id):
            raise ValidationFailed(
                "compute_node_ids", f"{node_id!r} is malformed (expected e.g. node-0a1b2c3d)"
            )
    by_id = {n["id"]: n for n in live_nodes}
    for node_id in node_ids:
        node = by_id.get(node_id)
        if node is None:
            raise NodeNotFound(node_id, row["id"])
        if node["state"] not in TERMINABLE:
            raise NodeNotTerminable(node_id, node["state"])
    desired = spec.validate_desired_count(row["desired_count"])
    if len(node_ids) > desired:
        raise NotEnoughNodes(len(node_ids), desired)
    # Ids asked before whose nodes are still alive stay; ended ones are dropped.
    earlier = [
        n
        for n in spec.node_id_list(row.get("terminate_node_ids"))
        if by_id.get(n, {}).get("state") in TERMINABLE
    ]
    asked = list(dict.fromkeys([*earlier, *node_ids]))
    return {"desired_count": desired - len(node_ids), "terminate_node_ids": ",".join(asked)}
