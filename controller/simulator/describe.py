"""DescribeInstances: its documented filters and the ``Instance`` shape it returns.

Filters are those of the SDK's DescribeInstancesRequest docstring; a name outside them is
``InvalidFilter``, as at CVM. ``render_instance`` fills every field of the SDK's ``Instance``
model that CVM fills for a spot instance, echoing what RunInstances was asked for.
"""

from __future__ import annotations

import calendar
import time
from typing import Any

from controller.simulator.images import default_host_name, os_name_of
from controller.simulator.instance import Instance, format_time
from controller.tencentapi.errors import ApiError
from controller.tencentapi.params import Params

MAX_FILTERS = 10
MAX_FILTER_VALUES = 5
DEFAULT_VPC = ("vpc-00000001", "subnet-00000001")
# creation-start-time / creation-end-time are written in Beijing time, as the console shows.
_BEIJING_OFFSET_S = 8 * 3600

INSTANCE_FILTERS = (
    "zone",
    "project-id",
    "vpc-id",
    "subnet-id",
    "instance-id",
    "uuid",
    "security-group-id",
    "instance-name",
    "instance-charge-type",
    "instance-state",
    "instance-type",
    "image-id",
    "private-ip-address",
    "public-ip-address",
    "tag-key",
    "tag-value",
    "creation-start-time",
    "creation-end-time",
)
# Filters on what changes during an instance's life: their matches cannot be reused.
VOLATILE_FILTERS = frozenset({"instance-state"})

Filters = list[tuple[str, set[str]]]


def read_filters(
    p: Params,
    names: tuple[str, ...],
    *,
    max_values: int = MAX_FILTER_VALUES,
    tag_filters: bool = False,
) -> Filters:
    """``Filters`` of a request: each name one of ``names`` (or ``tag:<key>`` if allowed)."""
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
        tag_filter = tag_filters and name.startswith("tag:") and len(name) > 4
        if name not in names and not tag_filter:
            raise ApiError("InvalidFilter", f"The filter `{name}` is not supported.")
        if len(values) > max_values:
            raise ApiError(
                "InvalidFilterValue.LimitExceeded",
                f"The filter `{name}` takes at most {max_values} values.",
            )
        if name in ("creation-start-time", "creation-end-time"):
            for value in values:
                _beijing_time(name, value)
        filters.append((name, set(values)))
    return filters


def _beijing_time(name: str, value: str) -> float:
    try:
        parsed = time.strptime(value, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise ApiError(
            "InvalidFilterValue",
            f"The filter `{name}` takes a time such as 2023-06-01 00:00:00, got `{value}`.",
        ) from None
    return calendar.timegm(parsed) - _BEIJING_OFFSET_S


def matches(i: Instance, name: str, values: set[str]) -> bool:
    """Whether ``i`` passes one filter (values of one filter are OR-ed)."""
    if name.startswith("tag:"):
        key = name[4:]
        return key in i.tags and i.tags[key] in values
    if name == "tag-key":
        return any(key in values for key in i.tags)
    if name == "tag-value":
        return any(value in values for value in i.tags.values())
    if name == "security-group-id":
        return any(group in values for group in i.security_group_ids)
    if name == "creation-start-time":
        return any(i.created_at >= _beijing_time(name, v) for v in values)
    if name == "creation-end-time":
        return any(i.created_at <= _beijing_time(name, v) for v in values)
    vpc_id, subnet_id = (i.vpc_id, i.subnet_id) if i.vpc_id else DEFAULT_VPC
    field = {
        "zone": i.zone,
        "project-id": str(i.echo.project_id),
        "vpc-id": vpc_id,
        "subnet-id": subnet_id,
        "instance-id": i.instance_id,
        "uuid": i.uuid,
        "instance-name": i.name,
        "instance-state": str(i.state),
        "instance-charge-type": i.charge_type,
        "instance-type": i.instance_type,
        "image-id": i.image_id,
        "private-ip-address": i.private_ip,
        "public-ip-address": i.public_ip or "",
    }[name]
    return field in values


def render_instance(i: Instance) -> dict[str, Any]:
    """An ``Instance`` as DescribeInstances returns it (only fields the SDK model knows)."""
    vpc_id, subnet_id = (i.vpc_id, i.subnet_id) if i.vpc_id else DEFAULT_VPC
    echo = i.echo
    suffix = i.instance_id[4:]
    return {
        "Placement": {"Zone": i.zone, "ProjectId": echo.project_id},
        "InstanceId": i.instance_id,
        "InstanceType": i.instance_type,
        "CPU": i.cpu,
        "Memory": i.memory,
        "RestrictState": "NORMAL",
        "InstanceName": i.name,
        "InstanceChargeType": i.charge_type,
        "SystemDisk": {**echo.system_disk, "DiskId": f"disk-{suffix}"},
        "DataDisks": [
            {**disk, "DiskId": f"disk-{suffix[:6]}{n:02d}"}
            for n, disk in enumerate(echo.data_disks, start=1)
        ]
        or None,
        "PrivateIpAddresses": [i.private_ip],
        "PublicIpAddresses": [i.public_ip] if i.public_ip else None,
        "InternetAccessible": dict(echo.internet),
        "VirtualPrivateCloud": {"VpcId": vpc_id, "SubnetId": subnet_id, "AsVpcGateway": False},
        "ImageId": i.image_id,
        "RenewFlag": None,
        "CreatedTime": format_time(i.created_at),
        "ExpiredTime": None,
        "OsName": os_name_of(i.image_id),
        "SecurityGroupIds": list(i.security_group_ids),
        "LoginSettings": {"KeyIds": list(i.key_ids)} if i.key_ids else {},
        "InstanceState": str(i.state),
        "Tags": [{"Key": key, "Value": value} for key, value in i.tags.items()],
        "StopChargingMode": i.stopped_mode,
        "Uuid": i.uuid,
        "LatestOperation": i.latest_operation,
        "LatestOperationState": i.latest_operation_state,
        "LatestOperationRequestId": i.latest_operation_request_id or None,
        "LatestOperationErrorMsg": i.latest_operation_error or None,
        "DisasterRecoverGroupId": "",
        "CamRoleName": echo.cam_role_name,
        "HpcClusterId": "",
        "IsolatedSource": "NOTISOLATED",
        "DisableApiTermination": echo.disable_api_termination,
        "DefaultLoginUser": "root",
        "DefaultLoginPort": 22,
        "HostName": echo.host_name or default_host_name(i.private_ip, i.image_id),
    }
