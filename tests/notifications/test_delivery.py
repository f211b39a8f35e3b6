"""The engine and the sender together, against the simulator and a real loopback receiver:
every recorded change reaches the target, signed, in order, after the target's 500s."""

from __future__ import annotations

import socket
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio

from controller.notifications.sender import Sender
from controller.notifications.service import Targets
from controller.service import Environments
from controller.settings import Settings
from controller.store.store import Store
from tests.notifications.receiver import Receiver, receiving
from tests.support.polling import eventually
from tests.support.world import ENVIRONMENT, World, converged, running_engine, settings_for

NOTIFY = {
    "notify_poll_interval_s": 0.05,
    "notify_backoff_base_s": 0.05,
    "notify_backoff_max_s": 0.2,
    "notify_timeout_s": 0.5,
}
NODE_ORDER = [
    "COMPUTE_NODE_CREATED",
    "COMPUTE_NODE_RUNNING",
    "COMPUTE_NODE_DELETING",
    "COMPUTE_NODE_DELETED",
]


@asynccontextmanager
async def sending(settings: Settings, store: Store, leading: Any) -> AsyncIterator[Sender]:
    sender = Sender(settings, store, leading=leading)
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(sender.run, stop)
        try:
            yield sender
        finally:
            stop.set()
            tg.cancel_scope.deadline = anyio.current_time() + 10


async def test_events_arrive_signed_in_order_after_500s_without_duplicates(
    database_url: str, sim_url: str, world: World
) -> None:
    settings = settings_for(database_url, sim_url, **NOTIFY)
    store = await Store.open(database_url)
    try:
        with receiving(Receiver(fail_next=3)) as rec:
            targets = Targets(store, settings.cluster)
            await targets.add("hook", rec.url, "webhook", [], [], "s3cret")
            env = await Environments(store, settings.region).create({**ENVIRONMENT})
            async with (
                running_engine(settings, store) as engine,
                sending(settings, store, lambda: engine.view.leader),
            ):
                await eventually(lambda: converged(world, store, env.id, 2), what="2 running")
                await Environments(store, settings.region).scale(env.id, 1)
                await eventually(lambda: converged(world, store, env.id, 1), what="1 running")

                async def all_sent() -> bool:
                    names = [e["event"] for e in rec.events()]
                    return names.count("COMPUTE_NODE_DELETED") == 1 and not (
                        await store.outbox_depths()
                    )

                await eventually(all_sent, what="every event delivered")
            view = await targets.show("hook")
        failed = [r for r in rec.requests if r.headers["x-test-answered"] == "fail"]
        assert len(failed) == 3
        delivered = rec.delivered()
        assert all(r.signature_ok("s3cret") for r in delivered)
        events = rec.events()
        # The event that met the 500s was retried (same id), and came first.
        assert {r.json()["id"] for r in failed} == {events[0]["id"]}
        assert events[0]["event"] == "COMPUTE_ENV_CREATED"  # the user's INSERT, by trigger
        ids = [e["id"] for e in events]
        assert len(ids) == len(set(ids)), "no duplicate without a crash"
        # Ground truth: every node the records say ran was announced, in its order.
        nodes = await store.list_nodes(env.id)
        per_node: dict[str, list[str]] = defaultdict(list)
        for e in events:
            if "node_id" in e["detail"]:
                per_node[e["detail"]["node_id"]].append(e["event"])
        assert set(per_node) == {n["id"] for n in nodes}
        for n in nodes:
            expected = NODE_ORDER if n["state"] == "ENDED" else NODE_ORDER[:2]
            assert per_node[n["id"]] == expected, (n, per_node[n["id"]])
            created = next(
                e
                for e in events
                if e["event"] == "COMPUTE_NODE_CREATED" and e["detail"]["node_id"] == n["id"]
            )
            assert created["detail"]["instance_id"] == n["instance_id"]
        assert {i["InstanceId"] for i in await world.alive(env.id)} <= {
            n["instance_id"] for n in nodes
        }
        assert view["delivered"] == len(delivered)
        assert (view["pending"], view["rejected"], view["dropped"]) == (0, 0, 0)
        # Events, never secrets or user data: the row's launch fields stay out.
        text = b"".join(r.body for r in rec.requests)
        assert b"s3cret" not in text
        assert b"img-pmqg1cw7" not in text
    finally:
        await store.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_a_dead_and_a_silent_target_do_not_hold_up_the_engine(
    database_url: str, sim_url: str, world: World
) -> None:
    settings = settings_for(database_url, sim_url, **NOTIFY, notify_queue_max=3)
    store = await Store.open(database_url)
    silent = socket.socket()  # accepts connections (backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    try:
        targets = Targets(store, settings.cluster)
        secret_url = f"http://127.0.0.1:{_closed_port()}/hook?token=tok-abcdef-123456"
        await targets.add("dead", secret_url, "webhook", [], [], None)
        silent_url = f"http://127.0.0.1:{silent.getsockname()[1]}/hook"
        await targets.add("silent", silent_url, "webhook", [], [], None)
        env = await Environments(store, settings.region).create({**ENVIRONMENT, "desired_count": 4})
        async with (
            running_engine(settings, store) as engine,
            sending(settings, store, lambda: engine.view.leader) as sender,
        ):
            await eventually(lambda: converged(world, store, env.id, 4), what="4 running")
            passes = engine.view.passes
            await Environments(store, settings.region).scale(env.id, 2)
            await eventually(lambda: converged(world, store, env.id, 2), what="2 running")

            async def bounded() -> bool:
                depths = await store.outbox_depths()
                return (
                    sender.stats.attempts[("silent", "timeout")] >= 2
                    and sender.stats.attempts[("dead", "connect")] >= 3
                    and all(depths.get(t, 0) <= 3 for t in ("dead", "silent"))
                    and sender.stats.dropped[("dead", "queue_full")] > 0
                )

            await eventually(bounded, what="failing deliveries and bounded queues")
            assert engine.view.passes > passes  # the engine kept passing meanwhile
            views = {v["name"]: v for v in await targets.list()}
        assert views["dead"]["delivered"] == 0
        assert views["dead"]["dropped"] > 0
        assert views["dead"]["pending"] <= 3
        assert views["dead"]["url"].endswith("?token=***")
        assert "tok-abcdef-123456" not in str(views)
        assert views["dead"]["last_error"]
        assert "tok-abcdef-123456" not in views["dead"]["last_error"]
    finally:
        silent.close()
        await store.close()


async def test_a_refusing_target_drops_the_event_and_goes_on(database_url: str) -> None:
    """4xx is not retried forever: after a few attempts the event is dropped, counted, and
    the next one is sent."""
    from datetime import UTC, datetime

    from controller.core.notices import Notice, NoticeType

    settings = Settings.from_env({}, database_url=database_url, **NOTIFY)
    store = await Store.open(database_url)
    try:
        with receiving(Receiver(fail_next=3, fail_status=404)) as rec:
            await Targets(store, settings.cluster).add("hook", rec.url, "webhook", [], [], "k")
            now = datetime.now(UTC)
            notices = [
                Notice(NoticeType.COMPUTE_ENV_ERROR, "env-a", "a", now, {"n": 1}),
                Notice(NoticeType.COMPUTE_ENV_ERROR, "env-a", "a", now, {"n": 2}),
            ]
            await store.record_statuses([], notices)
            async with sending(settings, store, lambda: True):

                async def done() -> bool:
                    return not await store.outbox_depths() and len(rec.delivered()) == 1

                await eventually(done, what="one refused, one delivered")
            view = await Targets(store, settings.cluster).show("hook")
        assert len(rec.requests) == 4  # 3 refusals of the first, then the second
        assert rec.events()[0]["detail"] == {"n": 2}
        assert (view["rejected"], view["delivered"]) == (1, 1)
        assert view["last_error"] is None  # the last attempt was delivered
    finally:
        await store.close()
