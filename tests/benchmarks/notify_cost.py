"""What the outbox costs a pass: recording 10,000 nodes RUNNING (one transaction, as a sweep
after a cold start of 10,000 does) with no notification target, and with one and three.

    .venv/bin/python tests/benchmarks/notify_cost.py [--database-url URL] [--nodes N]

Writes through the engine's own ledger (``Ledger.record_effects``: the notices are worked out
and written in the records' transaction). Prints the median of 5 runs per case.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime

from controller.core.model import Node, NodeState
from controller.core.transitions import Effects
from controller.ids import new_node_id
from controller.notifications.service import Targets
from controller.reconcile.fleet import FleetState
from controller.reconcile.ledger import Ledger
from controller.store import migrate
from controller.store.database import create_engine
from controller.store.store import Store


async def one_run(url: str, nodes: int, targets: int | None) -> float:
    """``targets`` None: the records alone, without the notices (as before the outbox)."""
    engine = create_engine(url)
    await migrate.upgrade(engine)
    await engine.dispose()
    store = await Store.open(url)
    try:
        names = Targets(store, "bench")
        for i in range(targets or 0):
            await names.add(f"t{i}", f"http://127.0.0.1:1/{i}", "webhook", [], [], "k")
        now = datetime.now(UTC)
        creating = [
            Node(new_node_id(), "env-bench000", NodeState.CREATING, "z", "t", now, f"ins-{i:08d}")
            for i in range(nodes)
        ]
        fleet = FleetState()
        ledger = Ledger(store, fleet, lambda _: "bench")
        await store.record_changes(new_nodes=creating, now=now)
        fleet.put(creating)
        running = {n.id: replace(n, state=NodeState.RUNNING, running_at=now) for n in creating}
        started = time.perf_counter()
        if targets is None:
            await store.record_changes(changed_nodes=list(running.values()), now=now)
        else:
            await ledger.record_effects(Effects(changed_nodes=running), now, {})
        return time.perf_counter() - started
    finally:
        await store.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default="")
    parser.add_argument("--nodes", type=int, default=10_000)
    args = parser.parse_args()
    for targets in (None, 0, 1, 3):
        times = []
        for _ in range(5):
            if args.database_url:
                import asyncpg

                admin = await asyncpg.connect(args.database_url.replace("+asyncpg", ""))
                await admin.execute("DROP DATABASE IF EXISTS notify_cost")
                await admin.execute("CREATE DATABASE notify_cost")
                await admin.close()
                url = args.database_url.rsplit("/", 1)[0] + "/notify_cost"
                times.append(await one_run(url, args.nodes, targets))
            else:
                with tempfile.TemporaryDirectory() as tmp:
                    times.append(await one_run(f"sqlite:///{tmp}/b.db", args.nodes, targets))
        case = "records only" if targets is None else f"{targets} target(s)"
        print(f"{args.nodes} nodes RUNNING, {case}: {statistics.median(times):.3f} s")


if __name__ == "__main__":
    asyncio.run(main())
