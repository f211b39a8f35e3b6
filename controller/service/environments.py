"""Compute environments as users manage them: create, show, list, update, scale, delete, and
read their activities and nodes.

Every front end (the CLI today; the BatchCompute-compatible API and the console next) calls
these, so a rule is checked in one place: here, with the parsers of ``controller.core.spec``,
before the store is asked to write. A refusal is a ValidationFailed naming the field and the
rule, and nothing is written; the store keeps only the database's own constraints.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from controller.core import spec
from controller.core.capacity import CAPACITY_COLUMNS
from controller.core.instances import SPOT
from controller.core.model import NodeState
from controller.errors import ValidationFailed
from controller.service.cost import CostView, cost_by_charge_type
from controller.service.nodes import plan_termination
from controller.service.views import EMPTY_MIX, ActivityView, EnvironmentView, NodeView
from controller.store.store import Store

DELETED_ID_PREFIX = "env-"  # the history of a deleted environment is read by its id
# A new row has no id until the database gives it one; the checks need one, any will do.
PLACEHOLDER_ID = "env-00000000"
DEFAULT_ACTIVITY_LIMIT = 50
TERMINATE_ATTEMPTS = 5  # conditional updates raced by concurrent changes of the count
CLIENT_TOKEN_MAX = 64


class EnvironmentNotFound(ValidationFailed):
    """No environment has this name or id (an API answers it as ResourceNotFound)."""

    def __init__(self, name_or_id: str) -> None:
        super().__init__("name", f"no environment named {name_or_id!r}")
        self.name_or_id = name_or_id


def _check_client_token(token: str) -> None:
    if not 1 <= len(token) <= CLIENT_TOKEN_MAX or not token.isascii() or not token.isprintable():
        raise ValidationFailed(
            "client_token", f"must be 1 to {CLIENT_TOKEN_MAX} printable ASCII characters"
        )


def _only_user_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """The given fields without the unset (None) ones; a field a user cannot set is refused,
    not dropped: a typo (``desired``) must not create an environment without it."""
    for key in values:
        if key not in spec.USER_COLUMNS:
            raise ValidationFailed(key, "is not a field a user can set")
    return {k: v for k, v in values.items() if v is not None}


def _normalised(values: Mapping[str, Any], parsed: spec.EnvironmentSpec) -> dict[str, Any]:
    """Values as the store keeps them, from the parsed row: the price as a plain decimal, the
    numbers and the flag as numbers and a flag (a form sends text; PostgreSQL wants types)."""
    row = dict(values)
    if "max_price" in row:
        row["max_price"] = parsed.max_price
    if "desired_count" in row:
        row["desired_count"] = parsed.desired_count
    if "project_id" in row:
        row["project_id"] = parsed.project_id
    for column in CAPACITY_COLUMNS:
        if column in row:
            value = getattr(parsed.capacity, column)
            row[column] = str(value) if isinstance(value, Decimal) else value
    for choice in ("allocation_strategy", "zone_balance"):  # checked by the row's parse
        if choice in row:
            row[choice] = str(row[choice]).strip().upper()
    if "instance_families" in row:
        parts = str(row["instance_families"]).split(",")
        row["instance_families"] = ",".join(dict.fromkeys(p.strip() for p in parts if p.strip()))
    return row


def validate_new_environment(values: Mapping[str, Any], region: str) -> dict[str, Any]:
    """The row to insert for ``values``, checked as the daemon will read it (in ``region``)."""
    row = _only_user_fields(values)
    row.setdefault("instance_type", "")  # the column is NOT NULL; attributes may stand for it
    return _normalised(row, spec.parse_environment({**row, "id": PLACEHOLDER_ID}, region))


def validate_changes(
    current: Mapping[str, Any], changes: Mapping[str, Any], region: str
) -> dict[str, Any]:
    """The columns to set: ``changes`` checked together with the rest of the row, because
    a rule may span fields (a VPC needs its subnet) and the result must be a valid row."""
    values = _only_user_fields(changes)
    if not values:
        raise ValidationFailed("update", "give at least one field to change")
    return _normalised(values, spec.parse_environment({**current, **values}, region))


class Environments:
    """The operations on compute environments of one region, over one store."""

    def __init__(self, store: Store, region: str) -> None:
        self.store = store
        self.region = region

    async def create(
        self, values: Mapping[str, Any], *, client_token: str | None = None
    ) -> EnvironmentView:
        """Create the environment; with ``client_token``, at most once per token (a token
        already used gives its environment back, whatever ``values`` say)."""
        if client_token is not None:
            _check_client_token(client_token)
        row = validate_new_environment(values, self.region)
        created = await self.store.insert_environment(row, client_token=client_token)
        return EnvironmentView.from_row(created)

    async def list(self) -> tuple[EnvironmentView, ...]:
        """Every environment, by name, with the split of its instances and its hourly spend."""
        rows = await self.store.list_environments()
        mixes = await self._mixes()
        return tuple(EnvironmentView.from_row(r, mixes.get(r["id"])) for r in rows)

    async def node_states(self) -> dict[str, builtins.list[dict[str, Any]]]:
        """Live nodes by environment, grouped by state and CVM's last state (node metrics)."""
        groups: dict[str, builtins.list[dict[str, Any]]] = {}
        for group in await self.store.live_node_states():
            groups.setdefault(group["env_id"], []).append(group)
        return groups

    async def show(self, name_or_id: str) -> EnvironmentView:
        row = await self._row(name_or_id)
        return EnvironmentView.from_row(row, (await self._mixes()).get(row["id"]))

    async def cost(self, name_or_id: str, since: datetime, until: datetime) -> tuple[CostView, ...]:
        """Instance-hours and spend by charge type between ``since`` and ``until``, from the
        node records (each instance from its launch to its end, at the price it was bought at)."""
        if since >= until:
            raise ValidationFailed("since", f"must be before {until:%Y-%m-%dT%H:%M:%SZ}")
        env_id = await self._history_id(name_or_id)
        return cost_by_charge_type(await self.store.list_nodes(env_id), since, until)

    async def _mixes(self) -> dict[str, dict[str, Any]]:
        mixes: dict[str, dict[str, Any]] = {}
        for group in await self.store.live_node_mix():
            mix = mixes.setdefault(group["env_id"], dict(EMPTY_MIX))
            running = group["state"] == NodeState.RUNNING.value
            alive = group["state"] in (NodeState.CREATING.value, NodeState.RUNNING.value)
            if running and group["charge_type"] == SPOT:
                mix["spot_running"] += group["nodes"]
            elif running:
                mix["on_demand_running"] += group["nodes"]
            if alive and group["role"] == "compensation":
                mix["compensating"] += group["nodes"]
            if group["state"] != NodeState.DELETING.value and group["priced"]:
                spend = Decimal(str(group["hourly_spend"])).quantize(Decimal("0.0001"))
                mix["hourly_spend"] = (mix["hourly_spend"] or Decimal(0)) + spend
        return mixes

    async def update(self, name_or_id: str, changes: Mapping[str, Any]) -> EnvironmentView:
        """Change fields; new values apply to new launches, running instances are kept."""
        current = await self._row(name_or_id)
        values = validate_changes(current, changes, self.region)
        updated = await self.store.change_environment(current["id"], values)
        if updated is None:  # deleted meanwhile
            raise EnvironmentNotFound(name_or_id)
        return EnvironmentView.from_row(updated)

    async def scale(self, name_or_id: str, desired_count: Any) -> EnvironmentView:
        return await self.update(name_or_id, {"desired_count": desired_count})

    async def delete(self, name_or_id: str) -> EnvironmentView:
        """Delete the environment; the daemon terminates its instances. Its history stays."""
        deleted = await self.store.delete_environment(name_or_id)
        if deleted is None:
            raise EnvironmentNotFound(name_or_id)
        return EnvironmentView.from_row(deleted)

    async def terminate_nodes(self, name_or_id: str, node_ids: Sequence[str]) -> EnvironmentView:
        """End these nodes and lower the desired count by as many (a targeted scale-in)."""
        for _ in range(TERMINATE_ATTEMPTS):
            current = await self._row(name_or_id)
            live = [n for n in await self.store.list_nodes(current["id"]) if n["state"] != "ENDED"]
            changes = plan_termination(current, live, node_ids)
            expected = {"desired_count": current["desired_count"]}
            if await self.store.change_environment_if(current["id"], expected, changes):
                return await self.show(current["id"])
        raise ValidationFailed("desired_count", "changed by others meanwhile; try again")

    async def activity_page(
        self, name_or_id: str, offset: int, limit: int, node_id: str | None = None
    ) -> tuple[tuple[ActivityView, ...], int]:
        """A page of activities, newest first, and their total count."""
        if offset < 0:
            raise ValidationFailed("offset", f"must be 0 or more, got {offset}")
        if limit < 1:
            raise ValidationFailed("limit", f"must be at least 1, got {limit}")
        env_id = await self._history_id(name_or_id)
        rows, total = await self.store.page_activities(env_id, offset, limit, node_id)
        return tuple(ActivityView.from_row(r) for r in rows), total

    async def activities(
        self, name_or_id: str, limit: int = DEFAULT_ACTIVITY_LIMIT, offset: int = 0
    ) -> tuple[ActivityView, ...]:
        """``limit`` activities after the newest ``offset``, newest first; of a deleted
        environment by its id."""
        if limit < 1:
            raise ValidationFailed("limit", f"must be at least 1, got {limit}")
        if offset < 0:
            raise ValidationFailed("offset", f"must be 0 or more, got {offset}")
        env_id = await self._history_id(name_or_id)
        rows = await self.store.list_activities(env_id, limit, offset=offset)
        return tuple(ActivityView.from_row(r) for r in rows)

    async def nodes(self, name_or_id: str, *, include_ended: bool = False) -> tuple[NodeView, ...]:
        """The nodes, oldest first: live ones, or all; of a deleted environment by its id."""
        env_id = await self._history_id(name_or_id)
        nodes = (NodeView.from_row(r) for r in await self.store.list_nodes(env_id))
        return tuple(n for n in nodes if include_ended or not n.ended)

    async def _row(self, name_or_id: str) -> dict[str, Any]:
        row = await self.store.get_environment(name_or_id)
        if row is None:
            raise EnvironmentNotFound(name_or_id)
        return row

    async def _history_id(self, name_or_id: str) -> str:
        """The id whose history to read: a live environment's, or a deleted one's id as given."""
        row = await self.store.get_environment(name_or_id)
        if row is not None:
            return str(row["id"])
        if name_or_id.startswith(DELETED_ID_PREFIX):
            return name_or_id
        raise EnvironmentNotFound(name_or_id)
