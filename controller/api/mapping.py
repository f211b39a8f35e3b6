"""BatchCompute's request fields to the row's columns.

What has a column is mapped; what BatchCompute offers and spot-controller does not do (a Batch
agent's mounts, notifications, disks it cannot yet pass on) is refused, naming the field, so
that a request never half-applies silently. The rules of the values themselves are the
service's (``controller.service``): this module only moves fields.
"""

from __future__ import annotations

import json
from typing import Any

from controller.core import spec
from controller.tencentapi.errors import ApiError
from controller.tencentapi.params import Params

SPOT = "SPOTPAID"
ON_DEMAND = "POSTPAID_BY_HOUR"
CHARGE_TYPES = (SPOT, ON_DEMAND)
# An all-pay-as-you-go environment launches no spot instance: its bid is never sent. The row
# still needs one (max_price is NOT NULL); the largest accepted keeps "any market price".
ON_DEMAND_BID = str(spec.MAX_PRICE)
MAX_TAGS = 10

NAMED_COMPUTE_ENV = (
    "EnvName",
    "DesiredComputeNodeCount",
    "EnvDescription",
    "EnvType",
    "EnvData",
    "MountDataDisks",
    "Authentications",
    "InputMappings",
    "AgentRunningMode",
    "Notifications",
    "ActionIfComputeNodeInactive",
    "ResourceMaxRetryCount",
    "Tags",
    "NotificationTarget",
)
# Batch agent features: spot-controller runs instances, not a Batch agent on them.
AGENT_FIELDS = (
    "MountDataDisks",
    "Authentications",
    "InputMappings",
    "AgentRunningMode",
    "Notifications",
    "NotificationTarget",
)
ENV_DATA = (
    "InstanceType",
    "ImageId",
    "SystemDisk",
    "DataDisks",
    "VirtualPrivateCloud",
    "InternetAccessible",
    "InstanceName",
    "LoginSettings",
    "SecurityGroupIds",
    "EnhancedService",
    "InstanceChargeType",
    "InstanceMarketOptions",
    "InstanceTypes",
    "InstanceTypeOptions",
    "Zones",
    "VirtualPrivateClouds",
)
# EnvData fields passed on to RunInstances as given (the launch_options column, checked there).
LAUNCH_OPTIONS = ("SystemDisk", "DataDisks", "InternetAccessible", "EnhancedService")
# EnvData fields the launch has no column for yet: refused rather than dropped.
NOT_YET = {
    "VirtualPrivateClouds": "give one VirtualPrivateCloud",
}
PLACEMENT = (
    "Zone",
    "ProjectId",
    "HostIds",
    "HostId",
    "DedicatedResourcePackTenancy",
    "DedicatedResourcePackIds",
    "RackId",
)


def unsupported(field: str, why: str) -> ApiError:
    return ApiError(
        "InvalidParameterValue.ComputeEnv", f"`{field}` is not supported by spot-controller: {why}."
    )


def _instance_types(env_data: Params) -> list[str]:
    single = env_data.string("InstanceType")
    many = env_data.strings("InstanceTypes")
    if single is not None and many is not None:
        raise ApiError(
            "InvalidParameter.InvalidParameterCombination",
            f"`{env_data.name('InstanceType')}` and `{env_data.name('InstanceTypes')}` cannot "
            "be given together.",
        )
    if single is not None:
        return [single]
    if many is None:
        raise ApiError(
            "MissingParameter",
            f"The request is missing a required parameter `{env_data.name('InstanceType')}` "
            f"(or `{env_data.name('InstanceTypes')}`).",
        )
    if not many:
        raise ApiError(
            "InvalidParameterValue.InstanceTypesEmpty",
            f"`{env_data.name('InstanceTypes')}` must name at least one instance type.",
        )
    if len(set(many)) != len(many):
        raise ApiError(
            "InvalidParameterValue.InstanceTypeDuplicate",
            f"`{env_data.name('InstanceTypes')}` names an instance type twice.",
        )
    if len(many) > spec.MAX_INSTANCE_TYPES:
        raise ApiError(
            "InvalidParameterValue.InstanceType",
            f"`{env_data.name('InstanceTypes')}` takes at most {spec.MAX_INSTANCE_TYPES} "
            f"instance types, got {len(many)}.",
        )
    return many


def _type_options(env_data: Params) -> dict[str, Any] | None:
    """InstanceTypeOptions as the placement's attribute columns: the market's types with that
    many vCPUs and that memory (chosen by the environment's allocation strategy)."""
    options = env_data.object("InstanceTypeOptions")
    if options is None:
        return None
    for other in ("InstanceType", "InstanceTypes"):
        if env_data.has(other):
            raise ApiError(
                "InvalidParameter.InvalidParameterCombination",
                f"`{env_data.name('InstanceTypeOptions')}` and `{env_data.name(other)}` cannot "
                "be given together.",
            )
    options.reject_unknown(("CPU", "Memory", "InstanceCategories"))
    categories = options.strings("InstanceCategories")
    if categories and categories != ["ALL"]:
        raise unsupported(
            options.name("InstanceCategories"),
            "give CPU and Memory (every family of the market that has them is a candidate)",
        )
    return {
        "instance_cpu": options.integer("CPU", required=True),
        "instance_memory": options.integer("Memory", required=True),
    }


def _bid(env_data: Params) -> dict[str, Any]:
    """The charge type and the bid: spot columns, or an all-pay-as-you-go policy."""
    charge = env_data.string("InstanceChargeType") or ON_DEMAND
    market = env_data.object("InstanceMarketOptions")
    if charge not in CHARGE_TYPES:
        raise ApiError(
            "InvalidParameterValue.UnsupportedBatchInstanceChargeType",
            f"`{env_data.name('InstanceChargeType')}` must be SPOTPAID or POSTPAID_BY_HOUR, "
            f"got {charge!r}.",
        )
    if charge == ON_DEMAND:
        if market is not None:
            raise ApiError(
                "InvalidParameter.InvalidParameterCombination",
                f"`{env_data.name('InstanceMarketOptions')}` is for InstanceChargeType SPOTPAID.",
            )
        return {"max_price": ON_DEMAND_BID, "on_demand_percentage": 100}
    if market is None:
        raise ApiError(
            "MissingParameter",
            "The request is missing a required parameter "
            f"`{env_data.name('InstanceMarketOptions')}` (SPOTPAID needs a MaxPrice).",
        )
    market.reject_unknown(("SpotOptions", "MarketType"))
    market_type = market.string("MarketType")
    if market_type not in (None, "spot"):
        raise ApiError(
            "InvalidParameterValue.ComputeEnv",
            f"`{market.name('MarketType')}` must be spot, got {market_type!r}.",
        )
    spot_options = market.object("SpotOptions", required=True)
    assert spot_options is not None
    spot_options.reject_unknown(("MaxPrice", "SpotInstanceType"))
    kind = spot_options.string("SpotInstanceType")
    if kind not in (None, "one-time"):
        raise ApiError(
            "InvalidParameterValue.ComputeEnv",
            f"`{spot_options.name('SpotInstanceType')}` must be one-time, got {kind!r}.",
        )
    return {"max_price": spot_options.string("MaxPrice", required=True)}


def _launch(env_data: Params, row: dict[str, Any]) -> None:
    row["image_id"] = env_data.string("ImageId", required=True)
    options = {name: env_data.value(name) for name in LAUNCH_OPTIONS if env_data.has(name)}
    if options:
        row["launch_options"] = json.dumps(options, ensure_ascii=False)
    if (instance_name := env_data.string("InstanceName")) is not None:
        row["instance_name"] = instance_name
    if (groups := env_data.strings("SecurityGroupIds")) is not None:
        row["security_group_ids"] = ",".join(groups)
    if (vpc := env_data.object("VirtualPrivateCloud")) is not None:
        vpc.reject_unknown(
            ("VpcId", "SubnetId", "AsVpcGateway", "PrivateIpAddresses", "Ipv6AddressCount")
        )
        for extra in ("AsVpcGateway", "PrivateIpAddresses", "Ipv6AddressCount"):
            if vpc.has(extra):
                raise unsupported(vpc.name(extra), "only VpcId and SubnetId are passed on")
        row["vpc_id"] = vpc.string("VpcId", required=True)
        row["subnet_id"] = vpc.string("SubnetId", required=True)
    if (login := env_data.object("LoginSettings")) is not None:
        login.reject_unknown(("Password", "KeyIds", "KeepImageLogin"))
        if login.has("Password"):
            raise unsupported(login.name("Password"), "no password is stored; give KeyIds")
        if login.has("KeepImageLogin"):
            raise unsupported(login.name("KeepImageLogin"), "give KeyIds")
        if (key_ids := login.strings("KeyIds")) is not None:
            row["key_ids"] = ",".join(key_ids)


def _tags(env: Params) -> str | None:
    tags = env.objects("Tags")
    if tags is None:
        return None
    if len(tags) > MAX_TAGS:
        raise ApiError(
            "InvalidParameterValue.ComputeEnv", f"`{env.name('Tags')}`: at most {MAX_TAGS} tags."
        )
    pairs: dict[str, str] = {}
    for tag in tags:
        tag.reject_unknown(("Key", "Value"))
        key = tag.string("Key", required=True)
        value = tag.string("Value", required=True)
        assert key is not None
        assert value is not None
        pairs[key] = value
    return json.dumps(pairs, ensure_ascii=False)


def new_environment(params: Params) -> dict[str, Any]:
    """CreateComputeEnv's ComputeEnv and Placement as the row's columns."""
    env = params.object("ComputeEnv", required=True)
    placement = params.object("Placement", required=True)
    assert env is not None
    assert placement is not None
    env.reject_unknown(NAMED_COMPUTE_ENV)
    placement.reject_unknown(PLACEMENT)
    for name in AGENT_FIELDS:
        if env.has(name):
            raise unsupported(env.name(name), "it runs no Batch agent on the instances")
    for name in ("HostIds", "HostId", "DedicatedResourcePackTenancy", "DedicatedResourcePackIds"):
        if placement.has(name):
            raise unsupported(placement.name(name), "instances are placed by zone only")
    env_type = env.string("EnvType")
    if env_type not in (None, "MANAGED"):
        raise ApiError(
            "InvalidParameterValue.ComputeEnv",
            f"`{env.name('EnvType')}` must be MANAGED, got {env_type!r}.",
        )
    action = env.string("ActionIfComputeNodeInactive")
    if action not in (None, "RECREATE"):
        raise unsupported(env.name("ActionIfComputeNodeInactive"), "nodes are always recreated")
    retries = env.integer("ResourceMaxRetryCount")
    if retries is not None and not 0 <= retries <= 100:
        raise ApiError(
            "InvalidParameterValue.MaxRetryCount",
            f"`{env.name('ResourceMaxRetryCount')}` must be from 0 to 100, got {retries}.",
        )
    env_data = env.object("EnvData", required=True)
    assert env_data is not None
    env_data.reject_unknown(ENV_DATA)
    for name, why in NOT_YET.items():
        if env_data.has(name):
            raise unsupported(env_data.name(name), why)
    by_attributes = _type_options(env_data)
    types = [""] if by_attributes else _instance_types(env_data)
    zone = placement.string("Zone", required=True)
    zones = [z for z in (env_data.strings("Zones") or []) if z != zone]
    row: dict[str, Any] = {
        "name": env.string("EnvName", required=True),
        "desired_count": env.integer("DesiredComputeNodeCount", required=True),
        "zone": zone,
        "instance_type": types[0],
        "fallback_instance_types": ",".join(types[1:]),
        "fallback_zones": ",".join(zones),
        **(by_attributes or {}),
        **_bid(env_data),
    }
    if (description := env.string("EnvDescription")) is not None:
        row["description"] = description
    if (project_id := placement.integer("ProjectId")) is not None:
        row["project_id"] = project_id
    if (tags := _tags(env)) is not None:
        row["tags"] = tags
    _launch(env_data, row)
    return row


def changes(params: Params) -> dict[str, Any]:
    """ModifyComputeEnv's fields as column changes."""
    row: dict[str, Any] = {}
    if (desired := params.integer("DesiredComputeNodeCount")) is not None:
        row["desired_count"] = desired
    if (name := params.string("EnvName")) is not None:
        row["name"] = name
    if (description := params.string("EnvDescription")) is not None:
        row["description"] = description
    if (env_data := params.object("EnvData")) is not None:
        env_data.reject_unknown(("InstanceTypes",))
        types = env_data.strings("InstanceTypes", required=True)
        assert types is not None
        if not types:
            raise ApiError(
                "InvalidParameterValue.InstanceTypesEmpty",
                f"`{env_data.name('InstanceTypes')}` must name at least one instance type.",
            )
        if len(set(types)) != len(types):
            raise ApiError(
                "InvalidParameterValue.InstanceTypeDuplicate",
                f"`{env_data.name('InstanceTypes')}` names an instance type twice.",
            )
        row["instance_type"] = types[0]
        row["fallback_instance_types"] = ",".join(types[1:])
    if not row:
        raise ApiError(
            "InvalidParameterAtLeastOneAttribute",
            "Give at least one of DesiredComputeNodeCount, EnvName, EnvDescription, EnvData.",
        )
    return row
