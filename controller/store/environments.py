"""Compute environments, the user's side: rows as written, read back, changed, deleted.

Validation is the service's (:mod:`controller.service`); here only column names and the
database's own constraints are checked, and a refused write names the constraint.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from controller.core.spec import USER_COLUMNS
from controller.errors import ValidationFailed
from controller.store.connection import StoreBase
from controller.store.schema import (
    activities,
    api_client_tokens,
    compute_environments,
    compute_nodes,
)

# Read as text, so that a bad value written with plain SQL is reported INVALID, not fatal.
NUMERIC_CAPACITY_COLUMNS = (
    "on_demand_base_count",
    "on_demand_percentage",
    "compensate_after_s",
    "disruption_budget",
    "max_hourly_spend",
    "max_pool_share",  # the placement policy's numbers (migration 0005)
    "instance_cpu",
    "instance_memory",
)
# A named constraint's violation -> (field, rule) for the user.
CAPACITY_RULES = (
    ("on_demand_base_count_range", "on_demand_base_count", "must be from 0 to 2000"),
    ("on_demand_percentage_range", "on_demand_percentage", "must be from 0 to 100"),
    ("compensate_after_s_range", "compensate_after_s", "must be from 0 to 86400"),
    ("disruption_budget_positive", "disruption_budget", "must be at least 1"),
    ("max_hourly_spend_positive", "max_hourly_spend", "must be greater than 0"),
    (
        "allocation_strategy_known",
        "allocation_strategy",
        "must be one of PRIORITY, COST_OPTIMIZED, CAPACITY_OPTIMIZED, PRICE_CAPACITY_OPTIMIZED",
    ),
    ("zone_balance_known", "zone_balance", "must be one of PRIORITY, EQUALITY"),
    ("max_pool_share_range", "max_pool_share", "must be from 1 to 100"),
    ("instance_cpu_range", "instance_cpu", "must be from 1 to 256"),
    ("instance_memory_range", "instance_memory", "must be from 1 to 4096"),
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


class EnvironmentQueries(StoreBase):
    async def insert_environment(
        self, row: Mapping[str, Any], *, client_token: str | None = None
    ) -> dict[str, Any]:
        """Insert one environment, as given: the service has validated and normalised it.

        The store keeps only the database's own rules: user columns only, and a constraint
        that refuses the row (unique name, ranges) becomes ValidationFailed naming it. With a
        ``client_token`` the row and the token are written in one transaction, so a token
        stands for one environment; a token already used returns its environment unchanged.
        """
        values = _user_columns(row)
        if client_token is not None and (env_id := await self._token_env(client_token)):
            return await self._environment_of_token(client_token, env_id)
        try:
            async with self._tx(write=True) as conn:
                result = await self._execute(
                    conn,
                    compute_environments.insert()
                    .values(**values)
                    .returning(compute_environments.c.id),
                )
                env_id = result.scalar_one()
                if client_token is not None:
                    await self._execute(
                        conn,
                        api_client_tokens.insert().values(
                            client_token=client_token, env_id=env_id, created_at=_now()
                        ),
                    )
        except IntegrityError as exc:
            # The same token sent twice at once: the other call's environment is the answer.
            if client_token is not None and (env_id := await self._token_env(client_token)):
                return await self._environment_of_token(client_token, env_id)
            raise _integrity_to_validation(exc, values.get("name")) from None
        created = await self.get_environment(env_id)
        assert created is not None
        return created

    async def _token_env(self, client_token: str) -> str | None:
        async with self._tx() as conn:
            result = await self._execute(
                conn,
                sa.select(api_client_tokens.c.env_id).where(
                    api_client_tokens.c.client_token == client_token
                ),
            )
            env_id = result.scalar_one_or_none()
            return None if env_id is None else str(env_id)

    async def _environment_of_token(self, client_token: str, env_id: str) -> dict[str, Any]:
        env = await self.get_environment(env_id)
        if env is None:
            raise ValidationFailed(
                "client_token",
                f"{client_token!r} was used to create {env_id}, which has since been deleted",
            )
        return env

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

    async def change_environment(
        self, env_id: str, changes: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """Set user columns of one environment (validated by the service); None if it is gone."""
        values = _user_columns(changes)
        try:
            async with self._tx(write=True) as conn:
                await self._execute(
                    conn,
                    compute_environments.update()
                    .where(compute_environments.c.id == env_id)
                    .values(**values),
                )
        except IntegrityError as exc:
            raise _integrity_to_validation(exc, values.get("name")) from None
        return await self.get_environment(env_id)

    async def change_environment_if(
        self, env_id: str, expected: Mapping[str, Any], changes: Mapping[str, Any]
    ) -> bool:
        """Set ``changes`` only if the row still holds ``expected`` (a read-modify-write that
        a concurrent change must not slip into); False if it did not."""
        values = _user_columns(changes)
        c = compute_environments.c
        try:
            async with self._tx(write=True) as conn:
                result = await self._execute(
                    conn,
                    compute_environments.update()
                    .where(c.id == env_id, *(c[k] == v for k, v in expected.items()))
                    .values(**values),
                )
                return bool(result.rowcount)
        except IntegrityError as exc:
            raise _integrity_to_validation(exc, values.get("name")) from None

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

    async def list_activities(
        self, env_id: str, limit: int = 100, *, offset: int = 0
    ) -> list[dict[str, Any]]:
        async with self._tx() as conn:
            result = await self._execute(
                conn,
                sa.select(activities)
                .where(activities.c.env_id == env_id)
                .order_by(activities.c.start_time.desc(), activities.c.id)
                .limit(limit)
                .offset(offset),
            )
            return [dict(r._mapping) for r in result]

    async def page_activities(
        self, env_id: str, offset: int, limit: int, node_id: str | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of activities, newest first, and how many there are in all."""
        where = [activities.c.env_id == env_id]
        if node_id is not None:
            where.append(activities.c.node_id == node_id)
        async with self._tx() as conn:
            total = (
                await self._execute(conn, sa.select(sa.func.count()).where(*where))
            ).scalar_one()
            result = await self._execute(
                conn,
                sa.select(activities)
                .where(*where)
                .order_by(activities.c.start_time.desc(), activities.c.id)
                .offset(offset)
                .limit(limit),
            )
            return [dict(r._mapping) for r in result], int(total)

    async def list_nodes(self, env_id: str | None = None) -> list[dict[str, Any]]:
        stmt = sa.select(compute_nodes).order_by(compute_nodes.c.created_at)
        if env_id is not None:
            stmt = stmt.where(compute_nodes.c.env_id == env_id)
        async with self._tx() as conn:
            return [dict(r._mapping) for r in await self._execute(conn, stmt)]

    async def live_node_states(self) -> list[dict[str, Any]]:
        """Live nodes per (environment, state, last cloud state): BatchCompute's node metrics."""
        c = compute_nodes.c
        stmt = (
            sa.select(c.env_id, c.state, c.cloud_state, sa.func.count().label("nodes"))
            .where(c.state != "ENDED")
            .group_by(c.env_id, c.state, c.cloud_state)
        )
        async with self._tx() as conn:
            return [dict(r._mapping) for r in await self._execute(conn, stmt)]

    async def live_node_mix(self) -> list[dict[str, Any]]:
        """Live nodes per (environment, state, charge type, role), and what they cost: what
        ``env list`` shows of each environment's split and hourly spend, in one grouped read."""
        c = compute_nodes.c
        stmt = (
            sa.select(
                c.env_id,
                c.state,
                c.charge_type,
                c.role,
                sa.func.count().label("nodes"),
                sa.func.count(c.hourly_price).label("priced"),
                sa.func.sum(sa.cast(c.hourly_price, sa.Numeric(12, 4))).label("hourly_spend"),
            )
            .where(c.state != "ENDED")
            .group_by(c.env_id, c.state, c.charge_type, c.role)
        )
        async with self._tx() as conn:
            return [dict(r._mapping) for r in await self._execute(conn, stmt)]


def _user_columns(values: Mapping[str, Any]) -> dict[str, Any]:
    """The values as columns of compute_environments a user may write; others are refused."""
    bad = [k for k in values if k not in USER_COLUMNS]
    if bad:
        raise ValidationFailed(bad[0], "is not a column a user can set")
    return dict(values)


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
