"""The placement policy through the CLI: flags on create and update, refusals naming the field
(from the service's parse and from the database's named constraints). Ground truth: the row."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from controller.store.schema import compute_environments
from tests.cli.test_capacity_cli import CREATE, _row, _run, invoke


def test_create_and_update_take_the_placement(database_url: str) -> None:
    policy = [
        *("--allocation-strategy", "price_capacity_optimized", "--zone-balance", "EQUALITY"),
        *("--max-pool-share", "40", "--instance-cpu", "2", "--instance-memory", "4"),
        *("--instance-families", "S5, SA2"),
    ]
    made = invoke(database_url, [*CREATE, *policy, "--output", "json"])
    assert made.exit_code == 0, made.output
    shown = json.loads(made.output)
    assert shown["allocation_strategy"] == "PRICE_CAPACITY_OPTIMIZED"
    row = _row(database_url)
    assert (row.allocation_strategy, row.zone_balance, row.max_pool_share) == (
        "PRICE_CAPACITY_OPTIMIZED",
        "EQUALITY",
        40,
    )
    assert (row.instance_cpu, row.instance_memory, row.instance_families) == (2, 4, "S5,SA2")

    changed = invoke(
        database_url, ["env", "update", "batch", "--allocation-strategy", "COST_OPTIMIZED"]
    )
    assert changed.exit_code == 0, changed.output
    assert _row(database_url).allocation_strategy == "COST_OPTIMIZED"


def test_defaults_are_the_priority_order(database_url: str) -> None:
    assert invoke(database_url, CREATE).exit_code == 0
    row = _row(database_url)
    assert (row.allocation_strategy, row.zone_balance, row.max_pool_share) == (
        "PRIORITY",
        "PRIORITY",
        100,
    )
    assert (row.instance_cpu, row.instance_memory, row.instance_families) == (None, None, "")


@pytest.mark.parametrize(
    ("flags", "field"),
    [
        (["--allocation-strategy", "CHEAPEST"], "allocation_strategy"),
        (["--zone-balance", "RANDOM"], "zone_balance"),
        (["--max-pool-share", "0"], "max_pool_share"),
        (["--instance-cpu", "0"], "instance_cpu"),
        (["--instance-families", "s5!"], "instance_families"),
    ],
)
def test_bad_placement_is_refused_and_nothing_written(
    database_url: str, flags: list[str], field: str
) -> None:
    assert invoke(database_url, CREATE).exit_code == 0
    refused = invoke(database_url, ["env", "update", "batch", *flags])
    assert refused.exit_code == 2
    assert field in refused.output
    assert _row(database_url).allocation_strategy == "PRIORITY", "nothing written"


def test_the_database_refuses_what_sql_can_check(database_url: str) -> None:
    assert invoke(database_url, CREATE).exit_code == 0
    for column, value in (("max_pool_share", 0), ("allocation_strategy", "CHEAP")):
        with pytest.raises(sa.exc.IntegrityError) as caught:
            _run(database_url, sa.update(compute_environments).values({column: value}))
        assert column in str(caught.value)
    assert _row(database_url).max_pool_share == 100


def test_families_may_stand_instead_of_the_instance_type(database_url: str) -> None:
    without_type = [a for a in CREATE if a not in ("--instance-type", "S2.MEDIUM4")]
    refused = invoke(database_url, without_type)
    assert refused.exit_code == 2
    assert "instance_type" in refused.output
    made = invoke(
        database_url,
        [*without_type, "--allocation-strategy", "COST_OPTIMIZED", "--instance-families", "SA2"],
    )
    assert made.exit_code == 0, made.output
    row = _row(database_url)
    assert (row.instance_type, row.instance_families) == ("", "SA2")
