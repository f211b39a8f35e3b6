"""Request bodies of the CVM actions the client sends, as the official SDK serialises them."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from controller.core.instances import SPOT, LaunchRequest

JsonObject = dict[str, Any]


def _spot_market_options(request: LaunchRequest) -> JsonObject:
    return {
        "SpotOptions": {"MaxPrice": request.max_price, "SpotInstanceType": "one-time"},
        "MarketType": "spot",
    }


def _placement(request: LaunchRequest) -> JsonObject:
    placement: JsonObject = {"Zone": request.zone}
    if request.project_id is not None:
        placement["ProjectId"] = request.project_id
    return placement


def _tag_specification(request: LaunchRequest) -> list[JsonObject]:
    tags = [{"Key": key, "Value": value} for key, value in request.tags.items()]
    return [{"ResourceType": "instance", "Tags": tags}]


def _optional_launch_fields(request: LaunchRequest) -> Iterator[tuple[str, Any]]:
    """VirtualPrivateCloud ... SecurityGroupIds, shared by RunInstances and its price inquiry."""
    if request.vpc_id is not None:
        yield "VirtualPrivateCloud", {"VpcId": request.vpc_id, "SubnetId": request.subnet_id}
    yield "InstanceCount", request.count
    if request.instance_name is not None:
        yield "InstanceName", request.instance_name
    if request.key_ids:
        yield "LoginSettings", {"KeyIds": list(request.key_ids)}
    if request.security_group_ids:
        yield "SecurityGroupIds", list(request.security_group_ids)
    if request.launch_options is not None:  # SystemDisk, DataDisks, ... as the row gives them
        yield from json.loads(request.launch_options).items()


def run_instances_params(request: LaunchRequest) -> JsonObject:
    params: JsonObject = {
        "InstanceChargeType": request.charge_type,
        "Placement": _placement(request),
        "InstanceType": request.instance_type,
        "ImageId": request.image_id,
    }
    params.update(_optional_launch_fields(request))
    params["ClientToken"] = request.client_token
    if request.tags:
        params["TagSpecification"] = _tag_specification(request)
    if request.charge_type == SPOT:
        params["InstanceMarketOptions"] = _spot_market_options(request)
    if request.user_data is not None:
        params["UserData"] = request.user_data
    return params


def inquiry_price_params(request: LaunchRequest) -> JsonObject:
    """The launch's shape for ONE instance, without ClientToken and UserData.

    One instance, because the answer is then the unit price whether or not Tencent multiplies
    its prices by InstanceCount (the docs do not say; the simulator does).
    """
    params: JsonObject = {
        "Placement": _placement(request),
        "ImageId": request.image_id,
        "InstanceChargeType": request.charge_type,
        "InstanceType": request.instance_type,
    }
    params.update(_optional_launch_fields(request))
    params["InstanceCount"] = 1
    if request.tags:
        params["TagSpecification"] = _tag_specification(request)
    if request.charge_type == SPOT:
        params["InstanceMarketOptions"] = _spot_market_options(request)
    return params


def filters_param(filters: Mapping[str, Sequence[str]]) -> list[JsonObject]:
    result = []
    for name, values in filters.items():
        if isinstance(values, str):
            raise TypeError(f"filter {name!r}: values must be a sequence of strings, not a str")
        result.append({"Name": name, "Values": list(values)})
    return result


def unique(ids: Sequence[str], name: str) -> list[str]:
    if isinstance(ids, str):
        raise TypeError(f"{name} must be a sequence of ids, not a str")
    return list(dict.fromkeys(ids))


def chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
