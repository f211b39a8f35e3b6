"""The outbox: events written with the records that caused them, and read by the sender.

:class:`OutboxWriter` adds an event's rows (one per target that wants it) inside the caller's
transaction, so the ledger's and the status writer's records and their events commit or fail
together. :class:`OutboxQueries` is the sender's side (each target's queue, in order; what was
delivered, refused, dropped) and the targets' own rows for ``notify add/list/remove``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from controller.core.notices import Notice, wants
from controller.errors import ValidationFailed
from controller.store.connection import StoreBase
from controller.store.schema import notifications, outbox

# The columns a user writes; the others are the sender's delivery state.
TARGET_COLUMNS = ("name", "kind", "url", "secret", "events", "env_ids")


def new_event_id() -> str:
    return "evt-" + uuid.uuid4().hex


def split(text: str) -> list[str]:
    return [part for part in text.split(",") if part]


class OutboxWriter(StoreBase):
    async def _write_notices(self, conn: AsyncConnection, notices: Sequence[Notice]) -> None:
        """Inside the caller's transaction: one row per notice and target that wants it.

        The targets are read in the same transaction (a handful of rows), so a target added
        or removed concurrently is either wholly in or wholly out of this write.
        """
        if not notices:
            return
        c = notifications.c
        result = await self._execute(conn, sa.select(c.name, c.events, c.env_ids))
        targets = [(r.name, split(r.events), split(r.env_ids)) for r in result]
        if not targets:
            return
        rows = []
        for notice in notices:
            event_id = new_event_id()
            payload = json.dumps(notice.payload(), ensure_ascii=False, default=str)
            for name, events, env_ids in targets:
                if wants(events, env_ids, notice.type.value, notice.env_id):
                    rows.append(
                        {
                            "target": name,
                            "event_id": event_id,
                            "event": notice.type.value,
                            "env_id": notice.env_id,
                            "payload": payload,
                            "created_at": notice.at,
                        }
                    )
        if rows:
            await self._execute(conn, outbox.insert(), rows)


class OutboxQueries(StoreBase):
    # ----- the targets (the user's side) ----------------------------------------------------

    async def add_notification(self, values: Mapping[str, Any]) -> None:
        row = {k: values[k] for k in TARGET_COLUMNS}
        try:
            async with self._tx(write=True) as conn:
                await self._execute(conn, notifications.insert().values(**row))
        except IntegrityError:
            raise ValidationFailed(
                "name", f"a notification target named {values['name']!r} already exists"
            ) from None

    async def remove_notification(self, name: str) -> bool:
        """The target and its queue; False when there is no such target."""
        async with self._tx(write=True) as conn:
            await self._execute(conn, outbox.delete().where(outbox.c.target == name))
            result = await self._execute(
                conn, notifications.delete().where(notifications.c.name == name)
            )
        return bool(result.rowcount)

    async def notification_targets(self, name: str | None = None) -> list[dict[str, Any]]:
        """Every target (or one), with its secret: for the sender and ``notify test`` only."""
        stmt = sa.select(notifications).order_by(notifications.c.name)
        if name is not None:
            stmt = stmt.where(notifications.c.name == name)
        async with self._tx() as conn:
            return [dict(r._mapping) for r in await self._execute(conn, stmt)]

    async def outbox_depths(self) -> dict[str, int]:
        """Events waiting per target."""
        stmt = sa.select(outbox.c.target, sa.func.count()).group_by(outbox.c.target)
        async with self._tx() as conn:
            return {r[0]: int(r[1]) for r in await self._execute(conn, stmt)}

    # ----- the sender's side ----------------------------------------------------------------

    async def outbox_head(self, target: str, limit: int) -> list[dict[str, Any]]:
        """The oldest events waiting for ``target``, in the order they were written."""
        stmt = (
            sa.select(outbox).where(outbox.c.target == target).order_by(outbox.c.seq).limit(limit)
        )
        async with self._tx() as conn:
            return [dict(r._mapping) for r in await self._execute(conn, stmt)]

    async def outbox_delivered(self, target: str, seq: int, now: datetime) -> None:
        c = notifications.c
        async with self._tx(write=True) as conn:
            await self._execute(conn, outbox.delete().where(outbox.c.seq == seq))
            await self._execute(
                conn,
                notifications.update()
                .where(c.name == target)
                .values(
                    delivered_count=c.delivered_count + 1,
                    last_attempt_at=now,
                    last_delivered_at=now,
                    last_error="",
                    next_attempt_at=None,
                ),
            )

    async def outbox_failed(
        self, target: str, seq: int, error: str, now: datetime, next_attempt_at: datetime
    ) -> int:
        """An attempt that will be made again; the event's attempts so far."""
        async with self._tx(write=True) as conn:
            await self._execute(
                conn,
                outbox.update().where(outbox.c.seq == seq).values(attempts=outbox.c.attempts + 1),
            )
            attempts = (
                await self._execute(conn, sa.select(outbox.c.attempts).where(outbox.c.seq == seq))
            ).scalar_one_or_none()
            await self._execute(
                conn,
                notifications.update()
                .where(notifications.c.name == target)
                .values(
                    last_attempt_at=now, last_error=error[:500], next_attempt_at=next_attempt_at
                ),
            )
        return int(attempts or 0)

    async def outbox_rejected(self, target: str, seq: int, error: str, now: datetime) -> None:
        """The target refused the event for good: it leaves the queue, counted."""
        c = notifications.c
        async with self._tx(write=True) as conn:
            await self._execute(conn, outbox.delete().where(outbox.c.seq == seq))
            await self._execute(
                conn,
                notifications.update()
                .where(c.name == target)
                .values(
                    rejected_count=c.rejected_count + 1,
                    last_attempt_at=now,
                    last_error=error[:500],
                    next_attempt_at=None,
                ),
            )

    async def outbox_trim(self, target: str, keep: int) -> tuple[int, int]:
        """Drop the oldest events of a queue longer than ``keep``: (dropped, left waiting)."""
        async with self._tx(write=True) as conn:
            depth = (
                await self._execute(
                    conn, sa.select(sa.func.count()).where(outbox.c.target == target)
                )
            ).scalar_one()
            excess = int(depth) - keep
            if excess <= 0:
                return 0, int(depth)
            oldest = (
                sa.select(outbox.c.seq)
                .where(outbox.c.target == target)
                .order_by(outbox.c.seq)
                .limit(excess)
            )
            await self._execute(conn, outbox.delete().where(outbox.c.seq.in_(oldest)))
            c = notifications.c
            await self._execute(
                conn,
                notifications.update()
                .where(c.name == target)
                .values(dropped_count=c.dropped_count + excess),
            )
        return excess, keep
