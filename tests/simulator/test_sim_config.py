"""SimulatorConfig: the default market, files in JSON and TOML, and their errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from controller import settings
from controller.core.regions import BY_NAME, region_of_zone
from controller.errors import ConfigError
from controller.simulator import Simulator, SimulatorConfig
from controller.simulator.limits import TENCENT_RATE_LIMITS
from tests.simulator.helpers import FakeClock


def test_default_market() -> None:
    config = SimulatorConfig.default()
    pools = {(p.zone, p.instance_type): p for p in config.markets}
    seed_pool = pools[("ap-guangzhou-3", "S2.MEDIUM4")]
    assert seed_pool.price < 0.60
    assert (seed_pool.stock, seed_pool.quota, seed_pool.cpu, seed_pool.memory) == (
        5000,
        10000,
        2,
        4,
    )
    zones = {p.zone for p in config.markets}
    regions = {region_of_zone(z) for z in zones}
    assert regions == {
        "ap-guangzhou",
        "ap-shanghai",
        "ap-beijing",
        "ap-nanjing",
        "ap-chengdu",
        "ap-hongkong",
        "ap-singapore",
    }
    # the one list of regions and zones: the market sells nowhere else
    assert all(z in BY_NAME[region_of_zone(z)].zones for z in zones)
    assert {"ap-guangzhou-3", "ap-guangzhou-7", "ap-shanghai-5", "ap-beijing-6"} <= zones
    on_demand_only = {(p.zone, p.instance_type) for p in config.markets if not p.spot}
    assert on_demand_only == {
        ("ap-guangzhou-3", "GN7.2XLARGE32"),
        ("ap-shanghai-4", "GN7.2XLARGE32"),
    }
    types = {p.instance_type for p in config.markets}
    assert {"S2.MEDIUM4", "S5.MEDIUM4", "S5.LARGE8", "SA2.MEDIUM4", "SA3.LARGE8"} <= types
    assert "img-pmqg1cw7" in config.images
    assert config.faults.rate_limits == dict(TENCENT_RATE_LIMITS)
    assert (config.launch_delay_s, config.terminate_delay_s) == (3.0, 1.0)
    assert config.auth_enabled


def test_credentials_and_region_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY", "TENCENTCLOUD_REGION"):
        monkeypatch.delenv(name, raising=False)
    config = SimulatorConfig.default()
    assert (config.secret_id, config.secret_key, config.region) == (
        settings.SIMULATOR_SECRET_ID,
        settings.SIMULATOR_SECRET_KEY,
        "ap-guangzhou",
    )
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", "AKIDmine")
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", "my-key")
    monkeypatch.setenv("TENCENTCLOUD_REGION", "ap-shanghai")
    config = SimulatorConfig.default()
    assert (config.secret_id, config.secret_key, config.region) == (
        "AKIDmine",
        "my-key",
        "ap-shanghai",
    )
    assert "my-key" not in repr(config)


def test_the_documented_example_file_parses(tmp_path: Path) -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "simulator.md").read_text()
    example = guide.split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "simulator.toml"
    path.write_text(example)
    config = SimulatorConfig.from_file(path)
    assert [(p.zone, p.instance_type, p.stock) for p in config.markets] == [
        ("ap-guangzhou-3", "S2.MEDIUM4", 200),
        ("ap-guangzhou-4", "S5.MEDIUM4", 5000),
    ]
    assert config.markets[0].on_demand_price == pytest.approx(0.6)
    assert config.faults.rate_limits == {
        **TENCENT_RATE_LIMITS,
        "RunInstances": 5.0,
        "DescribeInstances": None,
    }
    assert [(e.at_s, e.action) for e in config.scenario] == [(30, "market"), (60, "faults")]
    assert config.scenario[0].payload == {
        "zone": "ap-guangzhou-3",
        "instance_type": "S2.MEDIUM4",
        "stock": 0,
    }
    Simulator(config, seed=1, clock=FakeClock())


def test_json_file(tmp_path: Path) -> None:
    path = tmp_path / "sim.json"
    path.write_text(
        json.dumps(
            {
                "auth_enabled": False,
                "launch_delay_s": 0,
                "markets": [{"zone": "ap-shanghai-2", "instance_type": "SA2.LARGE8", "price": 0.2}],
                "faults": {"rate_limits": None, "describe_lag_s": 1.5},
                "scenario": [{"at_s": 5, "action": "reclaim", "fraction": 0.5}],
            }
        )
    )
    config = SimulatorConfig.from_file(path)
    assert not config.auth_enabled
    assert config.launch_delay_s == 0.0
    assert (config.markets[0].cpu, config.markets[0].memory) == (4, 8)
    assert config.faults.rate_limits == {}
    assert config.faults.describe_lag_s == 1.5
    assert config.scenario[0].payload == {"fraction": 0.5}


def test_dataclasses_replace_works_on_the_default() -> None:
    config = dataclasses.replace(SimulatorConfig.default(), launch_delay_s=0.2)
    assert config.launch_delay_s == 0.2
    Simulator(config, seed=None)


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("bad.toml", "launch_delay_s = = 3\n", "not valid TOML"),
        ("bad.json", '{"launch_delay_s": 3,}', "not valid JSON: Expecting property name"),
        ("type.toml", 'launch_delay_s = "fast"\n', "launch_delay_s: expected a number, got 'fast'"),
        ("type.json", '{"auth_enabled": "yes"}', "auth_enabled: expected true or false"),
        ("unknown.toml", "[faults]\neror_rate = 0.1\n", "faults.eror_rate: unknown field"),
        ("unknown.json", '{"launch_delay": 1}', "launch_delay: unknown field"),
        (
            "range.toml",
            '[[markets]]\nzone = "ap-guangzhou-3"\ninstance_type = "S5.MEDIUM4"\nprice = 0.1\n'
            '[[markets]]\nzone = "ap-guangzhou-3"\ninstance_type = "S5.LARGE8"\nprice = -1\n',
            "markets[1].price: must be greater than 0",
        ),
        (
            "missing.toml",
            '[[markets]]\nzone = "ap-guangzhou-3"\nprice = 0.1\n',
            "markets[0].instance_type: is required",
        ),
        (
            "dup.toml",
            '[[markets]]\nzone = "ap-guangzhou-3"\ninstance_type = "S5.MEDIUM4"\nprice = 0.1\n'
            '[[markets]]\nzone = "ap-guangzhou-3"\ninstance_type = "S5.MEDIUM4"\nprice = 0.2\n',
            "markets[1]: ap-guangzhou-3 / S5.MEDIUM4 is listed twice",
        ),
        (
            "rate.toml",
            "launch_failure_rate = 1.5\n",
            "launch_failure_rate: must be between 0 and 1",
        ),
        (
            "limits.toml",
            '[faults]\nrate_limits = { RunInstances = "x" }\n',
            "faults.rate_limits.RunInstances: expected a number",
        ),
        (
            "scenario.toml",
            '[[scenario]]\nat_s = 1\naction = "market"\nzone = "ap-guangzhou-3"\n'
            'instance_type = "S5.MEDIUM4"\nstock = -2\n',
            "scenario[0].stock: must be at least 0",
        ),
        (
            "action.toml",
            '[[scenario]]\nat_s = 1\naction = "explode"\n',
            "scenario[0].action: must be one of market, reclaim, release, faults",
        ),
        ("image.json", '{"images": ["ubuntu"]}', "images[0]: must look like img-xxxxxxxx"),
        ("top.json", "[1, 2]", "(top level): must be a table/object"),
        ("sim.yaml", "a: 1\n", "unsupported extension '.yaml'"),
    ],
)
def test_bad_files_name_the_file_field_and_rule(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        SimulatorConfig.from_file(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: ")
    assert expected in message


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        SimulatorConfig.from_file(tmp_path / "nope.toml")


def test_simulator_validates_a_config_built_in_code() -> None:
    config = SimulatorConfig.default()
    config.terminate_delay_s = -1
    with pytest.raises(ConfigError, match="terminate_delay_s: must be at least 0"):
        Simulator(config)
