"""The service's views in BatchCompute's shapes (ComputeEnvView, ComputeNode, Activity, ...).

Only fields the batch SDK's models declare are sent (the SDK warns about any other). Node
states map to ComputeNodeState: a node asked for is SUBMITTED, a PENDING instance CREATING, a
running one RUNNING (ABNORMAL when CVM shows it stopped or failed), one being terminated
DELETING; an ended node leaves ComputeNodeSet.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from controller.api.mapping import ON_DEMAND, SPOT
from controller.core.model import UNHEALTHY_CLOUD_STATES
from controller.service.views import ActivityView, EnvironmentView, NodeView

TIME = "%Y-%m-%dT%H:%M:%SZ"
METRICS = (
    "SubmittedCount",
    "CreatingCount",
    "CreationFailedCount",
    "CreatedCount",
    "RunningCount",
    "DeletingCount",
    "AbnormalCount",
)
_METRIC_OF = {
    "SUBMITTED": "SubmittedCount",
    "CREATING": "CreatingCount",
    "CREATION_FAILED": "CreationFailedCount",
    "CREATED": "CreatedCount",
    "RUNNING": "RunningCount",
    "DELETING": "DeletingCount",
    "ABNORMAL": "AbnormalCount",
}
_GROWTH = re.compile(r"^increase the capacity from (\d+) to (\d+)$")


def _time(t: datetime | None) -> str | None:
    return None if t is None else t.strftime(TIME)


def node_state(state: str, cloud_state: str | None) -> str:
    """Our node state (and CVM's last word on the instance) as BatchCompute's."""
    if cloud_state == "LAUNCH_FAILED":
        return "CREATION_FAILED"
    if state == "RUNNING" and cloud_state in UNHEALTHY_CLOUD_STATES:
        return "ABNORMAL"
    return state


def metrics(groups: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """ComputeNodeMetrics from grouped live nodes (state, cloud_state, nodes)."""
    counts = dict.fromkeys(METRICS, 0)
    for g in groups:
        counts[_METRIC_OF[node_state(g["state"], g["cloud_state"])]] += int(g["nodes"])
    return counts


def tags(env: EnvironmentView) -> list[dict[str, str]]:
    try:
        pairs = json.loads(env.tags or "{}")
    except ValueError:  # a plain-SQL row the daemon reports INVALID: shown without tags
        return []
    if not isinstance(pairs, dict):
        return []
    return [{"Key": str(k), "Value": str(v)} for k, v in pairs.items()]


def placement(env: EnvironmentView) -> dict[str, Any]:
    return {"Zone": env.zone, "ProjectId": int(env.project_id or 0)}


def compute_env(env: EnvironmentView, node_metrics: dict[str, int]) -> dict[str, Any]:
    """A ComputeEnvView (DescribeComputeEnvs), or the common part of DescribeComputeEnv."""
    return {
        "EnvId": env.id,
        "EnvName": env.name,
        "Placement": placement(env),
        "CreateTime": _time(env.created_at),
        "ComputeNodeMetrics": node_metrics,
        "EnvType": "MANAGED",
        "DesiredComputeNodeCount": env.desired_count,
        "ResourceType": "CVM",
        "NextAction": "",
        "AttachedComputeNodeCount": 0,
        "Tags": tags(env),
    }


def compute_node(node: NodeView) -> dict[str, Any]:
    return {
        "ComputeNodeId": node.id,
        "ComputeNodeInstanceId": node.instance_id or "",
        "ComputeNodeState": node_state(node.state, node.cloud_state),
        "Cpu": 0,
        "Mem": 0,
        "ResourceCreatedTime": _time(node.running_at or node.launched_at or node.created_at),
        "TaskInstanceNumAvailable": 0,
        "AgentVersion": "",
        "PrivateIpAddresses": [],
        "PublicIpAddresses": [],
        "ResourceType": "CVM",
        "ResourceOrigin": "BATCH_CREATED",
    }


def cause(recorded: str) -> str:
    """BatchCompute's wording of a growth: ``CreateComputeEnv: the capacity is 1`` from 0,
    ``ModifyComputeEnv: increase the capacity from 1 to 2`` otherwise."""
    match = _GROWTH.match(recorded)
    if match is None:
        return recorded
    if match.group(1) == "0":
        return f"CreateComputeEnv: the capacity is {match.group(2)}"
    return f"ModifyComputeEnv: {recorded}"


def activity(a: ActivityView) -> dict[str, Any]:
    return {
        "ActivityId": a.id,
        "ComputeNodeId": a.node_id or "",
        "ComputeNodeActivityType": a.activity_type,
        "EnvId": a.env_id,
        "Cause": cause(a.cause),
        "ActivityState": a.state,
        "StateReason": a.state_reason,
        "StartTime": _time(a.start_time),
        "EndTime": _time(a.end_time),
        "InstanceId": a.instance_id,
    }


def _list(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def env_data(env: EnvironmentView) -> dict[str, Any]:
    """The EnvData an environment would be created with (DescribeComputeEnvCreateInfo)."""
    types = [t for t in (env.instance_type, *_list(env.fallback_instance_types)) if t]
    data: dict[str, Any] = {"ImageId": env.image_id}
    if types:
        data["InstanceTypes"] = types
    if env.instance_cpu is not None and env.instance_memory is not None:
        data["InstanceTypeOptions"] = {
            "CPU": int(env.instance_cpu),
            "Memory": int(env.instance_memory),
            "InstanceCategories": ["ALL"],
        }
    zones = _list(env.fallback_zones)
    if zones:
        data["Zones"] = [env.zone, *zones]
    if str(env.on_demand_percentage) == "100" and not env.on_demand_base_count:
        data["InstanceChargeType"] = ON_DEMAND
    else:
        data["InstanceChargeType"] = SPOT
        data["InstanceMarketOptions"] = {
            "MarketType": "spot",
            "SpotOptions": {"MaxPrice": env.max_price, "SpotInstanceType": "one-time"},
        }
    if env.instance_name:
        data["InstanceName"] = env.instance_name
    if groups := _list(env.security_group_ids):
        data["SecurityGroupIds"] = groups
    if env.vpc_id and env.subnet_id:
        data["VirtualPrivateCloud"] = {"VpcId": env.vpc_id, "SubnetId": env.subnet_id}
    if key_ids := _list(env.key_ids):
        data["LoginSettings"] = {"KeyIds": key_ids}
    try:
        options = json.loads(env.launch_options) if env.launch_options else {}
    except ValueError:  # a plain-SQL value the daemon reports INVALID: not shown
        options = {}
    if isinstance(options, dict):
        data.update(options)
    return data


def create_info(env: EnvironmentView) -> dict[str, Any]:
    return {
        "EnvId": env.id,
        "EnvName": env.name,
        "EnvDescription": env.description,
        "EnvType": "MANAGED",
        "EnvData": env_data(env),
        "MountDataDisks": [],
        "InputMappings": [],
        "Authentications": [],
        "Notifications": [],
        "DesiredComputeNodeCount": env.desired_count,
        "Tags": tags(env),
    }
