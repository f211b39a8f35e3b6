"""Environment change notifications: learn of a user's change to compute_environments at once.

On PostgreSQL, the trigger of migration 0002 sends a NOTIFY on :data:`ENVIRONMENT_CHANGES_CHANNEL`
whenever a row of ``compute_environments`` is inserted, deleted or has a *user* column updated
(payload: the env id), and on TRUNCATE (payload: ``""``). The controller's own status writes
(``STATUS_COLUMNS``) do not notify. :func:`watch_environment_changes` LISTENs on a dedicated
asyncpg connection, so the daemon can start a pass within milliseconds of a user's commit
instead of at its next poll. On SQLite there are no notifications and the daemon only polls.

The intended use, one watcher for the daemon's lifetime::

    async with watch_environment_changes(settings.database_url) as changes:
        while True:
            await reconcile_pass()              # loads every row, as it always does
            with anyio.move_on_after(poll_interval_s):
                await changes.wait()            # a change arrived: start the next pass now

Open the watcher *before* the first full load: a change committed before LISTEN took effect is
not notified. Notifications are a shortcut, never the only source of truth: a change made while
the listening connection is down is not notified, so after :class:`StoreUnavailable` from
``wait()`` the caller reopens the watcher (after a backoff) and does a full pass.

This module does not log; it raises, and the caller decides what to log.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

import anyio
import anyio.lowlevel
import asyncpg
import sqlalchemy as sa

from controller.errors import ConfigError, StoreError, StoreUnavailable
from controller.store.database import describe_url, normalise_url

#: The NOTIFY channel of the trigger installed by migration 0002 (which holds a frozen copy:
#: the two must be equal).
ENVIRONMENT_CHANGES_CHANNEL = "spot_controller_environments"
#: The payload of a TRUNCATE: in ``wait()``'s result it means every environment may have changed.
TRUNCATED = ""
#: The row trigger of migration 0002; opening a watcher checks that it exists.
_ROW_TRIGGER = "compute_environments_notify_change"

#: The listening session's application_name in pg_stat_activity.
APPLICATION_NAME = "spot-controller-notify"
#: With no notification for this long, ``wait()`` checks the connection with ``SELECT 1``: a
#: connection whose server or network vanished without closing it would otherwise wait forever.
KEEPALIVE_S = 30.0
#: Bound on connecting, on the keepalive query and on a graceful close.
TIMEOUT_S = 10.0

# Keys SQLAlchemy's asyncpg dialect accepts in the URL query but does not pass to asyncpg.
_SQLALCHEMY_ONLY_ARGS = ("prepared_statement_cache_size", "prepared_statement_name_func")


class _Connection(Protocol):
    """The part of ``asyncpg.Connection`` the watcher uses (asyncpg ships no type hints)."""

    async def add_listener(self, channel: str, callback: Any) -> None: ...
    async def remove_listener(self, channel: str, callback: Any) -> None: ...
    def add_termination_listener(self, callback: Any) -> None: ...
    def remove_termination_listener(self, callback: Any) -> None: ...
    async def fetchval(self, query: str, *args: Any) -> Any: ...
    async def close(self) -> None: ...
    def terminate(self) -> None: ...
    def is_closed(self) -> bool: ...


class EnvironmentChanges:
    """Changes to ``compute_environments`` notified since the previous :meth:`wait`.

    Made by :func:`watch_environment_changes`; usable only inside its ``async with`` block.
    """

    def __init__(
        self,
        conn: _Connection | None,
        *,
        where: str,
        keepalive_s: float = KEEPALIVE_S,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        self._conn = conn
        self._where = where
        self._keepalive_s = keepalive_s
        self._timeout_s = timeout_s
        self._changed: set[str] = set()
        self._wakeup = anyio.Event()
        # The loop's clock (anyio.current_time() on asyncio), read without anyio: asyncpg runs
        # the notification callback outside any task, where anyio (through sniffio) cannot
        # tell which event loop is running.
        self._clock = asyncio.get_running_loop().time
        self._alive_at = self._clock()
        self._lost: str | None = None
        self._closed = False
        self._waiting = False

    @property
    def live(self) -> bool:
        """True on PostgreSQL (notifications arrive); False on SQLite (``wait()`` never returns)."""
        return self._conn is not None

    async def wait(self) -> frozenset[str]:
        """Return as soon as at least one change has been notified since the previous return.

        Returns the ids of the environments inserted, updated (in a user column) or deleted
        since then, a burst of changes coalesced into one return; :data:`TRUNCATED` (``""``)
        among them means the table was truncated. Changes that arrived while the caller was
        not waiting are returned at once. Bound it with ``anyio.move_on_after``: cancelling
        a ``wait()`` loses nothing, the pending changes stay for the next call.

        On SQLite (``live`` is False) it never returns: it sleeps until cancelled.

        Raises :class:`StoreUnavailable` (naming the cause) once the listening connection is
        lost, on this and every later call; notifications not yet returned are dropped, and
        changes made while the connection is down are never notified, so reopen the watcher
        and do a full pass. Raises :class:`StoreError` after the ``async with`` block is left,
        and RuntimeError if another task is already waiting (one consumer only).
        """
        # A checkpoint first: a wait() in a cancelled scope raises before taking the changes
        # (from here to the return there is no await, so taking them is atomic).
        await anyio.lowlevel.checkpoint()
        if self._conn is None:
            self._check_open()
            await anyio.sleep_forever()
            raise AssertionError("unreachable")  # pragma: no cover
        if self._waiting:
            raise RuntimeError("EnvironmentChanges.wait() is already awaited by another task")
        self._waiting = True
        try:
            while True:
                self._check_open()
                if self._changed:
                    changed = frozenset(self._changed)
                    self._changed.clear()
                    return changed
                # Notification callbacks run between awaits: no change can slip in between the
                # check above and the new event, and the callback sets the new event.
                self._wakeup = anyio.Event()
                deadline = self._alive_at + self._keepalive_s
                with anyio.move_on_after(deadline - anyio.current_time()) as idle:
                    await self._wakeup.wait()
                if idle.cancelled_caught:
                    await self._ping()
        finally:
            self._waiting = False

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the environment change watcher is closed")
        if self._lost is not None:
            raise StoreUnavailable(
                f"lost the connection listening for environment changes on {self._where}: "
                f"{self._lost}"
            )

    async def _ping(self) -> None:
        """Check an idle connection; a dead one makes the watcher lost.

        Shielded (the caller's cancellation waits for it, at most ``timeout_s``): a query
        cancelled midway would leave the connection with a cancel request in flight.
        """
        assert self._conn is not None
        reason: str | None = None
        with anyio.CancelScope(shield=True):
            try:
                with anyio.fail_after(self._timeout_s):
                    await self._conn.fetchval("SELECT 1")
            except TimeoutError:
                reason = f"no answer to a keepalive query within {self._timeout_s:g}s"
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                reason = f"keepalive query failed: {_first_line(exc)}"
        if reason is None:
            self._alive_at = anyio.current_time()
            return
        self._lose(reason)
        self._conn.remove_termination_listener(self._on_termination)
        self._conn.terminate()

    def _lose(self, reason: str) -> None:
        if self._lost is None and not self._closed:
            self._lost = reason
            self._wakeup.set()

    # asyncpg calls these on the event loop, between awaits.

    def _on_notification(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self._changed.add(payload)
        self._alive_at = self._clock()
        self._wakeup.set()

    def _on_termination(self, _conn: Any) -> None:
        self._lose("the connection was closed by the server or the network")

    async def _close(self) -> None:
        """Stop listening and close the connection; shielded, so it completes when cancelled."""
        self._closed = True
        conn = self._conn
        if conn is None:
            return
        conn.remove_termination_listener(self._on_termination)
        with anyio.CancelScope(shield=True):
            if self._lost is None and not conn.is_closed():
                try:
                    with anyio.fail_after(self._timeout_s):
                        await conn.remove_listener(
                            ENVIRONMENT_CHANGES_CHANNEL, self._on_notification
                        )
                        await conn.close()
                    return
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    pass  # no graceful close (TimeoutError is an OSError): terminate() frees it
            conn.terminate()


@asynccontextmanager
async def watch_environment_changes(
    database_url: str, *, keepalive_s: float = KEEPALIVE_S, timeout_s: float = TIMEOUT_S
) -> AsyncIterator[EnvironmentChanges]:
    """Listen for changes to ``compute_environments`` for the duration of the block.

    ``database_url`` is the daemon's SPOT_CONTROLLER_DATABASE_URL. On PostgreSQL one dedicated
    connection is opened with the same connection arguments the store's engine uses (host,
    port, user, password, database and the URL's query parameters, e.g. ``ssl=require``), and
    closed on leaving the block, also when cancelled. On SQLite nothing is opened and the
    yielded watcher's ``live`` is False: its ``wait()`` never returns.

    Raises :class:`ConfigError` for a malformed URL, :class:`StoreUnavailable` if the server
    cannot be reached (or the connection fails while LISTEN is set up), and
    :class:`StoreError` if the database lacks the notification trigger (not migrated).
    See :meth:`EnvironmentChanges.wait` for how a connection lost later is reported.
    """
    url = normalise_url(database_url)
    where = describe_url(url)
    if url.get_backend_name() != "postgresql":
        changes = EnvironmentChanges(None, where=where)
        try:
            yield changes
        finally:
            await changes._close()
        return
    conn = await _connect(url, where, timeout_s)
    changes = EnvironmentChanges(conn, where=where, keepalive_s=keepalive_s, timeout_s=timeout_s)
    try:
        conn.add_termination_listener(changes._on_termination)
        try:
            with anyio.fail_after(timeout_s):
                await _check_trigger(conn, where)
                await conn.add_listener(ENVIRONMENT_CHANGES_CHANNEL, changes._on_notification)
        except TimeoutError:
            raise StoreUnavailable(
                f"cannot listen for environment changes on {where}: no answer within {timeout_s:g}s"
            ) from None
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreUnavailable(
                f"cannot listen for environment changes on {where}: {_first_line(exc)}"
            ) from None
        yield changes
    finally:
        await changes._close()


def asyncpg_connect_args(url: sa.URL) -> dict[str, Any]:
    """Keyword arguments for ``asyncpg.connect``, as the store's engine derives them from ``url``.

    SQLAlchemy's asyncpg dialect does the translation (so multi-host URLs and query parameters
    such as ``ssl`` or ``command_timeout`` mean the same for the watcher as for the engine);
    the parameters only SQLAlchemy understands are dropped.
    """
    _, kwargs = url.get_dialect()().create_connect_args(url)
    args = dict(kwargs)
    for key in _SQLALCHEMY_ONLY_ARGS:
        args.pop(key, None)
    return args


async def _connect(url: sa.URL, where: str, timeout_s: float) -> _Connection:
    args = asyncpg_connect_args(url)
    args.setdefault("timeout", timeout_s)
    # Names the session in pg_stat_activity (what a DBA sees holding a LISTEN).
    args.setdefault("server_settings", {"application_name": APPLICATION_NAME})
    try:
        conn: _Connection = await asyncpg.connect(**args)
    except TimeoutError:
        raise StoreUnavailable(
            f"cannot open database {where}: no answer within {args['timeout']}s"
        ) from None
    except TypeError as exc:
        raise ConfigError(
            f"SPOT_CONTROLLER_DATABASE_URL: a query parameter is not an asyncpg connect "
            f"argument: {exc}"
        ) from None
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise StoreUnavailable(f"cannot open database {where}: {_first_line(exc)}") from None
    return conn


async def _check_trigger(conn: _Connection, where: str) -> None:
    present = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM pg_trigger "
        "WHERE tgrelid = to_regclass('compute_environments') AND tgname = $1)",
        _ROW_TRIGGER,
    )
    if not present:
        raise StoreError(
            f"database {where} has no change-notification trigger on compute_environments: "
            "run `spot-controller db upgrade`"
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
