"""The store: every database operation, named by its intent.

The CLI and the reconciler never write SQL; they call these methods. SQLAlchemy and driver
exceptions never leave this module: they become StoreError / StoreUnavailable / ValidationFailed.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import anyio
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from controller.core import spec as specs
from controller.core.instances import LaunchRequest, Offering
from controller.core.model import CREATE_NODE, ActivityRecord, Launch, Node, NodeState
from controller.core.spec import STATUS_COLUMNS, USER_COLUMNS
from controller.errors import LeaseLost, StoreError, StoreUnavailable, ValidationFailed
from controller.ids import new_activity_id
from controller.store import migrate
from controller.store.database import (
    SQLITE_BEGIN,
    check_connection,
    create_engine,
    describe_url,
    is_unavailable,
)
from controller.store.notify import EnvironmentChanges, watch_environment_changes
from controller.store.schema import (
    DbClock,
    activities,
    compute_environments,
    compute_nodes,
    controller_leases,
    environment_revision,
    launches,
)

# Read as text, so that a bad value written with plain SQL is reported INVALID, not fatal.
NUMERIC_CAPACITY_COLUMNS = (
    "on_demand_base_count",
    "on_demand_percentage",
    "compensate_after_s",
    "disruption_budget",
    "max_hourly_spend",
)
# A named constraint's violation -> (field, rule) for the user.
CAPACITY_RULES = (
    ("on_demand_base_count_range", "on_demand_base_count", "must be from 0 to 2000"),
    ("on_demand_percentage_range", "on_demand_percentage", "must be from 0 to 100"),
    ("compensate_after_s_range", "compensate_after_s", "must be from 0 to 86400"),
    ("disruption_budget_positive", "disruption_budget", "must be at least 1"),
    ("max_hourly_spend_positive", "max_hourly_spend", "must be greater than 0"),
)


def _now() -> datetime:
    return datetime.now(UTC)


def _select_environments() -> sa.Select[Any]:
    """Every column, the price as text: on SQLite a plain-SQL price such as 'abc' is stored
    as written, and must be shown (and reported INVALID by the daemon), not crash a reader."""
    c = compute_environments.c
    cols = [col for col in c if col.name != "max_price"]
    return sa.select(*cols, sa.cast(c.max_price, sa.Text).label("max_price"))


def _env_row(row: sa.Row[Any]) -> dict[str, Any]:
    data = dict(row._mapping)
    price = data.get("max_price")
    if price is not None:
        try:
            data["max_price"] = format(Decimal(str(price)).normalize(), "f")
        except InvalidOperation:
            data["max_price"] = str(price)
    return data


def request_to_json(request: LaunchRequest) -> str:
    data = {f.name: getattr(request, f.name) for f in dataclasses.fields(request)}
    data["tags"] = dict(request.tags)
    return json.dumps(data, sort_keys=True, default=list)


def request_from_json(text: str) -> LaunchRequest:
    data = json.loads(text)
    data["security_group_ids"] = tuple(data.get("security_group_ids") or ())
    data["key_ids"] = tuple(data.get("key_ids") or ())
    return LaunchRequest(**data)


@dataclasses.dataclass(frozen=True)
class Fence:
    """The lease a replica holds: every write it makes is checked against it."""

    cluster: str
    holder: str
    epoch: int


class Store:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.queries = 0  # statements executed, for the benchmark's queries-per-pass figure
        # When fencing is on, the reconciler's writes go through only under a live lease.
        self.fencing = False
        self.fence: Fence | None = None
        self._sqlite_write_lock = anyio.Lock()
        self._sqlite_writer = engine.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})

    @classmethod
    async def open(cls, url: str, *, migrate_schema: bool = False) -> Store:
        """Connect (and optionally migrate); StoreUnavailable with a one-line reason on failure."""
        engine = create_engine(url)
        try:
            await check_connection(engine)
            if migrate_schema:
                await migrate.upgrade(engine)
            elif not await migrate.is_at_head(engine):
                raise StoreError(
                    f"database {describe_url(engine.url)} is not migrated to the current schema: "
                    "run `spot-controller db upgrade`"
                )
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine)

    async def close(self) -> None:
        await self.engine.dispose()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def _tx(
        self, *, write: bool | None = None, fenced: bool = False, snapshot: bool = False
    ) -> AsyncIterator[AsyncConnection]:
        """One transaction. ``write``: it will write (default: when ``fenced``); on SQLite
        writes queue on one lock in this process and take the file's write lock at BEGIN.
        ``snapshot``: every statement sees the same committed state (PostgreSQL: REPEATABLE
        READ; SQLite's transactions always do)."""
        if write is None:
            write = fenced
        try:
            async with AsyncExitStack() as stack:
                if write and self.dialect == "sqlite":
                    # SQLite has one writer. Queued here, writers wait their turn in order;
                    # left to the file lock they poll it and time out under load.
                    await stack.enter_async_context(self._sqlite_write_lock)
                    engine = self._sqlite_writer
                else:
                    engine = self.engine
                conn = await stack.enter_async_context(engine.connect())
                if snapshot and self.dialect == "postgresql":
                    conn = await conn.execution_options(isolation_level="REPEATABLE READ")
                await stack.enter_async_context(conn.begin())
                if fenced and self.fencing:
                    await self._check_fence(conn)
                yield conn
        except LeaseLost:
            raise
        except IntegrityError as exc:
            if not fenced:
                raise  # the user-facing methods turn it into a ValidationFailed
            raise StoreError(f"database refused a write: {str(exc.orig).splitlines()[0]}") from None
        except SQLAlchemyError as exc:
            message = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            text = message[0] if message else type(exc).__name__
            if is_unavailable(exc):
                raise StoreUnavailable(f"database unavailable: {text}") from None
            raise StoreError(f"database error: {text}") from None
        except OSError as exc:
            raise StoreUnavailable(f"database unavailable: {exc}") from None

    async def _check_fence(self, conn: AsyncConnection) -> None:
        """Inside the write's transaction: the lease is still ours and unexpired.

        On PostgreSQL the lease row is locked FOR SHARE until commit, so no other replica can
        take the lease over while this write is in progress.
        """
        fence = self.fence
        if fence is None:
            raise LeaseLost("this replica does not hold the controller lease")
        c = controller_leases.c
        stmt = sa.select(c.epoch).where(
            c.cluster == fence.cluster,
            c.holder == fence.holder,
            c.epoch == fence.epoch,
            c.expires_at > DbClock(),
        )
        if self.dialect == "postgresql":
            stmt = stmt.with_for_update(read=True)
        if (await self._execute(conn, stmt)).first() is None:
            raise LeaseLost(f"lease epoch {fence.epoch} of {fence.holder} is no longer held")

    async def check_fence(self) -> None:
        """Raise LeaseLost unless this replica still holds its lease (before a cloud call)."""
        if self.fencing:
            async with self._tx(fenced=True, write=False):
                pass

    # ----- the controller lease -------------------------------------------------------------

    async def acquire_lease(self, cluster: str, holder: str, duration_s: float) -> int | None:
        """Take or keep the cluster's lease; its epoch, or None while another replica holds it."""
        try:
            return await self._acquire_lease(cluster, holder, duration_s)
        except IntegrityError:
            return None  # another replica created the lease row at the same moment

    async def _acquire_lease(self, cluster: str, holder: str, duration_s: float) -> int | None:
        c = controller_leases.c
        now = DbClock()
        async with self._tx(write=True) as conn:
            stmt = sa.select(c.holder, c.epoch, c.expires_at, now.label("now")).where(
                c.cluster == cluster
            )
            if self.dialect == "postgresql":
                stmt = stmt.with_for_update()
            row = (await self._execute(conn, stmt)).first()
            if row is None:
                epoch = 1
                await self._execute(
                    conn,
                    controller_leases.insert().from_select(
                        ["cluster", "holder", "epoch", "expires_at", "renewed_at"],
                        sa.select(
                            sa.literal(cluster),
                            sa.literal(holder),
                            sa.literal(epoch),
                            now + duration_s,
                            now,
                        ),
                    ),
                )
                return epoch
            if row.holder == holder and row.expires_at > row.now:
                epoch = int(row.epoch)
            elif row.expires_at <= row.now:
                epoch = int(row.epoch) + 1
            else:
                return None
            await self._execute(
                conn,
                controller_leases.update()
                .where(c.cluster == cluster)
                .values(
                    holder=holder,
                    epoch=epoch,
                    expires_at=now + duration_s,
                    renewed_at=now,
                ),
            )
            return epoch

    async def renew_lease(self, fence: Fence, duration_s: float) -> bool:
        c = controller_leases.c
        now = DbClock()
        async with self._tx(write=True) as conn:
            result = await self._execute(
                conn,
                controller_leases.update()
                .where(
                    c.cluster == fence.cluster,
                    c.holder == fence.holder,
                    c.epoch == fence.epoch,
                    c.expires_at > now,
                )
                .values(expires_at=now + duration_s, renewed_at=now),
            )
            return bool(result.rowcount == 1)

    async def release_lease(self, fence: Fence) -> None:
        """Give the lease up at once (graceful stop) so a standby takes over without waiting."""
        c = controller_leases.c
        async with self._tx(write=True) as conn:
            await self._execute(
                conn,
                controller_leases.update()
                .where(
                    c.cluster == fence.cluster,
                    c.holder == fence.holder,
                    c.epoch == fence.epoch,
                )
                .values(expires_at=0.0),
            )

    async def lease_holder(self, cluster: str) -> dict[str, Any] | None:
        c = controller_leases.c
        async with self._tx() as conn:
            row = (
                await self._execute(
                    conn,
                    sa.select(controller_leases, DbClock().label("now")).where(
                        c.cluster == cluster
                    ),
                )
            ).first()
            return dict(row._mapping) if row else None

    async def _execute(self, conn: AsyncConnection, stmt: Any, params: Any = None) -> Any:
        self.queries += 1
        return await conn.execute(stmt, params) if params is not None else await conn.execute(stmt)

    # ----- environments: the user's side -------------------------------------------------

    async def create_environment(self, values: Mapping[str, Any], region: str) -> dict[str, Any]:
        """Validate and insert one environment; ValidationFailed names the field and rule."""
        row = {k: v for k, v in values.items() if k in USER_COLUMNS and v is not None}
        probe = {**row, "id": "env-00000000"}
        specs.parse_environment(probe, region)
        row["max_price"] = specs.validate_max_price(row["max_price"])
        try:
            async with self._tx(write=True) as conn:
                result = await self._execute(
                    conn,
                    compute_environments.insert()
                    .values(**row)
                    .returning(compute_environments.c.id),
                )
                env_id = result.scalar_one()
        except IntegrityError as exc:
            raise _integrity_to_validation(exc, row.get("name")) from None
        created = await self.get_environment(env_id)
        assert created is not None
        return created

    async def list_environments(self) -> list[dict[str, Any]]:
        async with self._tx() as conn:
            result = await self._execute(
                conn, _select_environments().order_by(compute_environments.c.name)
            )
            return [_env_row(r) for r in result]

    async def get_environment(self, name_or_id: str) -> dict[str, Any] | None:
        c = compute_environments.c
        async with self._tx() as conn:
            result = await self._execute(
                conn,
                _select_environments().where(sa.or_(c.name == name_or_id, c.id == name_or_id)),
            )
            row = result.first()
            return _env_row(row) if row else None

    async def update_environment(
        self, name_or_id: str, changes: Mapping[str, Any], region: str
    ) -> dict[str, Any]:
        """Change user columns of one environment, checking the result as a whole."""
        current = await self.get_environment(name_or_id)
        if current is None:
            raise ValidationFailed("name", f"no environment named {name_or_id!r}")
        bad = [k for k in changes if k not in USER_COLUMNS]
        if bad:
            raise ValidationFailed(bad[0], "is not a column a user can set")
        merged = {**current, **changes}
        specs.parse_environment(merged, region)
        values = dict(changes)
        if "max_price" in values:
            values["max_price"] = specs.validate_max_price(values["max_price"])
        try:
            async with self._tx(write=True) as conn:
                await self._execute(
                    conn,
                    compute_environments.update()
                    .where(compute_environments.c.id == current["id"])
                    .values(**values),
                )
        except IntegrityError as exc:
            raise _integrity_to_validation(exc, values.get("name")) from None
        updated = await self.get_environment(current["id"])
        assert updated is not None
        return updated

    async def delete_environment(self, name_or_id: str) -> dict[str, Any] | None:
        """Delete the row; the daemon then terminates its instances. History stays."""
        current = await self.get_environment(name_or_id)
        if current is None:
            return None
        async with self._tx(write=True) as conn:
            await self._execute(
                conn,
                compute_environments.delete().where(compute_environments.c.id == current["id"]),
            )
        return current

    async def list_activities(self, env_id: str, limit: int = 100) -> list[dict[str, Any]]:
        async with self._tx() as conn:
            result = await self._execute(
                conn,
                sa.select(activities)
                .where(activities.c.env_id == env_id)
                .order_by(activities.c.start_time.desc(), activities.c.id)
                .limit(limit),
            )
            return [dict(r._mapping) for r in result]

    async def list_nodes(self, env_id: str | None = None) -> list[dict[str, Any]]:
        stmt = sa.select(compute_nodes).order_by(compute_nodes.c.created_at)
        if env_id is not None:
            stmt = stmt.where(compute_nodes.c.env_id == env_id)
        async with self._tx() as conn:
            return [dict(r._mapping) for r in await self._execute(conn, stmt)]

    # ----- the reconciler's side ----------------------------------------------------------

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
            nodes = [_node_from_row(r._mapping) for r in node_rows]
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
                [_node_values(n) for _, nodes, _ in intents for n in nodes],
            )
            await self._execute(
                conn,
                activities.insert(),
                [
                    _activity_values(
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
        self, client_token: str, request_id: str | None, nodes: Sequence[Node], now: datetime
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

    async def record_launch_failed(
        self,
        client_token: str,
        code: str,
        message: str,
        request_id: str | None,
        nodes: Sequence[Node],
        now: datetime,
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

    async def record_changes(
        self,
        *,
        new_nodes: Sequence[Node] = (),
        changed_nodes: Sequence[Node] = (),
        new_activities: Sequence[ActivityRecord] = (),
        finished_activities: Sequence[tuple[str, str, str, str]] = (),
        now: datetime,
    ) -> None:
        """One transaction for what a pass observed and decided.

        ``finished_activities``: (node id, activity type, final state, reason).
        """
        if not (new_nodes or changed_nodes or new_activities or finished_activities):
            return
        async with self._tx(fenced=True) as conn:
            if new_nodes:
                await self._execute(
                    conn, compute_nodes.insert(), [_node_values(n) for n in new_nodes]
                )
            await self._update_nodes(conn, changed_nodes)
            if new_activities:
                await self._execute(
                    conn, activities.insert(), [_activity_values(a, now) for a in new_activities]
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

    async def record_statuses(self, statuses: Iterable[Mapping[str, Any]]) -> None:
        """Write the controller's columns only: a user's concurrent UPDATE is never lost."""
        rows = [dict(s) for s in statuses]
        if not rows:
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
            await self._execute(conn, stmt, params)

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
            values = _node_values(node)
            params.append({"b_id": node.id, **{f"b_{col}": values[col] for col in cols}})
        await self._execute(conn, stmt, params)


def _node_values(node: Node) -> dict[str, Any]:
    return {
        "id": node.id,
        "env_id": node.env_id,
        "instance_id": node.instance_id,
        "launch_token": node.launch_token,
        "state": node.state.value,
        "zone": node.zone,
        "instance_type": node.instance_type,
        "max_price": node.max_price,
        "origin": node.origin,
        "created_at": node.created_at,
        "launched_at": node.launched_at,
        "running_at": node.running_at,
        "last_seen_at": node.last_seen_at,
        "cloud_state": node.cloud_state,
        "ended_at": node.ended_at,
        "end_reason": node.end_reason,
        "end_detail": node.end_detail,
        "charge_type": node.charge_type,
        "hourly_price": node.hourly_price,
        "role": node.role,
    }


def _node_from_row(row: Mapping[str, Any]) -> Node:
    return Node(
        id=row["id"],
        env_id=row["env_id"],
        state=NodeState(row["state"]),
        zone=row["zone"],
        instance_type=row["instance_type"],
        created_at=row["created_at"],
        instance_id=row["instance_id"],
        launch_token=row["launch_token"],
        max_price=row["max_price"],
        origin=row["origin"],
        launched_at=row["launched_at"],
        running_at=row["running_at"],
        last_seen_at=row["last_seen_at"],
        cloud_state=row["cloud_state"],
        ended_at=row["ended_at"],
        end_reason=row["end_reason"],
        end_detail=row["end_detail"],
        charge_type=row["charge_type"],
        hourly_price=row["hourly_price"],
        role=row["role"],
    )


def _activity_values(activity: ActivityRecord, now: datetime) -> dict[str, Any]:
    return {
        "id": new_activity_id(),
        "env_id": activity.env_id,
        "node_id": activity.node_id,
        "instance_id": activity.instance_id,
        "activity_type": activity.activity_type,
        "state": activity.state,
        "cause": activity.cause[:1000],
        "state_reason": activity.state_reason[:1000],
        "start_time": now,
        "end_time": now if activity.ended else None,
    }


def _integrity_to_validation(exc: IntegrityError, name: Any) -> ValidationFailed:
    text = str(exc.orig or exc).lower()
    if "unique" in text and "name" in text:
        return ValidationFailed("name", f"an environment named {name!r} already exists")
    for constraint, field_name, rule in (
        ("desired_count_range", "desired_count", "must be from 0 to 2000"),
        ("max_price_positive", "max_price", "must be greater than 0"),
        ("name_not_empty", "name", "must not be empty"),
        *CAPACITY_RULES,
    ):
        if constraint in text:
            return ValidationFailed(field_name, rule)
    return ValidationFailed("environment", f"rejected by the database: {text.splitlines()[0]}")
