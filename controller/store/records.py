"""The engine's side: the rows it reads each pass, and the records it writes before and
after each action (launch intents and results, node changes, activities, statuses).

Every write is fenced: it goes through only while this replica holds the lease. Each takes
the notices its records produce and writes them to the outbox in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from controller.core.instances import Offering
from controller.core.model import CREATE_NODE, ActivityRecord, Launch, Node, NodeState
from controller.core.notices import Notice
from controller.core.spec import STATUS_COLUMNS
from controller.store.environments import NUMERIC_CAPACITY_COLUMNS
from controller.store.notify import EnvironmentChanges, watch_environment_changes
from controller.store.outbox import OutboxWriter
from controller.store.rows import (
    activity_values,
    node_from_row,
    node_values,
    request_from_json,
    request_to_json,
)
from controller.store.schema import (
    activities,
    compute_environments,
    compute_nodes,
    environment_revision,
    launches,
)


class EngineRecords(OutboxWriter):
    def watch_changes(self) -> AbstractAsyncContextManager[EnvironmentChanges]:
        """Listen for users' commits to ``compute_environments`` (PostgreSQL; SQLite: never).

        The store opens the listening connection itself, so its URL and password stay here.
        """
        return watch_environment_changes(self.engine.url.render_as_string(hide_password=False))

    async def environment_revision(self) -> int | None:
        """The counter every user change to compute_environments bumps (None: row missing)."""
        c = environment_revision.c
        async with self._tx() as conn:
            result = await self._execute(conn, sa.select(c.revision).where(c.id == 1))
            value = result.scalar_one_or_none()
        return None if value is None else int(value)

    async def load_environment_rows(self) -> tuple[int | None, list[dict[str, Any]]]:
        """Every row, with numbers read as text so that a bad value is reported, not fatal;
        and the revision those rows are at (read from the same snapshot)."""
        c = compute_environments.c
        r = environment_revision.c
        as_text = ("max_price", "desired_count", *NUMERIC_CAPACITY_COLUMNS)
        cols = [col for col in compute_environments.c if col.name not in as_text]
        stmt = sa.select(*cols, *(sa.cast(c[name], sa.Text).label(name) for name in as_text))
        async with self._tx(snapshot=True) as conn:
            value = (
                await self._execute(conn, sa.select(r.revision).where(r.id == 1))
            ).scalar_one_or_none()
            rows = [dict(row._mapping) for row in await self._execute(conn, stmt)]
        return (None if value is None else int(value)), rows

    async def load_state(self) -> tuple[list[Node], list[Launch]]:
        """The live nodes and the unresolved launches, read from one snapshot: read apart, a
        launch resolved in between would leave its nodes without instance ids and its
        instances looking like nobody's."""
        async with self._tx(snapshot=True) as conn:
            node_rows = await self._execute(
                conn, sa.select(compute_nodes).where(compute_nodes.c.state != NodeState.ENDED.value)
            )
            nodes = [node_from_row(r._mapping) for r in node_rows]
            launch_rows = await self._execute(
                conn, sa.select(launches).where(launches.c.state == "PENDING")
            )
            pending = [
                Launch(
                    client_token=r.client_token,
                    env_id=r.env_id,
                    offering=Offering(r.zone, r.instance_type, request.charge_type),
                    count=r.count,
                    request=request,
                    created_at=r.created_at,
                )
                for r in launch_rows
                for request in (request_from_json(r.request),)
            ]
        return nodes, pending

    async def live_node_counts(self) -> dict[str, int]:
        """Rows not ENDED per environment: one grouped count, to check memory against."""
        c = compute_nodes.c
        stmt = (
            sa.select(c.env_id, sa.func.count())
            .where(c.state != NodeState.ENDED.value)
            .group_by(c.env_id)
        )
        async with self._tx() as conn:
            return {row[0]: int(row[1]) for row in await self._execute(conn, stmt)}

    async def existing_node_ids(self, node_ids: Sequence[str]) -> set[str]:
        """Which of these node ids have a row, whatever its state."""
        found: set[str] = set()
        async with self._tx() as conn:
            for start in range(0, len(node_ids), 500):
                chunk = list(node_ids[start : start + 500])
                stmt = sa.select(compute_nodes.c.id).where(compute_nodes.c.id.in_(chunk))
                found.update(row[0] for row in await self._execute(conn, stmt))
        return found

    async def record_launch_intents(
        self, intents: Sequence[tuple[Launch, Sequence[Node], str]]
    ) -> None:
        """Several launches' intents (launch, its nodes, cause) in one transaction.

        Three statements whatever the number of launches: a pass that scales many
        environments out records its intents in one round trip instead of three per launch.
        """
        if not intents:
            return
        holder = self.fence.holder if self.fence else None
        epoch = self.fence.epoch if self.fence else None
        async with self._tx(fenced=True) as conn:
            await self._execute(
                conn,
                launches.insert(),
                [
                    {
                        "client_token": launch.client_token,
                        "env_id": launch.env_id,
                        "zone": launch.offering.zone,
                        "instance_type": launch.offering.instance_type,
                        "count": launch.count,
                        "request": request_to_json(launch.request),
                        "state": "PENDING",
                        "created_at": launch.created_at,
                        "holder": holder,
                        "epoch": epoch,
                    }
                    for launch, _, _ in intents
                ],
            )
            await self._execute(
                conn,
                compute_nodes.insert(),
                [node_values(n) for _, nodes, _ in intents for n in nodes],
            )
            await self._execute(
                conn,
                activities.insert(),
                [
                    activity_values(
                        ActivityRecord(n.env_id, CREATE_NODE, "SUBMITTED", cause, node_id=n.id),
                        launch.created_at,
                    )
                    for launch, nodes, cause in intents
                    for n in nodes
                ],
            )

    async def _resolve_launch(
        self, conn: AsyncConnection, client_token: str, **values: Any
    ) -> None:
        """Close a launch's intent: its final state, the answer's RequestId, one more attempt."""
        await self._execute(
            conn,
            launches.update()
            .where(launches.c.client_token == client_token)
            .values(attempts=launches.c.attempts + 1, **values),
        )

    async def record_launch_succeeded(
        self,
        client_token: str,
        request_id: str | None,
        nodes: Sequence[Node],
        now: datetime,
        notices: Sequence[Notice] = (),
    ) -> None:
        """After RunInstances: the instance ids on the launch's nodes (already set in memory)."""
        async with self._tx(fenced=True) as conn:
            await self._resolve_launch(
                conn, client_token, state="SUCCEEDED", request_id=request_id, resolved_at=now
            )
            await self._update_nodes(conn, nodes)
            if nodes:
                # One executemany, not a statement per node: a launch of 100 is one round trip.
                await self._execute(
                    conn,
                    activities.update()
                    .where(
                        activities.c.node_id == sa.bindparam("b_node_id"),
                        activities.c.activity_type == CREATE_NODE,
                    )
                    .values(
                        state="PROCESSING",
                        instance_id=sa.bindparam("b_instance_id"),
                        state_reason="instance PENDING",
                    ),
                    [{"b_node_id": n.id, "b_instance_id": n.instance_id} for n in nodes],
                )
            await self._write_notices(conn, notices)

    async def record_launch_failed(
        self,
        client_token: str,
        code: str,
        message: str,
        request_id: str | None,
        nodes: Sequence[Node],
        now: datetime,
        notices: Sequence[Notice] = (),
    ) -> None:
        async with self._tx(fenced=True) as conn:
            await self._resolve_launch(
                conn,
                client_token,
                state="FAILED",
                error_code=code,
                error_message=message[:1000],
                request_id=request_id,
                resolved_at=now,
            )
            await self._update_nodes(conn, nodes)
            await self._execute(
                conn,
                activities.update()
                .where(
                    activities.c.node_id.in_([n.id for n in nodes]),
                    activities.c.activity_type == CREATE_NODE,
                )
                .values(state="FAILED", state_reason=f"{code}: {message}"[:1000], end_time=now),
            )
            await self._write_notices(conn, notices)

    async def record_changes(
        self,
        *,
        new_nodes: Sequence[Node] = (),
        changed_nodes: Sequence[Node] = (),
        new_activities: Sequence[ActivityRecord] = (),
        finished_activities: Sequence[tuple[str, str, str, str]] = (),
        notices: Sequence[Notice] = (),
        now: datetime,
    ) -> None:
        """One transaction for what a pass observed and decided, and the notices it produced.

        ``finished_activities``: (node id, activity type, final state, reason).
        """
        if not (new_nodes or changed_nodes or new_activities or finished_activities or notices):
            return
        async with self._tx(fenced=True) as conn:
            if new_nodes:
                await self._execute(
                    conn, compute_nodes.insert(), [node_values(n) for n in new_nodes]
                )
            await self._update_nodes(conn, changed_nodes)
            if new_activities:
                await self._execute(
                    conn, activities.insert(), [activity_values(a, now) for a in new_activities]
                )
            if finished_activities:
                # One executemany: a sweep that sees 10,000 instances RUNNING finishes 10,000
                # activities, and a statement each held SQLite's write lock for seconds.
                await self._execute(
                    conn,
                    activities.update()
                    .where(
                        activities.c.node_id == sa.bindparam("b_node_id"),
                        activities.c.activity_type == sa.bindparam("b_type"),
                        activities.c.end_time.is_(None),
                    )
                    .values(
                        state=sa.bindparam("b_state"),
                        state_reason=sa.bindparam("b_reason"),
                        end_time=now,
                    ),
                    [
                        {
                            "b_node_id": node_id,
                            "b_type": kind,
                            "b_state": state,
                            "b_reason": reason[:1000],
                        }
                        for node_id, kind, state, reason in finished_activities
                    ],
                )
            await self._write_notices(conn, notices)

    async def record_statuses(
        self, statuses: Iterable[Mapping[str, Any]], notices: Sequence[Notice] = ()
    ) -> None:
        """Write the controller's columns only: a user's concurrent UPDATE is never lost."""
        rows = [dict(s) for s in statuses]
        if not rows and not notices:
            return
        stmt = (
            compute_environments.update()
            .where(compute_environments.c.id == sa.bindparam("b_id"))
            .values({col: sa.bindparam(f"b_{col}") for col in STATUS_COLUMNS})
        )
        params = [
            {"b_id": r["env_id"], **{f"b_{col}": r[col] for col in STATUS_COLUMNS}} for r in rows
        ]
        async with self._tx(fenced=True) as conn:
            if params:
                await self._execute(conn, stmt, params)
            await self._write_notices(conn, notices)

    async def _update_nodes(self, conn: AsyncConnection, nodes: Sequence[Node]) -> None:
        if not nodes:
            return
        cols = [c.name for c in compute_nodes.c if c.name != "id"]
        stmt = (
            compute_nodes.update()
            .where(compute_nodes.c.id == sa.bindparam("b_id"))
            .values({col: sa.bindparam(f"b_{col}") for col in cols})
        )
        params = []
        for node in nodes:
            values = node_values(node)
            params.append({"b_id": node.id, **{f"b_{col}": values[col] for col in cols}})
        await self._execute(conn, stmt, params)
