"""Concurrent writers and readers against the real databases.

Found by the 100,000-instance benchmark: on SQLite, transactions that read and then write
(every fenced write checks its lease first) failed at once with "database is locked" when
another connection committed in between, whatever the busy timeout; and a reload that read
nodes and launches in two transactions saw a launch resolved between the reads, leaving nodes
without instance ids whose instances were then adopted a second time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import anyio
import anyio.lowlevel
import pytest
import sqlalchemy as sa

from controller.core.instances import LaunchRequest, Offering
from controller.core.model import Launch, Node, NodeState
from controller.ids import new_node_id
from controller.store import database
from controller.store.schema import compute_environments
from controller.store.store import Fence, Store

CLUSTER = "default"
LEASE_S = 30.0


async def _environments(store: Store, count: int) -> list[str]:
    ids = []
    for i in range(count):
        row = await store.insert_environment(
            {
                "name": f"env-{i}",
                "zone": "ap-guangzhou-3",
                "instance_type": "S5.MEDIUM2",
                "image_id": "img-00000000",
                "max_price": "0.5",
                "desired_count": 1,
            }
        )
        ids.append(row["id"])
    return ids


@pytest.fixture
async def two_stores(database_url: str) -> AsyncIterator[tuple[Store, Store]]:
    """Two stores on one database: two engines and pools, as two processes would have."""
    first = await Store.open(database_url)
    second = await Store.open(database_url)
    yield first, second
    await first.close()
    await second.close()


async def _write_statuses_concurrently(
    stores: list[Store], env_ids: list[str], workers: int, rounds: int
) -> list[BaseException]:
    """``workers`` tasks, each recording every environment's status ``rounds`` times and
    renewing the lease: fenced writes, which read the lease before they write."""
    failures: list[BaseException] = []

    async def worker(store: Store, number: int) -> None:
        assert store.fence is not None
        for round_ in range(rounds):
            rows = [
                {
                    "env_id": env_id,
                    "status": "READY",
                    "status_reason": f"worker {number} round {round_}",
                    "running_count": round_,
                    "pending_count": 0,
                    "launching_count": 0,
                    "next_attempt_at": None,
                    "last_reconciled_at": datetime.now(UTC),
                }
                for env_id in env_ids
            ]
            try:
                await store.record_statuses(rows)
                assert await store.renew_lease(store.fence, LEASE_S)
            except Exception as exc:  # collected and asserted by the caller
                failures.append(exc)

    async with anyio.create_task_group() as tg:
        for number in range(workers):
            tg.start_soon(worker, stores[number % len(stores)], number)
    return failures


async def _fence(stores: list[Store]) -> None:
    epoch = await stores[0].acquire_lease(CLUSTER, "holder-a", LEASE_S)
    assert epoch == 1
    for store in stores:
        store.fencing = True
        store.fence = Fence(CLUSTER, "holder-a", epoch)


async def _running_counts(store: Store) -> list[int]:
    async with store.engine.connect() as conn:
        rows = (await conn.execute(sa.select(compute_environments.c.running_count))).all()
    return [r.running_count for r in rows]


async def test_writers_in_one_process_queue_instead_of_timing_out_on_sqlite(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Left to SQLite's file lock, a process's own writers poll it and give up after the busy
    timeout; the store queues them. A 10 ms timeout makes the difference show at once."""
    monkeypatch.setattr(database, "SQLITE_BUSY_TIMEOUT_MS", 10)
    store = await Store.open(sqlite_url)
    try:
        env_ids = await _environments(store, 200)
        await _fence([store])
        failures = await _write_statuses_concurrently([store], env_ids, workers=16, rounds=5)
        assert failures == []
        assert await _running_counts(store) == [4] * 200
    finally:
        await store.close()


async def test_writers_on_two_engines_take_the_lease_and_write_without_failing(
    two_stores: tuple[Store, Store],
) -> None:
    """Two engines (two processes' worth of pools): writes that read first never fail with
    "database is locked" on SQLite, nor deadlock on PostgreSQL."""
    first, second = two_stores
    env_ids = await _environments(first, 4)
    await _fence([first, second])
    failures = await _write_statuses_concurrently([first, second], env_ids, workers=8, rounds=15)
    assert failures == []
    assert await _running_counts(first) == [14] * 4

    # Taking the lease reads it and then writes it: both engines at once, many times.
    results: list[int | None] = []

    async def contend(store: Store, holder: str) -> None:
        for _ in range(20):
            results.append(await store.acquire_lease("contended", holder, LEASE_S))

    async with anyio.create_task_group() as tg:
        tg.start_soon(contend, first, "holder-a")
        tg.start_soon(contend, second, "holder-b")
    winners = [epoch for epoch in results if epoch is not None]
    assert len(results) == 40
    assert len(winners) == 20  # one holder kept it, the other was refused
    assert set(winners) == {1}


def _launch(env_id: str, index: int, created: datetime) -> tuple[Launch, list[Node], str]:
    token = f"{env_id}-{index:040d}"
    pool = Offering("ap-guangzhou-3", "S5.MEDIUM2")
    request = LaunchRequest(
        zone=pool.zone,
        instance_type=pool.instance_type,
        image_id="img-00000000",
        max_price="0.5",
        count=2,
        client_token=token,
        tags={"spot-controller:env": env_id},
    )
    launch = Launch(token, env_id, pool, 2, request, created)
    nodes = [
        Node(
            id=new_node_id(),
            env_id=env_id,
            state=NodeState.SUBMITTED,
            zone=pool.zone,
            instance_type=pool.instance_type,
            created_at=created,
            launch_token=token,
        )
        for _ in range(2)
    ]
    return launch, nodes, "scale out"


async def test_load_state_reads_nodes_and_launches_from_one_snapshot(
    two_stores: tuple[Store, Store],
) -> None:
    """While launches resolve one by one, every load sees each launch either pending with its
    nodes SUBMITTED, or resolved with its nodes holding instance ids: never in between."""
    writer, reader = two_stores
    (env_id,) = await _environments(writer, 1)
    now = datetime.now(UTC)
    intents = [_launch(env_id, i, now) for i in range(40)]
    await writer.record_launch_intents(intents)
    torn: list[str] = []
    loads = 0
    resolved = anyio.Event()

    async def resolve_all() -> None:
        for n, (launch, nodes, _) in enumerate(intents):
            for i, node in enumerate(nodes):
                node.state = NodeState.CREATING
                node.instance_id = f"ins-{n:04d}{i:04d}"
                node.launched_at = now
            await writer.record_launch_succeeded(launch.client_token, "req", nodes, now)
        resolved.set()

    async def load_repeatedly() -> None:
        nonlocal loads
        while not resolved.is_set() or loads == 0:
            nodes, pending = await reader.load_state()
            loads += 1
            tokens = {la.client_token for la in pending}
            for node in nodes:
                if node.instance_id is None and node.launch_token not in tokens:
                    torn.append(f"{node.id}: no instance id, launch {node.launch_token} resolved")
                if node.instance_id is not None and node.launch_token in tokens:
                    torn.append(f"{node.id}: instance id, launch {node.launch_token} pending")
            await anyio.lowlevel.checkpoint()

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(load_repeatedly)
            tg.start_soon(resolve_all)

    assert torn == []
    nodes, pending = await reader.load_state()
    assert pending == []
    assert sorted(n.instance_id or "" for n in nodes) == sorted(
        f"ins-{n:04d}{i:04d}" for n in range(40) for i in range(2)
    )
    assert loads > 1
