"""The CVM actions: read a request's parameters, ask the world, shape Tencent's answer.

Each handler takes the parsed JSON body and returns the fields of ``Response`` (without
``RequestId``), raising :class:`ApiError` for what Tencent would refuse. Responses carry only
fields the official SDK's models know, because the SDK warns about any other field.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from controller.simulator.errors import ApiError
from controller.simulator.market import INSTANCE_TYPE_PATTERN, Pool, family_of, type_name_of
from controller.simulator.params import Params
from controller.simulator.state import Instance, LaunchSpec, World, format_time

VERSION = "2017-03-12"
INSTANCE_ID_PATTERN = re.compile(r"^ins-[a-z0-9]{8}$")
IMAGE_ID_PATTERN = re.compile(r"^img-[a-z0-9]{8}$")
SECURITY_GROUP_PATTERN = re.compile(r"^sg-[a-z0-9]{8}$")
VPC_PATTERN = re.compile(r"^vpc-[a-z0-9]{8}$")
SUBNET_PATTERN = re.compile(r"^subnet-[a-z0-9]{8}$")
KEY_ID_PATTERN = re.compile(r"^skey-[a-z0-9]{8}$")
CHARGE_TYPES = ("SPOTPAID", "POSTPAID_BY_HOUR")
MAX_IDS = 100
MAX_FILTERS = 10
MAX_FILTER_VALUES = 5
MAX_TAGS = 50
MAX_USER_DATA_BYTES = 16 * 1024
DEFAULT_VPC = ("vpc-00000001", "subnet-00000001")


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
    spec = _launch_spec(world, p, ctx, run=True)
    ids = world.launch(spec, ctx.now, ctx.request_id)
    return {"InstanceIdSet": list(ids)}


def inquiry_price_run_instances(world: World, p: Params, ctx: Context) -> dict[str, Any]:
    p.reject_unknown(_LAUNCH_PARAMS)
    spec = _launch_spec(world, p, ctx, run=False)
    pool = world.pool_for(spec.region, spec.zone, spec.instance_type)
    world.check_image(spec.image_id)
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
    filters = _filters(p, _INSTANCE_FILTERS)
    if ids and filters:
        raise ApiError(
            "InvalidParameter", "The parameters `InstanceIds` and `Filters` cannot be combined."
        )
    offset, limit = _paging(p)
    if ids:
        wanted = set(ids)
        matches = [i for i in world.visible(ctx.region, ctx.now) if i.instance_id in wanted]
    else:
        matches = _filtered(world, ctx, filters)
    return {
        "TotalCount": len(matches),
        "InstanceSet": [render_instance(i) for i in matches[offset : offset + limit]],
    }


# Filters on what changes during an instance's life: their matches cannot be reused.
_VOLATILE_FILTERS = frozenset({"instance-state"})
_DESCRIBE_CACHE_SIZE = 16


def _filtered(world: World, ctx: Context, filters: list[tuple[str, set[str]]]) -> list[Instance]:
    """Visible instances matching ``filters``, in creation order.

    A sweep pages through the same query a hundred instances at a time; recomputing the whole
    match for each page made a sweep of N instances cost O(N^2). The list is reused while no
    instance was created or has gone (states are rendered fresh from the same objects), unless
    visibility depends on the clock (``describe_lag_s``) or a filter reads the state.
    """
    cacheable = world.faults.settings.describe_lag_s == 0 and not any(
        name in _VOLATILE_FILTERS for name, _ in filters
    )
    key = (ctx.region, tuple(sorted((name, tuple(sorted(values))) for name, values in filters)))
    if cacheable:
        hit = world.describe_cache.get(key)
        if hit is not None and hit[0] == world.membership_version:
            return hit[1]
    matches = world.visible(ctx.region, ctx.now)
    for name, values in filters:
        matches = [i for i in matches if _instance_matches(i, name, values)]
    if cacheable:
        if len(world.describe_cache) >= _DESCRIBE_CACHE_SIZE:
            world.describe_cache.clear()
        world.describe_cache[key] = (world.membership_version, matches)
    return matches


def describe_instances_status(world: World, p: Params, ctx: Context) -> dict[str, Any]:
    p.reject_unknown(("InstanceIds", "Offset", "Limit"))
    ids = _instance_ids(p, required=False)
    offset, limit = _paging(p)
    matches = world.visible(ctx.region, ctx.now)
    if ids:
        wanted = set(ids)
        matches = [i for i in matches if i.instance_id in wanted]
    return {
        "TotalCount": len(matches),
        "InstanceStatusSet": [
            {"InstanceId": i.instance_id, "InstanceState": str(i.state)}
            for i in matches[offset : offset + limit]
        ],
    }


def terminate_instances(world: World, p: Params, ctx: Context) -> dict[str, Any]:
    p.reject_unknown(("InstanceIds", "ReleaseAddress", "ReleasePrepaidDataDisks"))
    ids = _instance_ids(p, required=True)
    world.terminate(ctx.region, ids, ctx.now, ctx.request_id)
    return {}


def describe_zone_instance_config_infos(world: World, p: Params, ctx: Context) -> dict[str, Any]:
    p.reject_unknown(("Filters",))
    filters = _filters(p, _CONFIG_FILTERS, max_values=100)
    items = []
    pools = sorted(
        (pool for pool in world.pools.values() if pool.region == ctx.region),
        key=lambda pool: (pool.zone, pool.instance_type),
    )
    for pool in pools:
        for charge_type in CHARGE_TYPES:
            fields = {
                "zone": pool.zone,
                "instance-family": family_of(pool.instance_type),
                "instance-type": pool.instance_type,
                "instance-charge-type": charge_type,
            }
            if all(fields[name] in values for name, values in filters):
                items.append(_quota_item(pool, charge_type))
    return {"InstanceTypeQuotaSet": items}


ACTIONS: dict[str, Handler] = {
    "RunInstances": run_instances,
    "InquiryPriceRunInstances": inquiry_price_run_instances,
    "DescribeInstances": describe_instances,
    "DescribeInstancesStatus": describe_instances_status,
    "TerminateInstances": terminate_instances,
    "DescribeZoneInstanceConfigInfos": describe_zone_instance_config_infos,
}


def handle(world: World, action: str, body: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    """Run ``action`` (already known to be in :data:`ACTIONS`) on the parsed body."""
    return ACTIONS[action](world, Params(body), ctx)


# ---- rendering ------------------------------------------------------------------------


def render_instance(i: Instance) -> dict[str, Any]:
    """An ``Instance`` as DescribeInstances returns it (only fields the SDK model knows)."""
    vpc_id, subnet_id = (i.vpc_id, i.subnet_id) if i.vpc_id else DEFAULT_VPC
    return {
        "Placement": {"Zone": i.zone, "ProjectId": 0},
        "InstanceId": i.instance_id,
        "InstanceType": i.instance_type,
        "CPU": i.cpu,
        "Memory": i.memory,
        "RestrictState": "NORMAL",
        "InstanceName": i.name,
        "InstanceChargeType": i.charge_type,
        "SystemDisk": {
            "DiskType": "CLOUD_BSSD",
            "DiskId": "disk-" + i.instance_id[4:],
            "DiskSize": 50,
        },
        "DataDisks": None,
        "PrivateIpAddresses": [i.private_ip],
        "PublicIpAddresses": None,
        "InternetAccessible": {
            "InternetChargeType": "TRAFFIC_POSTPAID_BY_HOUR",
            "InternetMaxBandwidthOut": 0,
        },
        "VirtualPrivateCloud": {"VpcId": vpc_id, "SubnetId": subnet_id, "AsVpcGateway": False},
        "ImageId": i.image_id,
        "RenewFlag": None,
        "CreatedTime": format_time(i.created_at),
        "ExpiredTime": None,
        "OsName": "TencentOS Server 3.1 (TK4)",
        "SecurityGroupIds": list(i.security_group_ids),
        "LoginSettings": {"KeyIds": list(i.key_ids)} if i.key_ids else {},
        "InstanceState": str(i.state),
        "Tags": [{"Key": key, "Value": value} for key, value in i.tags.items()],
        "StopChargingMode": "NOT_APPLICABLE",
        "Uuid": i.uuid,
        "LatestOperation": i.latest_operation,
        "LatestOperationState": i.latest_operation_state,
        "LatestOperationRequestId": i.latest_operation_request_id or None,
        "LatestOperationErrorMsg": i.latest_operation_error or None,
        "DisasterRecoverGroupId": "",
        "CamRoleName": "",
        "HpcClusterId": "",
        "IsolatedSource": "NOTISOLATED",
        "DisableApiTermination": False,
        "DefaultLoginUser": "root",
        "DefaultLoginPort": 22,
    }


def _quota_item(pool: Pool, charge_type: str) -> dict[str, Any]:
    paid = pool.price if charge_type == "SPOTPAID" else pool.on_demand_price
    return {
        "Zone": pool.zone,
        "InstanceType": pool.instance_type,
        "InstanceChargeType": charge_type,
        "NetworkCard": 0,
        "Externals": {},
        "Cpu": pool.cpu,
        "Memory": pool.memory,
        "InstanceFamily": family_of(pool.instance_type),
        "TypeName": type_name_of(pool.instance_type),
        "LocalDiskTypeList": [],
        "Status": pool.status
        if charge_type == "SPOTPAID"
        else ("SELL" if pool.on_demand_stock else "SOLD_OUT"),
        "Price": {
            "UnitPrice": pool.on_demand_price,
            "UnitPriceDiscount": paid,
            "Discount": round(100 * paid / pool.on_demand_price, 2),
            "ChargeUnit": "HOUR",
        },
        "SoldOutReason": "" if pool.stock else "Sold out",
        "InstanceBandwidth": 1.5,
        "InstancePps": 30,
        "StorageBlockAmount": 0,
        "CpuType": "Intel Xeon Cascade Lake 8255C(2.5 GHz)",
        "Gpu": 0,
        "Fpga": 0,
        "Remark": "",
        "GpuCount": 0,
        "Frequency": "2.5/3.1GHz",
        "StatusCategory": pool.status_category,
    }


# ---- parameter reading ----------------------------------------------------------------


def _launch_spec(world: World, p: Params, ctx: Context, *, run: bool) -> LaunchSpec:
    charge_type = p.string("InstanceChargeType") or "POSTPAID_BY_HOUR"
    if charge_type not in CHARGE_TYPES:
        raise ApiError(
            "InvalidParameterValue",
            f"The simulator sells {' and '.join(CHARGE_TYPES)} only, not `{charge_type}`.",
        )
    client_token = p.string("ClientToken") if run else None
    if client_token is not None:
        if len(client_token) > 64:
            raise ApiError("InvalidClientToken.TooLong", "The ClientToken exceeds 64 characters.")
        if not client_token.isascii():
            raise ApiError("InvalidParameterValue", "The ClientToken must be ASCII.")
    placement = p.object("Placement", required=True)
    assert placement is not None
    zone = placement.string("Zone", required=True) or ""
    placement.integer("ProjectId")
    instance_type = p.string("InstanceType") or "S1.SMALL1"
    if not INSTANCE_TYPE_PATTERN.match(instance_type):
        raise ApiError(
            "InvalidInstanceType.Malformed", f"The instance type `{instance_type}` is malformed."
        )
    image_id = p.string("ImageId", required=True) or ""
    if not IMAGE_ID_PATTERN.match(image_id):
        raise ApiError("InvalidImageId.Malformed", f"The image id `{image_id}` is malformed.")
    count = _count(p, "InstanceCount", 1, world.config.max_instance_count)
    min_count = None
    if run and p.has("MinCount"):
        min_count = _count(p, "MinCount", 1, count)
    name = p.string("InstanceName")
    if name is not None and len(name) > 128:
        raise ApiError("InvalidInstanceName.TooLong", "The InstanceName exceeds 128 characters.")
    security_groups = p.strings("SecurityGroupIds") or []
    for group in security_groups:
        if not SECURITY_GROUP_PATTERN.match(group):
            raise ApiError(
                "InvalidSgId.Malformed", f"The security group id `{group}` is malformed."
            )
    vpc_id, subnet_id = _vpc(p)
    key_ids = _login(p)
    if run:
        _user_data(p)
    tags = _tags(p)
    max_price = _max_price(p) if charge_type == "SPOTPAID" else None
    return LaunchSpec(
        region=ctx.region,
        zone=zone,
        instance_type=instance_type,
        image_id=image_id,
        count=count,
        min_count=min_count,
        name=name,
        charge_type=charge_type,
        max_price=max_price,
        tags=tags,
        client_token=client_token,
        security_group_ids=tuple(security_groups),
        vpc_id=vpc_id,
        subnet_id=subnet_id,
        key_ids=key_ids,
        dry_run=bool(p.boolean("DryRun")) if run else False,
    )


def _count(p: Params, key: str, low: int, high: int) -> int:
    value = p.integer(key)
    if value is None:
        return low
    if not low <= value <= high:
        raise ApiError(
            "InvalidParameterValue.Range",
            f"The parameter `{key}` must be between {low} and {high}, got {value}.",
        )
    return value


def _vpc(p: Params) -> tuple[str, str]:
    vpc = p.object("VirtualPrivateCloud")
    if vpc is None:
        return "", ""
    vpc_id = vpc.string("VpcId", required=True) or ""
    subnet_id = vpc.string("SubnetId", required=True) or ""
    if not VPC_PATTERN.match(vpc_id):
        raise ApiError(
            "InvalidParameterValue.VpcIdMalformed", f"The VpcId `{vpc_id}` is malformed."
        )
    if not SUBNET_PATTERN.match(subnet_id):
        raise ApiError(
            "InvalidParameterValue.SubnetIdMalformed", f"The SubnetId `{subnet_id}` is malformed."
        )
    return vpc_id, subnet_id


def _login(p: Params) -> tuple[str, ...]:
    login = p.object("LoginSettings")
    if login is None:
        return ()
    login.reject_unknown(("Password", "KeyIds", "KeepImageLogin"))
    login.string("Password")
    keep = login.string("KeepImageLogin")
    if keep is not None and keep not in ("TRUE", "FALSE"):
        raise ApiError(
            "InvalidParameterValue", "`LoginSettings.KeepImageLogin` must be TRUE or FALSE."
        )
    key_ids = login.strings("KeyIds") or []
    for key_id in key_ids:
        if not KEY_ID_PATTERN.match(key_id):
            raise ApiError("InvalidKeyPairId.Malformed", f"The key id `{key_id}` is malformed.")
    return tuple(key_ids)


def _user_data(p: Params) -> None:
    user_data = p.string("UserData")
    if user_data is None:
        return
    try:
        raw = base64.b64decode(user_data, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(
            "InvalidParameterValue.InvalidUserDataFormat", "The UserData is not valid base64."
        ) from None
    if len(raw) > MAX_USER_DATA_BYTES:
        raise ApiError(
            "InvalidParameterValue.TooLong",
            f"The UserData is {len(raw)} bytes, more than {MAX_USER_DATA_BYTES}.",
        )


def _tags(p: Params) -> tuple[tuple[str, str], ...]:
    specs = p.objects("TagSpecification") or []
    tags: dict[str, str] = {}
    for spec in specs:
        spec.reject_unknown(("ResourceType", "Tags"))
        resource_type = spec.string("ResourceType", required=True)
        for tag in spec.objects("Tags", required=True) or []:
            tag.reject_unknown(("Key", "Value"))
            key = tag.string("Key", required=True) or ""
            value = tag.string("Value") or ""
            if resource_type != "instance":
                continue
            if not key or len(key) > 127 or len(value) > 255:
                raise ApiError(
                    "InvalidParameterValue",
                    f"The tag `{key}` must have a key of 1 to 127 and a value of at most 255 "
                    "characters.",
                )
            if key.startswith("qcloud:"):
                raise ApiError(
                    "FailedOperation.TagKeyReserved", f"The tag key `{key}` is reserved."
                )
            if key in tags:
                raise ApiError(
                    "InvalidParameterValue.DuplicateTags", f"The tag key `{key}` repeats."
                )
            tags[key] = value
    if len(tags) > MAX_TAGS:
        raise ApiError(
            "InvalidParameterValue.TagQuotaLimitExceeded", f"At most {MAX_TAGS} tags per instance."
        )
    return tuple(tags.items())


def _max_price(p: Params) -> float | None:
    market = p.object("InstanceMarketOptions")
    if market is None:
        return None
    market_type = market.string("MarketType")
    if market_type is not None and market_type != "spot":
        raise ApiError(
            "InvalidParameterValue", "`InstanceMarketOptions.MarketType` must be `spot`."
        )
    spot = market.object("SpotOptions")
    if spot is None:
        return None
    kind = spot.string("SpotInstanceType")
    if kind is not None and kind != "one-time":
        raise ApiError(
            "InvalidParameterValue",
            "`InstanceMarketOptions.SpotOptions.SpotInstanceType` must be `one-time`.",
        )
    raw = spot.string("MaxPrice")
    if raw is None:
        return None
    try:
        price = float(raw)
    except ValueError:
        price = math.nan
    if not math.isfinite(price) or price <= 0:
        raise ApiError(
            "InvalidParameterValue",
            f"`InstanceMarketOptions.SpotOptions.MaxPrice` must be a positive number, got `{raw}`.",
        )
    return price


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


def _paging(p: Params) -> tuple[int, int]:
    offset = p.integer("Offset")
    offset = 0 if offset is None else offset
    if offset < 0:
        raise ApiError("InvalidParameterValueOffset", "`Offset` must not be negative.")
    limit = p.integer("Limit")
    limit = 20 if limit is None else limit
    if not 1 <= limit <= 100:
        raise ApiError(
            "InvalidParameterValueLimit", f"`Limit` must be between 1 and 100, got {limit}."
        )
    return offset, limit


_INSTANCE_FILTERS = (
    "zone",
    "instance-id",
    "instance-name",
    "instance-state",
    "instance-charge-type",
    "instance-type",
    "image-id",
    "private-ip-address",
    "project-id",
    "tag-key",
    "tag-value",
)
_CONFIG_FILTERS = ("zone", "instance-family", "instance-type", "instance-charge-type")


def _filters(
    p: Params, names: tuple[str, ...], *, max_values: int = MAX_FILTER_VALUES
) -> list[tuple[str, set[str]]]:
    items = p.objects("Filters") or []
    if len(items) > MAX_FILTERS:
        raise ApiError(
            "InvalidParameterValue.LimitExceeded", f"At most {MAX_FILTERS} `Filters` per call."
        )
    filters = []
    for item in items:
        item.reject_unknown(("Name", "Values"))
        name = item.string("Name", required=True) or ""
        values = item.strings("Values", required=True) or []
        tag_filter = name.startswith("tag:") and len(name) > 4 and names is _INSTANCE_FILTERS
        if name not in names and not tag_filter:
            raise ApiError("InvalidFilter", f"The filter `{name}` is not supported.")
        if len(values) > max_values:
            raise ApiError(
                "InvalidFilterValue.LimitExceeded",
                f"The filter `{name}` takes at most {max_values} values.",
            )
        filters.append((name, set(values)))
    return filters


def _instance_matches(i: Instance, name: str, values: set[str]) -> bool:
    if name.startswith("tag:"):
        key = name[4:]
        return key in i.tags and i.tags[key] in values
    if name == "tag-key":
        return any(key in values for key in i.tags)
    if name == "tag-value":
        return any(value in values for value in i.tags.values())
    field = {
        "zone": i.zone,
        "instance-id": i.instance_id,
        "instance-name": i.name,
        "instance-state": str(i.state),
        "instance-charge-type": i.charge_type,
        "instance-type": i.instance_type,
        "image-id": i.image_id,
        "private-ip-address": i.private_ip,
        "project-id": "0",
    }[name]
    return field in values
