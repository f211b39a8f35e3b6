"""The engine's invariants, each stepped by hand against the in-process simulator.

Every test here fails when the rule it names is broken: the order of the engine's writes
(journalled by the store) is checked against the order of its calls (journalled at the
engine's launch hook), and the simulator's instances are the ground truth.
"""

from __future__ import annotations

import anyio
import pytest
import sqlalchemy as sa

from controller.core import launches
from controller.core.model import EndReason, NodeState
from controller.core.plan import LaunchOrder
from controller.errors import LeaseLost
from controller.ids import new_node_id
from controller.reconcile.ledger import RESTORED_CAUSE
from controller.store.schema import activities, compute_nodes, controller_leases
from tests.support.engine import EngineRig, engine_rig


async def _converge(rig: EngineRig) -> None:
    """Sweep and pass until nothing is in flight (instances run at once in this rig)."""
    for _ in range(4):
        await rig.sweep()
        await rig.run_pass()


async def _steal_lease(rig: EngineRig) -> None:
    """Another replica takes the lease over (a higher epoch, another holder)."""
    async with rig.store.engine.begin() as conn:
        await conn.execute(
            sa.update(controller_leases).values(
                holder="another-replica", epoch=controller_leases.c.epoch + 1
            )
        )


async def test_nothing_is_done_before_the_first_complete_sweep(database_url: str) -> None:
    async with engine_rig(database_url) as rig:
        await rig.create_env(2)
        await rig.engine.leadership.tick()  # takes the lease, loads the records
        assert rig.engine.leadership.leading
        assert await rig.run_pass() is None
        assert await rig.run_instances_calls() == 0

        await rig.sweep()
        await rig.run_pass()
        assert len(await rig.alive()) == 2


async def test_nothing_is_done_after_a_lease_acquisition_before_a_sweep(database_url: str) -> None:
    async with engine_rig(database_url) as rig:
        env_id = await rig.create_env(1)
        await rig.engine.leadership.tick()
        await _converge(rig)
        calls = await rig.run_instances_calls()
        await rig.set_desired(env_id, 3)
        rig.engine.leadership.lose("test: the lease was lost")
        await rig.engine.leadership.tick()
        assert rig.engine.leadership.leading
        assert await rig.run_pass() is None
        assert await rig.run_instances_calls() == calls
        await rig.sweep()
        await rig.run_pass()
        assert len(await rig.alive()) == 3


async def test_intent_is_recorded_before_run_instances_in_batches_of_100(
    database_url: str,
) -> None:
    async with engine_rig(database_url) as rig:
        for _ in range(101):
            await rig.create_env(1)
        await rig.sweep()
        plan = await rig.run_pass()
        assert plan is not None
        assert len(plan.launches) == 101

        batches = rig.events("intents")
        assert [len(b) for b in batches] == [100, 1]
        recorded_at = {
            token: index
            for index, (kind, value) in enumerate(rig.journal)
            if kind == "intents"
            for token in value
        }
        sends = [(i, token) for i, (kind, token) in enumerate(rig.journal) if kind == "send"]
        assert len(sends) == 101
        assert all(token in recorded_at and recorded_at[token] < i for i, token in sends)
        assert len(await rig.alive()) == 101


async def test_no_reload_while_a_run_instances_call_is_in_flight(database_url: str) -> None:
    async with engine_rig(database_url) as rig:
        await rig.create_env(1)
        await rig.sweep()
        engine = rig.engine
        rig.gate.close()
        async with anyio.create_task_group() as calls:
            engine.launcher.attach(calls)
            await engine.run_pass()
            with anyio.fail_after(10):
                await rig.gate.first_held.wait()  # the launch is on its way to the cloud
            loads = len(rig.events("load"))
            engine.passes.needs_reload = True  # as after a failed write
            assert await engine.run_pass() is None
            assert len(rig.events("load")) == loads, "reloaded with a launch in flight"
            rig.gate.open()
        engine.launcher.attach(None)

        await rig.run_pass()
        assert len(rig.events("load")) == loads + 1
        await _converge(rig)
        alive = await rig.alive()
        assert len(alive) == 1
        nodes = [n for n in engine.fleet.nodes.values() if n.state != NodeState.ENDED]
        assert [n.instance_id for n in nodes] == [alive[0]["InstanceId"]]


async def test_a_fence_check_precedes_every_cloud_call_and_every_leader_write(
    database_url: str,
) -> None:
    async with engine_rig(database_url) as rig:
        env_id = await rig.create_env(1)
        await rig.engine.leadership.tick()
        await _converge(rig)
        [running] = await rig.alive()
        await rig.set_desired(env_id, 2)
        await _steal_lease(rig)

        await rig.sweep()
        with pytest.raises(LeaseLost):
            await rig.run_pass()  # the intent is a leader write: refused
        assert await rig.run_instances_calls() == 1

        engine = rig.engine
        order = LaunchOrder(env_id, engine.desired.specs[env_id].offerings[0], 1, "test")
        intent = launches.build_intent(
            order,
            engine.desired.specs[env_id],
            cluster=engine.settings.cluster,
            now=rig.clock.now(),
            nonce="test",
            new_node_id=new_node_id,
        )
        async with anyio.create_task_group() as calls:
            engine.launcher.attach(calls)
            await engine.launcher.send(intent.launch, False)
            engine.launcher.terminate([running["InstanceId"]], EndReason.SCALE_IN)
        assert await rig.run_instances_calls() == 1
        assert [i["InstanceId"] for i in await rig.alive()] == [running["InstanceId"]]


async def test_replacements_are_sent_before_the_endings_are_recorded(database_url: str) -> None:
    async with engine_rig(database_url) as rig:
        await rig.create_env(3)
        await _converge(rig)
        victim = (await rig.alive())[0]["InstanceId"]
        node = next(n for n in rig.engine.fleet.nodes.values() if n.instance_id == victim)
        await rig.reclaim([victim])
        rig.journal.clear()

        await rig.sweep()
        await rig.run_pass()
        sends = [i for i, (kind, _) in enumerate(rig.journal) if kind == "send"]
        ending = [i for i, (kind, ids) in enumerate(rig.journal) if kind == "changes" and ids]
        assert sends
        assert ending
        assert rig.journal[ending[0]][1] == [node.id]
        assert sends[0] < ending[0], rig.journal
        assert len(await rig.alive()) == 3


async def test_probe_findings_are_merged_only_when_newer_than_the_sweep(
    database_url: str,
) -> None:
    async with engine_rig(database_url, sim={"terminate_delay_s": 600.0}) as rig:
        await rig.create_env(2)
        await _converge(rig)
        observer = rig.engine.observer
        first, second = (i["InstanceId"] for i in await rig.alive())

        # A probe after the sweep: its find joins the sweep's view.
        await rig.sweep()
        rig.clock.advance(1)
        await rig.reclaim([first])
        await observer.probe()
        taken = observer.take()
        assert taken is not None
        assert taken.complete
        assert taken.instances[first].state == "TERMINATING"
        assert taken is not observer.observation

        # A probe before the sweep: the sweep is newer and is taken as it is.
        await rig.reclaim([second])
        rig.clock.advance(1)
        await observer.probe()
        rig.clock.advance(1)
        await rig.sweep()
        taken = observer.take()
        assert taken is observer.observation
        assert observer.take() is None  # nothing new since


async def test_a_hand_deleted_node_row_is_restored_and_nothing_is_launched(
    database_url: str,
) -> None:
    async with engine_rig(database_url) as rig:
        await rig.create_env(2)
        await _converge(rig)
        calls = await rig.run_instances_calls()
        alive = sorted(i["InstanceId"] for i in await rig.alive())
        victim = next(iter(rig.engine.fleet.nodes.values()))
        async with rig.store.engine.begin() as conn:
            await conn.execute(sa.delete(activities).where(activities.c.node_id == victim.id))
            await conn.execute(sa.delete(compute_nodes).where(compute_nodes.c.id == victim.id))

        rig.clock.advance(rig.engine.settings.resync_interval_s + 0.01)
        await rig.run_pass()

        async with rig.store.engine.connect() as conn:
            row = (
                await conn.execute(sa.select(compute_nodes).where(compute_nodes.c.id == victim.id))
            ).one()
            restored = (
                await conn.execute(sa.select(activities).where(activities.c.node_id == victim.id))
            ).all()
        assert (row.state, row.instance_id, row.env_id) == (
            victim.state.value,
            victim.instance_id,
            victim.env_id,
        )
        assert [a.cause for a in restored] == [RESTORED_CAUSE]
        assert await rig.run_instances_calls() == calls
        assert sorted(i["InstanceId"] for i in await rig.alive()) == alive

        # Checked once a resync interval, and only rows that are gone are written.
        rig.journal.clear()
        await rig.sweep()
        await rig.run_pass()
        assert rig.events("changes") in ([], [[]])
