"""Typed, read-only views of what the store holds, as every front end shows it.

The CLI, the BatchCompute-compatible API and the console render these, never store rows, so
that a secret (user data) cannot reach any of them and all show a value the same way.
``to_json()`` is the one plain-data form: datetimes as UTC ISO text, prices as text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Self

from controller.core.model import NodeState

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
EMPTY_MIX = {"spot_running": 0, "on_demand_running": 0, "compensating": 0, "hourly_spend": None}


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime(TIMESTAMP_FORMAT)
    if isinstance(value, Decimal):
        return str(value)
    return value


def _hidden_user_data(length: int) -> str | None:
    return f"<{length} characters of base64, not shown>" if length else None


@dataclass(frozen=True)
class View:
    """A frozen dataclass built from a store row by field name, shown as plain data."""

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Self:
        return cls(**{f.name: row[f.name] for f in dataclasses.fields(cls)})

    def to_json(self) -> dict[str, Any]:
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class EnvironmentView(View):
    """One compute environment: what its user asked for and what the controller reports.

    Values are as stored, not as the daemon would parse them: a row written with plain SQL
    may hold a price like ``'abc'``, shown as it is (the daemon reports that row INVALID).
    User data is not held at all, only its length.
    """

    id: str
    name: str
    zone: str
    instance_type: str
    image_id: str
    max_price: str
    desired_count: int
    fallback_instance_types: str
    fallback_zones: str
    instance_name: str | None
    security_group_ids: str
    vpc_id: str | None
    subnet_id: str | None
    key_ids: str
    user_data_length: int  # characters of base64; 0: none
    project_id: int
    tags: str
    created_at: datetime
    status: str
    status_reason: str
    running_count: int
    pending_count: int
    launching_count: int
    next_attempt_at: datetime | None
    last_reconciled_at: datetime | None
    # The capacity policy, as stored (NULL: the default).
    on_demand_base_count: Any
    on_demand_percentage: Any
    compensate_with_on_demand: Any
    compensate_after_s: Any
    disruption_budget: Any
    max_hourly_spend: Any
    # The placement policy, as stored.
    allocation_strategy: Any
    zone_balance: Any
    max_pool_share: Any
    instance_cpu: Any
    instance_memory: Any
    instance_families: Any
    description: str
    terminate_node_ids: str
    launch_options: str
    # The split of the running instances, and the hourly spend of those alive or launching.
    spot_running: int = 0
    on_demand_running: int = 0
    compensating: int = 0
    hourly_spend: Decimal | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any], mix: Mapping[str, Any] | None = None) -> Self:
        user_data = row.get("user_data") or ""
        split = {**EMPTY_MIX, **(mix or {})}
        return super().from_row({**row, **split, "user_data_length": len(user_data)})

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for key, value in super().to_json().items():
            if key == "user_data_length":  # shown under the column's own name
                key, value = "user_data", _hidden_user_data(value)
            data[key] = value
        return data


@dataclass(frozen=True)
class ActivityView(View):
    """One entry of an environment's history: a node created, ended, adopted, ..."""

    id: str
    env_id: str
    node_id: str | None
    instance_id: str | None
    activity_type: str
    state: str
    cause: str
    state_reason: str
    start_time: datetime
    end_time: datetime | None


@dataclass(frozen=True)
class NodeView(View):
    """One compute node: an instance the controller launched or adopted, live or ended."""

    id: str
    env_id: str
    instance_id: str | None
    launch_token: str | None
    state: str
    zone: str
    instance_type: str
    max_price: str
    origin: str
    created_at: datetime
    launched_at: datetime | None
    running_at: datetime | None
    last_seen_at: datetime | None
    cloud_state: str | None
    ended_at: datetime | None
    end_reason: str | None
    end_detail: str | None
    charge_type: str
    hourly_price: str | None
    role: str

    @property
    def ended(self) -> bool:
        return self.state == NodeState.ENDED.value
