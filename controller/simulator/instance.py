"""One simulated instance: its states, what it was launched with, and how it is named.

Split from the state machine (:mod:`controller.simulator.state`) so that the API layer can
render an instance, and the state machine can move it, without either owning the other.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from controller.simulator.market import region_of

DEFAULT_INSTANCE_NAME = "未命名"  # Tencent's default name ("Unnamed")


class State(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    LAUNCH_FAILED = "LAUNCH_FAILED"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    STARTING = "STARTING"
    REBOOTING = "REBOOTING"
    TERMINATING = "TERMINATING"
    TERMINATED = "TERMINATED"  # gone: only the admin view shows it


class EndReason(StrEnum):
    TERMINATED = "terminated"
    RECLAIMED = "reclaimed"
    RELEASED = "released"


def format_time(seconds: float) -> str:
    """Tencent's ``YYYY-MM-DDThh:mm:ssZ`` (UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


@dataclass(frozen=True)
class LaunchEcho:
    """What RunInstances was asked for that DescribeInstances shows back, as CVM does.

    Held in the SDK's own shapes (``SystemDisk``, ``DataDisks``, ``InternetAccessible``) with
    the defaults CVM fills in, so rendering is a copy and never a second interpretation.
    """

    system_disk: dict[str, Any] = field(
        default_factory=lambda: {"DiskType": "CLOUD_BSSD", "DiskSize": 50}
    )
    data_disks: tuple[dict[str, Any], ...] = ()
    internet: dict[str, Any] = field(
        default_factory=lambda: {
            "InternetChargeType": "TRAFFIC_POSTPAID_BY_HOUR",
            "InternetMaxBandwidthOut": 0,
        }
    )
    public_ip: bool = False
    host_name: str | None = None
    project_id: int = 0
    has_user_data: bool = False
    disable_api_termination: bool = False
    cam_role_name: str = ""


@dataclass(frozen=True)
class LaunchSpec:
    """A RunInstances request once its parameters are known to be well formed."""

    region: str
    zone: str
    instance_type: str
    image_id: str
    count: int = 1
    min_count: int | None = None
    name: str | None = None
    charge_type: str = "SPOTPAID"
    max_price: float | None = None
    tags: tuple[tuple[str, str], ...] = ()
    client_token: str | None = None
    security_group_ids: tuple[str, ...] = ()
    vpc_id: str = ""
    subnet_id: str = ""
    key_ids: tuple[str, ...] = ()
    dry_run: bool = False
    echo: LaunchEcho = field(default_factory=LaunchEcho)


@dataclass
class Instance:
    """One instance, alive or gone; times are simulator clock seconds."""

    instance_id: str
    seq: int
    zone: str
    instance_type: str
    image_id: str
    name: str
    charge_type: str
    max_price: float | None
    price: float
    tags: dict[str, str]
    created_at: float
    client_token: str | None
    cpu: int
    memory: int
    private_ip: str
    uuid: str
    security_group_ids: tuple[str, ...]
    vpc_id: str
    subnet_id: str
    key_ids: tuple[str, ...]
    will_fail: bool
    echo: LaunchEcho = field(default_factory=LaunchEcho)
    public_ip: str | None = None
    state: State = State.PENDING
    stopped_mode: str = "NOT_APPLICABLE"  # StopChargingMode: KEEP_CHARGING once stopped
    latest_operation: str = "RunInstances"
    latest_operation_state: str = "OPERATING"
    latest_operation_request_id: str = ""
    latest_operation_error: str = ""
    launch_failed: bool = False
    running_at: float | None = None
    ending_reason: EndReason | None = None
    ended_at: float | None = None
    end_reason: EndReason | None = None
    # Bumped on every state change so that timers scheduled for an older state are ignored.
    version: int = 0

    @property
    def region(self) -> str:
        return region_of(self.zone)

    @property
    def gone(self) -> bool:
        return self.ended_at is not None

    def begin(self, operation: str, request_id: str) -> None:
        """Record an API operation as CVM's LatestOperation* fields show it."""
        self.latest_operation = operation
        self.latest_operation_state = "OPERATING"
        self.latest_operation_request_id = request_id
        self.latest_operation_error = ""

    def view(self) -> dict[str, object]:
        """The admin API's view: the Tencent names, Tags as a {key: value} dict."""
        return {
            "InstanceId": self.instance_id,
            "InstanceState": str(self.state),
            "Region": self.region,
            "Zone": self.zone,
            "InstanceType": self.instance_type,
            "ImageId": self.image_id,
            "InstanceName": self.name,
            "InstanceChargeType": self.charge_type,
            "MaxPrice": self.max_price,
            "Price": self.price,
            "Tags": dict(self.tags),
            "CreatedTime": format_time(self.created_at),
            "RunningTime": None if self.running_at is None else format_time(self.running_at),
            "ClientToken": self.client_token,
            "PrivateIpAddress": self.private_ip,
            "LatestOperation": self.latest_operation,
            "LatestOperationState": self.latest_operation_state,
            "LatestOperationErrorMsg": self.latest_operation_error,
            "LaunchFailed": self.launch_failed,
            "EndedTime": None if self.ended_at is None else format_time(self.ended_at),
            "EndReason": None if self.end_reason is None else str(self.end_reason),
        }


def instance_names(name: str | None, count: int) -> list[str]:
    """Tencent's naming of a batch: ``{R:x}`` counts up from x, else 1..n is appended."""
    if name is None:
        return [DEFAULT_INSTANCE_NAME] * count
    start = name.find("{R:")
    end = name.find("}", start)
    if start >= 0 and end > start and name[start + 3 : end].isdigit():
        first = int(name[start + 3 : end])
        return [f"{name[:start]}{first + i}{name[end + 1 :]}" for i in range(count)]
    if count == 1:
        return [name]
    return [f"{name}{i + 1}" for i in range(count)]
