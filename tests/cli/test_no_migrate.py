"""No command but ``db upgrade`` (and the daemon) migrates the database.

Against a database with no schema, at an older revision or at one newer than this code knows,
every environment command is refused in one line saying what to do, exit 2, and the database
is left exactly as it was (a SQLite file that does not exist is not created). Ground truth is
read from the database itself: its tables and its alembic revision.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from controller.cli import main
from controller.store import migrate
from controller.store.database import create_engine
from controller.store.migrate import SchemaNotCurrent
from controller.store.store import Store
from tests.conftest import _pg_admin, _pg_url_for

HEAD = migrate.head_revision()
UNKNOWN_REVISION = "0999"
READ_COMMANDS = [
    ["env", "list"],
    ["env", "list", "--output", "json"],
    ["env", "show", "web"],
    ["env", "activities", "web"],
    ["env", "nodes", "web", "--all"],
    ["status", "--once"],
]
WRITE_COMMANDS = [
    [
        *("env", "create", "web", "--zone", "ap-guangzhou-3", "--instance-type", "S2.MEDIUM4"),
        *("--image-id", "img-pmqg1cw7", "--max-price", "0.60", "--desired", "1"),
    ],
    ["env", "scale", "web", "3"],
    ["env", "update", "web", "--max-price", "0.7"],
    ["env", "delete", "web", "--yes"],
]


@dataclass(frozen=True)
class Database:
    url: str
    sqlite_path: Path | None  # None: PostgreSQL


def invoke(database: Database, args: list[str]) -> Result:
    """The CLI in-process with only the database named (none of the developer's settings)."""
    unset: dict[str, str | None] = {
        k: None for k in os.environ if k.startswith(("SPOT_CONTROLLER_", "TENCENTCLOUD_"))
    }
    return CliRunner().invoke(
        main, args, env={**unset, "SPOT_CONTROLLER_DATABASE_URL": database.url}
    )


async def _schema(url: str) -> tuple[list[str], list[str]]:
    """The database's tables and the revision rows alembic keeps."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: sorted(sa.inspect(c).get_table_names()))
            revisions: list[str] = []
            if "alembic_version" in tables:
                result = await conn.execute(sa.text("SELECT version_num FROM alembic_version"))
                revisions = [row[0] for row in result]
        return tables, revisions
    finally:
        await engine.dispose()


def revisions(database: Database) -> list[str]:
    return asyncio.run(_schema(database.url))[1]


def ground_truth(database: Database) -> object:
    """What is there, read without creating anything: a missing SQLite file stays missing."""
    path = database.sqlite_path
    if path is not None and (not path.exists() or path.stat().st_size == 0):
        return ("sqlite file", path.exists() and path.stat().st_size)
    return asyncio.run(_schema(database.url))


async def _migrate_to(url: str, revision: str | None) -> None:
    """Bring a blank database to ``revision`` (None: leave it blank; unknown: head, then a
    revision a newer release would have written)."""
    if revision is None:
        return
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine, HEAD if revision == UNKNOWN_REVISION else revision)
        if revision == UNKNOWN_REVISION:
            async with engine.begin() as conn:
                await conn.execute(
                    sa.text("UPDATE alembic_version SET version_num = :v"), {"v": revision}
                )
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def blank_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A database with nothing in it: a SQLite path with no file yet, or a new PostgreSQL
    database created from the server's empty template."""
    if request.param == "sqlite":
        path = tmp_path / "spot-controller.db"
        yield Database(f"sqlite:///{path}", path)
        return
    request.getfixturevalue("pg_template")  # skips (or fails under CI) without a server
    name = f"spot_controller_blank_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield Database(_pg_url_for(name), None)
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _assert_every_command_refused(database: Database, says: list[str]) -> None:
    before = ground_truth(database)
    for args in READ_COMMANDS + WRITE_COMMANDS:
        result = invoke(database, args)
        assert result.exit_code == 2, (args, result.output)
        assert result.stdout == "", args
        (line,) = result.stderr.splitlines()
        assert line.startswith("error: database "), (args, line)
        for words in says:
            assert words in line, (args, line)
        assert ground_truth(database) == before, args


def test_blank_database_is_refused_and_left_blank(blank_database: Database) -> None:
    _assert_every_command_refused(
        blank_database,
        [f"has no schema (revision none, this spot-controller needs {HEAD})", "db upgrade`"],
    )
    if blank_database.sqlite_path is not None:
        assert not blank_database.sqlite_path.exists()
    else:
        assert ground_truth(blank_database) == ([], [])


def test_empty_sqlite_file_is_refused_and_stays_empty(tmp_path: Path) -> None:
    path = tmp_path / "spot-controller.db"
    path.touch()
    database = Database(f"sqlite:///{path}", path)
    _assert_every_command_refused(database, ["has no schema", "run `spot-controller db upgrade`"])
    assert path.stat().st_size == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spot-controller.db"]


def test_older_revision_is_refused_and_not_migrated(blank_database: Database) -> None:
    asyncio.run(_migrate_to(blank_database.url, "0002"))
    _assert_every_command_refused(
        blank_database, [f"is at revision 0002, older than {HEAD}", "db upgrade`"]
    )
    assert revisions(blank_database) == ["0002"]


def test_newer_revision_is_refused_naming_both(blank_database: Database) -> None:
    asyncio.run(_migrate_to(blank_database.url, UNKNOWN_REVISION))
    _assert_every_command_refused(
        blank_database, [f"is at revision {UNKNOWN_REVISION}, newer than {HEAD}"]
    )
    assert revisions(blank_database) == [UNKNOWN_REVISION]


def test_config_does_not_open_the_database(blank_database: Database) -> None:
    before = ground_truth(blank_database)
    result = invoke(blank_database, ["config", "--output", "json"])
    assert result.exit_code == 0, result.output
    assert "SPOT_CONTROLLER_DATABASE_URL" in result.stdout
    assert ground_truth(blank_database) == before


def test_db_upgrade_is_what_migrates_then_commands_work(blank_database: Database) -> None:
    assert invoke(blank_database, ["db", "upgrade"]).exit_code == 0
    assert revisions(blank_database) == [HEAD]
    created = invoke(blank_database, [*WRITE_COMMANDS[0], "--output", "json"])
    assert created.exit_code == 0, created.output
    listed = invoke(blank_database, ["env", "list", "--output", "json"])
    assert listed.exit_code == 0, listed.output
    assert [row["name"] for row in json.loads(listed.stdout)] == ["web"]


async def test_the_daemon_migrates_an_older_database_but_never_a_newer_one(
    blank_database: Database,
) -> None:
    """``Store.open(migrate_schema=True)`` is the daemon's start: an older schema is brought
    to head; a newer one is refused as the CLI refuses it, before alembic is asked."""
    await _migrate_to(blank_database.url, "0002")
    store = await Store.open(blank_database.url, migrate_schema=True)
    await store.close()
    assert (await _schema(blank_database.url))[1] == [HEAD]
    await _migrate_to(blank_database.url, UNKNOWN_REVISION)
    with pytest.raises(SchemaNotCurrent, match=f"revision {UNKNOWN_REVISION}, newer than {HEAD}"):
        await Store.open(blank_database.url, migrate_schema=True)
    assert (await _schema(blank_database.url))[1] == [UNKNOWN_REVISION]
