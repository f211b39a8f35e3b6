"""Reading RunInstances and InquiryPriceRunInstances parameters into a :class:`LaunchSpec`.

Every nested object is checked against its SDK model's keys (``UnknownParameter`` otherwise),
with the same rules at every depth, and what CVM echoes back in DescribeInstances (disks,
bandwidth, public IP, host name, project) is recorded in the spec's :class:`LaunchEcho` in the
SDK's own shapes, with CVM's defaults filled in.
"""

from __future__ import annotations

import base64
import binascii
import math
import re

from controller.simulator import launch_echo
from controller.simulator.instance import LaunchEcho, LaunchSpec
from controller.simulator.market import INSTANCE_TYPE_PATTERN
from controller.simulator.state import World
from controller.tencentapi.errors import ApiError
from controller.tencentapi.params import Params

IMAGE_ID_PATTERN = re.compile(r"^img-[a-z0-9]{8}$")
SECURITY_GROUP_PATTERN = re.compile(r"^sg-[a-z0-9]{8}$")
VPC_PATTERN = re.compile(r"^vpc-[a-z0-9]{8}$")
SUBNET_PATTERN = re.compile(r"^subnet-[a-z0-9]{8}$")
KEY_ID_PATTERN = re.compile(r"^skey-[a-z0-9]{8}$")
CHARGE_TYPES = ("SPOTPAID", "POSTPAID_BY_HOUR")
MAX_TAGS = 50
MAX_USER_DATA_BYTES = 16 * 1024


def launch_spec(world: World, p: Params, region: str, *, run: bool) -> LaunchSpec:
    """Read RunInstances (or, ``run=False``, InquiryPriceRunInstances) parameters."""
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
    placement.reject_unknown(_PLACEMENT_KEYS)
    zone = placement.string("Zone", required=True) or ""
    project_id = placement.integer("ProjectId") or 0
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
    has_user_data = _user_data(p) if run else False
    tags = _tags(p)
    max_price = _market_options(p, charge_type)
    echo = LaunchEcho(
        system_disk=launch_echo.system_disk(p),
        data_disks=launch_echo.data_disks(p),
        internet=(internet := launch_echo.internet(p, charge_type)),
        public_ip=bool(internet.pop("PublicIpAssigned")),
        host_name=launch_echo.host_name(p),
        project_id=project_id,
        has_user_data=has_user_data,
        disable_api_termination=bool(p.boolean("DisableApiTermination")) if run else False,
        cam_role_name=(p.string("CamRoleName") or "") if run else "",
    )
    return LaunchSpec(
        echo=echo,
        region=region,
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
    vpc.reject_unknown(
        ("VpcId", "SubnetId", "AsVpcGateway", "PrivateIpAddresses", "Ipv6AddressCount")
    )
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


def _user_data(p: Params) -> bool:
    user_data = p.string("UserData")
    if user_data is None:
        return False
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
    return True


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


def _market_options(p: Params, charge_type: str) -> float | None:
    """The spot bid, checked as CVM checks it; None buys at the market price.

    CVM takes ``InstanceMarketOptions`` only with SPOTPAID, requires ``SpotOptions`` in it and
    ``MaxPrice`` in those; SPOTPAID without any market options buys at the market price.
    """
    market = p.object("InstanceMarketOptions")
    if market is None:
        return None
    if charge_type != "SPOTPAID":
        raise ApiError(
            "InvalidParameterCombination",
            "`InstanceMarketOptions` is only allowed with `InstanceChargeType` SPOTPAID, "
            f"not {charge_type}.",
        )
    market.reject_unknown(("SpotOptions", "MarketType"))
    market_type = market.string("MarketType")
    if market_type is not None and market_type != "spot":
        raise ApiError(
            "InvalidParameterValue", "`InstanceMarketOptions.MarketType` must be `spot`."
        )
    spot = market.object("SpotOptions", required=True)
    assert spot is not None
    spot.reject_unknown(("MaxPrice", "SpotInstanceType"))
    kind = spot.string("SpotInstanceType")
    if kind is not None and kind != "one-time":
        raise ApiError(
            "InvalidParameterValue",
            "`InstanceMarketOptions.SpotOptions.SpotInstanceType` must be `one-time`.",
        )
    raw = spot.string("MaxPrice", required=True) or ""
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


_PLACEMENT_KEYS = (
    "Zone",
    "ProjectId",
    "HostIds",
    "HostId",
    "DedicatedResourcePackTenancy",
    "DedicatedResourcePackIds",
    "RackId",
)
