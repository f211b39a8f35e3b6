"""What CVM echoes of a launch in DescribeInstances: disks, bandwidth and public IP, host name.

Each is read from RunInstances' parameters in the SDK's own shapes, with CVM's defaults.
"""

from __future__ import annotations

import re
from typing import Any

from controller.tencentapi.errors import ApiError
from controller.tencentapi.params import Params

DISK_TYPES = (
    "LOCAL_BASIC",
    "LOCAL_SSD",
    "CLOUD_BASIC",
    "CLOUD_SSD",
    "CLOUD_PREMIUM",
    "CLOUD_BSSD",
    "CLOUD_HSSD",
    "CLOUD_TSSD",
)
INTERNET_CHARGE_TYPES = (
    "BANDWIDTH_PREPAID",
    "TRAFFIC_POSTPAID_BY_HOUR",
    "BANDWIDTH_POSTPAID_BY_HOUR",
    "BANDWIDTH_PACKAGE",
)
_HOST_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,58}[A-Za-z0-9])?$")


def read_disk(d: Params, where: str, *, default_size: int, low: int, high: int) -> dict[str, Any]:
    disk_type = d.string("DiskType") or "CLOUD_BSSD"
    if disk_type not in DISK_TYPES:
        raise ApiError(
            "InvalidParameterValue",
            f"`{where}.DiskType` must be one of {', '.join(DISK_TYPES)}, got `{disk_type}`.",
        )
    size = d.integer("DiskSize")
    size = default_size if size is None else size
    if not low <= size <= high:
        raise ApiError(
            "InvalidParameterValue.Range",
            f"`{where}.DiskSize` must be between {low} and {high} GiB, got {size}.",
        )
    disk: dict[str, Any] = {"DiskType": disk_type, "DiskSize": size}
    name = d.string("DiskName")
    if name is not None:
        disk["DiskName"] = name
    return disk


def system_disk(p: Params) -> dict[str, Any]:
    d = p.object("SystemDisk")
    if d is None:
        return {"DiskType": "CLOUD_BSSD", "DiskSize": 50}
    d.reject_unknown(("DiskType", "DiskId", "DiskSize", "CdcId", "DiskName", "Encrypt", "KmsKeyId"))
    return read_disk(d, "SystemDisk", default_size=50, low=20, high=1024)


def data_disks(p: Params) -> tuple[dict[str, Any], ...]:
    disks = []
    for i, d in enumerate(p.objects("DataDisks") or []):
        d.reject_unknown(_DATA_DISK_KEYS)
        disk = read_disk(d, f"DataDisks.{i}", default_size=10, low=10, high=32000)
        delete = d.boolean("DeleteWithInstance")
        disk["DeleteWithInstance"] = True if delete is None else delete
        disk["Encrypt"] = bool(d.boolean("Encrypt"))
        disks.append(disk)
    if len(disks) > 20:
        raise ApiError("InvalidParameterValue.LimitExceeded", "At most 20 `DataDisks`.")
    return tuple(disks)


_DATA_DISK_KEYS = (
    "DiskSize",
    "DiskType",
    "DiskId",
    "DeleteWithInstance",
    "SnapshotId",
    "Encrypt",
    "KmsKeyId",
    "ThroughputPerformance",
    "CdcId",
    "BurstPerformance",
    "DiskName",
)


def internet(p: Params, charge_type: str) -> dict[str, Any]:
    """``InternetAccessible`` with CVM's defaults; ``PublicIpAssigned`` for the caller to pop."""
    net = p.object("InternetAccessible")
    if net is None:
        return {
            "InternetChargeType": "TRAFFIC_POSTPAID_BY_HOUR",
            "InternetMaxBandwidthOut": 0,
            "PublicIpAssigned": False,
        }
    net.reject_unknown(_INTERNET_KEYS)
    charge = net.string("InternetChargeType") or "TRAFFIC_POSTPAID_BY_HOUR"
    if charge not in INTERNET_CHARGE_TYPES:
        raise ApiError(
            "InvalidParameterValue",
            f"`InternetAccessible.InternetChargeType` must be one of "
            f"{', '.join(INTERNET_CHARGE_TYPES)}, got `{charge}`.",
        )
    if charge == "BANDWIDTH_PREPAID" and charge_type != "PREPAID":
        raise ApiError(
            "InvalidParameterCombination",
            f"`InternetAccessible.InternetChargeType` BANDWIDTH_PREPAID needs a PREPAID "
            f"instance, not {charge_type}.",
        )
    bandwidth = net.integer("InternetMaxBandwidthOut") or 0
    if not 0 <= bandwidth <= 200:
        raise ApiError(
            "InvalidParameterValue.Range",
            f"`InternetAccessible.InternetMaxBandwidthOut` must be between 0 and 200 Mbps, "
            f"got {bandwidth}.",
        )
    assigned = net.boolean("PublicIpAssigned")
    if assigned and bandwidth == 0:
        raise ApiError(
            "InvalidParameterCombination",
            "`InternetAccessible.PublicIpAssigned` needs an `InternetMaxBandwidthOut` above 0.",
        )
    return {
        "InternetChargeType": charge,
        "InternetMaxBandwidthOut": bandwidth,
        "PublicIpAssigned": bandwidth > 0 if assigned is None else assigned,
    }


_INTERNET_KEYS = (
    "InternetChargeType",
    "InternetMaxBandwidthOut",
    "PublicIpAssigned",
    "BandwidthPackageId",
    "InternetServiceProvider",
    "IPv4AddressType",
    "IPv6AddressType",
    "AntiDDoSPackageId",
)


def host_name(p: Params) -> str | None:
    name = p.string("HostName")
    if name is not None and (len(name) < 2 or not _HOST_NAME.match(name) or ".." in name):
        raise ApiError(
            "InvalidParameterValue.IllegalHostName",
            f"The HostName `{name}` must be 2 to 60 letters, digits, dots and hyphens, "
            "starting and ending with a letter or digit.",
        )
    return name
