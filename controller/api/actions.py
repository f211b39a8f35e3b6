"""The compute-environment actions of BatchCompute 2017-03-12, answered through the service.

Each handler reads its parameters (unknown ones are refused), calls the service, which checks
every rule and writes the row, and shapes the answer; a refusal of the service becomes Batch's
error (:mod:`.refusals`). Nothing is written when a request is refused: the service writes
last, after every check.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from controller.api import mapping, shapes
from controller.api.catalog import Catalog
from controller.api.refusals import CREATE_FIELDS, MODIFY_FIELDS, NODE_FIELDS, refusal
from controller.core import spec
from controller.errors import ValidationFailed
from controller.service import EnvironmentNotFound, Environments, EnvironmentView
from controller.service.environments import validate_new_environment
from controller.tencentapi.errors import ApiError
from controller.tencentapi.params import Params

ENV_ID = re.compile(r"^env-[a-z0-9]{8}$")
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_IDS = 100
ENV_FILTERS = ("zone", "env-id", "env-name", "resource-type", "tag-key", "tag-value")
CREATE_INFO_FILTERS = ("zone", "env-id", "env-name")


@dataclass(frozen=True)
class Call:
    """What a handler works with: the service, the CVM catalog, and what it may name."""

    environments: Environments
    catalog: Catalog | None


Handler = Callable[[Call, Params], Awaitable[dict[str, Any]]]


def _env_id(params: Params, key: str = "EnvId") -> str:
    env_id = params.string(key, required=True)
    assert env_id is not None
    if not ENV_ID.match(env_id):
        raise ApiError(
            "InvalidParameter.EnvIdMalformed",
            f"`{params.name(key)}` {env_id!r} is malformed (expected env- and 8 lowercase "
            "letters or digits, e.g. env-lcpcej85).",
        )
    return env_id


async def _environment(call: Call, env_id: str) -> EnvironmentView:
    try:
        env = await call.environments.show(env_id)
    except EnvironmentNotFound as exc:
        raise refusal(exc, {}) from None
    if env.id != env_id:  # an environment *named* like the id is not the one asked for
        raise refusal(EnvironmentNotFound(env_id), {})
    return env


def _page(params: Params) -> tuple[int, int]:
    offset = params.integer("Offset")
    limit = params.integer("Limit")
    offset = 0 if offset is None else offset
    limit = DEFAULT_LIMIT if limit is None else limit
    if offset < 0:
        raise ApiError("InvalidParameterValue", f"`Offset` must be 0 or more, got {offset}.")
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError(
            "InvalidParameterValue", f"`Limit` must be from 1 to {MAX_LIMIT}, got {limit}."
        )
    return offset, limit


def _filters(params: Params, known: Sequence[str]) -> list[tuple[str, list[str]]]:
    filters = []
    for f in params.objects("Filters") or []:
        f.reject_unknown(("Name", "Values"))
        name = f.string("Name", required=True)
        values = f.strings("Values", required=True)
        assert name is not None
        assert values is not None
        tag_filter = name.startswith("tag:") and len(name) > 4 and "tag-key" in known
        if name not in known and not tag_filter:
            raise ApiError(
                "InvalidFilter",
                f"`{f.name('Name')}` {name!r} is not a filter of this action; known: "
                f"{', '.join(known)}{', tag:<key>' if 'tag-key' in known else ''}.",
            )
        filters.append((name, values))
    return filters


def _matches(env: EnvironmentView, filters: list[tuple[str, list[str]]]) -> bool:
    tags = {t["Key"]: t["Value"] for t in shapes.tags(env)}
    fields: dict[str, list[str]] = {
        "zone": [env.zone, *[z for z in env.fallback_zones.split(",") if z]],
        "env-id": [env.id],
        "env-name": [env.name],
        "resource-type": ["CVM"],
        "tag-key": list(tags),
        "tag-value": list(tags.values()),
    }
    for name, values in filters:
        have = (
            [tags[name[4:]]]
            if name.startswith("tag:") and name[4:] in tags
            else fields.get(name, [])
        )
        if not set(have) & set(values):
            return False
    return True


async def _selected(call: Call, params: Params, known: Sequence[str]) -> list[EnvironmentView]:
    """The environments EnvIds or Filters name (not both), newest first."""
    env_ids = params.strings("EnvIds")
    if env_ids is not None and params.has("Filters"):
        raise ApiError(
            "InvalidParameter.InvalidParameterCombination",
            "`EnvIds` and `Filters` cannot be given together.",
        )
    envs = sorted(await call.environments.list(), key=lambda e: (e.created_at, e.id), reverse=True)
    if env_ids is not None:
        if len(env_ids) > MAX_IDS:
            raise ApiError("InvalidParameterValue", f"`EnvIds` takes at most {MAX_IDS} ids.")
        for i, env_id in enumerate(env_ids):
            if not ENV_ID.match(env_id):
                raise ApiError(
                    "InvalidParameter.EnvIdMalformed", f"`EnvIds.{i}` {env_id!r} is malformed."
                )
        wanted = set(env_ids)
        return [e for e in envs if e.id in wanted]
    filters = _filters(params, known)
    return [e for e in envs if _matches(e, filters)]


def _split(text: str) -> list[str]:
    return [p for p in text.split(",") if p]


async def _check_offered(call: Call, row: dict[str, Any], field: str) -> None:
    """Instance types CVM sells in the environment's zones (when this server can ask CVM)."""
    if call.catalog is None or "instance_type" not in row:
        return
    types = [
        t for t in (row["instance_type"], *_split(row.get("fallback_instance_types", ""))) if t
    ]
    if not types:
        return  # InstanceTypeOptions: the market's types of that shape, chosen per launch
    zones = [row["zone"], *_split(row.get("fallback_zones", ""))]
    await call.catalog.check_offered(types, zones, field)


async def create_compute_env(call: Call, params: Params) -> dict[str, Any]:
    params.reject_unknown(("ComputeEnv", "Placement", "ClientToken"))
    row = mapping.new_environment(params)
    token = params.string("ClientToken")
    try:
        validate_new_environment(row, call.environments.region)  # the rules, before CVM
        many = bool(row.get("fallback_instance_types"))
        await _check_offered(call, row, f"ComputeEnv.EnvData.InstanceType{'s' if many else ''}")
        env = await call.environments.create(row, client_token=token)
    except ValidationFailed as exc:
        raise refusal(exc, CREATE_FIELDS) from None
    return {"EnvId": env.id}


async def describe_compute_envs(call: Call, params: Params) -> dict[str, Any]:
    params.reject_unknown(("EnvIds", "Filters", "Offset", "Limit"))
    offset, limit = _page(params)
    envs = await _selected(call, params, ENV_FILTERS)
    states = await call.environments.node_states()
    page = envs[offset : offset + limit]
    return {
        "ComputeEnvSet": [
            shapes.compute_env(e, shapes.metrics(states.get(e.id, []))) for e in page
        ],
        "TotalCount": len(envs),
    }


async def describe_compute_env(call: Call, params: Params) -> dict[str, Any]:
    params.reject_unknown(("EnvId",))
    env = await _environment(call, _env_id(params))
    nodes = await call.environments.nodes(env.id)
    groups = [{"state": n.state, "cloud_state": n.cloud_state, "nodes": 1} for n in nodes]
    return {
        **shapes.compute_env(env, shapes.metrics(groups)),
        "ComputeNodeSet": [shapes.compute_node(n) for n in nodes],
    }


async def modify_compute_env(call: Call, params: Params) -> dict[str, Any]:
    params.reject_unknown(
        ("EnvId", "DesiredComputeNodeCount", "EnvName", "EnvDescription", "EnvData")
    )
    env = await _environment(call, _env_id(params))
    changes = mapping.changes(params)
    try:
        if "instance_type" in changes:
            for itype in [changes["instance_type"], *_split(changes["fallback_instance_types"])]:
                spec.validate_instance_type(itype)
            await _check_offered(
                call,
                {**changes, "zone": env.zone, "fallback_zones": env.fallback_zones},
                "EnvData.InstanceTypes",
            )
        await call.environments.update(env.id, changes)
    except ValidationFailed as exc:
        raise refusal(exc, MODIFY_FIELDS) from None
    return {}


async def delete_compute_env(call: Call, params: Params) -> dict[str, Any]:
    params.reject_unknown(("EnvId",))
    env = await _environment(call, _env_id(params))
    try:
        await call.environments.delete(env.id)
    except ValidationFailed as exc:
        raise refusal(exc, {}) from None
    return {}


async def describe_compute_env_activities(call: Call, params: Params) -> dict[str, Any]:
    params.reject_unknown(("EnvId", "Offset", "Limit", "Filters"))
    env_id = _env_id(params)
    offset, limit = _page(params)
    node_id = None
    if (f := params.object("Filters")) is not None:  # one Filter, not a list
        f.reject_unknown(("Name", "Values"))
        name = f.string("Name", required=True)
        values = f.strings("Values", required=True)
        assert values is not None
        if name != "compute-node-id":
            raise ApiError(
                "InvalidFilter", f"`Filters.Name` {name!r} is not a filter; known: compute-node-id."
            )
        if len(values) != 1:
            raise ApiError("InvalidParameterValue", "`Filters.Values` takes one compute node id.")
        node_id = values[0]
    try:
        page, total = await call.environments.activity_page(env_id, offset, limit, node_id)
    except ValidationFailed as exc:
        raise refusal(exc, {}) from None
    return {"ActivitySet": [shapes.activity(a) for a in page], "TotalCount": total}


async def describe_compute_env_create_info(call: Call, params: Params) -> dict[str, Any]:
    params.reject_unknown(("EnvId",))
    env = await _environment(call, _env_id(params))
    return shapes.create_info(env)


async def describe_compute_env_create_infos(call: Call, params: Params) -> dict[str, Any]:
    params.reject_unknown(("EnvIds", "Filters", "Offset", "Limit"))
    offset, limit = _page(params)
    envs = await _selected(call, params, CREATE_INFO_FILTERS)
    return {
        "TotalCount": len(envs),
        "ComputeEnvCreateInfoSet": [shapes.create_info(e) for e in envs[offset : offset + limit]],
    }


async def _terminate(call: Call, env_id: str, node_ids: list[str]) -> dict[str, Any]:
    env = await _environment(call, env_id)
    try:
        await call.environments.terminate_nodes(env.id, node_ids)
    except ValidationFailed as exc:
        raise refusal(exc, NODE_FIELDS) from None
    return {}


async def terminate_compute_node(call: Call, params: Params) -> dict[str, Any]:
    params.reject_unknown(("EnvId", "ComputeNodeId"))
    env_id = _env_id(params)
    node_id = params.string("ComputeNodeId", required=True)
    assert node_id is not None
    return await _terminate(call, env_id, [node_id])


async def terminate_compute_nodes(call: Call, params: Params) -> dict[str, Any]:
    params.reject_unknown(("EnvId", "ComputeNodeIds"))
    env_id = _env_id(params)
    node_ids = params.strings("ComputeNodeIds", required=True)
    assert node_ids is not None
    return await _terminate(call, env_id, node_ids)


async def attach_or_detach(call: Call, params: Params) -> dict[str, Any]:
    raise ApiError(
        "UnsupportedOperation",
        "AttachInstances and DetachInstances are not supported: spot-controller keeps only "
        "instances it launched itself (adopting an instance would need its image and user data "
        "reset, as Batch does); create the environment with the instance's spec instead.",
    )


async def _catalog(call: Call) -> Catalog:
    if call.catalog is None:
        raise ApiError(
            "InternalError.CallCvm", "This API server has no CVM credentials to ask CVM with."
        )
    return call.catalog


async def describe_cvm_zone_instance_config_infos(call: Call, params: Params) -> dict[str, Any]:
    params.reject_unknown(("Filters",))
    return await (await _catalog(call)).zone_instance_config_infos(params)


async def describe_available_cvm_instance_types(call: Call, params: Params) -> dict[str, Any]:
    params.reject_unknown(("Filters",))
    return await (await _catalog(call)).available_instance_types(params)


async def describe_instance_categories(call: Call, params: Params) -> dict[str, Any]:
    params.reject_unknown(())
    return await (await _catalog(call)).instance_categories()


ACTIONS: dict[str, Handler] = {
    "CreateComputeEnv": create_compute_env,
    "DescribeComputeEnvs": describe_compute_envs,
    "DescribeComputeEnv": describe_compute_env,
    "ModifyComputeEnv": modify_compute_env,
    "DeleteComputeEnv": delete_compute_env,
    "DescribeComputeEnvActivities": describe_compute_env_activities,
    "DescribeComputeEnvCreateInfo": describe_compute_env_create_info,
    "DescribeComputeEnvCreateInfos": describe_compute_env_create_infos,
    "TerminateComputeNode": terminate_compute_node,
    "TerminateComputeNodes": terminate_compute_nodes,
    "AttachInstances": attach_or_detach,
    "DetachInstances": attach_or_detach,
    "DescribeCvmZoneInstanceConfigInfos": describe_cvm_zone_instance_config_infos,
    "DescribeAvailableCvmInstanceTypes": describe_available_cvm_instance_types,
    "DescribeInstanceCategories": describe_instance_categories,
}
MUTATING = frozenset(
    {
        "CreateComputeEnv",
        "ModifyComputeEnv",
        "DeleteComputeEnv",
        "TerminateComputeNode",
        "TerminateComputeNodes",
        "AttachInstances",
        "DetachInstances",
    }
)
# BatchCompute's job and task-template actions: answered UnsupportedOperation, by name.
JOB_ACTIONS = frozenset(
    {
        "CreateTaskTemplate",
        "DeleteJob",
        "DeleteTaskTemplates",
        "DescribeJob",
        "DescribeJobMonitorData",
        "DescribeJobSubmitInfo",
        "DescribeJobs",
        "DescribeTask",
        "DescribeTaskLogs",
        "DescribeTaskTemplates",
        "ModifyTaskTemplate",
        "RetryJobs",
        "SubmitJob",
        "TerminateJob",
        "TerminateTaskInstance",
    }
)
