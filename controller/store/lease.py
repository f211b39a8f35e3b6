"""The controller lease: one row per cluster, an epoch that fences every leader write."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from controller.store.connection import Fence, StoreBase
from controller.store.schema import DbClock, controller_leases


class LeaseQueries(StoreBase):
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
