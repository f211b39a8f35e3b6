"""The store's foundation: one engine, transactions, and the fence every leader write checks.

SQLAlchemy and driver exceptions never leave the store: :meth:`StoreBase._tx` turns them into
StoreError / StoreUnavailable (and the user-facing operations into ValidationFailed).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Self

import anyio
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from controller.errors import LeaseLost, StoreError, StoreUnavailable
from controller.store import migrate
from controller.store.database import (
    SQLITE_BEGIN,
    check_connection,
    create_engine,
    describe_url,
    is_unavailable,
    sqlite_file_is_blank,
)
from controller.store.schema import DbClock, controller_leases


@dataclasses.dataclass(frozen=True)
class Fence:
    """The lease a replica holds: every write it makes is checked against it."""

    cluster: str
    holder: str
    epoch: int


class StoreBase:
    """The engine, transactions and the fence; the operations live in the classes below."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.queries = 0  # statements executed, for the benchmark's queries-per-pass figure
        # When fencing is on, the reconciler's writes go through only under a live lease.
        self.fencing = False
        self.fence: Fence | None = None
        self._sqlite_write_lock = anyio.Lock()
        self._sqlite_writer = engine.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})

    @classmethod
    async def open(cls, url: str, *, migrate_schema: bool = False) -> Self:
        """Connect, and migrate only when asked (``db upgrade`` and the daemon do).

        Without ``migrate_schema`` the schema must be at the head this code knows, or
        SchemaNotCurrent says in one line which revision the database is at and what to do;
        a blank SQLite file is refused without being opened, so it is not created either.
        A database newer than this code is refused in both modes. StoreUnavailable with a
        one-line reason when the database cannot be reached.
        """
        engine = create_engine(url)
        where = describe_url(engine.url)
        try:
            if not migrate_schema and sqlite_file_is_blank(engine.url):
                raise migrate.no_schema(where)
            await check_connection(engine)
            current = await migrate.current_revision(engine)
            if migrate_schema and (current is None or current in migrate.known_revisions()):
                await migrate.upgrade(engine)
            elif refusal := migrate.schema_not_current(where, current):
                raise refusal
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

    async def _execute(self, conn: AsyncConnection, stmt: Any, params: Any = None) -> Any:
        self.queries += 1
        return await conn.execute(stmt, params) if params is not None else await conn.execute(stmt)
