"""The CVM actions: read a request's parameters, ask the world, shape Tencent's answer.

Each handler takes the parsed parameters and returns the fields of ``Response`` (without
``RequestId``), raising :class:`ApiError` for what Tencent would refuse. Responses carry only
fields the official SDK's models know, because the SDK warns about any other field. Launch
parameters are read in :mod:`~controller.simulator.launch`, DescribeInstances' filters and
shape live in :mod:`~controller.simulator.describe`, the catalog actions in
:mod:`~controller.simulator.info` and the power states in :mod:`~controller.simulator.power`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from controller.simulator import info, power
from controller.simulator.describe import (
    INSTANCE_FILTERS,
    VOLATILE_FILTERS,
    Filters,
    matches,
    read_filters,
    render_instance,
)
from controller.simulator.instance import Instance
from controller.simulator.launch import launch_spec
from controller.simulator.state import World
from controller.tencentapi.errors import ApiError
from controller.tencentapi.params import Params

VERSION = "2017-03-12"
INSTANCE_ID_PATTERN = re.compile(r"^ins-[a-z0-9]{8}$")
MAX_IDS = 100


@dataclass(frozen=True)
class Context:
    """Who asked and when: the request's region, the simulator time, the RequestId."""

    region: str
    now: float
    request_id: str


Handler = Callable[[World, Params, Context], dict[str, Any]]

# Top-level parameters of each action, as in the SDK's request models: anything else is
# UnknownParameter. Known parameters the simulator does not model are accepted and ignored.
_LAUNCH_PARAMS = (
    "InstanceChargeType",
    "InstanceChargePrepaid",
    "Placement",
    "InstanceType",
    "ImageId",
    "SystemDisk",
    "DataDisks",
    "VirtualPrivateCloud",
    "InternetAccessible",
    "InstanceCount",
    "InstanceName",
    "LoginSettings",
    "SecurityGroupIds",
    "EnhancedService",
    "ClientToken",
    "HostName",
    "TagSpecification",
    "InstanceMarketOptions",
    "Metadata",
    "HpcClusterId",
    "CpuTopology",
    "LaunchTemplate",
    "NetworkInterfaces",
)
_RUN_PARAMS = (
    *_LAUNCH_PARAMS,
    "MinCount",
    "ActionTimer",
    "DisasterRecoverGroupIds",
    "UserData",
    "DryRun",
    "CamRoleName",
    "DedicatedClusterId",
    "ChcIds",
    "PartitionNumber",
    "DisableApiTermination",
    "EnableJumboFrame",
)


def run_instances(world: World, p: Params, ctx: Context) -> dict[str, Any]:
    p.reject_unknown(_RUN_PARAMS)
    spec = launch_spec(world, p, ctx.region, run=True)
    ids = world.launch(spec, ctx.now, ctx.request_id)
    return {"InstanceIdSet": list(ids)}


def inquiry_price_run_instances(world: World, p: Params, ctx: Context) -> dict[str, Any]:
    p.reject_unknown(_LAUNCH_PARAMS)
    spec = launch_spec(world, p, ctx.region, run=False)
    pool = world.pool_for(spec.region, spec.zone, spec.instance_type)
    world.check_image(spec.image_id)
    if spec.charge_type == "SPOTPAID" and not pool.spot:
        raise ApiError(
            "UnsupportedOperation.NoInstanceTypeSupportSpot",
            f"The instance type {spec.instance_type} is not sold as spot in {spec.zone}.",
        )
    unit = pool.on_demand_price * spec.count
    paid = (pool.price if spec.charge_type == "SPOTPAID" else pool.on_demand_price) * spec.count
    return {
        "Price": {
            "InstancePrice": {
                "UnitPrice": round(unit, 5),
                "UnitPriceDiscount": round(paid, 5),
                "Discount": round(100 * paid / unit, 2),
                "ChargeUnit": "HOUR",
            },
            "BandwidthPrice": {},
        }
    }


def describe_instances(world: World, p: Params, ctx: Context) -> dict[str, Any]:
    p.reject_unknown(("InstanceIds", "Filters", "Offset", "Limit"))
    ids = _instance_ids(p, required=False)
    filters = read_filters(p, INSTANCE_FILTERS, tag_filters=True)
    if ids and filters:
        raise ApiError(
            "InvalidParameter", "The parameters `InstanceIds` and `Filters` cannot be combined."
        )
    offset, limit = info.paging(p)
    if ids:
        wanted = set(ids)
        found = [i for i in world.visible(ctx.region, ctx.now) if i.instance_id in wanted]
    else:
        found = _filtered(world, ctx, filters)
    return {
        "TotalCount": len(found),
        "InstanceSet": [render_instance(i) for i in found[offset : offset + limit]],
    }


_DESCRIBE_CACHE_SIZE = 16


def _filtered(world: World, ctx: Context, filters: Filters) -> list[Instance]:
    """Visible instances matching ``filters``, in creation order.

    A sweep pages through the same query a hundred instances at a time; recomputing the whole
    match for each page made a sweep of N instances cost O(N^2). The list is reused while no
    instance was created or has gone (states are rendered fresh from the same objects), unless
    visibility depends on the clock (``describe_lag_s``) or a filter reads the state.
    """
    cacheable = world.faults.settings.describe_lag_s == 0 and not any(
        name in VOLATILE_FILTERS for name, _ in filters
    )
    key = (ctx.region, tuple(sorted((name, tuple(sorted(values))) for name, values in filters)))
    if cacheable:
        hit = world.describe_cache.get(key)
        if hit is not None and hit[0] == world.membership_version:
            return hit[1]
    found = world.visible(ctx.region, ctx.now)
    for name, values in filters:
        found = [i for i in found if matches(i, name, values)]
    if cacheable:
        if len(world.describe_cache) >= _DESCRIBE_CACHE_SIZE:
            world.describe_cache.clear()
        world.describe_cache[key] = (world.membership_version, found)
    return found


def describe_instances_status(world: World, p: Params, ctx: Context) -> dict[str, Any]:
    p.reject_unknown(("InstanceIds", "Offset", "Limit"))
    ids = _instance_ids(p, required=False)
    offset, limit = info.paging(p)
    found = world.visible(ctx.region, ctx.now)
    if ids:
        wanted = set(ids)
        found = [i for i in found if i.instance_id in wanted]
    return {
        "TotalCount": len(found),
        "InstanceStatusSet": [
            {"InstanceId": i.instance_id, "InstanceState": str(i.state)}
            for i in found[offset : offset + limit]
        ],
    }


def terminate_instances(world: World, p: Params, ctx: Context) -> dict[str, Any]:
    p.reject_unknown(("InstanceIds", "ReleaseAddress", "ReleasePrepaidDataDisks"))
    ids = _instance_ids(p, required=True)
    p.boolean("ReleaseAddress")
    p.boolean("ReleasePrepaidDataDisks")
    world.terminate(ctx.region, ids, ctx.now, ctx.request_id)
    return {}


def start_instances(world: World, p: Params, ctx: Context) -> dict[str, Any]:
    p.reject_unknown(("InstanceIds",))
    ids = _instance_ids(p, required=True)
    power.power(world, "StartInstances", ctx.region, ids, ctx.now, ctx.request_id)
    return {}


def stop_instances(world: World, p: Params, ctx: Context) -> dict[str, Any]:
    p.reject_unknown(("InstanceIds", "ForceStop", "StopType", "StoppedMode"))
    ids = _instance_ids(p, required=True)
    _stop_type(p)
    mode = p.string("StoppedMode") or "KEEP_CHARGING"
    if mode not in power.STOPPED_MODES:
        raise ApiError(
            "InvalidParameterValue",
            f"`StoppedMode` must be one of {', '.join(power.STOPPED_MODES)}, got `{mode}`.",
        )
    power.power(world, "StopInstances", ctx.region, ids, ctx.now, ctx.request_id, stopped_mode=mode)
    return {}


def reboot_instances(world: World, p: Params, ctx: Context) -> dict[str, Any]:
    p.reject_unknown(("InstanceIds", "ForceReboot", "StopType"))
    ids = _instance_ids(p, required=True)
    _stop_type(p, force_key="ForceReboot")
    power.power(world, "RebootInstances", ctx.region, ids, ctx.now, ctx.request_id)
    return {}


def _stop_type(p: Params, force_key: str = "ForceStop") -> None:
    force = p.boolean(force_key)
    stop_type = p.string("StopType")
    if force is not None and stop_type is not None:
        raise ApiError(
            "InvalidParameterCombination",
            f"The parameters `{force_key}` and `StopType` cannot be combined.",
        )
    if stop_type is not None and stop_type not in power.STOP_TYPES:
        raise ApiError(
            "InvalidParameterValue",
            f"`StopType` must be one of {', '.join(power.STOP_TYPES)}, got `{stop_type}`.",
        )


_OPERATIONS = ("INSTANCE_DEGRADE", "INTERNET_CHARGE_TYPE_CHANGE")


def describe_instances_operation_limit(world: World, p: Params, ctx: Context) -> dict[str, Any]:
    """How many more times each instance may be downgraded (CVM allows a few a month)."""
    p.reject_unknown(("InstanceIds", "Operation"))
    ids = _instance_ids(p, required=True)
    operation = p.string("Operation", required=True) or ""
    if operation not in _OPERATIONS:
        raise ApiError(
            "InvalidParameterValue",
            f"`Operation` must be one of {', '.join(_OPERATIONS)}, got `{operation}`.",
        )
    instances = world.alive_in(ctx.region, ids)
    return {
        "InstanceOperationLimitSet": [
            {
                "Operation": operation,
                "InstanceId": i.instance_id,
                "CurrentCount": 0,
                "LimitCount": 5,
            }
            for i in instances
        ]
    }


def _by_region(handler: Callable[[World, Params, str], dict[str, Any]]) -> Handler:
    return lambda world, p, ctx: handler(world, p, ctx.region)


ACTIONS: dict[str, Handler] = {
    "RunInstances": run_instances,
    "InquiryPriceRunInstances": inquiry_price_run_instances,
    "DescribeInstances": describe_instances,
    "DescribeInstancesStatus": describe_instances_status,
    "TerminateInstances": terminate_instances,
    "StartInstances": start_instances,
    "StopInstances": stop_instances,
    "RebootInstances": reboot_instances,
    "DescribeInstancesOperationLimit": describe_instances_operation_limit,
    "DescribeZoneInstanceConfigInfos": _by_region(info.describe_zone_instance_config_infos),
    "DescribeRegions": _by_region(info.describe_regions),
    "DescribeZones": _by_region(info.describe_zones),
    "DescribeImages": _by_region(info.describe_images),
    "DescribeInstanceTypeConfigs": _by_region(info.describe_instance_type_configs),
    "DescribeAccountQuota": _by_region(info.describe_account_quota),
}


def handle(world: World, action: str, body: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    """Run ``action`` (already known to be in :data:`ACTIONS`) on the parsed body."""
    return ACTIONS[action](world, Params(body), ctx)


def _instance_ids(p: Params, *, required: bool) -> list[str]:
    ids = p.strings("InstanceIds", required=required) or []
    if required and not ids:
        raise ApiError(
            "MissingParameter", "The request is missing a required parameter `InstanceIds`."
        )
    if len(ids) > MAX_IDS:
        raise ApiError(
            "InvalidParameterValue.LimitExceeded",
            f"At most {MAX_IDS} `InstanceIds` per call, got {len(ids)}.",
        )
    for instance_id in ids:
        if not INSTANCE_ID_PATTERN.match(instance_id):
            raise ApiError(
                "InvalidInstanceId.Malformed", f"The instance id `{instance_id}` is malformed."
            )
    return ids
