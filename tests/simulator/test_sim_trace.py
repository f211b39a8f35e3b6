"""Market traces: parsing (errors name the line and field), replay into the world (a stock
cut reclaims the newest first), the seeded generator and the shipped 24-hour trace."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from controller.cli import main
from controller.errors import ConfigError
from controller.simulator import Simulator
from controller.simulator.instance import EndReason, LaunchSpec, State
from controller.simulator.trace import TracePlayer, TraceRow, load, parse_rows, write
from controller.simulator.tracegen import generate, shipped_pools
from tests.simulator.helpers import FakeClock

SHIPPED = Path(__file__).resolve().parents[1] / "data" / "market-24h.csv"
HEADER = "t_s,zone,instance_type,price,stock\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("t_s,zone,price,stock\n0,ap-guangzhou-3,0.1,5\n", "lacks instance_type"),
        (HEADER + "0,guangzhou,S5.MEDIUM4,0.1,5\n", "line 2: zone 'guangzhou' is malformed"),
        (
            HEADER + "0,ap-guangzhou-3,S5.MEDIUM4,0.1,5\nx,ap-guangzhou-3,S5.MEDIUM4,0.1,5\n",
            "line 3: t_s",
        ),
        (HEADER + "0,ap-guangzhou-3,S5.MEDIUM4,0.1,-1\n", "line 2: stock"),
        (HEADER + "0,ap-guangzhou-3,S5.MEDIUM4,0,5\n", "price must be greater than 0"),
        (HEADER.strip() + ",colour\n0,ap-guangzhou-3,S5.MEDIUM4,0.1,5,red\n", "unknown column"),
        (HEADER, "no rows"),
    ],
)
def test_bad_traces_name_the_line_and_field(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_rows(text.splitlines(keepends=True), "t.csv")
    assert message in str(caught.value)


def _launch(sim: Simulator, count: int, now: float) -> list[str]:
    spec = LaunchSpec(
        region="ap-guangzhou",
        zone="ap-guangzhou-3",
        instance_type="S2.MEDIUM4",
        image_id="img-pmqg1cw7",
        count=count,
        charge_type="SPOTPAID",
    )
    with sim.lock:
        return list(sim.world.launch(spec, now, "req"))


def test_a_stock_below_the_alive_reclaims_the_newest_first() -> None:
    clock = FakeClock()
    sim = Simulator(seed=1, clock=clock)
    first = _launch(sim, 3, clock())
    clock.advance(10)
    later = _launch(sim, 2, clock())
    clock.advance(10)
    sim.advance()
    rows = parse_rows(
        [
            HEADER,
            "0,ap-guangzhou-3,S2.MEDIUM4,0.2,5\n",
            "30,ap-guangzhou-3,S2.MEDIUM4,0.3,3\n",
            "60,ap-guangzhou-9,S5.MEDIUM4,0.1,7\n",  # a pool the market lacks is created
        ],
        "t.csv",
    )
    player = TracePlayer(sim, rows)
    assert player.apply_due(0) == 0
    assert sim.world.pools[("ap-guangzhou-3", "S2.MEDIUM4")].price == 0.2
    assert player.apply_due(29) == 0
    assert player.apply_due(30) == 2
    world = sim.world
    reclaimed = [i for i, x in world.instances.items() if x.ending_reason == EndReason.RECLAIMED]
    assert sorted(reclaimed) == sorted(later)
    assert all(world.instances[i].state == State.RUNNING for i in first)
    assert world.pools[("ap-guangzhou-3", "S2.MEDIUM4")].status_category == "WithoutStock"
    player.apply_due(60)
    assert world.pools[("ap-guangzhou-9", "S5.MEDIUM4")].capacity == 7
    assert player.done


def test_the_generator_is_seeded_and_storms_are_correlated_per_zone(tmp_path: Path) -> None:
    pools = shipped_pools(16)
    rows = generate(pools, seed=3, hours=24, storms_per_day=3)
    assert rows == generate(pools, seed=3, hours=24, storms_per_day=3)
    assert rows != generate(pools, seed=4, hours=24, storms_per_day=3)
    base = {(p.zone, p.instance_type): p for p in pools}
    stock = {key: model.stock for key, model in base.items()}
    storms = 0
    for t in sorted({r.t_s for r in rows}):
        for row in rows:
            if row.t_s == t:
                model = base[row.pool]
                assert 0.7 * model.price - 1e-4 <= row.price <= 1.3 * 1.2 * model.price + 1e-4
                assert int(0.05 * model.stock) <= row.stock <= model.stock
                stock[row.pool] = row.stock
        # a storm cuts every pool of its zone at once
        for zone in {z for z, _ in base}:
            cut = [stock[k] < base[k].stock for k in base if k[0] == zone]
            assert all(cut) or not any(cut), (t, zone)
            storms += all(cut)
    assert storms
    path = tmp_path / "t.csv"
    write(path, rows)
    assert load(path).rows == tuple(sorted(rows, key=lambda r: r.t_s))


def test_the_shipped_trace_is_a_day_of_twelve_pools() -> None:
    shipped = load(SHIPPED)
    assert shipped.duration_s == 86400
    assert len(shipped.pools) == 12
    assert SHIPPED.stat().st_size < 50_000
    assert all(isinstance(r, TraceRow) for r in shipped.rows)
    assert shipped.rows == tuple(
        sorted(generate(shipped_pools(16), seed=16, hours=24), key=lambda r: r.t_s)
    )


def test_serve_refuses_a_bad_trace_naming_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "0,ap-guangzhou-3,S5.MEDIUM4,abc,5\n")
    result = CliRunner().invoke(main, ["simulator", "serve", "--port", "0", "--trace", str(bad)])
    assert result.exit_code == 2
    assert "line 2: price" in result.output


def test_trace_command_writes_the_seeded_model(tmp_path: Path) -> None:
    out = tmp_path / "t.csv"
    args = ["simulator", "trace", "--seed", "16", "--hours", "24", "--output", str(out)]
    assert CliRunner().invoke(main, args).exit_code == 0
    assert out.read_bytes() == SHIPPED.read_bytes()
