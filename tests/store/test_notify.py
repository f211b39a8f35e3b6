"""Environment change notifications: the trigger of migration 0002 and the LISTEN watcher.

Every wait is bounded: ``fail_after`` where a notification must arrive, ``move_on_after`` where
none may (then a later change proves the watcher was still listening).
"""

import importlib.util
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import anyio
import pytest
import sqlalchemy as sa
from anyio.abc import SocketStream
from sqlalchemy.ext.asyncio import AsyncEngine

from controller.core.spec import STATUS_COLUMNS, USER_COLUMNS
from controller.errors import StoreError, StoreUnavailable
from controller.store import migrate
from controller.store.database import create_engine
from controller.store.notify import (
    APPLICATION_NAME,
    ENVIRONMENT_CHANGES_CHANNEL,
    TRUNCATED,
    EnvironmentChanges,
    asyncpg_connect_args,
    watch_environment_changes,
)
from controller.store.store import Store

ARRIVES_S = 5.0  # bound on a notification that must arrive (it takes milliseconds)
SILENCE_S = 0.5  # how long to listen for a notification that must not arrive

INSERT = (
    "INSERT INTO compute_environments (name, zone, instance_type, image_id, max_price, "
    "desired_count) VALUES (:name, 'ap-guangzhou-3', 'S2.MEDIUM4', 'img-pmqg1cw7', 0.6, 1) "
    "RETURNING id"
)

postgres = pytest.mark.postgres


@pytest.fixture
async def engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    opened = create_engine(pg_url)
    yield opened
    await opened.dispose()


async def sql(engine: AsyncEngine, statement: str, **params: Any) -> Any:
    """One statement in its own transaction (committed: NOTIFY is sent at commit)."""
    async with engine.begin() as conn:
        result = await conn.execute(sa.text(statement), params)
        return result.scalar() if result.returns_rows else None


async def insert(engine: AsyncEngine, name: str = "demo") -> str:
    env_id: str = await sql(engine, INSERT, name=name)
    return env_id


async def next_change(changes: EnvironmentChanges) -> frozenset[str]:
    with anyio.fail_after(ARRIVES_S):
        return await changes.wait()


async def assert_silent(changes: EnvironmentChanges) -> None:
    with anyio.move_on_after(SILENCE_S) as scope:
        changed = await changes.wait()
        pytest.fail(f"unexpected notification: {sorted(changed)}")
    assert scope.cancelled_caught


async def kill_listener(engine: AsyncEngine) -> int:
    """pg_terminate_backend the watcher's session; how many sessions were killed."""
    killed: int = await sql(
        engine,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name = :app AND datname = current_database()",
        app=APPLICATION_NAME,
    )
    return killed


async def listener_sessions(engine: AsyncEngine) -> int:
    count: int = await sql(
        engine,
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE application_name = :app AND datname = current_database()",
        app=APPLICATION_NAME,
    )
    return count


# ----- the trigger ---------------------------------------------------------------------------


@postgres
async def test_plain_sql_insert_notifies_within_milliseconds(
    pg_url: str, engine: AsyncEngine
) -> None:
    async with watch_environment_changes(pg_url) as changes:
        assert changes.live
        started = anyio.current_time()
        env_id = await insert(engine)
        assert await next_change(changes) == {env_id}
        assert anyio.current_time() - started < 1.0  # not a 1 s poll


@postgres
async def test_update_of_desired_count_notifies(pg_url: str, engine: AsyncEngine) -> None:
    env_id = await insert(engine)
    async with watch_environment_changes(pg_url) as changes:
        await sql(
            engine, "UPDATE compute_environments SET desired_count = 5 WHERE id = :id", id=env_id
        )
        assert await next_change(changes) == {env_id}


@postgres
async def test_update_of_every_user_column_notifies(pg_url: str, engine: AsyncEngine) -> None:
    values: dict[str, Any] = {
        "name": "renamed",
        "zone": "ap-guangzhou-4",
        "instance_type": "S5.MEDIUM4",
        "image_id": "img-other",
        "max_price": 0.7,
        "desired_count": 2,
        "fallback_instance_types": "S5.LARGE8",
        "fallback_zones": "ap-guangzhou-6",
        "instance_name": "worker",
        "security_group_ids": "sg-1",
        "vpc_id": "vpc-1",
        "subnet_id": "subnet-1",
        "key_ids": "skey-1",
        "user_data": "ZWNobw==",
        "project_id": 7,
        "tags": '{"team": "a"}',
        "on_demand_base_count": 1,
        "on_demand_percentage": 50,
        "compensate_with_on_demand": True,
        "compensate_after_s": 30,
        "disruption_budget": 2,
        "max_hourly_spend": 3.5,
        "allocation_strategy": "COST_OPTIMIZED",
        "zone_balance": "EQUALITY",
        "max_pool_share": 50,
        "instance_cpu": 2,
        "instance_memory": 4,
        "instance_families": "S5",
        "description": "the API's EnvDescription",
        "terminate_node_ids": "node-0a1b2c3d",
        "launch_options": '{"SystemDisk": {"DiskSize": 100}}',
    }
    assert set(values) == set(USER_COLUMNS)
    env_id = await insert(engine)
    async with watch_environment_changes(pg_url) as changes:
        for column, value in values.items():
            await sql(
                engine,
                f"UPDATE compute_environments SET {column} = :v WHERE id = :id",
                v=value,
                id=env_id,
            )
            assert await next_change(changes) == {env_id}, column


@postgres
async def test_status_writes_and_no_op_updates_do_not_notify(
    pg_url: str, engine: AsyncEngine
) -> None:
    env_id = await insert(engine)
    store = await Store.open(pg_url)
    try:
        async with watch_environment_changes(pg_url) as changes:
            now = datetime.now(UTC)
            status = {
                "env_id": env_id,
                "status": "ACTIVE",
                "status_reason": "3 of 3 running",
                "running_count": 3,
                "pending_count": 1,
                "launching_count": 2,
                "next_attempt_at": now,
                "last_reconciled_at": now,
            }
            assert set(status) - {"env_id"} == set(STATUS_COLUMNS)
            await store.record_statuses([status])
            await assert_silent(changes)

            assignments = ", ".join(
                f"{c} = {c} + 1" if c.endswith("_count") else f"{c} = DEFAULT"
                for c in STATUS_COLUMNS
            )
            await sql(engine, f"UPDATE compute_environments SET {assignments}")
            await sql(engine, "UPDATE compute_environments SET desired_count = desired_count")
            await assert_silent(changes)

            row = await store.get_environment("demo")
            assert row is not None
            assert row["running_count"] == 4  # the status writes did happen

            # Still listening: a user's change right after is notified.
            await sql(engine, "UPDATE compute_environments SET desired_count = 0")
            assert await next_change(changes) == {env_id}
    finally:
        await store.close()


@postgres
async def test_delete_notifies(pg_url: str, engine: AsyncEngine) -> None:
    env_id = await insert(engine)
    async with watch_environment_changes(pg_url) as changes:
        await sql(engine, "DELETE FROM compute_environments WHERE id = :id", id=env_id)
        assert await next_change(changes) == {env_id}


@postgres
async def test_truncate_notifies_with_empty_payload(pg_url: str, engine: AsyncEngine) -> None:
    await insert(engine)
    async with watch_environment_changes(pg_url) as changes:
        await sql(engine, "TRUNCATE compute_environments")
        assert await next_change(changes) == {TRUNCATED}


@postgres
async def test_changing_the_id_notifies_old_and_new(pg_url: str, engine: AsyncEngine) -> None:
    env_id = await insert(engine)
    async with watch_environment_changes(pg_url) as changes:
        await sql(
            engine, "UPDATE compute_environments SET id = 'env-renamed' WHERE id = :id", id=env_id
        )
        assert await next_change(changes) == {env_id, "env-renamed"}


# ----- the watcher ---------------------------------------------------------------------------


@postgres
async def test_a_burst_of_updates_is_coalesced(pg_url: str, engine: AsyncEngine) -> None:
    ids = [await insert(engine, f"env-{i}") for i in range(4)]
    async with watch_environment_changes(pg_url) as changes:
        async with engine.connect() as conn:
            for i in range(100):
                await conn.execute(
                    sa.text("UPDATE compute_environments SET desired_count = :n WHERE id = :id"),
                    {"n": i % 7, "id": ids[i % 4]},
                )
                await conn.commit()  # 100 transactions, 100 notifications
        await anyio.sleep(0.5)  # let them all arrive while nobody waits
        assert await next_change(changes) == set(ids)
        await assert_silent(changes)


@postgres
async def test_cancelled_wait_loses_nothing(pg_url: str, engine: AsyncEngine) -> None:
    async with watch_environment_changes(pg_url) as changes:
        with anyio.move_on_after(0.1):
            await changes.wait()
        env_id = await insert(engine)
        await anyio.sleep(0.2)
        with anyio.CancelScope() as scope:
            scope.cancel()
            await changes.wait()  # cancelled at once, before it can return
        assert await next_change(changes) == {env_id}


@postgres
async def test_one_waiter_at_a_time(pg_url: str, engine: AsyncEngine) -> None:
    async with watch_environment_changes(pg_url) as changes, anyio.create_task_group() as tg:
        tg.start_soon(next_change, changes)
        await anyio.sleep(0.05)
        with pytest.raises(RuntimeError, match="another task"):
            await changes.wait()
        await insert(engine)  # lets the first waiter return


@postgres
async def test_killed_listener_connection_raises_until_reopened(
    pg_url: str, engine: AsyncEngine
) -> None:
    async with watch_environment_changes(pg_url) as changes:

        async def kill_soon() -> None:
            await anyio.sleep(0.2)
            assert await kill_listener(engine) == 1

        async with anyio.create_task_group() as tg:
            tg.start_soon(kill_soon)
            with anyio.fail_after(ARRIVES_S), pytest.raises(StoreUnavailable) as lost:
                await changes.wait()  # waiting when the connection dies
        assert "lost the connection listening for environment changes" in str(lost.value)
        assert "closed by the server" in str(lost.value)
        await insert(engine, "while-lost")
        with anyio.fail_after(ARRIVES_S), pytest.raises(StoreUnavailable):
            await changes.wait()  # and on every later call
    # Leaving the block after a loss is clean; the caller reopens and gets later changes.
    async with watch_environment_changes(pg_url) as changes:
        env_id = await insert(engine, "after")
        assert await next_change(changes) == {env_id}


@postgres
async def test_connection_killed_while_not_waiting_is_reported_by_the_next_wait(
    pg_url: str, engine: AsyncEngine
) -> None:
    async with watch_environment_changes(pg_url) as changes:
        assert await kill_listener(engine) == 1
        await anyio.sleep(0.5)
        with anyio.fail_after(ARRIVES_S), pytest.raises(StoreUnavailable):
            await changes.wait()


@postgres
async def test_keepalive_detects_a_silently_dead_connection(
    pg_url: str, engine: AsyncEngine
) -> None:
    """A network that drops packets without closing the connection: the keepalive query
    times out and wait() raises, instead of waiting forever for notifications."""
    url = sa.make_url(pg_url)
    frozen = anyio.Event()

    async def pipe(source: SocketStream, sink: SocketStream) -> None:
        try:
            async for chunk in source:
                if frozen.is_set():
                    await anyio.sleep_forever()
                await sink.send(chunk)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass

    async def relay(client: SocketStream) -> None:
        server = await anyio.connect_tcp(url.host or "127.0.0.1", url.port or 5432)
        async with client, server, anyio.create_task_group() as tg:
            tg.start_soon(pipe, client, server)
            tg.start_soon(pipe, server, client)

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    proxied = url.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
    async with listener, anyio.create_task_group() as proxy:
        proxy.start_soon(listener.serve, relay)
        async with watch_environment_changes(proxied, keepalive_s=0.2, timeout_s=0.5) as changes:
            with anyio.move_on_after(0.6):
                await changes.wait()  # a few keepalive queries answered: nothing is lost
            env_id = await insert(engine)
            assert await next_change(changes) == {env_id}
            frozen.set()
            with anyio.fail_after(ARRIVES_S), pytest.raises(StoreUnavailable, match="keepalive"):
                await changes.wait()
        proxy.cancel_scope.cancel()


@postgres
async def test_leaving_the_block_closes_the_connection_even_when_cancelled(
    pg_url: str, engine: AsyncEngine
) -> None:
    with anyio.CancelScope() as scope:
        async with watch_environment_changes(pg_url) as changes:
            assert await listener_sessions(engine) == 1
            scope.cancel()
            await changes.wait()
    assert scope.cancelled_caught
    for _ in range(100):  # the server ends the session a moment after the client closes
        if not await listener_sessions(engine):
            break
        await anyio.sleep(0.05)
    else:
        pytest.fail("the listening session outlived the watcher")
    with pytest.raises(StoreError, match="closed"):
        await changes.wait()


@postgres
async def test_url_query_parameters_mean_what_they_mean_to_the_engine(
    pg_url: str, engine: AsyncEngine
) -> None:
    args = asyncpg_connect_args(
        sa.make_url(
            "postgresql+asyncpg://u:p@db.example:6543/spot?ssl=require"
            "&prepared_statement_cache_size=0&command_timeout=30"
        )
    )
    assert args == {
        "host": "db.example",
        "port": 6543,
        "user": "u",
        "password": "p",
        "database": "spot",
        "ssl": "require",
        "command_timeout": "30",
    }
    url = f"{pg_url}?ssl=disable&prepared_statement_cache_size=0"
    async with watch_environment_changes(url) as changes:
        env_id = await insert(engine)
        assert await next_change(changes) == {env_id}


@postgres
async def test_unreachable_server_is_store_unavailable(pg_url: str) -> None:
    url = sa.make_url(pg_url).set(port=1).render_as_string(hide_password=False)
    with anyio.fail_after(ARRIVES_S), pytest.raises(StoreUnavailable, match="cannot open"):
        async with watch_environment_changes(url):
            pytest.fail("connected to port 1")


# ----- migrations and SQLite -----------------------------------------------------------------


@postgres
async def test_downgrade_removes_trigger_and_upgrade_restores_it(
    pg_url: str, engine: AsyncEngine
) -> None:
    objects = (
        "SELECT (SELECT count(*) FROM pg_trigger WHERE tgrelid = 'compute_environments'::regclass"
        " AND NOT tgisinternal AND tgname LIKE '%notify%') + (SELECT count(*) FROM pg_proc"
        " WHERE proname = 'spot_controller_notify_environment_change')"
    )
    assert await sql(engine, objects) == 3
    await migrate.downgrade(engine, "0001")
    assert await sql(engine, objects) == 0
    with pytest.raises(StoreError, match="db upgrade"):
        async with watch_environment_changes(pg_url):
            pytest.fail("opened a watcher on a database without the trigger")
    await migrate.upgrade(engine)
    assert await sql(engine, objects) == 3
    async with watch_environment_changes(pg_url) as changes:
        env_id = await insert(engine)
        assert await next_change(changes) == {env_id}


async def test_sqlite_migration_is_a_no_op_both_ways(sqlite_url: str) -> None:
    sqlite = create_engine(sqlite_url)
    try:
        await migrate.downgrade(sqlite, "0001")
        assert await migrate.current_revision(sqlite) == "0001"
        await migrate.upgrade(sqlite)
        assert await migrate.is_at_head(sqlite)
        await migrate.check(sqlite)
    finally:
        await sqlite.dispose()


async def test_sqlite_watcher_never_fires(sqlite_url: str) -> None:
    store = await Store.open(sqlite_url)
    try:
        async with watch_environment_changes(sqlite_url) as changes:
            assert not changes.live
            async with store.engine.begin() as conn:
                await conn.execute(sa.text(INSERT), {"name": "demo"})
            with anyio.move_on_after(0.2) as scope:
                await changes.wait()
            assert scope.cancelled_caught
    finally:
        await store.close()
    with pytest.raises(StoreError, match="closed"):
        await changes.wait()


def test_migration_frozen_copies_match_the_code() -> None:
    """The trigger's channel and status columns are frozen in migration 0002 (a migration that
    changes them must replace the function, and this test must then read that migration)."""
    path = migrate.migrations_dir() / "versions" / "0002_environment_change_notifications.py"
    spec = importlib.util.spec_from_file_location("migration_0002", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.CHANNEL == ENVIRONMENT_CHANGES_CHANNEL
    assert module.STATUS_COLUMNS == STATUS_COLUMNS
