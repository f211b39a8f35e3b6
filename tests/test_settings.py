"""Settings of the region: TENCENTCLOUD_REGION is checked against the one list of regions.

Table cases read ``Settings.from_env`` with exactly the variables named; the CLI cases run the
real console script and check the one line and exit code 2 of every command that reads settings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from controller.core.regions import REGIONS, known_region_names
from controller.errors import ConfigError
from controller.settings import Settings
from tests.reliability.helpers import one_line_error, run_cli

KNOWN = ", ".join(known_region_names())
UNKNOWN_MARS = (
    f"TENCENTCLOUD_REGION: 'mars-1' is not a Tencent Cloud region; known regions: {KNOWN} "
    "(for a region newer than this list, add it to SPOT_CONTROLLER_EXTRA_REGIONS)"
)


@dataclass(frozen=True)
class Case:
    variables: dict[str, str]
    region: str | None = None  # accepted: the region read
    extra: tuple[str, ...] = ()  # accepted: the extra regions read
    error: str | None = None  # refused: the whole message
    contains: list[str] = field(default_factory=list)  # refused: parts of the message


CASES = {
    "default": Case({}, region="ap-guangzhou"),
    "known": Case({"TENCENTCLOUD_REGION": "ap-singapore"}, region="ap-singapore"),
    "finance-region": Case({"TENCENTCLOUD_REGION": "ap-shanghai-fsi"}, region="ap-shanghai-fsi"),
    "surrounding-spaces-trimmed": Case({"TENCENTCLOUD_REGION": " ap-tokyo "}, region="ap-tokyo"),
    "unknown": Case({"TENCENTCLOUD_REGION": "mars-1"}, error=UNKNOWN_MARS),
    "unknown-looks-like-a-region": Case(
        {"TENCENTCLOUD_REGION": "ap-newcity"},
        contains=["TENCENTCLOUD_REGION: 'ap-newcity' is not a Tencent Cloud region", KNOWN],
    ),
    "uppercase": Case(
        {"TENCENTCLOUD_REGION": "AP-GUANGZHOU"},
        contains=["'AP-GUANGZHOU' is not a Tencent Cloud region"],
    ),
    "a-zone-instead-of-a-region": Case(
        {"TENCENTCLOUD_REGION": "ap-guangzhou-3"},
        error="TENCENTCLOUD_REGION: 'ap-guangzhou-3' is a zone; its region is 'ap-guangzhou'",
    ),
    "chinese-display-name": Case(
        {"TENCENTCLOUD_REGION": "华南地区(广州)"},
        contains=["'华南地区(广州)' is not a Tencent Cloud region"],
    ),
    "extra-allows-a-newer-region": Case(
        {"TENCENTCLOUD_REGION": "ap-newcity", "SPOT_CONTROLLER_EXTRA_REGIONS": "ap-newcity"},
        region="ap-newcity",
        extra=("ap-newcity",),
    ),
    "extra-list-trimmed-and-deduplicated": Case(
        {
            "TENCENTCLOUD_REGION": "eu-newcity",
            "SPOT_CONTROLLER_EXTRA_REGIONS": " ap-newcity , eu-newcity,,ap-newcity ",
        },
        region="eu-newcity",
        extra=("ap-newcity", "eu-newcity"),
    ),
    "extra-set-known-region-still-fine": Case(
        {"TENCENTCLOUD_REGION": "ap-beijing", "SPOT_CONTROLLER_EXTRA_REGIONS": "ap-newcity"},
        region="ap-beijing",
        extra=("ap-newcity",),
    ),
    "extra-does-not-allow-another-region": Case(
        {"TENCENTCLOUD_REGION": "mars-1", "SPOT_CONTROLLER_EXTRA_REGIONS": "ap-newcity"},
        error=UNKNOWN_MARS,
    ),
    "extra-malformed": Case(
        {"TENCENTCLOUD_REGION": "ap-guangzhou", "SPOT_CONTROLLER_EXTRA_REGIONS": "Mars 1"},
        error="SPOT_CONTROLLER_EXTRA_REGIONS: 'Mars 1' is not a region name "
        "(lowercase words joined by '-', e.g. ap-newcity)",
    ),
    "extra-a-zone": Case(
        {"TENCENTCLOUD_REGION": "ap-guangzhou", "SPOT_CONTROLLER_EXTRA_REGIONS": "ap-newcity-1"},
        contains=["SPOT_CONTROLLER_EXTRA_REGIONS: 'ap-newcity-1' is not a region name"],
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_region_settings(case: Case) -> None:
    if case.error is None and not case.contains:
        settings = Settings.from_env(case.variables)
        assert settings.region == case.region
        assert settings.extra_regions == case.extra
        return
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(case.variables)
    message = str(caught.value)
    assert "\n" not in message
    if case.error is not None:
        assert message == case.error
    for part in case.contains:
        assert part in message, message


@pytest.mark.parametrize("region", REGIONS, ids=[r.name for r in REGIONS])
def test_every_listed_region_is_accepted(region: object) -> None:
    from controller.core.regions import Region

    assert isinstance(region, Region)
    assert Settings.from_env({"TENCENTCLOUD_REGION": region.name}).region == region.name


def test_config_shows_the_extra_regions() -> None:
    settings = Settings.from_env(
        {"TENCENTCLOUD_REGION": "ap-newcity", "SPOT_CONTROLLER_EXTRA_REGIONS": "ap-newcity,eu-x"}
    )
    shown = {row["env"]: row["value"] for row in settings.describe()}
    assert shown["TENCENTCLOUD_REGION"] == "ap-newcity"
    assert shown["SPOT_CONTROLLER_EXTRA_REGIONS"] == "ap-newcity,eu-x"


# ----- the command line -----------------------------------------------------------------

# Every kind of command reads the settings first; none may run on an unknown region.
COMMANDS = {
    "config": ["config"],
    "config-json": ["config", "--output", "json"],
    "env-list": ["env", "list"],
    "env-create": [
        "env",
        "create",
        "测试环境",
        "--zone",
        "ap-guangzhou-3",
        "--instance-type",
        "S2.MEDIUM4",
        "--image-id",
        "img-pmqg1cw7",
        "--max-price",
        "0.5",
        "--desired",
        "1",
    ],
    "db-current": ["db", "current"],
    "db-upgrade": ["db", "upgrade"],
    "run": ["run"],
    "run-simulate": ["run", "--simulate", "--simulator-port", "0"],
    "simulator-serve": ["simulator", "serve", "--host", "127.0.0.1", "--port", "0"],
    "status": ["status", "--once"],
}


@pytest.mark.parametrize("args", COMMANDS.values(), ids=list(COMMANDS))
def test_unknown_region_is_one_line_and_exit_2_for_every_command(
    tmp_path: Path, args: list[str]
) -> None:
    db = tmp_path / "spot-controller.db"
    variables = {
        "TENCENTCLOUD_REGION": "mars-1",
        "SPOT_CONTROLLER_DATABASE_URL": f"sqlite:///{db}",
    }
    result = run_cli(args, variables, cwd=tmp_path)
    assert one_line_error(result) == f"error: {UNKNOWN_MARS}"
    assert not db.exists()  # nothing was opened, let alone written


def test_extra_region_lets_the_cli_run(tmp_path: Path) -> None:
    variables = {
        "TENCENTCLOUD_REGION": "ap-newcity",
        "SPOT_CONTROLLER_EXTRA_REGIONS": "ap-newcity",
        "SPOT_CONTROLLER_DATABASE_URL": f"sqlite:///{tmp_path}/spot-controller.db",
    }
    result = run_cli(["config", "--output", "json"], variables, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    shown = {row["env"]: row["value"] for row in json.loads(result.stdout)}
    assert shown["TENCENTCLOUD_REGION"] == "ap-newcity"
    assert shown["SPOT_CONTROLLER_EXTRA_REGIONS"] == "ap-newcity"
    # ... and a zone of the new region is accepted, one of another region is not.
    create = [
        "env",
        "create",
        "新城",
        "--instance-type",
        "S2.MEDIUM4",
        "--image-id",
        "img-pmqg1cw7",
        "--max-price",
        "0.5",
        "--desired",
        "0",
    ]
    migrated = run_cli(["db", "upgrade"], variables)
    assert migrated.returncode == 0, migrated.stderr
    made = run_cli([*create, "--zone", "ap-newcity-1", "--output", "json"], variables)
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["zone"] == "ap-newcity-1"
    refused = run_cli([*create, "--zone", "ap-guangzhou-3"], variables)
    assert one_line_error(refused) == (
        "error: zone: 'ap-guangzhou-3' is not in the region 'ap-newcity'"
    )


def test_the_simulator_sells_only_in_listed_regions_and_zones() -> None:
    """One list: the simulator's default market is a part of it, never a region of its own."""
    from controller.core.regions import BY_NAME, region_of_zone
    from controller.simulator import SimulatorConfig

    config = SimulatorConfig.default()
    assert config.region in BY_NAME
    for zone in {m.zone for m in config.markets}:
        assert zone in BY_NAME[region_of_zone(zone)].zones, zone
