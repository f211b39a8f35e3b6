"""The records the reconciler keeps: compute nodes and launches. Plain data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from controller.core.instances import SPOT, LaunchRequest, Offering

ENV_TAG = "spot-controller:env"
CLUSTER_TAG = "spot-controller:cluster"
TOKEN_TAG = "spot-controller:launch"

# BatchCompute's activity types: one CREATE and one TERMINATE activity per node.
CREATE_NODE = "CREATE_COMPUTE_NODE"
TERMINATE_NODE = "TERMINATE_COMPUTE_NODE"


class NodeState(StrEnum):
    SUBMITTED = "SUBMITTED"  # intent recorded, RunInstances not answered yet
    CREATING = "CREATING"  # instance exists, PENDING (or not visible yet)
    RUNNING = "RUNNING"
    DELETING = "DELETING"  # terminate decided; gone once the cloud agrees
    ENDED = "ENDED"  # history only; end_reason says why


class EndReason(StrEnum):
    INTERRUPTED = "interrupted"  # spot reclaim
    RELEASED = "released"  # terminated outside the controller
    STOPPED = "stopped"  # stopped outside the controller: replaced, then terminated
    SCALE_IN = "scale_in"
    ENV_DELETED = "env_deleted"
    LAUNCH_FAILED = "launch_failed"  # RunInstances refused, or LAUNCH_FAILED state
    LAUNCH_TIMEOUT = "launch_timeout"  # PENDING (or invisible) past the launch timeout
    ORPHAN = "orphan"
    REPLACED = "replaced"  # pay-as-you-go replaced by spot (or a rebalance), once it runs


class Role(StrEnum):
    """Why an instance is in its environment: which part of the capacity policy it fills."""

    BASE = "base"  # the on-demand base count: pay-as-you-go, always
    ON_DEMAND = "on_demand"  # the on-demand percentage above the base
    SPOT = "spot"
    COMPENSATION = "compensation"  # pay-as-you-go standing in for spot that cannot be had


ALIVE_STATES = (NodeState.CREATING, NodeState.RUNNING)
# Cloud states in which TerminateInstances is accepted. Not STOPPING, STARTING or REBOOTING:
# CVM refuses an instance in the middle of an operation, so the terminate waits for it to settle.
TERMINABLE_CLOUD_STATES = frozenset({"RUNNING", "LAUNCH_FAILED", "STOPPED", "SHUTDOWN"})
GOING_CLOUD_STATES = frozenset({"TERMINATING", "SHUTDOWN"})
# Stopped outside the controller (console or API): not alive; replaced, then terminated.
STOPPED_CLOUD_STATES = frozenset({"STOPPING", "STOPPED"})
UNHEALTHY_CLOUD_STATES = frozenset({"LAUNCH_FAILED", "STOPPED", "STOPPING", "SHUTDOWN"})


@dataclass
class Node:
    """One instance the controller launched or adopted (a row of ``compute_nodes``)."""

    id: str
    env_id: str
    state: NodeState
    zone: str
    instance_type: str
    created_at: datetime
    instance_id: str | None = None
    launch_token: str | None = None
    max_price: str = ""
    origin: str = "LAUNCHED"
    launched_at: datetime | None = None
    running_at: datetime | None = None
    last_seen_at: datetime | None = None
    cloud_state: str | None = None
    ended_at: datetime | None = None
    end_reason: str | None = None
    end_detail: str | None = None
    charge_type: str = SPOT
    hourly_price: str | None = None  # CNY per hour it was bought at; None: not known
    role: str = Role.SPOT.value

    @property
    def alive(self) -> bool:
        return self.state in ALIVE_STATES

    @property
    def offering(self) -> Offering:
        return Offering(self.zone, self.instance_type, self.charge_type)


@dataclass(frozen=True)
class Launch:
    """The durable intent of one RunInstances call (a row of ``launches``)."""

    client_token: str
    env_id: str
    offering: Offering
    count: int
    request: LaunchRequest
    created_at: datetime


@dataclass(frozen=True)
class ActivityRecord:
    """A new BatchCompute-style activity to append."""

    env_id: str
    activity_type: str
    state: str
    cause: str
    node_id: str | None = None
    instance_id: str | None = None
    state_reason: str = ""
    ended: bool = False
