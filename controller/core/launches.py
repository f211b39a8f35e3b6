"""One launch, from the planner's order to what its answer means for the records.

Pure: the engine records a :class:`LaunchIntent` before it calls ``RunInstances`` (intent
before action), and hands the answer back here to learn which nodes now exist, which ended,
and what to record. Ids, the token's nonce and the time come in as arguments.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from controller.core.instances import LaunchRequest
from controller.core.model import (
    CLUSTER_TAG,
    ENV_TAG,
    TOKEN_TAG,
    EndReason,
    Launch,
    Node,
    NodeState,
)
from controller.core.plan import LaunchOrder
from controller.core.spec import EnvironmentSpec
from controller.errors import CloudError

PARTIAL_DELIVERY = "RunInstances returned fewer instances than requested"


def client_token(env_id: str, request_fields: Mapping[str, Any], nonce: str) -> str:
    """A ClientToken derived from the exact request: a changed parameter gets a new token."""
    digest = hashlib.sha256(
        json.dumps({"request": request_fields, "nonce": nonce}, sort_keys=True).encode()
    ).hexdigest()
    return f"{env_id}-{digest[:40]}"


@dataclass(frozen=True)
class LaunchIntent:
    """What is recorded before ``RunInstances``: the launch and one SUBMITTED node per instance."""

    launch: Launch
    nodes: tuple[Node, ...]
    cause: str


def build_intent(
    order: LaunchOrder,
    spec: EnvironmentSpec,
    *,
    cluster: str,
    now: datetime,
    nonce: str,
    new_node_id: Callable[[], str],
) -> LaunchIntent:
    """The exact request, its token and tags (set in the call itself), and its nodes."""
    offering = order.offering
    fields: dict[str, Any] = {
        "zone": offering.zone,
        "instance_type": offering.instance_type,
        "image_id": spec.image_id,
        "max_price": spec.max_price,
        "count": order.count,
        "instance_name": spec.instance_name,
        "project_id": spec.project_id,
        "security_group_ids": list(spec.security_group_ids),
        "vpc_id": spec.vpc_id,
        "subnet_id": spec.subnet_id,
        "key_ids": list(spec.key_ids),
    }
    if not offering.spot:  # a changed parameter gets a new token; spot tokens stay as they were
        fields["charge_type"] = offering.charge_type
    if spec.launch_options is not None:  # likewise: tokens without options stay as they were
        fields["launch_options"] = spec.launch_options
    token = client_token(spec.id, fields, nonce)
    tags = {**spec.tags, ENV_TAG: spec.id, CLUSTER_TAG: cluster, TOKEN_TAG: token}
    request = LaunchRequest(
        zone=offering.zone,
        instance_type=offering.instance_type,
        image_id=spec.image_id,
        max_price=spec.max_price,
        count=order.count,
        client_token=token,
        tags=tags,
        instance_name=spec.instance_name,
        project_id=spec.project_id,
        security_group_ids=spec.security_group_ids,
        vpc_id=spec.vpc_id,
        subnet_id=spec.subnet_id,
        key_ids=spec.key_ids,
        user_data=spec.user_data,
        charge_type=offering.charge_type,
        launch_options=spec.launch_options,
    )
    launch = Launch(token, spec.id, offering, order.count, request, now)
    nodes = tuple(
        Node(
            id=new_node_id(),
            env_id=spec.id,
            state=NodeState.SUBMITTED,
            zone=offering.zone,
            instance_type=offering.instance_type,
            created_at=now,
            launch_token=token,
            max_price=spec.max_price,
            charge_type=offering.charge_type,
            hourly_price=order.unit_price,
            role=order.role,
        )
        for _ in range(order.count)
    )
    return LaunchIntent(launch, nodes, order.cause)


@dataclass(frozen=True)
class LaunchOutcome:
    """What an answer means: the launch's SUBMITTED nodes as they are now (new copies)."""

    launch: Launch
    nodes: tuple[Node, ...]  # CREATING with an instance id, or ENDED (launch_failed)
    instance_ids: tuple[str, ...]  # the ids new to the records
    error: CloudError | None = None

    @property
    def succeeded(self) -> bool:
        return self.error is None


def resolve_success(
    launch: Launch, nodes_of_launch: Sequence[Node], instance_ids: Sequence[str], now: datetime
) -> LaunchOutcome:
    """RunInstances (or the launch tags) gave these ids: each SUBMITTED node takes one.

    An id a node of this launch already holds (adopted by its tag, or resolved from tags before
    the answer came back) is not given twice; fewer ids than nodes is a partial delivery.
    """
    submitted = sorted(
        (n for n in nodes_of_launch if n.state == NodeState.SUBMITTED), key=lambda n: n.id
    )
    known = {n.instance_id for n in nodes_of_launch if n.instance_id}
    fresh = tuple(i for i in instance_ids if i not in known)
    updated = []
    for index, node in enumerate(submitted):
        if index < len(fresh):
            updated.append(
                replace(node, instance_id=fresh[index], state=NodeState.CREATING, launched_at=now)
            )
        else:
            updated.append(_ended(node, now, PARTIAL_DELIVERY))
    return LaunchOutcome(launch, tuple(updated), fresh)


def resolve_failure(
    launch: Launch, nodes_of_launch: Sequence[Node], error: CloudError, now: datetime
) -> LaunchOutcome:
    """RunInstances refused: every SUBMITTED node of the launch ends as launch_failed."""
    detail = f"{error.code}: {error.message}"[:500]
    nodes = tuple(_ended(n, now, detail) for n in nodes_of_launch if n.state == NodeState.SUBMITTED)
    return LaunchOutcome(launch, nodes, (), error)


def _ended(node: Node, now: datetime, detail: str) -> Node:
    return replace(
        node,
        state=NodeState.ENDED,
        ended_at=now,
        end_reason=EndReason.LAUNCH_FAILED.value,
        end_detail=detail,
    )
