"""The planner's value types: what it reads (a snapshot) and what it decides (a plan).

Frozen where they cross into the engine, so a plan cannot change while it is carried out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from controller.core.backoff import Block
from controller.core.events import Event
from controller.core.instances import Instance, Offering
from controller.core.model import EndReason, Launch, Node, NodeState
from controller.core.placement import MarketOffer
from controller.core.spec import EnvironmentSpec

TERMINATE_BATCH_MAX = 100  # TerminateInstances takes at most 100 ids


class EnvStatus(StrEnum):
    NEW = "NEW"
    SCALING = "SCALING"
    READY = "READY"
    BACKOFF = "BACKOFF"  # short of capacity or outbid; retrying by itself
    ERROR = "ERROR"  # quota, credentials or spec: needs a human; retried slowly
    INVALID = "INVALID"  # the row cannot be acted on; status_reason names the field
    CAPPED = "CAPPED"  # short on purpose: the next instance would exceed max_hourly_spend


@dataclass(frozen=True)
class Policy:
    launch_batch_max: int = 100
    launch_timeout_s: float = 300.0
    orphan_grace_s: float = 30.0
    # An instance launched this recently may not be visible to DescribeInstances yet.
    visibility_grace_s: float = 30.0
    terminate_retry_s: float = 10.0


@dataclass(frozen=True)
class Observation:
    """What DescribeInstances showed of this cluster's tagged instances.

    Complete: a full paged sweep, so a recorded instance it lacks may be gone. Partial: a
    narrow probe (instances being reclaimed), so what it shows is true and what it lacks
    means nothing: no instance is judged gone, adopted or resolved from it.
    """

    instances: Mapping[str, Instance]
    started_at: datetime  # instances launched after this cannot be in it
    complete: bool = True


@dataclass(frozen=True)
class Snapshot:
    now: datetime
    environments: Mapping[str, EnvironmentSpec]  # valid rows by id
    invalid: Mapping[str, str]  # env id -> reason naming the field
    nodes: Sequence[Node]  # every node not ENDED
    launches: Sequence[Launch]  # unresolved launches
    launches_in_flight: frozenset[str]  # client tokens whose call is running now
    observation: Observation | None  # None: nothing new observed since the last plan
    blocks: Mapping[tuple[str | None, Offering], Block]  # (env id or None for everyone, pool)
    holds: Mapping[str, Block]  # env id -> a block on the whole environment
    recently_ended: frozenset[str] = frozenset()  # instance ids we ended; may still be visible
    terminate_requested: Mapping[str, datetime] = field(default_factory=dict)  # instance -> when
    policy: Policy = Policy()
    # Hourly prices by offering (spot: the market price; pay-as-you-go: the listed price),
    # known for the offerings of environments with a capacity policy.
    prices: Mapping[Offering, Decimal] = field(default_factory=dict)
    # The offering cache (status, stock class, price, CPU, memory), read for environments
    # whose placement policy chooses by the market.
    market: Mapping[Offering, MarketOffer] = field(default_factory=dict)


@dataclass(frozen=True)
class NodeChange:
    """A node moves to ``state``; the reconciler writes it, logs ``event`` and its activity."""

    node_id: str
    state: NodeState
    event: Event
    cloud_state: str | None = None
    end_reason: EndReason | None = None
    detail: str = ""


@dataclass(frozen=True)
class LaunchOrder:
    env_id: str
    offering: Offering
    count: int
    cause: str
    role: str = "spot"  # controller.core.model.Role
    unit_price: str | None = None  # CNY per hour each instance is bought at, when known


@dataclass(frozen=True)
class Note:
    """A capacity event to log (compensation, replacement): the plan says what and why."""

    env_id: str
    event: Event
    fields: Mapping[str, object]


@dataclass(frozen=True)
class TerminateOrder:
    env_id: str | None  # None for orphans of environments that no longer exist
    instance_ids: tuple[str, ...]
    reason: EndReason


@dataclass(frozen=True)
class Adoption:
    env_id: str
    instance: Instance
    launch_token: str | None


@dataclass(frozen=True)
class LaunchResolution:
    """A pending launch whose instances were all found by their launch tag."""

    client_token: str
    instance_ids: tuple[str, ...]


@dataclass(frozen=True)
class StatusReport:
    env_id: str
    status: EnvStatus
    reason: str
    running: int
    pending: int
    launching: int
    next_attempt_at: datetime | None


@dataclass
class Plan:
    node_changes: list[NodeChange] = field(default_factory=list)
    resolutions: list[LaunchResolution] = field(default_factory=list)
    resends: list[Launch] = field(default_factory=list)
    adoptions: list[Adoption] = field(default_factory=list)
    launches: list[LaunchOrder] = field(default_factory=list)
    terminations: list[TerminateOrder] = field(default_factory=list)
    statuses: list[StatusReport] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    wake_at: list[datetime] = field(default_factory=list)  # a plan may change then


def older_than(when: datetime | None, now: datetime, seconds: float) -> bool:
    return when is not None and now - when > timedelta(seconds=seconds)


def chunks(items: Sequence[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


class Change(Protocol):
    """The signature of plan()'s local ``change`` helper."""

    def __call__(self, node: Node, new: NodeState, event: Event, **kw: object) -> None: ...
