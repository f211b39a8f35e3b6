"""``spot-controller offerings`` against the simulator over real HTTP: what the cache reads."""

from __future__ import annotations

import json
import os

from click.testing import CliRunner, Result

from controller.cli import main
from controller.settings import SIMULATOR_SECRET_ID, SIMULATOR_SECRET_KEY
from tests.support.world import fast_simulator, simulator_server


def invoke(base_url: str, args: list[str]) -> Result:
    unset: dict[str, str | None] = {
        k: None for k in os.environ if k.startswith(("SPOT_CONTROLLER_", "TENCENTCLOUD_"))
    }
    env = {
        **unset,
        "SPOT_CONTROLLER_CVM_ENDPOINT": base_url,
        "TENCENTCLOUD_SECRET_ID": SIMULATOR_SECRET_ID,
        "TENCENTCLOUD_SECRET_KEY": SIMULATOR_SECRET_KEY,
    }
    return CliRunner().invoke(main, ["offerings", *args], env=env)


def test_offerings_show_price_stock_and_size_and_follow_the_market() -> None:
    sim = fast_simulator()
    with simulator_server(sim) as base_url:
        shown = invoke(base_url, ["--zone", "ap-guangzhou-3", "--output", "json"])
        assert shown.exit_code == 0, shown.output
        rows = json.loads(shown.output)
        pools = [p for p in sim.world.pools.values() if p.zone == "ap-guangzhou-3"]
        spot = [r for r in rows if r["charge_type"] == "SPOTPAID"]
        assert {r["instance_type"] for r in spot} == {p.instance_type for p in pools if p.spot}
        assert len({r["instance_type"] for r in rows}) >= 12  # the wide market
        s2 = next(r for r in spot if r["instance_type"] == "S2.MEDIUM4")
        assert (s2["status"], s2["stock_class"], s2["cpu"], s2["memory"]) == (
            "SELL",
            "EnoughStock",
            2,
            4,
        )
        assert float(s2["price"]) == sim.world.pools[("ap-guangzhou-3", "S2.MEDIUM4")].price

        sim.world.pools[("ap-guangzhou-3", "S2.MEDIUM4")].capacity = 5  # 1-9 left: UnderStock
        narrowed = invoke(
            base_url,
            [
                *("--zone", "ap-guangzhou-3", "--instance-type", "S2.MEDIUM4"),
                *("--charge-type", "SPOTPAID", "--output", "json"),
            ],
        )
        assert narrowed.exit_code == 0, narrowed.output
        [row] = json.loads(narrowed.output)
        assert row["stock_class"] == "UnderStock"
        table = invoke(base_url, ["--zone", "ap-guangzhou-3", "--charge-type", "SPOTPAID"])
        assert table.exit_code == 0
        assert "CNY/vCPU-h" in table.output


def test_bad_filters_name_the_field() -> None:
    refused = invoke("http://127.0.0.1:9", ["--zone", "ap-shanghai-2"])
    assert refused.exit_code == 2
    assert "zone" in refused.output
