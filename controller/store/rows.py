"""Records to rows and back: nodes, activities, and a launch's exact request as JSON."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from controller.core.instances import LaunchRequest
from controller.core.model import ActivityRecord, Node, NodeState
from controller.ids import new_activity_id


def request_to_json(request: LaunchRequest) -> str:
    data = {f.name: getattr(request, f.name) for f in dataclasses.fields(request)}
    data["tags"] = dict(request.tags)
    return json.dumps(data, sort_keys=True, default=list)


def request_from_json(text: str) -> LaunchRequest:
    data = json.loads(text)
    data["security_group_ids"] = tuple(data.get("security_group_ids") or ())
    data["key_ids"] = tuple(data.get("key_ids") or ())
    return LaunchRequest(**data)


def node_values(node: Node) -> dict[str, Any]:
    return {
        "id": node.id,
        "env_id": node.env_id,
        "instance_id": node.instance_id,
        "launch_token": node.launch_token,
        "state": node.state.value,
        "zone": node.zone,
        "instance_type": node.instance_type,
        "max_price": node.max_price,
        "origin": node.origin,
        "created_at": node.created_at,
        "launched_at": node.launched_at,
        "running_at": node.running_at,
        "last_seen_at": node.last_seen_at,
        "cloud_state": node.cloud_state,
        "ended_at": node.ended_at,
        "end_reason": node.end_reason,
        "end_detail": node.end_detail,
        "charge_type": node.charge_type,
        "hourly_price": node.hourly_price,
        "role": node.role,
    }


def node_from_row(row: Mapping[str, Any]) -> Node:
    return Node(
        id=row["id"],
        env_id=row["env_id"],
        state=NodeState(row["state"]),
        zone=row["zone"],
        instance_type=row["instance_type"],
        created_at=row["created_at"],
        instance_id=row["instance_id"],
        launch_token=row["launch_token"],
        max_price=row["max_price"],
        origin=row["origin"],
        launched_at=row["launched_at"],
        running_at=row["running_at"],
        last_seen_at=row["last_seen_at"],
        cloud_state=row["cloud_state"],
        ended_at=row["ended_at"],
        end_reason=row["end_reason"],
        end_detail=row["end_detail"],
        charge_type=row["charge_type"],
        hourly_price=row["hourly_price"],
        role=row["role"],
    )


def activity_values(activity: ActivityRecord, now: datetime) -> dict[str, Any]:
    return {
        "id": new_activity_id(),
        "env_id": activity.env_id,
        "node_id": activity.node_id,
        "instance_id": activity.instance_id,
        "activity_type": activity.activity_type,
        "state": activity.state,
        "cause": activity.cause[:1000],
        "state_reason": activity.state_reason[:1000],
        "start_time": now,
        "end_time": now if activity.ended else None,
    }
