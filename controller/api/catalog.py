"""The instance-type actions of BatchCompute, answered from CVM through the cloud client.

DescribeCvmZoneInstanceConfigInfos is CVM's DescribeZoneInstanceConfigInfos (the same item
shape); DescribeAvailableCvmInstanceTypes and DescribeInstanceCategories come from CVM's
DescribeInstanceTypeConfigs. Only fields the batch SDK's models declare are passed on.
"""

from __future__ import annotations

from typing import Any

from controller.cloud.client import CvmClient
from controller.errors import CloudError
from controller.tencentapi.errors import ApiError
from controller.tencentapi.params import Params

QUOTA_ITEM = (
    "Zone",
    "InstanceType",
    "InstanceChargeType",
    "NetworkCard",
    "Externals",
    "Cpu",
    "Memory",
    "InstanceFamily",
    "TypeName",
    "LocalDiskTypeList",
    "Status",
    "Price",
    "SoldOutReason",
    "InstanceBandwidth",
    "InstancePps",
    "StorageBlockAmount",
    "CpuType",
    "Gpu",
    "Fpga",
    "Remark",
    "GpuCount",
    "Frequency",
    "StatusCategory",
)
CONFIG_FILTERS = ("zone", "instance-family", "instance-type", "instance-charge-type")
TYPE_FILTERS = ("zone", "instance-family")
# BatchCompute's categories, by the letters an instance family starts with (longest first).
CATEGORIES = (
    ("GN", "GPU"),
    ("GI", "GPU"),
    ("GT", "GPU"),
    ("FX", "FPGA"),
    ("IT", "IO"),
    ("SA", "GENERAL"),
    ("SN", "GENERAL"),
    ("S", "GENERAL"),
    ("C", "COMPUTE"),
    ("M", "MEMORY"),
    ("I", "IO"),
    ("D", "BIG_DATA"),
)


def _filters(params: Params, known: tuple[str, ...]) -> list[dict[str, Any]]:
    out = []
    for f in params.objects("Filters") or []:
        f.reject_unknown(("Name", "Values"))
        name = f.string("Name", required=True)
        values = f.strings("Values", required=True)
        if name not in known:
            raise ApiError(
                "InvalidFilter",
                f"`{f.name('Name')}` {name!r} is not a filter; known: {', '.join(known)}.",
            )
        out.append({"Name": name, "Values": values})
    return out


def _cvm_failed(action: str, exc: CloudError) -> ApiError:
    return ApiError("InternalError.CallCvm", f"CVM {action} failed: {exc.code}")


def category_of(family: str) -> str:
    for prefix, category in CATEGORIES:
        if family.startswith(prefix):
            return category
    return "OTHER"


class Catalog:
    def __init__(self, client: CvmClient) -> None:
        self.client = client

    async def _configs(self, filters: list[dict[str, Any]]) -> dict[str, Any]:
        try:
            return await self.client.zone_instance_config_infos(filters)
        except CloudError as exc:
            raise _cvm_failed("DescribeZoneInstanceConfigInfos", exc) from None

    async def _type_configs(self, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        try:
            answer = await self.client.instance_type_configs(filters)
        except CloudError as exc:
            raise _cvm_failed("DescribeInstanceTypeConfigs", exc) from None
        return list(answer.get("InstanceTypeConfigSet", []))

    async def zone_instance_config_infos(self, params: Params) -> dict[str, Any]:
        filters = _filters(params, CONFIG_FILTERS)
        answer = await self._configs(filters)
        items = [
            {k: v for k, v in item.items() if k in QUOTA_ITEM}
            for item in answer.get("InstanceTypeQuotaSet", [])
        ]
        return {"InstanceTypeQuotaSet": items}

    async def check_offered(self, types: list[str], zones: list[str], field: str) -> None:
        """InvalidParameterValue.InstanceType unless each type is sold in one of ``zones``."""
        answer = await self._configs([{"Name": "zone", "Values": zones}])
        offered = {item.get("InstanceType") for item in answer.get("InstanceTypeQuotaSet", [])}
        for itype in types:
            if itype not in offered:
                raise ApiError(
                    "InvalidParameterValue.InstanceType",
                    f"`{field}` {itype!r} is not offered in {', '.join(zones)} "
                    "(CVM DescribeZoneInstanceConfigInfos).",
                )

    async def available_instance_types(self, params: Params) -> dict[str, Any]:
        configs = await self._type_configs(_filters(params, TYPE_FILTERS))
        return {
            "InstanceTypeConfigSet": [
                {
                    "Mem": c.get("Memory", 0),
                    "Cpu": c.get("CPU", 0),
                    "InstanceType": c.get("InstanceType", ""),
                    "Zone": c.get("Zone", ""),
                    "InstanceFamily": c.get("InstanceFamily", ""),
                }
                for c in configs
            ]
        }

    async def instance_categories(self) -> dict[str, Any]:
        families: dict[str, list[str]] = {}
        for c in await self._type_configs([]):
            family = str(c.get("InstanceFamily", ""))
            members = families.setdefault(category_of(family), [])
            if family and family not in members:
                members.append(family)
        return {
            "InstanceCategorySet": [
                {"InstanceCategory": category, "InstanceFamilySet": sorted(members)}
                for category, members in sorted(families.items())
            ]
        }
