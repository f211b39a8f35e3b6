"""End to end: the engine + simulator over real HTTP, on SQLite and PostgreSQL.

Every assertion that matters reads the simulator's ground truth or the database rows.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import sqlalchemy as sa

from controller.core.model import TOKEN_TAG, NodeState
from controller.errors import StoreError
from controller.service import Environments, EnvironmentView
from controller.store.store import Store
from tests.support.polling import eventually, holds
from tests.support.world import ENVIRONMENT, World, converged, running_engine, settings_for

SEED = {**ENVIRONMENT, "desired_count": 3}
REGION = "ap-guangzhou"


async def _env(store: Store, **changes: Any) -> EnvironmentView:
    return await Environments(store, REGION).create({**SEED, **changes})


async def _row(store: Store, name: str) -> dict[str, Any]:
    row = await store.get_environment(name)
    assert row is not None
    return row


async def test_converges_from_zero_and_records_everything(
    database_url: str, sim_url: str, world: World
) -> None:
    settings = settings_for(database_url, sim_url)
    store = await Store.open(database_url)
    try:
        env = await _env(store)
        async with running_engine(settings, store):
            await eventually(lambda: converged(world, store, env.id, 3), what="3 running")
        alive = await world.alive(env.id)
        nodes = await store.list_nodes(env.id)
        assert {n["instance_id"] for n in nodes} == {i["InstanceId"] for i in alive}
        assert all(n["state"] == "RUNNING" for n in nodes)
        # Tags at launch, including the cluster and the launch token.
        assert all(i["Tags"]["spot-controller:cluster"] == "default" for i in alive)
        assert all(TOKEN_TAG in i["Tags"] for i in alive)
        acts = await store.list_activities(env.id)
        assert sorted(a["state"] for a in acts) == ["SUCCEED"] * 3
        assert {a["activity_type"] for a in acts} == {"CREATE_COMPUTE_NODE"}
    finally:
        await store.close()


# Reclaimed instances stay TERMINATING long enough for a sweep to see them go.
@pytest.mark.sim(terminate_delay_s=1.5)
async def test_reclaimed_and_released_instances_are_replaced(
    database_url: str, sim_url: str, world: World
) -> None:
    settings = settings_for(database_url, sim_url)
    store = await Store.open(database_url)
    try:
        env = await _env(store, desired_count=4)
        async with running_engine(settings, store):
            await eventually(lambda: converged(world, store, env.id, 4), what="4 running")
            first = [i["InstanceId"] for i in await world.alive(env.id)]
            await world.admin("POST", "reclaim", {"instance_ids": first[:2]})
            await world.admin("POST", "release", {"instance_ids": first[2:3]})

            async def replaced() -> bool:
                alive = {i["InstanceId"] for i in await world.alive(env.id)}
                return not (alive & set(first[:3])) and await converged(world, store, env.id, 4)

            await eventually(replaced, what="3 replacements")
        nodes = {n["instance_id"]: n for n in await store.list_nodes(env.id)}
        assert {nodes[i]["end_reason"] for i in first[:2]} == {"interrupted"}
        assert nodes[first[2]]["end_reason"] == "released"
        assert len(nodes) == 7  # 4 + 3 replacements, every one recorded
        terminations = [
            a
            for a in await store.list_activities(env.id)
            if a["activity_type"] == "TERMINATE_COMPUTE_NODE"
        ]
        assert len(terminations) == 3
    finally:
        await store.close()


# A pass sends the replacements' RunInstances before it records the endings it observed (a
# storm's 3,000 endings took 0.6 s to write). If that record then fails, memory is reloaded
# from the rows, which still say RUNNING: nothing may be launched twice or terminated.
async def test_replacement_launched_before_a_failed_record_of_the_ending_is_not_repeated(
    database_url: str, sim_url: str, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(database_url, sim_url)
    store = await Store.open(database_url)
    record_changes = Store.record_changes
    failed: list[int] = []

    async def fail_once_on_an_ending(self: Store, **kwargs: Any) -> None:
        ended = [n for n in kwargs.get("changed_nodes", ()) if n.state == NodeState.ENDED]
        if ended and not failed:
            failed.append(len(ended))
            raise StoreError("injected: the record of the ending failed")
        await record_changes(self, **kwargs)

    try:
        env = await _env(store, desired_count=3)
        async with running_engine(settings, store) as engine:
            await eventually(lambda: converged(world, store, env.id, 3), what="3 running")
            monkeypatch.setattr(Store, "record_changes", fail_once_on_an_ending)
            first = [i["InstanceId"] for i in await world.alive(env.id)]
            await world.admin("POST", "release", {"instance_ids": first[:1]})

            async def replaced() -> bool:
                alive = {i["InstanceId"] for i in await world.alive(env.id)}
                return first[0] not in alive and await converged(world, store, env.id, 3)

            await eventually(replaced, what="the released instance replaced once")
            await eventually(lambda: holds(bool(failed)), what="the injected failure")
            # Two more sweeps and their passes: the reload must not launch or end anything more.
            later = anyio.current_time() + 2 * settings.resync_interval_s
            await eventually(
                lambda: holds((engine.view.last_sweep_at or 0.0) > later),
                what="two more sweeps",
            )
        assert failed == [1]
        alive = await world.alive(env.id)
        assert len(alive) == 3
        assert set(first[1:]) <= {i["InstanceId"] for i in alive}
        stats = await world.stats()
        assert stats["calls"]["RunInstances"] == 2  # the first launch of 3, one replacement
        assert "TerminateInstances" not in stats["calls"]
        nodes = {n["instance_id"]: n for n in await store.list_nodes(env.id)}
        assert nodes[first[0]]["state"] == "ENDED"
        assert nodes[first[0]]["end_reason"] == "released"
        assert sorted(n["state"] for n in nodes.values()) == ["ENDED"] + ["RUNNING"] * 3
    finally:
        await store.close()


# The reclaimed instance stays TERMINATING for a while, as a real one shuts down; the next
# resync sweep is 30 s away, so only the probe can find it in time.
@pytest.mark.sim(terminate_delay_s=20.0)
async def test_probe_replaces_a_reclaimed_instance_before_the_next_sweep(
    database_url: str, sim_url: str, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fleet this small would space probes out to the resync interval (they may cost a tenth
    # of the sweeps): lift that budget so the probe itself is what this test exercises.
    settings = settings_for(database_url, sim_url, resync_interval_s=30.0, probe_interval_s=0.1)
    store = await Store.open(database_url)
    try:
        env = await _env(store, desired_count=3)
        async with running_engine(settings, store, probe_share=1000.0) as engine:
            await eventually(lambda: converged(world, store, env.id, 3), what="3 running")
            assert engine.view.probe_interval() == pytest.approx(0.1)
            victim = (await world.alive(env.id))[0]["InstanceId"]
            await world.admin("POST", "reclaim", {"instance_ids": [victim]})

            async def replaced() -> bool:
                alive = {i["InstanceId"] for i in await world.alive(env.id)}
                return victim not in alive and await converged(world, store, env.id, 3)

            await eventually(replaced, within_s=10, what="the reclaimed instance replaced")
            gone = {i["InstanceId"]: i["InstanceState"] for i in await world.instances()}
            assert gone[victim] == "TERMINATING"  # replaced while the cloud still ends it
        nodes = {n["instance_id"]: n for n in await store.list_nodes(env.id)}
        assert nodes[victim]["end_reason"] == "interrupted"
        assert len(nodes) == 4
    finally:
        await store.close()


@pytest.mark.postgres
async def test_postgres_notification_starts_a_pass_without_waiting_for_the_poll(
    pg_url: str, sim_url: str, world: World
) -> None:
    # Rows are polled every 30 s and instances swept every 30 s: only the notification of the
    # UPDATE can start the pass that launches the two new instances in time.
    settings = settings_for(
        pg_url, sim_url, poll_interval_s=30.0, resync_interval_s=30.0, probe_interval_s=0.0
    )
    store = await Store.open(pg_url)
    try:
        env = await _env(store, desired_count=1)
        async with running_engine(settings, store):
            await eventually(lambda: converged(world, store, env.id, 1), what="1 running")
            async with store.engine.begin() as conn:
                await conn.execute(
                    sa.text("UPDATE compute_environments SET desired_count = 3 WHERE id = :id"),
                    {"id": env.id},
                )

            async def launched() -> bool:
                return len(await world.alive(env.id)) == 3

            await eventually(launched, within_s=10, what="2 more instances launched")
        assert len(await store.list_nodes(env.id)) == 3
    finally:
        await store.close()


async def test_a_plain_sql_change_is_read_at_the_next_poll_not_the_next_resync(
    database_url: str, sim_url: str, world: World
) -> None:
    # Rows are read again only when the environment revision moved (or every 30 s here): the
    # trigger that moves it on a plain UPDATE is what gets the change acted on in time.
    settings = settings_for(
        database_url, sim_url, poll_interval_s=0.1, resync_interval_s=30.0, probe_interval_s=0.0
    )
    store = await Store.open(database_url)
    try:
        env = await _env(store, desired_count=1)
        async with running_engine(settings, store):
            await eventually(lambda: converged(world, store, env.id, 1), what="1 running")
            async with store.engine.begin() as conn:
                await conn.execute(
                    sa.text("UPDATE compute_environments SET desired_count = 3 WHERE id = :id"),
                    {"id": env.id},
                )

            async def launched() -> bool:
                return len(await world.alive(env.id)) == 3

            await eventually(launched, within_s=10, what="2 more instances launched")
        assert len(await store.list_nodes(env.id)) == 3
    finally:
        await store.close()


async def test_scale_up_down_and_to_zero_follow_sql_updates(
    database_url: str, sim_url: str, world: World
) -> None:
    settings = settings_for(database_url, sim_url)
    store = await Store.open(database_url)
    try:
        env = await _env(store, desired_count=2)
        async with running_engine(settings, store):
            await eventually(lambda: converged(world, store, env.id, 2), what="2 running")
            for desired in (5, 1, 0):
                async with store.engine.begin() as conn:
                    await conn.execute(
                        sa.text(
                            "UPDATE compute_environments SET desired_count = :n WHERE name = 'web'"
                        ),
                        {"n": desired},
                    )
                await eventually(
                    lambda d=desired: converged(world, store, env.id, d),
                    what=f"{desired} running",
                )
        stats = await world.stats()
        assert stats["launched_total"] == 5  # never more launched than ever wanted
    finally:
        await store.close()


async def test_deleting_an_environment_terminates_its_instances_and_keeps_history(
    database_url: str, sim_url: str, world: World
) -> None:
    settings = settings_for(database_url, sim_url)
    store = await Store.open(database_url)
    try:
        env = await _env(store, desired_count=2)
        other = await _env(store, name="other", desired_count=1)
        async with running_engine(settings, store):
            await eventually(lambda: converged(world, store, env.id, 2), what="2 running")
            await store.delete_environment("web")

            async def gone() -> bool:
                return await world.alive(env.id) == []

            await eventually(gone, what="instances of the deleted env terminated")
            await eventually(lambda: converged(world, store, other.id, 1), what="other")
        nodes = await store.list_nodes(env.id)
        assert {n["end_reason"] for n in nodes} == {"env_deleted"}
        assert len(await store.list_activities(env.id)) == 4  # 2 creates + 2 terminates
    finally:
        await store.close()


async def test_sold_out_pool_backs_off_and_recovers(
    database_url: str, sim_url: str, world: World
) -> None:
    settings = settings_for(database_url, sim_url)
    store = await Store.open(database_url)
    try:
        await world.admin(
            "PUT", "market", {"zone": "ap-guangzhou-3", "instance_type": "S2.MEDIUM4", "stock": 0}
        )
        env = await _env(store, desired_count=2)
        async with running_engine(settings, store):

            async def backing_off() -> bool:
                row = await _row(store, "web")
                return row["status"] == "BACKOFF" and row["next_attempt_at"] is not None

            await eventually(backing_off, what="BACKOFF status")
            row = await _row(store, "web")
            assert "ResourceInsufficient" in row["status_reason"]
            assert "short by 2" in row["status_reason"]
            await world.admin(
                "PUT",
                "market",
                {"zone": "ap-guangzhou-3", "instance_type": "S2.MEDIUM4", "stock": 100},
            )
            await eventually(lambda: converged(world, store, env.id, 2), what="recovery")
    finally:
        await store.close()


async def test_bid_below_market_succeeds_when_price_drops(
    database_url: str, sim_url: str, world: World
) -> None:
    settings = settings_for(database_url, sim_url)
    store = await Store.open(database_url)
    try:
        await world.admin(
            "PUT", "market", {"zone": "ap-guangzhou-3", "instance_type": "S2.MEDIUM4", "price": 0.9}
        )
        env = await _env(store, desired_count=1)
        async with running_engine(settings, store):

            async def outbid() -> bool:
                row = await _row(store, "web")
                return row["status"] == "BACKOFF" and "InsufficientPrice" in row["status_reason"]

            await eventually(outbid, what="outbid status")
            await world.admin(
                "PUT",
                "market",
                {"zone": "ap-guangzhou-3", "instance_type": "S2.MEDIUM4", "price": 0.3},
            )
            await eventually(lambda: converged(world, store, env.id, 1), what="launch")
    finally:
        await store.close()


async def test_second_instance_type_takes_over_when_first_is_sold_out(
    database_url: str, sim_url: str, world: World
) -> None:
    settings = settings_for(database_url, sim_url)
    store = await Store.open(database_url)
    try:
        await world.admin(
            "PUT", "market", {"zone": "ap-guangzhou-3", "instance_type": "S2.MEDIUM4", "stock": 0}
        )
        env = await _env(store, desired_count=3, fallback_instance_types="S5.MEDIUM4")
        async with running_engine(settings, store):
            await eventually(lambda: converged(world, store, env.id, 3), what="fallback")
        assert {i["InstanceType"] for i in await world.alive(env.id)} == {"S5.MEDIUM4"}
    finally:
        await store.close()


async def test_invalid_row_next_to_valid_one(database_url: str, sim_url: str, world: World) -> None:
    settings = settings_for(database_url, sim_url)
    store = await Store.open(database_url)
    try:
        env = await _env(store, desired_count=1)
        async with store.engine.begin() as conn:
            await conn.execute(
                sa.text(
                    "INSERT INTO compute_environments (name, zone, instance_type, image_id, "
                    "max_price, desired_count) VALUES ('broken', 'guangzhou', 'S2.MEDIUM4', "
                    "'img-pmqg1cw7', 0.5, 2)"
                )
            )
        async with running_engine(settings, store):
            await eventually(lambda: converged(world, store, env.id, 1), what="valid env")

            async def flagged() -> bool:
                return (await _row(store, "broken"))["status"] == "INVALID"

            await eventually(flagged, what="INVALID status")
        broken = await _row(store, "broken")
        assert broken["status_reason"].startswith("invalid zone")
        assert len(await world.alive()) == 1
    finally:
        await store.close()


async def test_restart_mid_launch_leaves_no_duplicate_and_no_untracked_instance(
    database_url: str, sim_url: str, world: World
) -> None:
    # Every call is processed, then hangs past the client's timeout: RunInstances launches,
    # but the daemon never learns the ids. Then it "crashes" and a new one starts.
    settings = settings_for(database_url, sim_url, cvm_timeout_s=0.3, cvm_max_attempts=2)
    store = await Store.open(database_url)
    try:
        env = await _env(store, desired_count=0)
        async with running_engine(settings, store) as engine:
            await eventually(lambda: holds(engine.view.observed), what="first sweep")
            await world.admin("PUT", "faults", {"timeout_rate": 1.0})
            await Environments(store, REGION).scale("web", 3)

            async def launched_blind() -> bool:
                return len(await world.alive(env.id)) == 3

            await eventually(launched_blind, what="instances launched while answers hang")
        await world.admin("PUT", "faults", {"timeout_rate": 0.0, "describe_lag_s": 1.0})
        async with running_engine(settings, store):
            await eventually(lambda: converged(world, store, env.id, 3), what="recovery")
        stats = await world.stats()
        assert stats["launched_total"] == 3  # the same token never launched twice
        alive = {i["InstanceId"] for i in await world.alive()}
        recorded = {
            n["instance_id"] for n in await store.list_nodes(env.id) if n["state"] != "ENDED"
        }
        assert alive == recorded
    finally:
        await store.close()
