"""The engine's parts one by one: wake-ups, the desired side, status writes, the fleet, the view.

Each part is driven directly (no loops run), against a real database where it has one and the
manual clock; what is asserted is the part's own state and the rows it wrote.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from controller.core.model import Launch, Node, NodeState
from controller.core.plan import EnvStatus, StatusReport
from controller.reconcile.desired import DesiredState
from controller.reconcile.fleet import FleetState
from controller.reconcile.statuses import StatusWriter
from controller.reconcile.triggers import Wakeup
from controller.store.schema import compute_environments
from controller.store.store import Store
from tests.support.clock import ManualClock
from tests.support.engine import engine_rig

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_a_pass_plans_when_something_changed_or_a_timer_is_due() -> None:
    clock = ManualClock(NOW)
    wake = Wakeup(clock)
    assert wake.due(0.0)  # the first pass always plans
    wake.replan_at = 10.0
    assert not wake.due(1.0)  # nothing changed since, no timer due
    assert not wake.due(9.9)
    assert wake.due(10.0)  # a backoff or terminate retry came due
    wake.replan_at = 100.0
    wake.poke()
    assert wake.due(11.0)
    wake.mark_dirty()
    assert wake.due(11.0)
    assert not wake.due(11.0)


async def _insert(store: Store, **values: object) -> None:
    row = {
        "name": "web",
        "zone": "ap-guangzhou-3",
        "instance_type": "S2.MEDIUM4",
        "image_id": "img-pmqg1cw7",
        "max_price": "0.60",
        "desired_count": 1,
        **values,
    }
    async with store.engine.begin() as conn:
        await conn.execute(sa.insert(compute_environments).values(**row))


async def test_the_desired_side_reads_rows_only_when_a_user_changed_them(
    database_url: str,
) -> None:
    store = await Store.open(database_url)
    try:
        desired = DesiredState(store, "ap-guangzhou", resync_interval_s=10.0)
        await _insert(store, id="env-aaaaaaaa", name="web")
        await _insert(store, id="env-bbbbbbbb", name="bad", zone="nowhere")
        assert await desired.refresh(0.0)
        assert list(desired.specs) == ["env-aaaaaaaa"]
        assert desired.invalid["env-bbbbbbbb"].startswith("invalid zone:")
        assert desired.name("env-bbbbbbbb") == "bad"

        assert not await desired.refresh(1.0)  # one integer read: nothing moved
        async with store.engine.begin() as conn:
            await conn.execute(
                sa.update(compute_environments)
                .where(compute_environments.c.id == "env-aaaaaaaa")
                .values(desired_count=3)
            )
        assert await desired.refresh(2.0)
        assert desired.specs["env-aaaaaaaa"].desired_count == 3

        # The daemon's own status writes do not count as a change.
        await store.record_statuses(
            [
                {
                    "env_id": "env-aaaaaaaa",
                    "status": "READY",
                    "status_reason": "r",
                    "running_count": 3,
                    "pending_count": 0,
                    "launching_count": 0,
                    "next_attempt_at": None,
                    "last_reconciled_at": NOW,
                }
            ]
        )
        assert not await desired.refresh(3.0)
        assert not await desired.refresh(12.5)  # read again at the resync, unchanged
        async with store.engine.begin() as conn:
            await conn.execute(
                sa.delete(compute_environments).where(compute_environments.c.id == "env-bbbbbbbb")
            )
        assert await desired.refresh(13.0)
        assert desired.invalid == {}
        assert desired.name("env-bbbbbbbb") == "bad", "names of deleted rows stay for the logs"
    finally:
        await store.close()


async def _status_row(store: Store, env_id: str) -> sa.Row[object]:
    async with store.engine.connect() as conn:
        return (
            await conn.execute(
                sa.select(compute_environments).where(compute_environments.c.id == env_id)
            )
        ).one()


async def test_statuses_are_written_when_they_change_and_once_a_resync(database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        await _insert(store, id="env-aaaaaaaa")
        clock = ManualClock(NOW)
        writer = StatusWriter(store, clock, resync_interval_s=10.0)
        report = StatusReport("env-aaaaaaaa", EnvStatus.SCALING, "launching 1", 0, 0, 1, None)
        await writer.write([report], NOW, {}, {})
        row = await _status_row(store, "env-aaaaaaaa")
        assert (row.status, row.launching_count, row.last_reconciled_at) == ("SCALING", 1, NOW)

        later = NOW + timedelta(seconds=5)
        clock.advance(5)
        await writer.write([report], later, {}, {})
        assert (await _status_row(store, "env-aaaaaaaa")).last_reconciled_at == NOW

        clock.advance(6)  # past the resync interval: written again, to show the daemon is alive
        await writer.write([report], later, {}, {})
        assert (await _status_row(store, "env-aaaaaaaa")).last_reconciled_at == later

        ready = StatusReport("env-aaaaaaaa", EnvStatus.READY, "1 of 1 running", 1, 0, 0, None)
        await writer.write([ready], later, {}, {})
        assert (await _status_row(store, "env-aaaaaaaa")).status == "READY"
        assert writer.status_of("env-aaaaaaaa") == EnvStatus.READY
        writer.forget()
        assert writer.status_of("env-aaaaaaaa") is None
    finally:
        await store.close()


def _node(node_id: str, state: NodeState, token: str | None = None) -> Node:
    return Node(
        node_id, "env-aaaaaaaa", state, "ap-guangzhou-3", "S2.MEDIUM4", NOW, launch_token=token
    )


def test_the_fleet_indexes_launches_and_forgets_ended_nodes() -> None:
    fleet = FleetState()
    running = _node("node-00000001", NodeState.RUNNING)
    running.instance_id = "ins-aaaaaaaa"
    submitted = [_node(f"node-0000001{i}", NodeState.SUBMITTED, "tok") for i in range(2)]
    fleet.load([running], [])
    launch = Launch("tok", "env-aaaaaaaa", running.offering, 2, None, NOW)  # type: ignore[arg-type]
    fleet.add_launch(launch, submitted)
    assert [n.id for n in fleet.nodes_of_launch("tok")] == [n.id for n in submitted]
    assert fleet.busy()
    assert fleet.live_instance_ids() == {"ins-aaaaaaaa"}

    created = Node(**{**submitted[0].__dict__, "state": NodeState.CREATING, "instance_id": "ins-b"})
    ended = Node(**{**submitted[1].__dict__, "state": NodeState.ENDED})
    fleet.resolve_launch("tok", [created, ended])
    assert "tok" not in fleet.launches
    assert set(fleet.nodes) == {running.id, created.id}
    assert fleet.counts()[("env-aaaaaaaa", NodeState.CREATING)] == 1
    assert sorted(fleet.expected_instance_ids()) == ["ins-aaaaaaaa", "ins-b"]

    fleet.add_recently_ended(["ins-gone"], NOW)
    fleet.expire(NOW + timedelta(seconds=599))
    assert "ins-gone" in fleet.recently_ended
    fleet.expire(NOW + timedelta(seconds=601))
    assert fleet.recently_ended == {}


async def test_the_view_shows_what_health_and_metrics_read(database_url: str) -> None:
    async with engine_rig(database_url) as rig:
        env_id = await rig.create_env(2)
        view = rig.engine.view
        assert (view.observed, view.passes, view.leader) == (False, 0, True)
        await rig.engine.leadership.tick()
        assert view.epoch == 1
        assert view.last_lease_tick_at == rig.clock.monotonic()
        await rig.sweep()
        await rig.run_pass()
        await rig.sweep()
        await rig.run_pass()
        assert view.observed
        assert view.passes == 2
        assert view.environments[env_id].desired_count == 2
        assert view.statuses() == {env_id: EnvStatus.READY}
        assert view.node_counts()[(env_id, NodeState.RUNNING)] == 2
        assert dict(view.counters())[("launched", env_id, "")] == 2
        assert dict(view.cloud_calls())[("RunInstances", "OK")] == 1
        assert view.store_ok
