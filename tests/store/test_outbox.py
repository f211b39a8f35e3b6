"""The outbox in the database: the environment triggers, the targets' filters, the queue."""

from __future__ import annotations

import json

import sqlalchemy as sa

from controller.notifications.service import Targets
from controller.service import Environments
from controller.store.schema import outbox
from controller.store.store import Store
from tests.support.world import ENVIRONMENT


async def rows(store: Store) -> list[dict[str, object]]:
    async with store.engine.connect() as conn:
        result = await conn.execute(sa.select(outbox).order_by(outbox.c.seq))
        return [dict(r._mapping) for r in result]


async def test_the_users_insert_and_delete_write_their_events_by_trigger(store: Store) -> None:
    envs = Environments(store, "ap-guangzhou")
    targets = Targets(store, "default")
    await targets.add("all", "http://127.0.0.1:1/a", "webhook", [], [], "k")
    deletes = ["COMPUTE_ENV_DELETED"]
    await targets.add("deletes", "http://127.0.0.1:1/b", "webhook", deletes, [], "k")
    first = await envs.create({**ENVIRONMENT})
    await targets.add("web-only", "http://127.0.0.1:1/c", "webhook", [], [first.id], "k")
    second = await envs.create({**ENVIRONMENT, "name": "batch"})
    await envs.delete(first.id)
    await envs.delete(second.id)
    got = [(r["target"], r["event"], r["env_id"]) for r in await rows(store)]
    assert got == [
        ("all", "COMPUTE_ENV_CREATED", first.id),
        ("all", "COMPUTE_ENV_CREATED", second.id),
        ("all", "COMPUTE_ENV_DELETED", first.id),
        ("deletes", "COMPUTE_ENV_DELETED", first.id),
        ("web-only", "COMPUTE_ENV_DELETED", first.id),
        ("all", "COMPUTE_ENV_DELETED", second.id),
        ("deletes", "COMPUTE_ENV_DELETED", second.id),
    ]
    payload = json.loads(str((await rows(store))[0]["payload"]))
    assert payload == {
        "env_name": "web",
        "zone": "ap-guangzhou-3",
        "instance_type": "S2.MEDIUM4",
        "desired_count": 2,
    }
    assert all(str(r["event_id"]).startswith("evt-") for r in await rows(store))


async def test_plain_sql_inserts_are_announced_too_and_nothing_without_targets(
    store: Store,
) -> None:
    insert = sa.text(
        "INSERT INTO compute_environments (name, zone, instance_type, image_id, max_price, "
        "desired_count) VALUES ('sql', 'ap-guangzhou-3', 'S2.MEDIUM4', 'img-pmqg1cw7', 0.6, 1)"
    )
    async with store.engine.begin() as conn:
        await conn.execute(insert)
    assert await rows(store) == []  # no target: nothing is queued
    await Targets(store, "default").add("all", "http://127.0.0.1:1/a", "webhook", [], [], "k")
    async with store.engine.begin() as conn:
        await conn.execute(sa.text("DELETE FROM compute_environments WHERE name = 'sql'"))
    assert [r["event"] for r in await rows(store)] == ["COMPUTE_ENV_DELETED"]


async def test_removing_a_target_removes_its_queue_and_trimming_counts(store: Store) -> None:
    targets = Targets(store, "default")
    await targets.add("t", "http://127.0.0.1:1/a", "webhook", [], [], "k")
    envs = Environments(store, "ap-guangzhou")
    for i in range(5):
        await envs.create({**ENVIRONMENT, "name": f"e{i}"})
    assert await store.outbox_trim("t", 2) == (3, 2)
    view = await targets.show("t")
    assert (view["pending"], view["dropped"]) == (2, 3)
    kept = [r["env_id"] for r in await rows(store)]
    assert len(kept) == 2  # the newest two
    await targets.remove("t")
    assert await rows(store) == []
