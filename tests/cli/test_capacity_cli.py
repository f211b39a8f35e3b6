"""The capacity policy through the CLI: flags on create and update, the split and the hourly
spend in env list and show, and env cost from the node records. Ground truth is the rows."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from click.testing import CliRunner, Result

from controller.cli import main
from controller.store.database import create_engine
from controller.store.schema import compute_environments, compute_nodes

CREATE = [
    *("env", "create", "batch", "--zone", "ap-guangzhou-3", "--instance-type", "S2.MEDIUM4"),
    *("--image-id", "img-pmqg1cw7", "--max-price", "0.60", "--desired", "4"),
]


def invoke(database_url: str, args: list[str]) -> Result:
    unset: dict[str, str | None] = {
        k: None for k in os.environ if k.startswith(("SPOT_CONTROLLER_", "TENCENTCLOUD_"))
    }
    return CliRunner().invoke(
        main, args, env={**unset, "SPOT_CONTROLLER_DATABASE_URL": database_url}
    )


def _run(database_url: str, statement: Any) -> list[Any]:
    async def go() -> list[Any]:
        engine = create_engine(database_url)
        try:
            async with engine.begin() as conn:
                result = await conn.execute(statement)
                return list(result) if result.returns_rows else []
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _row(database_url: str) -> Any:
    [row] = _run(database_url, sa.select(compute_environments))
    return row


def test_create_and_update_take_the_policy_and_refuse_a_bad_one(database_url: str) -> None:
    policy = [
        *("--on-demand-base", "1", "--on-demand-percentage", "50"),
        *("--compensate-with-on-demand", "--compensate-after", "30"),
        *("--disruption-budget", "2", "--max-hourly-spend", "3.50"),
    ]
    made = invoke(database_url, [*CREATE, *policy, "--output", "json"])
    assert made.exit_code == 0, made.output
    shown = json.loads(made.output)
    assert (shown["on_demand_base_count"], shown["on_demand_percentage"]) == (1, 50)
    row = _row(database_url)
    assert (row.on_demand_base_count, row.on_demand_percentage) == (1, 50)
    assert bool(row.compensate_with_on_demand) is True
    assert (row.compensate_after_s, row.disruption_budget) == (30, 2)
    assert Decimal(str(row.max_hourly_spend)) == Decimal("3.50")

    refused = invoke(database_url, ["env", "update", "batch", "--on-demand-percentage", "101"])
    assert refused.exit_code == 2
    assert "on_demand_percentage" in refused.output
    assert "100" in refused.output
    assert _row(database_url).on_demand_percentage == 50, "nothing written"

    off = invoke(database_url, ["env", "update", "batch", "--no-compensate-with-on-demand"])
    assert off.exit_code == 0, off.output
    assert bool(_row(database_url).compensate_with_on_demand) is False


def _node(env_id: str, n: int, **values: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "id": f"node-test{n:04d}",
        "env_id": env_id,
        "state": "RUNNING",
        "zone": "ap-guangzhou-3",
        "instance_type": "S2.MEDIUM4",
        "created_at": now,
        "instance_id": f"ins-test{n:04d}",
        "max_price": "0.60",
        "origin": "LAUNCHED",
        **values,
    }


def test_list_show_the_split_and_the_hourly_spend_and_cost_sums_the_records(
    database_url: str,
) -> None:
    assert invoke(database_url, CREATE).exit_code == 0
    env_id = _row(database_url).id
    now = datetime.now(UTC)
    two_hours_ago = now - timedelta(hours=2)
    nodes = [
        _node(env_id, 1, hourly_price="0.12", launched_at=two_hours_ago),
        _node(
            env_id,
            2,
            charge_type="POSTPAID_BY_HOUR",
            role="compensation",
            hourly_price="0.6",
            launched_at=now - timedelta(hours=1),
        ),
        _node(env_id, 3, state="CREATING", hourly_price="0.12", launched_at=now),
        _node(env_id, 4, state="DELETING", hourly_price="0.12", launched_at=two_hours_ago),
        _node(
            env_id,
            5,
            state="ENDED",
            hourly_price="0.12",
            launched_at=two_hours_ago,
            ended_at=two_hours_ago + timedelta(minutes=30),
        ),
        _node(
            env_id,
            6,
            state="ENDED",
            launched_at=two_hours_ago,
            ended_at=two_hours_ago + timedelta(hours=1),
        ),
    ]
    for node in nodes:
        _run(database_url, sa.insert(compute_nodes).values(**node))

    listed = invoke(database_url, ["env", "list", "--output", "json"])
    assert listed.exit_code == 0, listed.output
    [env] = json.loads(listed.output)
    assert (env["spot_running"], env["on_demand_running"], env["compensating"]) == (1, 1, 1)
    assert env["hourly_spend"] == "0.8400"  # 0.12 + 0.60 + 0.12 launching; DELETING not
    table = invoke(database_url, ["env", "list"])
    assert "CNY/h" in table.output
    assert "0.8400" in table.output
    shown = json.loads(invoke(database_url, ["env", "show", "batch", "--output", "json"]).output)
    assert shown["hourly_spend"] == "0.8400"

    cost = invoke(database_url, ["env", "cost", "batch", "--since", "3h", "--output", "json"])
    assert cost.exit_code == 0, cost.output
    by_charge = {row["charge_type"]: row for row in json.loads(cost.output)}
    spot, on_demand = by_charge["SPOTPAID"], by_charge["POSTPAID_BY_HOUR"]
    # spot: 2 h (running) + 0 h (just launched) + 2 h (deleting) + 0.5 h + 1 h (unpriced)
    assert spot["instances"] == 5
    assert abs(Decimal(spot["instance_hours"]) - Decimal("5.5")) < Decimal("0.01")
    assert abs(Decimal(spot["spend"]) - Decimal("0.54")) <= Decimal("0.01")  # 4.5 h x 0.12
    assert spot["unpriced"] == 1
    assert on_demand["instances"] == 1
    assert abs(Decimal(on_demand["spend"]) - Decimal("0.60")) <= Decimal("0.01")

    later = invoke(database_url, ["env", "cost", "batch", "--since", "90m"])
    assert later.exit_code == 2
    assert "since" in later.output
