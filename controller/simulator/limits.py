"""Tencent's documented API rate limits for CVM, as the simulator enforces them.

The simulator states these itself rather than borrowing the controller client's defaults: a
client that is tuned up to (or past) the real limit must be throttled here as it would be at
Tencent, which a limit copied from the client can never do. ``tests/simulator`` checks that the
client's defaults stay at or under this table.

Sources: each action's API page ("默认接口请求频率限制"): RunInstances, TerminateInstances,
StartInstances, StopInstances and RebootInstances 10/s; DescribeInstances and
DescribeInstancesStatus 40/s; every other CVM action here 20/s (Tencent's default for an API
page that names no other figure).
"""

from __future__ import annotations

from types import MappingProxyType

#: Tencent's default for an action whose page names no other figure.
DEFAULT_LIMIT = 20.0

TENCENT_RATE_LIMITS = MappingProxyType(
    {
        "RunInstances": 10.0,
        "TerminateInstances": 10.0,
        "StartInstances": 10.0,
        "StopInstances": 10.0,
        "RebootInstances": 10.0,
        "DescribeInstances": 40.0,
        "DescribeInstancesStatus": 40.0,
        "InquiryPriceRunInstances": DEFAULT_LIMIT,
        "DescribeZoneInstanceConfigInfos": DEFAULT_LIMIT,
        "DescribeZones": DEFAULT_LIMIT,
        "DescribeRegions": DEFAULT_LIMIT,
        "DescribeImages": DEFAULT_LIMIT,
        "DescribeInstanceTypeConfigs": DEFAULT_LIMIT,
        "DescribeAccountQuota": DEFAULT_LIMIT,
        "DescribeInstancesOperationLimit": DEFAULT_LIMIT,
    }
)
"""Calls per second per account for each action the simulator answers."""


def rate_limit_message(count: int, limit: float) -> str:
    """Tencent's RequestLimitExceeded text; clients read the two figures out of it."""
    return (
        f"Your current request times equals to `{count}` in a second, which exceeds the "
        f"frequency limit `{limit:g}` for a second. Please reduce the frequency of calls."
    )
