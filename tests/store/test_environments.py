"""The compute_environments table as users meet it: plain SQL, constraints, the store's methods.

The rules a parser checks are the service's (tests/service/); here, what the database keeps."""

import re

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from controller.errors import ValidationFailed
from controller.store.store import Store

PLAIN_INSERT = (
    "INSERT INTO compute_environments (name, zone, instance_type, image_id, max_price, "
    "desired_count) VALUES (:name, 'ap-guangzhou-3', 'S2.MEDIUM4', 'img-pmqg1cw7', :price, :n)"
)
SEED = {
    "name": "demo",
    "zone": "ap-guangzhou-3",
    "instance_type": "S2.MEDIUM4",
    "image_id": "img-pmqg1cw7",
    "max_price": "0.60",
    "desired_count": 1,
}


async def test_plain_sql_insert_gets_defaults_and_an_env_id(store: Store) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(sa.text(PLAIN_INSERT), {"name": "sql-env", "price": 0.6, "n": 3})
    row = await store.get_environment("sql-env")
    assert row is not None
    assert re.fullmatch(r"env-[a-z0-9]{8}", row["id"])
    assert row["status"] == "NEW"
    assert row["running_count"] == 0
    assert row["tags"] == "{}"
    assert row["created_at"].tzinfo is not None
    async with store.engine.begin() as conn:
        result = await conn.execute(
            sa.text("SELECT name, desired_count, status, status_reason FROM compute_environments")
        )
        assert result.all() == [("sql-env", 3, "NEW", "")]


@pytest.mark.parametrize(
    ("name", "price", "count"),
    [
        ("bad-count", 0.6, -1),
        ("too-many", 0.6, 2001),
        ("free", 0, 1),
        ("negative", -1, 1),
        ("", 0.6, 1),
        ("   ", 0.6, 1),
    ],
)
async def test_database_constraints_reject_plain_sql(
    store: Store, name: str, price: float, count: int
) -> None:
    with pytest.raises(IntegrityError):
        async with store.engine.begin() as conn:
            await conn.execute(sa.text(PLAIN_INSERT), {"name": name, "price": price, "n": count})
    assert await store.list_environments() == []


async def test_duplicate_name_rejected_by_database(store: Store) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(sa.text(PLAIN_INSERT), {"name": "dup", "price": 0.6, "n": 1})
    with pytest.raises(IntegrityError):
        async with store.engine.begin() as conn:
            await conn.execute(sa.text(PLAIN_INSERT), {"name": "dup", "price": 0.6, "n": 1})
    assert len(await store.list_environments()) == 1


@pytest.mark.parametrize(
    ("row", "field", "rule"),
    [
        ({**SEED, "name": "demo"}, "name", "an environment named 'demo' already exists"),
        ({**SEED, "name": "other", "desired_count": 2001}, "desired_count", "from 0 to 2000"),
        ({**SEED, "name": "other", "max_price": "0"}, "max_price", "greater than 0"),
        ({**SEED, "name": " "}, "name", "must not be empty"),
        ({**SEED, "name": "other", "status": "READY"}, "status", "not a column a user can set"),
    ],
    ids=["duplicate-name", "count-range", "price-positive", "name-not-empty", "status-column"],
)
async def test_insert_refuses_what_the_database_refuses_naming_the_rule(
    store: Store, row: dict[str, object], field: str, rule: str
) -> None:
    """The store checks nothing a parser would (the service does), but the database's own
    constraints and the user columns it enforces come back as ValidationFailed, not a crash."""
    await store.insert_environment(SEED)
    before = await store.list_environments()
    with pytest.raises(ValidationFailed) as err:
        await store.insert_environment(row)
    assert err.value.field == field
    assert rule in err.value.rule
    assert await store.list_environments() == before


async def test_change_refuses_a_constraint_and_keeps_the_row(store: Store) -> None:
    env = await store.insert_environment(SEED)
    with pytest.raises(ValidationFailed) as err:
        await store.change_environment(env["id"], {"desired_count": -1})
    assert err.value.field == "desired_count"
    assert await store.get_environment(env["id"]) == env
    assert await store.change_environment("env-gone0000", {"desired_count": 2}) is None


async def test_user_update_and_status_update_do_not_lose_each_other(store: Store) -> None:
    env = await store.insert_environment(SEED)
    # The controller read the row earlier; meanwhile the user changes desired_count.
    async with store.engine.begin() as conn:
        await conn.execute(
            sa.text("UPDATE compute_environments SET desired_count = 7 WHERE id = :id"),
            {"id": env["id"]},
        )
    await store.record_statuses(
        [
            {
                "env_id": env["id"],
                "status": "SCALING",
                "status_reason": "launching 6",
                "running_count": 1,
                "pending_count": 0,
                "launching_count": 6,
                "next_attempt_at": None,
                "last_reconciled_at": None,
            }
        ]
    )
    row = await store.get_environment(env["id"])
    assert row is not None
    assert row["desired_count"] == 7
    assert row["status"] == "SCALING"
    assert row["launching_count"] == 6


async def test_delete_keeps_history(store: Store) -> None:
    from datetime import UTC, datetime

    from controller.core.model import ActivityRecord

    env = await store.insert_environment(SEED)
    await store.record_changes(
        new_activities=[ActivityRecord(env["id"], "CREATE_COMPUTE_NODE", "SUCCEED", "test")],
        now=datetime.now(UTC),
    )
    await store.delete_environment("demo")
    assert await store.get_environment("demo") is None
    history = await store.list_activities(env["id"])
    assert [a["cause"] for a in history] == ["test"]


async def test_numbers_read_as_text_for_validation(store: Store) -> None:
    await store.insert_environment(SEED)
    _, rows = await store.load_environment_rows()
    assert rows[0]["desired_count"] == "1"
    assert float(rows[0]["max_price"]) == pytest.approx(0.6)


async def test_every_user_change_moves_the_revision_and_status_writes_do_not(
    store: Store,
) -> None:
    """The daemon re-reads the rows only when the revision moved: each way a user changes
    compute_environments must move it, and the controller's status writes must not."""
    start = await store.environment_revision()
    assert start is not None
    seen = [start]

    async def moved() -> bool:
        now = await store.environment_revision()
        assert now is not None
        changed = now != seen[-1]
        seen.append(now)
        return changed

    async def sql(statement: str, **params: object) -> None:
        async with store.engine.begin() as conn:
            await conn.execute(sa.text(statement), params)

    await sql(PLAIN_INSERT, name="a", price=0.6, n=1)
    assert await moved(), "plain SQL INSERT"
    env = await store.insert_environment(SEED)
    assert await moved(), "CLI create"
    await sql("UPDATE compute_environments SET desired_count = 5 WHERE name = 'a'")
    assert await moved(), "plain SQL UPDATE of desired_count"
    await store.change_environment(env["id"], {"max_price": "0.7"})
    assert await moved(), "CLI update"
    await sql("UPDATE compute_environments SET tags = '{\"team\": \"x\"}' WHERE name = 'a'")
    assert await moved(), "plain SQL UPDATE of tags"

    status = {
        "env_id": env["id"],
        "status": "READY",
        "status_reason": "",
        "running_count": 1,
        "pending_count": 0,
        "launching_count": 0,
        "next_attempt_at": None,
        "last_reconciled_at": None,
    }
    await store.record_statuses([status])
    assert not await moved(), "the controller's status write"
    await sql("UPDATE compute_environments SET status = 'READY', running_count = 3")
    assert not await moved(), "a write of status columns only"

    await store.delete_environment(env["id"])
    assert await moved(), "CLI delete"
    await sql("DELETE FROM compute_environments")
    assert await moved(), "plain SQL DELETE"

    revision, rows = await store.load_environment_rows()
    assert rows == []
    assert revision == seen[-1]
