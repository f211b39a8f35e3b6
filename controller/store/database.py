"""Engines for the two supported backends: SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from controller.errors import ConfigError, StoreUnavailable
from controller.secrets import mask_url_password

SQLITE_BUSY_TIMEOUT_MS = 5000
# Execution option naming the BEGIN a SQLite transaction starts with: "IMMEDIATE" for writes.
SQLITE_BEGIN = "sqlite_begin"
_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


def normalise_url(url: str) -> sa.URL:
    """Parse a database URL and give it its async driver; ConfigError names what is wrong."""
    try:
        parsed = sa.make_url(url)
    except (ArgumentError, ValueError):
        raise ConfigError(
            "SPOT_CONTROLLER_DATABASE_URL: not a database URL "
            "(expected sqlite:///path.db or postgresql://user@host/db)"
        ) from None
    backend = parsed.get_backend_name()
    if backend in ("postgres",):
        backend = "postgresql"
    if backend not in _ASYNC_DRIVERS:
        raise ConfigError(
            f"SPOT_CONTROLLER_DATABASE_URL: unsupported backend {backend!r} "
            "(supported: sqlite, postgresql)"
        )
    driver = parsed.get_driver_name()
    if driver in ("aiosqlite", "asyncpg"):
        return parsed
    return parsed.set(drivername=_ASYNC_DRIVERS[backend])


def describe_url(url: sa.URL | str) -> str:
    """The URL with its password hidden, for messages and logs."""
    text = url.render_as_string(hide_password=False) if isinstance(url, sa.URL) else url
    return mask_url_password(text)


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_async_engine(
            parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    return create_async_engine(parsed, pool_pre_ping=True, **kwargs)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
    # The driver's implicit BEGIN is DEFERRED; _sqlite_begin emits ours instead.
    dbapi_connection.isolation_level = None


def _sqlite_begin(conn: Any) -> None:
    """BEGIN IMMEDIATE for writes: a deferred transaction that reads and then writes cannot
    wait for the lock in WAL mode (another commit makes its snapshot stale) and fails at once
    with "database is locked"; an immediate one takes the write lock first, waiting up to the
    busy timeout."""
    mode = conn.get_execution_options().get(SQLITE_BEGIN, "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def _sqlite_file(url: sa.URL) -> Path | None:
    """The file a SQLite URL names; None for another backend or an in-memory database."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


def sqlite_file_is_blank(url: sa.URL) -> bool:
    """Whether ``url`` names a SQLite file that does not exist yet, or exists with 0 bytes.

    Such a database has no schema, and a reader learns so without connecting: connecting
    would create the file (and WAL mode would write its header). When the file's directory
    is missing, False: connecting fails there and says so, creating nothing.
    """
    path = _sqlite_file(url)
    if path is None or not path.parent.is_dir():
        return False
    return not path.exists() or (path.is_file() and path.stat().st_size == 0)


def is_unavailable(exc: BaseException) -> bool:
    """Whether a database exception means the server or file cannot be reached."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OSError | ConnectionError):
        return True
    text = str(exc).lower()
    markers = ("connect", "unable to open", "connection", "could not translate host", "refused")
    return isinstance(exc, SQLAlchemyError) and any(m in text for m in markers)


def _sqlite_directory_missing(url: sa.URL) -> Path | None:
    path = _sqlite_file(url)
    return None if path is None or path.parent.is_dir() else path.parent


async def check_connection(engine: AsyncEngine) -> None:
    """Open one connection; StoreUnavailable with a one-line reason if that fails.

    A SQLite file in a directory that does not exist is refused before the driver is asked:
    the driver's failed connect can leave its worker thread posting to the closed event loop,
    which prints a traceback after our one-line error.
    """
    missing = _sqlite_directory_missing(engine.url)
    if missing is not None:
        raise StoreUnavailable(
            f"cannot open database {describe_url(engine.url)}: unable to open database file "
            f"(no directory {missing})"
        )
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
    except (SQLAlchemyError, OSError) as exc:
        raise StoreUnavailable(
            f"cannot open database {describe_url(engine.url)}: {_first_line(exc)}"
        ) from None


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__
