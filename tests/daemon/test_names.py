"""Names as Tencent users write them, end to end, on SQLite and PostgreSQL.

Environments named in Chinese, Japanese and accented Latin are created with the real console
script and with plain SQL; the rows hold the names exactly, the daemon reconciles them (none is
INVALID, each one's instance runs in the simulator), and ``env list`` prints them unmangled: JSON
without escapes, a table aligned by display width.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import sqlalchemy as sa
from rich.cells import cell_len

from controller.core.model import ENV_TAG
from controller.store.store import Store
from tests.reliability.fleet import insert_row
from tests.reliability.helpers import run_cli
from tests.support.polling import eventually
from tests.support.world import World, running_engine, settings_for

ROW = {
    "zone": "ap-guangzhou-3",
    "instance_type": "S2.MEDIUM4",
    "image_id": "img-pmqg1cw7",
    "max_price": "0.60",
    "desired_count": 1,
}
CLI_NAMES = ["测试环境", "テスト環境"]
SQL_NAMES = ["Café crème", "环境" * 30]  # the second: 60 characters, 180 bytes of UTF-8
TOO_LONG = "测" * 61
VALID = CLI_NAMES + SQL_NAMES


async def _cli(args: list[str], database_url: str) -> Any:
    variables = {"SPOT_CONTROLLER_DATABASE_URL": database_url}
    return await anyio.to_thread.run_sync(lambda: run_cli(args, variables))


async def _stored(store: Store) -> dict[str, dict[str, Any]]:
    """Name, its length in characters and in bytes, and status, read with plain SQL."""
    octets = (
        "octet_length(name)"
        if store.engine.dialect.name == "postgresql"
        else "length(CAST(name AS BLOB))"
    )
    async with store.engine.connect() as conn:
        result = await conn.execute(
            sa.text(
                f"SELECT id, name, length(name) AS characters, {octets} AS bytes, status, "
                "status_reason, running_count FROM compute_environments"
            )
        )
        return {row.name: dict(row._mapping) for row in result}


async def test_names_in_any_script_through_cli_and_sql_are_reconciled_and_shown(
    database_url: str, sim_url: str, world: World
) -> None:
    for name in CLI_NAMES:
        created = await _cli(
            [
                "env",
                "create",
                name,
                *(f"--{k.replace('_', '-')}={v}" for k, v in ROW.items() if k != "desired_count"),
                "--desired=1",
                "--output=json",
            ],
            database_url,
        )
        assert created.returncode == 0, created.stderr
        assert json.loads(created.stdout)["name"] == name
        assert f'"name": "{name}"' in created.stdout  # not "\u6d4b..."
    store = await Store.open(database_url)
    try:
        for name in [*SQL_NAMES, TOO_LONG]:
            await insert_row(store, {**ROW, "name": name})

        # The rows hold every name exactly; the length is counted in characters.
        stored = await _stored(store)
        assert set(stored) == {*VALID, TOO_LONG}
        for name, row in stored.items():
            assert row["characters"] == len(name)
            assert row["bytes"] == len(name.encode())
        assert stored["环境" * 30]["characters"] == 60
        assert stored["环境" * 30]["bytes"] == 180
        if store.engine.dialect.name == "postgresql":
            async with store.engine.connect() as conn:
                column = (
                    await conn.execute(
                        sa.text(
                            "SELECT data_type, character_maximum_length "
                            "FROM information_schema.columns "
                            "WHERE table_name = 'compute_environments' AND column_name = 'name'"
                        )
                    )
                ).one()
            # VARCHAR(n) on PostgreSQL counts characters, not bytes.
            assert column.data_type == "character varying"
            assert column.character_maximum_length >= 60

        settings = settings_for(database_url, sim_url)
        async with running_engine(settings, store):

            async def settled() -> bool:
                rows = await _stored(store)
                for n in VALID:
                    row = rows[n]
                    if row["status"] != "READY" or row["running_count"] != 1:
                        return False
                    if await world.running(row["id"]) != 1:
                        return False
                return rows[TOO_LONG]["status"] == "INVALID"

            await eventually(settled, what="4 names READY, the 61-character one INVALID")

        stored = await _stored(store)
        for name in VALID:
            assert stored[name]["status"] == "READY", stored[name]
            assert stored[name]["status_reason"] == "1 of 1 running"
        assert stored[TOO_LONG]["status_reason"] == (
            "invalid name: must be at most 60 characters, got 61"
        )
        too_long_id = stored[TOO_LONG]["id"]
        launched = await world.instances(include_gone=True)
        assert not [i for i in launched if i["Tags"].get(ENV_TAG) == too_long_id]
        assert sorted(i["Tags"][ENV_TAG] for i in launched) == sorted(
            stored[n]["id"] for n in VALID
        )
    finally:
        await store.close()

    # JSON: every name as written, no escapes.
    listed = await _cli(["env", "list", "--output", "json"], database_url)
    assert listed.returncode == 0, listed.stderr
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert set(rows) == {*VALID, TOO_LONG}
    assert all(rows[n]["status"] == "READY" for n in VALID)
    for name in [*VALID, TOO_LONG]:
        assert f'"name": "{name}"' in listed.stdout
    assert "\\u" not in listed.stdout

    # Table: the names unbroken, every line of the table as wide on screen as the others. (The
    # list is drawn 200 cells wide, so a name wider than its column, 60 CJK characters being
    # 120 cells, ends in an ellipsis there; `env show` prints it whole, below.)
    table = await _cli(["env", "list"], database_url)
    assert table.returncode == 0, table.stderr
    for name in ["测试环境", "テスト環境", "Café crème"]:
        assert name in table.stdout
    widths = {cell_len(line) for line in table.stdout.splitlines() if line}
    assert len(widths) == 1, widths

    # One environment shown alone: the 60-character name on one line, aligned too.
    shown = await _cli(["env", "show", "环境" * 30], database_url)
    assert shown.returncode == 0, shown.stderr
    assert "环境" * 30 in shown.stdout
    assert len({cell_len(line) for line in shown.stdout.splitlines() if line}) == 1
