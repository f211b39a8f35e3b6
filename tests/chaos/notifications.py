"""Notifications under chaos: a receiver that fails one request in five, and the check that
every recorded node event reached it (at least once, never under two ids) despite the kills."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from controller.notifications.service import Targets
from controller.store.store import Store
from tests.chaos.harness import Ground, Violations
from tests.notifications.receiver import Receiver
from tests.support.polling import wait_until

# Settings of the chaos daemons' senders: quick retries, so the outbox drains soon after.
NOTIFY_ENV = {
    "SPOT_CONTROLLER_NOTIFY_POLL_INTERVAL_S": "0.1",
    "SPOT_CONTROLLER_NOTIFY_BACKOFF_BASE_S": "0.05",
    "SPOT_CONTROLLER_NOTIFY_BACKOFF_MAX_S": "0.5",
}
EVENTS = ["COMPUTE_NODE_RUNNING", "COMPUTE_NODE_INTERRUPTED", "COMPUTE_NODE_RELEASED"]
DRAIN_S = 90.0


def add_target(database_url: str, rec: Receiver) -> None:
    async def add() -> None:
        store = await Store.open(database_url)
        try:
            await Targets(store, "default").add("chaos", rec.url, "webhook", EVENTS, [], "k")
        finally:
            await store.close()

    asyncio.run(add())


def check_notifications(ground: Ground, rec: Receiver, violations: Violations) -> None:
    def drained() -> bool:
        return not ground.sql("SELECT 1 FROM outbox LIMIT 1")

    if wait_until(drained, DRAIN_S, 0.5) is None:
        (n,) = ground.sql("SELECT count(*) FROM outbox")[0]
        violations.add(f"notifications: {n} events still in the outbox after {DRAIN_S:g} s")
        return
    ids: dict[tuple[str, str], set[str]] = defaultdict(set)
    for event in rec.events():
        ids[(event["event"], event["detail"]["node_id"])].add(event["id"])
    if not all(r.signature_ok("k") for r in rec.delivered()):
        violations.add("notifications: a delivery with a bad signature")
    wanted = {
        "interrupted": "COMPUTE_NODE_INTERRUPTED",
        "released": "COMPUTE_NODE_RELEASED",
    }
    rows = ground.sql("SELECT id, running_at, state, end_reason, origin FROM compute_nodes")
    for node_id, running_at, state, end_reason, origin in rows:
        if running_at is not None and not ids[("COMPUTE_NODE_RUNNING", node_id)]:
            got = sorted(k for k, n in ids if n == node_id)
            violations.add(
                f"notifications: {node_id} ({origin}, {state}, {end_reason}) ran, "
                f"no COMPUTE_NODE_RUNNING delivered; got {got}"
            )
        kind = wanted.get(end_reason or "")
        if state == "ENDED" and kind and not ids[(kind, node_id)]:
            violations.add(f"notifications: {node_id} ended {end_reason}, no {kind} delivered")
    for (kind, node_id), found in ids.items():
        if len(found) > 1:
            violations.add(f"notifications: {kind} of {node_id} under {len(found)} ids")
