"""``spot-controller whatif``: a trace replayed against the real planner and engine.

Small traces written here, so the expected figures follow from the market by hand: the
floor is the desired count in the cheapest pool for the trace's length, and a strategy
that takes the cheapest pool costs the floor less what the launch delay leaves unbilled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from controller.simulator.trace import load
from controller.whatif import floor, replay
from tests.cli.test_capacity_cli import CREATE, invoke

HEADER = "t_s,zone,instance_type,price,stock,on_demand_price,on_demand_stock\n"
ENV = {
    "name": "w",
    "zone": "ap-guangzhou-3",
    "fallback_zones": "ap-guangzhou-4",
    "instance_type": "S2.MEDIUM4",
    "fallback_instance_types": "S5.MEDIUM4",
    "image_id": "img-pmqg1cw7",
    "max_price": "0.60",
    "desired_count": 4,
}


def _trace(tmp_path: Path) -> Path:
    """Two hours; S5.MEDIUM4 in ap-guangzhou-4 is the cheapest, until it is cut to 2 at 1 h."""
    path = tmp_path / "trace.csv"
    path.write_text(
        HEADER
        + "0,ap-guangzhou-3,S2.MEDIUM4,0.20,100,0.6,1000\n"
        + "0,ap-guangzhou-4,S2.MEDIUM4,0.30,100,0.6,1000\n"
        + "0,ap-guangzhou-3,S5.MEDIUM4,0.25,100,0.6,1000\n"
        + "0,ap-guangzhou-4,S5.MEDIUM4,0.10,100,0.6,1000\n"
        + "3600,ap-guangzhou-4,S5.MEDIUM4,0.10,2,,\n"
        + "7200,ap-guangzhou-4,S5.MEDIUM4,0.10,2,,\n"
    )
    return path


def _rows(result: Result) -> dict[str, dict[str, Any]]:
    assert result.exit_code == 0, result.output
    return {r["strategy"]: r for r in json.loads(result.output)}


def test_floor_places_the_desired_count_in_the_cheapest_pools_with_stock(tmp_path: Path) -> None:
    trace = load(_trace(tmp_path))
    # hour 1: 4 x 0.10; hour 2: 2 x 0.10 + 2 x 0.20 (the next cheapest)
    assert floor.floor_cost(trace, [ENV], "ap-guangzhou") == pytest.approx(0.4 + 0.2 + 0.4)


async def test_replay_bills_what_ran_and_counts_the_reclaims(tmp_path: Path) -> None:
    trace = load(_trace(tmp_path))
    result = await replay.run(trace, [ENV], "COST_OPTIMIZED", step_s=60)
    assert result.interruptions == 2  # the cut at 1 h reclaims two of the four
    assert 0.95 < result.coverage < 1.0  # the launch delay, and the replacements' delay
    # every instance-hour was bought at 0.10 or, after the cut, at 0.20
    assert 0.10 * result.instance_hours <= result.cost_cny <= 0.20 * result.instance_hours
    assert result.on_demand_hours == 0
    assert result.series[-1].running == 4
    priority = await replay.run(trace, [ENV], "PRIORITY", step_s=60)
    assert priority.cost_cny == pytest.approx(0.20 * priority.instance_hours)  # S2 in zone 3
    assert priority.interruptions == 0


def test_cli_replays_each_strategy_beside_the_floor(tmp_path: Path, database_url: str) -> None:
    plot = tmp_path / "whatif.png"
    flags = [
        *("--trace", str(_trace(tmp_path)), "--strategy", "priority,COST_OPTIMIZED"),
        *("--zone", "ap-guangzhou-3", "--fallback-zones", "ap-guangzhou-4"),
        *("--instance-type", "S2.MEDIUM4", "--fallback-instance-types", "S5.MEDIUM4"),
        *("--image-id", "img-pmqg1cw7", "--max-price", "0.6", "--desired", "4"),
        *("--plot", str(plot), "--output", "json"),
    ]
    rows = _rows(invoke(database_url, ["whatif", *flags]))
    assert set(rows) == {"PRIORITY", "COST_OPTIMIZED", "hindsight floor"}
    assert rows["hindsight floor"]["cost_cny"] == pytest.approx(1.0)
    assert rows["COST_OPTIMIZED"]["cost_cny"] < rows["PRIORITY"]["cost_cny"]
    assert rows["PRIORITY"]["vs_floor"] > 1
    assert rows["COST_OPTIMIZED"]["interruptions"] == 2
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = invoke(database_url, ["whatif", *flags[:-2]])
    assert table.exit_code == 0
    assert "hindsight floor" in table.output


def test_cli_replays_a_stored_environment(tmp_path: Path, database_url: str) -> None:
    made = invoke(database_url, [*CREATE, "--fallback-instance-types", "S5.MEDIUM4"])
    assert made.exit_code == 0, made.output
    flags = ["--trace", str(_trace(tmp_path)), "--env", "batch", "--output", "json"]
    rows = _rows(invoke(database_url, ["whatif", *flags, "--strategy", "PRIORITY"]))
    assert rows["PRIORITY"]["instance_hours"] > 0
    spec = tmp_path / "env.json"
    spec.write_text(json.dumps(ENV))
    rows = _rows(
        invoke(
            database_url,
            [
                "whatif",
                "--trace",
                str(_trace(tmp_path)),
                "--spec",
                str(spec),
                "--strategy",
                "COST_OPTIMIZED",
                "--output",
                "json",
            ],
        )
    )
    assert rows["COST_OPTIMIZED"]["interruptions"] == 2


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--env", "batch", "--strategy", "CHEAPEST"], "strategy"),
        ([], "environment"),
        (["--env", "nope"], "env"),
        (["--zone", "ap-guangzhou-3"], "instance_type"),
    ],
)
def test_cli_refuses_bad_input_naming_the_field(
    tmp_path: Path, database_url: str, args: list[str], field: str
) -> None:
    assert invoke(database_url, CREATE).exit_code == 0
    refused = invoke(database_url, ["whatif", "--trace", str(_trace(tmp_path)), *args])
    assert refused.exit_code == 2, refused.output
    assert field in refused.output
