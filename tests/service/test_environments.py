"""The service's operations on real SQLite and PostgreSQL, checked against the stored rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from controller.core.model import ActivityRecord, Node, NodeState
from controller.errors import ValidationFailed
from controller.service import EnvironmentNotFound, Environments, EnvironmentView
from controller.store.store import Store
from tests.support.world import ENVIRONMENT

REGION = "ap-guangzhou"
WEB = ENVIRONMENT
USER_DATA = "IyEvYmluL3NoCmVjaG8gc2VjcmV0Cg=="


async def _stored(store: Store, env_id: str) -> dict[str, object]:
    """The row as the database holds it, read with plain SQL."""
    async with store.engine.connect() as conn:
        result = await conn.execute(
            sa.text(
                "SELECT name, desired_count, max_price, user_data, vpc_id, subnet_id "
                "FROM compute_environments WHERE id = :id"
            ),
            {"id": env_id},
        )
        row = result.mappings().one()
    return {**row, "max_price": format(float(row["max_price"]), "g")}


async def test_create_stores_the_normalised_row_and_shows_a_view_without_user_data(
    store: Store,
) -> None:
    created = await Environments(store, REGION).create({**WEB, "user_data": USER_DATA})
    assert isinstance(created, EnvironmentView)
    assert (created.name, created.max_price, created.status) == ("web", "0.6", "NEW")
    assert await _stored(store, created.id) == {
        "name": "web",
        "desired_count": 2,
        "max_price": "0.6",
        "user_data": USER_DATA,
        "vpc_id": None,
        "subnet_id": None,
    }
    shown = created.to_json()
    assert USER_DATA not in json.dumps(shown)
    assert shown["user_data"] == f"<{len(USER_DATA)} characters of base64, not shown>"
    assert shown["created_at"].endswith("Z")
    assert not hasattr(created, "user_data")


async def test_show_by_name_or_id_and_list_by_name(store: Store) -> None:
    environments = Environments(store, REGION)
    web = await environments.create(WEB)
    batch = await environments.create({**WEB, "name": "batch", "instance_type": "S5.MEDIUM4"})
    assert await environments.show("web") == web
    assert await environments.show(batch.id) == batch
    assert [e.name for e in await environments.list()] == ["batch", "web"]
    with pytest.raises(EnvironmentNotFound) as err:
        await environments.show("nosuch")
    assert str(err.value) == "name: no environment named 'nosuch'"


async def test_update_checks_the_row_as_a_whole_and_applies_together(store: Store) -> None:
    environments = Environments(store, REGION)
    web = await environments.create(WEB)
    updated = await environments.update(
        "web", {"vpc_id": "vpc-0a1b2c3d", "subnet_id": "subnet-0a1b2c3d", "max_price": "0.70"}
    )
    assert (updated.vpc_id, updated.subnet_id, updated.max_price) == (
        "vpc-0a1b2c3d",
        "subnet-0a1b2c3d",
        "0.7",
    )
    assert (await _stored(store, web.id))["max_price"] == "0.7"
    renamed = await environments.update(web.id, {"name": "web-2"})
    assert (renamed.id, renamed.name) == (web.id, "web-2")
    with pytest.raises(EnvironmentNotFound):
        await environments.update("web", {"desired_count": 1})


async def test_scale_sets_the_desired_count_only(store: Store) -> None:
    environments = Environments(store, REGION)
    web = await environments.create({**WEB, "user_data": USER_DATA})
    before = await _stored(store, web.id)
    scaled = await environments.scale("web", 5)
    assert scaled.desired_count == 5
    assert await _stored(store, web.id) == {**before, "desired_count": 5}


async def test_a_rename_to_a_taken_name_is_refused_by_the_database(store: Store) -> None:
    environments = Environments(store, REGION)
    await environments.create(WEB)
    batch = await environments.create({**WEB, "name": "batch"})
    with pytest.raises(ValidationFailed, match="an environment named 'web' already exists"):
        await environments.update("batch", {"name": "web"})
    assert (await _stored(store, batch.id))["name"] == "batch"


async def test_delete_returns_what_was_deleted_and_keeps_its_history(store: Store) -> None:
    environments = Environments(store, REGION)
    web = await environments.create(WEB)
    now = datetime.now(UTC)
    await store.record_changes(
        new_activities=[ActivityRecord(web.id, "CREATE_COMPUTE_NODE", "SUCCEED", "scale out")],
        now=now,
    )
    deleted = await environments.delete("web")
    assert deleted.id == web.id
    assert await store.get_environment(web.id) is None
    assert [a.cause for a in await environments.activities(web.id)] == ["scale out"]
    with pytest.raises(EnvironmentNotFound):
        await environments.activities("web")  # a deleted environment is found by its id only
    with pytest.raises(EnvironmentNotFound):
        await environments.delete("web")


async def test_activities_newest_first_up_to_the_limit(store: Store) -> None:
    environments = Environments(store, REGION)
    web = await environments.create(WEB)
    start = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    for minute in range(3):
        await store.record_changes(
            new_activities=[
                ActivityRecord(web.id, "CREATE_COMPUTE_NODE", "SUCCEED", f"launch {minute}")
            ],
            now=start + timedelta(minutes=minute),
        )
    newest = await environments.activities("web", limit=2)
    assert [a.cause for a in newest] == ["launch 2", "launch 1"]
    assert newest[0].to_json()["start_time"] == "2026-12-01T08:02:00Z"
    with pytest.raises(ValidationFailed, match="limit: must be at least 1"):
        await environments.activities("web", limit=0)


async def test_nodes_live_by_default_all_on_request(store: Store) -> None:
    environments = Environments(store, REGION)
    web = await environments.create(WEB)
    now = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)

    def node(node_id: str, state: NodeState, minute: int) -> Node:
        return Node(
            id=node_id,
            env_id=web.id,
            state=state,
            zone="ap-guangzhou-3",
            instance_type="S2.MEDIUM4",
            created_at=now + timedelta(minutes=minute),
            instance_id=f"ins-{node_id[-8:]}",
            ended_at=now if state is NodeState.ENDED else None,
            end_reason="INTERRUPTED" if state is NodeState.ENDED else None,
        )

    await store.record_changes(
        new_nodes=[
            node("node-aaaaaaaa", NodeState.ENDED, 0),
            node("node-bbbbbbbb", NodeState.RUNNING, 1),
        ],
        now=now,
    )
    assert [n.id for n in await environments.nodes("web")] == ["node-bbbbbbbb"]
    every = await environments.nodes(web.id, include_ended=True)
    assert [(n.id, n.state, n.end_reason) for n in every] == [
        ("node-aaaaaaaa", "ENDED", "INTERRUPTED"),
        ("node-bbbbbbbb", "RUNNING", None),
    ]
    assert every[0].to_json()["ended_at"] == "2026-12-01T08:00:00Z"
    with pytest.raises(EnvironmentNotFound):
        await environments.nodes("nosuch")
