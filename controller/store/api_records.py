"""The BatchCompute-compatible API's own tables: keys, the audit log, CreateComputeEnv's
ClientTokens. Secrets arrive here already encrypted (:mod:`controller.api.keys`): the store
never sees a key's secret in the clear.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from controller.errors import ValidationFailed
from controller.store.connection import StoreBase
from controller.store.schema import api_audit, api_keys

AUDIT_RESULT_MAX = 128


class ApiQueries(StoreBase):
    async def insert_api_key(
        self, name: str, secret_id: str, secret_key_encrypted: str, *, read_only: bool
    ) -> dict[str, Any]:
        try:
            async with self._tx(write=True) as conn:
                await self._execute(
                    conn,
                    api_keys.insert().values(
                        name=name,
                        secret_id=secret_id,
                        secret_key_encrypted=secret_key_encrypted,
                        read_only=read_only,
                        created_at=datetime.now(UTC),
                    ),
                )
        except IntegrityError:
            raise ValidationFailed("name", f"an API key named {name!r} already exists") from None
        key = await self.api_key_by_secret_id(secret_id)
        assert key is not None
        return key

    async def list_api_keys(self) -> list[dict[str, Any]]:
        async with self._tx() as conn:
            result = await self._execute(conn, sa.select(api_keys).order_by(api_keys.c.name))
            return [dict(r._mapping) for r in result]

    async def api_key_by_secret_id(self, secret_id: str) -> dict[str, Any] | None:
        async with self._tx() as conn:
            result = await self._execute(
                conn, sa.select(api_keys).where(api_keys.c.secret_id == secret_id)
            )
            row = result.first()
            return dict(row._mapping) if row else None

    async def revoke_api_key(self, name: str) -> bool:
        """Mark the key revoked (it stays listed); False if there is no live key by that name."""
        c = api_keys.c
        async with self._tx(write=True) as conn:
            result = await self._execute(
                conn,
                api_keys.update()
                .where(c.name == name, c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC)),
            )
            return bool(result.rowcount)

    async def record_audit(self, entry: Mapping[str, Any]) -> None:
        values = dict(entry)
        values["result"] = str(values["result"])[:AUDIT_RESULT_MAX]
        async with self._tx(write=True) as conn:
            await self._execute(conn, api_audit.insert().values(at=datetime.now(UTC), **values))

    async def list_audit(self, limit: int = 100) -> list[dict[str, Any]]:
        async with self._tx() as conn:
            result = await self._execute(
                conn, sa.select(api_audit).order_by(api_audit.c.id.desc()).limit(limit)
            )
            return [dict(r._mapping) for r in result]
