"""RunInstances fields an environment passes on as given: its disks, network billing and agents.

The ``launch_options`` column holds them as one JSON object in CVM's own shapes
(``{"SystemDisk": {"DiskType": "CLOUD_PREMIUM", "DiskSize": 100}, "DataDisks": [...],
"InternetAccessible": {...}, "EnhancedService": {...}}``), which is also how BatchCompute's
EnvData names them. Checked here against CVM's documented limits, so a bad value is reported on
the row (INVALID) instead of failing every launch; kept as canonical JSON, so the same options
always give the same launch request (and ClientToken).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from controller.errors import ValidationFailed

FIELD = "launch_options"
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
    "TRAFFIC_POSTPAID_BY_HOUR",
    "BANDWIDTH_POSTPAID_BY_HOUR",
    "BANDWIDTH_PACKAGE",
)
OPTIONS = ("SystemDisk", "DataDisks", "InternetAccessible", "EnhancedService")
DATA_DISK_EXTRAS = ("DeleteWithInstance", "SnapshotId", "Encrypt")
MAX_DATA_DISKS = 20
SYSTEM_DISK_GIB = (20, 1024)
DATA_DISK_GIB = (10, 32000)
MAX_BANDWIDTH_MBPS = 200


def _fail(path: str, rule: str) -> ValidationFailed:
    return ValidationFailed(FIELD, f"{path} {rule}")


def _object(value: Any, path: str, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(path, "must be a JSON object")
    for key in value:
        if key not in allowed:
            raise _fail(f"{path}.{key}", f"is not passed on (known: {', '.join(allowed)})")
    return value


def _integer(value: Any, path: str, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _fail(path, f"must be a whole number from {low} to {high}, got {value!r}")


def _boolean(value: Any, path: str) -> None:
    if not isinstance(value, bool):
        raise _fail(path, f"must be true or false, got {value!r}")


def _choice(value: Any, path: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise _fail(path, f"must be one of {', '.join(choices)}, got {value!r}")


def _disk(value: Any, path: str, sizes: tuple[int, int], extra: tuple[str, ...] = ()) -> None:
    disk = _object(value, path, ("DiskType", "DiskSize", *extra))
    if "DiskType" in disk:
        _choice(disk["DiskType"], f"{path}.DiskType", DISK_TYPES)
    if "DiskSize" in disk:
        _integer(disk["DiskSize"], f"{path}.DiskSize", *sizes)
    for flag in ("DeleteWithInstance", "Encrypt"):
        if flag in disk:
            _boolean(disk[flag], f"{path}.{flag}")
    if "SnapshotId" in disk and not str(disk["SnapshotId"]).startswith("snap-"):
        raise _fail(f"{path}.SnapshotId", "must be a snapshot id such as snap-0a1b2c3d")


def _internet(value: Any) -> None:
    net = _object(
        value,
        "InternetAccessible",
        ("InternetChargeType", "InternetMaxBandwidthOut", "PublicIpAssigned", "BandwidthPackageId"),
    )
    if "InternetChargeType" in net:
        _choice(
            net["InternetChargeType"],
            "InternetAccessible.InternetChargeType",
            INTERNET_CHARGE_TYPES,
        )
    if "InternetMaxBandwidthOut" in net:
        _integer(
            net["InternetMaxBandwidthOut"],
            "InternetAccessible.InternetMaxBandwidthOut",
            0,
            MAX_BANDWIDTH_MBPS,
        )
    if "PublicIpAssigned" in net:
        _boolean(net["PublicIpAssigned"], "InternetAccessible.PublicIpAssigned")


def _enhanced(value: Any) -> None:
    services = ("SecurityService", "MonitorService", "AutomationService")
    enhanced = _object(value, "EnhancedService", services)
    for name, service in enhanced.items():
        switch = _object(service, f"EnhancedService.{name}", ("Enabled",))
        if "Enabled" in switch:
            _boolean(switch["Enabled"], f"EnhancedService.{name}.Enabled")


def validate_launch_options(raw: Any) -> str | None:
    """The options as canonical JSON (None: none), or ValidationFailed naming the path."""
    if raw is None or raw == "" or raw == {}:
        return None
    if isinstance(raw, Mapping):
        options: Any = dict(raw)
    else:
        try:
            options = json.loads(str(raw))
        except json.JSONDecodeError:
            raise ValidationFailed(FIELD, "must be a JSON object") from None
    options = _object(
        options,
        "launch_options",
        ("SystemDisk", "DataDisks", "InternetAccessible", "EnhancedService"),
    )
    if not options:
        return None
    if "SystemDisk" in options:
        _disk(options["SystemDisk"], "SystemDisk", SYSTEM_DISK_GIB)
    if "DataDisks" in options:
        disks = options["DataDisks"]
        if not isinstance(disks, list) or len(disks) > MAX_DATA_DISKS:
            raise _fail("DataDisks", f"must be a list of at most {MAX_DATA_DISKS} disks")
        for i, disk in enumerate(disks):
            _disk(
                disk,
                f"DataDisks.{i}",
                DATA_DISK_GIB,
                ("DeleteWithInstance", "SnapshotId", "Encrypt"),
            )
    if "InternetAccessible" in options:
        _internet(options["InternetAccessible"])
    if "EnhancedService" in options:
        _enhanced(options["EnhancedService"])
    return json.dumps(options, sort_keys=True, separators=(",", ":"))
