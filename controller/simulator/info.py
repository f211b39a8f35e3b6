"""The read-only catalog actions: regions, zones, images, instance types, quotas and prices.

All are answered from the simulator's market (:mod:`controller.simulator.market`), images
(:mod:`controller.simulator.images`) and Tencent's list of regions (:mod:`controller.core
.regions`), so what DescribeZones calls AVAILABLE is exactly where RunInstances can launch.
"""

from __future__ import annotations

from typing import Any

from controller.core.regions import BY_NAME, REGIONS
from controller.simulator.describe import read_filters
from controller.simulator.images import CATALOG, info_of
from controller.simulator.instance import format_time
from controller.simulator.market import Pool, family_of, type_name_of
from controller.simulator.state import World
from controller.tencentapi.errors import ApiError
from controller.tencentapi.params import Params

CHARGE_TYPES = ("SPOTPAID", "POSTPAID_BY_HOUR")
APP_ID = 1250000000  # the simulated account's AppId
IMAGE_ID_PATTERN_PREFIX = "img-"
_IMAGE_FILTERS = ("image-id", "image-type", "image-name", "platform")
_TYPE_FILTERS = ("zone", "instance-family", "instance-type")
_CONFIG_FILTERS = ("zone", "instance-family", "instance-type", "instance-charge-type")
_QUOTA_TYPES = (
    "PostPaidQuotaSet",
    "PrePaidQuotaSet",
    "SpotPaidQuotaSet",
    "ImageQuotaSet",
    "DisasterRecoverGroupQuotaSet",
)


def describe_regions(world: World, p: Params, region: str) -> dict[str, Any]:
    p.reject_unknown(())
    served = world.regions()
    regions = [
        {
            "Region": r.name,
            "RegionName": r.display_name,
            "RegionState": "AVAILABLE" if r.name in served else "UNAVAILABLE",
        }
        for r in REGIONS
    ]
    return {"TotalCount": len(regions), "RegionSet": regions}


def describe_zones(world: World, p: Params, region: str) -> dict[str, Any]:
    p.reject_unknown(())
    known = BY_NAME.get(region)
    if known is None:
        return {"TotalCount": 0, "ZoneSet": []}
    selling = {pool.zone for pool in world.pools.values()}
    zones = [
        {
            "Zone": zone,
            "ZoneName": known.zone_name(zone),
            "ZoneId": known.zone_id(zone),
            "ZoneState": "AVAILABLE" if zone in selling else "UNAVAILABLE",
        }
        for zone in known.zones
    ]
    return {"TotalCount": len(zones), "ZoneSet": zones}


def describe_images(world: World, p: Params, region: str) -> dict[str, Any]:
    p.reject_unknown(("ImageIds", "Filters", "Offset", "Limit", "InstanceType"))
    ids = p.strings("ImageIds") or []
    filters = read_filters(p, _IMAGE_FILTERS)
    if ids and filters:
        raise ApiError(
            "InvalidParameterCombination",
            "The parameters `ImageIds` and `Filters` cannot be combined.",
        )
    for image_id in ids:
        if not image_id.startswith(IMAGE_ID_PATTERN_PREFIX) or len(image_id) != 12:
            raise ApiError("InvalidImageId.Malformed", f"The image id `{image_id}` is malformed.")
    p.string("InstanceType")
    offset, limit = paging(p)
    images = [_image(world, image_id) for image_id in sorted(world.images)]
    if ids:
        images = [i for i in images if i["ImageId"] in ids]
    fields = {
        "image-id": "ImageId",
        "image-type": "ImageType",
        "image-name": "ImageName",
        "platform": "Platform",
    }
    for name, values in filters:
        images = [i for i in images if i[fields[name]] in values]
    return {"TotalCount": len(images), "ImageSet": images[offset : offset + limit]}


def _image(world: World, image_id: str) -> dict[str, Any]:
    info = info_of(image_id)
    return {
        "ImageId": image_id,
        "OsName": info.os_name,
        "ImageType": "PUBLIC_IMAGE",
        "CreatedTime": format_time(world.started_at - 86400 * 365),
        "ImageName": info.os_name,
        "ImageDescription": info.os_name if image_id in CATALOG else "",
        "ImageSize": info.size_gb,
        "Architecture": info.architecture,
        "ImageState": "NORMAL",
        "Platform": info.platform,
        "ImageCreator": "",
        "ImageSource": "OFFICIAL",
        "SyncPercent": 0,
        "IsSupportCloudinit": True,
        "SnapshotSet": [],
        "Tags": [],
        "LicenseType": "TencentCloud",
        "ImageFamily": "",
        "ImageDeprecated": False,
    }


def describe_instance_type_configs(world: World, p: Params, region: str) -> dict[str, Any]:
    p.reject_unknown(("Filters",))
    filters = read_filters(p, _TYPE_FILTERS, max_values=10)
    items = []
    for pool in _pools_of(world, region):
        fields = {
            "zone": pool.zone,
            "instance-family": family_of(pool.instance_type),
            "instance-type": pool.instance_type,
        }
        if all(fields[name] in values for name, values in filters):
            gpus = 1 if family_of(pool.instance_type).startswith("GN") else 0
            items.append(
                {
                    "Zone": pool.zone,
                    "InstanceType": pool.instance_type,
                    "InstanceFamily": family_of(pool.instance_type),
                    "GPU": gpus,
                    "CPU": pool.cpu,
                    "Memory": pool.memory,
                    "FPGA": 0,
                    "GpuCount": float(gpus),
                }
            )
    return {"InstanceTypeConfigSet": items}


def describe_account_quota(world: World, p: Params, region: str) -> dict[str, Any]:
    p.reject_unknown(("Filters",))
    filters = read_filters(p, ("zone", "quota-type"), max_values=10)
    zones = sorted({pool.zone for pool in _pools_of(world, region)})
    types = set(_QUOTA_TYPES)
    for name, values in filters:
        if name == "zone":
            zones = [z for z in zones if z in values]
        else:
            types &= values
    spot_total = world.config.spot_vcpu_quota
    quota: dict[str, Any] = {name: [] for name in _QUOTA_TYPES}
    for zone in zones:
        used = world.spot_vcpus_used(zone)
        quota["SpotPaidQuotaSet"].append(
            {
                "UsedQuota": used,
                "RemainingQuota": max(0, spot_total - used),
                "TotalQuota": spot_total,
                "Zone": zone,
            }
        )
        pools = [pool for pool in world.pools.values() if pool.zone == zone]
        total = sum(pool.quota for pool in pools)
        held = sum(
            1 for i in world.alive.values() if i.zone == zone and i.charge_type != "SPOTPAID"
        )
        quota["PostPaidQuotaSet"].append(
            {
                "UsedQuota": held,
                "RemainingQuota": max(0, total - held),
                "TotalQuota": total,
                "Zone": zone,
            }
        )
    for name in _QUOTA_TYPES:
        if name not in types:
            quota[name] = []
    return {"AppId": APP_ID, "AccountQuotaOverview": {"Region": region, "AccountQuota": quota}}


def describe_zone_instance_config_infos(world: World, p: Params, region: str) -> dict[str, Any]:
    p.reject_unknown(("Filters",))
    filters = read_filters(p, _CONFIG_FILTERS, max_values=100)
    items = []
    for pool in _pools_of(world, region):
        for charge_type in CHARGE_TYPES:
            if charge_type == "SPOTPAID" and not pool.spot:
                continue
            fields = {
                "zone": pool.zone,
                "instance-family": family_of(pool.instance_type),
                "instance-type": pool.instance_type,
                "instance-charge-type": charge_type,
            }
            if all(fields[name] in values for name, values in filters):
                items.append(_quota_item(pool, charge_type))
    return {"InstanceTypeQuotaSet": items}


def _pools_of(world: World, region: str) -> list[Pool]:
    return sorted(
        (pool for pool in world.pools.values() if pool.region == region),
        key=lambda pool: (pool.zone, pool.instance_type),
    )


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
        "SoldOutReason": ""
        if (pool.stock if charge_type == "SPOTPAID" else pool.on_demand_stock)
        else "Sold out",
        "InstanceBandwidth": 1.5,
        "InstancePps": 30,
        "StorageBlockAmount": 0,
        "CpuType": "Intel Xeon Cascade Lake 8255C(2.5 GHz)",
        "Gpu": 1 if family_of(pool.instance_type).startswith("GN") else 0,
        "Fpga": 0,
        "Remark": "",
        "GpuCount": 1 if family_of(pool.instance_type).startswith("GN") else 0,
        "Frequency": "2.5/3.1GHz",
        "StatusCategory": pool.status_category
        if charge_type == "SPOTPAID"
        else pool.on_demand_status_category,
    }


def paging(p: Params) -> tuple[int, int]:
    """``Offset`` (default 0) and ``Limit`` (default 20, 1 to 100), with CVM's codes."""
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
