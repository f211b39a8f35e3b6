"""A catalogue of bad input, one case each, through every door a user has.

Every case checks three things on ground truth: (a) a clear message naming the field (the row's
``status_reason`` and the daemon's log, the database's own refusal, or the CLI's one-line error
with exit code 2); (b) the rest keeps working (a healthy environment still scales and converges
in the simulator, or the same database still serves the CLI); (c) nothing already recorded is
lost (every row, as stored, is unchanged).

CLI cases run the real console script on a seeded SQLite database. Rows are written with plain
SQL, as users do, and reconciled by the real daemon (a subprocess) against the simulator, on
SQLite and on PostgreSQL. Bugs found in modules owned by others are strict xfails, named after
the module, so that they flip when fixed.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from controller.cli import main
from controller.core.model import ENV_TAG
from controller.service import Environments
from controller.store.store import Store
from tests.reliability.fleet import (
    HEALTHY,
    Fleet,
    connected,
    execute,
    insert_row,
    set_desired,
    status_of,
    user_rows,
)
from tests.reliability.helpers import one_line_error, run_cli
from tests.support.polling import eventually
from tests.support.world import World, converged

REGION = "ap-guangzhou"
BASE_ROW = {k: v for k, v in HEALTHY.items() if k != "name"}


# ----- the command line -------------------------------------------------------------------


@dataclass(frozen=True)
class BadCommand:
    args: list[str]
    says: str
    variables: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # written under the test's tmp dir


def _create(*extra: str, **options: str | None) -> list[str]:
    """``env create new`` with valid options, some replaced (None: left out), plus ``extra``."""
    values: dict[str, str | None] = {
        "zone": "ap-guangzhou-3",
        "instance-type": "S2.MEDIUM4",
        "image-id": "img-pmqg1cw7",
        "max-price": "0.50",
        "desired": "1",
    }
    name = options.pop("name", "new")
    values.update({k.replace("_", "-"): v for k, v in options.items()})
    args = ["env", "create", str(name)]
    for option, value in values.items():
        if value is not None:
            args += [f"--{option}", value]
    return [*args, *extra]


SERVE = ["simulator", "serve", "--host", "127.0.0.1", "--port", "0", "--config"]
BIG_SCRIPT = "#!/bin/sh\n" + "x" * 13000

BAD_COMMANDS = {
    "create-count-negative": BadCommand(
        _create(desired="-1"), "desired_count: must be from 0 to 2000, got -1"
    ),
    "create-count-over-2000": BadCommand(
        _create(desired="2001"), "desired_count: must be from 0 to 2000, got 2001"
    ),
    "create-count-not-a-number": BadCommand(
        _create(desired="three"), "Invalid value for '--desired': 'three' is not a valid integer"
    ),
    "scale-count-negative": BadCommand(
        ["env", "scale", "web", "-1"], "desired_count: must be from 0 to 2000, got -1"
    ),
    "create-price-zero": BadCommand(
        _create(max_price="0"), "max_price: must be greater than 0, got '0'"
    ),
    "create-price-abc": BadCommand(
        _create(max_price="abc"), "max_price: must be a number of CNY per hour, got 'abc'"
    ),
    "create-missing-image-id": BadCommand(_create(image_id=None), "Missing option '--image-id'"),
    "show-unknown-name": BadCommand(
        ["env", "show", "nosuch"], "name: no environment named 'nosuch'"
    ),
    "nodes-unknown-name": BadCommand(
        ["env", "nodes", "nosuch"], "name: no environment named 'nosuch'"
    ),
    "tag-without-equals": BadCommand(_create("--tag", "team"), "tag: 'team' must be KEY=VALUE"),
    "user-data-file-over-16KB": BadCommand(
        _create("--user-data-file", "{tmp}/big.sh"),
        "user_data: must be at most 16 KB of base64",
        files={"big.sh": BIG_SCRIPT},
    ),
    "name-duplicate": BadCommand(
        _create(name="web"), "name: an environment named 'web' already exists"
    ),
    "setting-poll-interval-abc": BadCommand(
        ["env", "list"],
        "SPOT_CONTROLLER_POLL_INTERVAL_S: expected a number, got 'abc'",
        {"SPOT_CONTROLLER_POLL_INTERVAL_S": "abc"},
    ),
    "setting-poll-interval-nan": BadCommand(
        ["env", "list"],
        "SPOT_CONTROLLER_POLL_INTERVAL_S: must be a finite number greater than 0",
        {"SPOT_CONTROLLER_POLL_INTERVAL_S": "nan"},
    ),
    "setting-migrate-on-start-maybe": BadCommand(
        ["env", "list"],
        "SPOT_CONTROLLER_MIGRATE_ON_START: expected true or false, got 'maybe'",
        {"SPOT_CONTROLLER_MIGRATE_ON_START": "maybe"},
    ),
    "setting-rate-limits-garbage": BadCommand(
        ["env", "list"],
        "SPOT_CONTROLLER_RATE_LIMITS: expected Action=rate pairs separated by commas, "
        "got 'garbage'",
        {"SPOT_CONTROLLER_RATE_LIMITS": "garbage"},
    ),
    "database-url-malformed": BadCommand(
        ["env", "list"],
        "SPOT_CONTROLLER_DATABASE_URL: not a database URL",
        {"SPOT_CONTROLLER_DATABASE_URL": "not a url"},
    ),
    "database-url-missing-directory": BadCommand(
        ["env", "list"],
        "cannot open database sqlite+aiosqlite:///{tmp}/no/such/dir/spot.db: unable to open",
        {"SPOT_CONTROLLER_DATABASE_URL": "sqlite:///{tmp}/no/such/dir/spot.db"},
    ),
    "simulator-config-toml-syntax": BadCommand(
        [*SERVE, "{tmp}/sim.toml"],
        "{tmp}/sim.toml: not valid TOML",
        files={"sim.toml": "launch_delay_s = = 3\n"},
    ),
    "simulator-config-json-syntax": BadCommand(
        [*SERVE, "{tmp}/sim.json"],
        "{tmp}/sim.json: not valid JSON: Expecting property name",
        files={"sim.json": '{"launch_delay_s": 3,}'},
    ),
    "simulator-config-wrong-type": BadCommand(
        [*SERVE, "{tmp}/sim.toml"],
        "{tmp}/sim.toml: launch_delay_s: expected a number, got 'fast'",
        files={"sim.toml": 'launch_delay_s = "fast"\n'},
    ),
    "simulator-config-unknown-field": BadCommand(
        [*SERVE, "{tmp}/sim.toml"],
        "{tmp}/sim.toml: faults.eror_rate: unknown field",
        files={"sim.toml": "[faults]\neror_rate = 0.1\n"},
    ),
}


def _recorded(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, read with the stdlib driver."""
    with closing(sqlite3.connect(db)) as conn:
        return {
            table: sorted(conn.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
            for table in ("compute_environments", "launches", "compute_nodes", "activities")
        }


def _environments_via_cli(db: Path) -> list[dict[str, Any]]:
    """``env list --output json`` on the same database, as a user runs it next."""
    unset: dict[str, str | None] = {
        k: None for k in os.environ if k.startswith(("SPOT_CONTROLLER_", "TENCENTCLOUD_"))
    }
    result = CliRunner().invoke(
        main,
        ["env", "list", "--output", "json"],
        env={**unset, "SPOT_CONTROLLER_DATABASE_URL": f"sqlite:///{db}"},
    )
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


@pytest.mark.parametrize("case", BAD_COMMANDS.values(), ids=list(BAD_COMMANDS))
def test_bad_command(cli_db: Path, tmp_path: Path, case: BadCommand) -> None:
    def fill(text: str) -> str:
        return text.format(tmp=tmp_path)

    for name, content in case.files.items():
        (tmp_path / name).write_text(content)
    files_before = {name: (tmp_path / name).read_bytes() for name in case.files}
    recorded = _recorded(cli_db)
    shown = _environments_via_cli(cli_db)
    variables = {"SPOT_CONTROLLER_DATABASE_URL": f"sqlite:///{cli_db}"}
    variables.update({k: fill(v) for k, v in case.variables.items()})

    result = run_cli([fill(a) for a in case.args], variables, cwd=tmp_path)

    # (a) one line naming the field, exit code 2
    line = one_line_error(result)
    assert fill(case.says) in line
    # (c) nothing written, nothing lost; (b) the CLI still serves the same rows
    assert _recorded(cli_db) == recorded
    assert {name: (tmp_path / name).read_bytes() for name in case.files} == files_before
    assert _environments_via_cli(cli_db) == shown
    assert [r["name"] for r in shown] == ["batch", "web"]


# ----- bugs found by this catalogue, fixed: kept as regression tests ------------------------

FIXED_BUGS = [
    pytest.param(
        BadCommand(
            ["run"],
            "cannot open database sqlite+aiosqlite:///{tmp}/no/such/dir/spot.db",
            {"SPOT_CONTROLLER_DATABASE_URL": "sqlite:///{tmp}/no/such/dir/spot.db"},
        ),
        id="run-sqlite-in-missing-directory",
    ),
    pytest.param(
        BadCommand(
            ["env", "list"],
            "SPOT_CONTROLLER_DATABASE_URL: not a database URL",
            {"SPOT_CONTROLLER_DATABASE_URL": "postgresql://spot@127.0.0.1:abc/spot"},
        ),
        id="database-url-port-not-a-number",
    ),
]


@pytest.mark.parametrize("case", FIXED_BUGS)
def test_fixed_bug(cli_db: Path, tmp_path: Path, case: BadCommand) -> None:
    variables = {"SPOT_CONTROLLER_DATABASE_URL": f"sqlite:///{cli_db}"}
    variables.update({k: v.format(tmp=tmp_path) for k, v in case.variables.items()})
    result = run_cli(case.args, variables, cwd=tmp_path)
    # `run` logs its start on stdout before it fails; the error itself must be one line.
    result.stdout = "" if case.args == ["run"] else result.stdout
    assert case.says.format(tmp=tmp_path) in one_line_error(result)


def test_cli_still_works_next_to_a_text_price_on_sqlite(cli_db: Path) -> None:
    """A price SQLite stored as text (INVALID for the daemon) is shown as it is, not fatal."""
    before = _environments_via_cli(cli_db)
    with closing(sqlite3.connect(cli_db)) as conn, conn:
        conn.execute(
            "INSERT INTO compute_environments (name, zone, instance_type, image_id, max_price, "
            "desired_count) VALUES ('typo', 'ap-guangzhou-3', 'S2.MEDIUM4', 'img-pmqg1cw7', "
            "'abc', 1)"
        )
    result = run_cli(
        ["env", "list", "--output", "json"], {"SPOT_CONTROLLER_DATABASE_URL": f"sqlite:///{cli_db}"}
    )
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert [r["name"] for r in listed] == ["batch", "typo", "web"]
    assert listed[1]["max_price"] == "abc"
    assert [listed[0], listed[2]] == before


# ----- rows written with SQL, reconciled by the daemon ----------------------------------------


@dataclass(frozen=True)
class Invalid:
    """The row is accepted by the database and reported INVALID, naming ``field``."""

    field: str
    rule: str


@dataclass(frozen=True)
class LaunchRefused:
    """The row is valid, but the cloud refuses the launch: ERROR, with Tencent's code."""

    code: str


@dataclass(frozen=True)
class Rejected:
    """The database refuses the INSERT; its message says ``says``."""

    says: str


Outcome = Invalid | LaunchRefused | Rejected


@dataclass(frozen=True)
class BadRow:
    values: dict[str, Any]
    sqlite: Outcome
    postgresql: Outcome | None = None  # None: as on SQLite

    def expected(self, backend: str) -> Outcome:
        return self.sqlite if backend == "sqlite" or self.postgresql is None else self.postgresql


FULL_WIDTH_HALF = "\uff10.\uff15"  # 0.5 as typed with a Chinese input method


def _type_error(kind: str, value: str) -> Rejected:
    return Rejected(f'invalid input syntax for type {kind}: "{value}"')


BAD_ROWS = {
    # counts
    "count-negative": BadRow(
        {"desired_count": -1}, Rejected("ck_compute_environments_desired_count_range")
    ),
    "count-over-2000": BadRow(
        {"desired_count": 2001}, Rejected("ck_compute_environments_desired_count_range")
    ),
    "count-not-a-number": BadRow(
        {"desired_count": "abc"},
        Rejected("ck_compute_environments_desired_count_range"),  # text > any number
        _type_error("integer", "abc"),
    ),
    "count-fraction": BadRow(
        {"desired_count": "2.5"},
        Invalid("desired_count", "must be a whole number from 0 to 2000, got '2.5'"),
        _type_error("integer", "2.5"),
    ),
    "count-missing": BadRow({"desired_count": None}, Rejected("desired_count")),
    # prices
    "price-zero": BadRow({"max_price": 0}, Rejected("ck_compute_environments_max_price_positive")),
    "price-negative": BadRow(
        {"max_price": -0.5}, Rejected("ck_compute_environments_max_price_positive")
    ),
    "price-not-a-number": BadRow(
        {"max_price": "abc"},
        Invalid("max_price", "must be a number of CNY per hour, got 'abc'"),
        _type_error("numeric", "abc"),
    ),
    "price-full-width-digits": BadRow(
        {"max_price": FULL_WIDTH_HALF},
        Invalid("max_price", f"must be a number of CNY per hour, got '{FULL_WIDTH_HALF}'"),
        _type_error("numeric", FULL_WIDTH_HALF),
    ),
    "price-nan": BadRow(
        {"max_price": "NaN"}, Invalid("max_price", "must be a number of CNY per hour, got 'NaN'")
    ),
    "price-over-10000": BadRow({"max_price": 20000}, Invalid("max_price", "must be at most 10000")),
    # placement and spec
    "zone-malformed": BadRow(
        {"zone": "AP_GUANGZHOU_3"}, Invalid("zone", "'AP_GUANGZHOU_3' is malformed")
    ),
    "zone-outside-region": BadRow(
        {"zone": "ap-shanghai-2"}, Invalid("zone", "'ap-shanghai-2' is not in the region")
    ),
    "fallback-zone-malformed": BadRow(
        {"fallback_zones": "ap-guangzhou-4, gz6"}, Invalid("fallback_zones", "'gz6' is malformed")
    ),
    "instance-type-malformed": BadRow(
        {"instance_type": "s2.medium4"}, Invalid("instance_type", "'s2.medium4' is malformed")
    ),
    "instance-types-over-10": BadRow(
        {"fallback_instance_types": ",".join(f"S{n}.MEDIUM4" for n in range(3, 13))},
        Invalid("fallback_instance_types", "at most 10 instance types"),
    ),
    "image-id-malformed": BadRow(
        {"image_id": "ubuntu-22.04"}, Invalid("image_id", "'ubuntu-22.04' is malformed")
    ),
    "security-group-malformed": BadRow(
        {"security_group_ids": "sg-0a1b2c3d,default"},
        Invalid("security_group_ids", "'default' is malformed"),
    ),
    "vpc-id-malformed": BadRow(
        {"vpc_id": "vpc-XYZ", "subnet_id": "subnet-0a1b2c3d"},
        Invalid("vpc_id", "'vpc-XYZ' is malformed"),
    ),
    "subnet-without-vpc": BadRow(
        {"subnet_id": "subnet-0a1b2c3d"},
        Invalid("vpc_id", "vpc_id and subnet_id must be given together"),
    ),
    "key-id-malformed": BadRow({"key_ids": "my-key"}, Invalid("key_ids", "'my-key' is malformed")),
    "project-id-not-a-number": BadRow(
        {"project_id": "abc"},
        Invalid("project_id", "must be a whole number"),
        _type_error("integer", "abc"),
    ),
    # names
    "name-over-60-characters": BadRow(
        {"name": "n" * 61}, Invalid("name", "must be at most 60 characters")
    ),
    "name-with-slash": BadRow({"name": "web/prod"}, Invalid("name", "may contain only letters")),
    "name-empty": BadRow({"name": ""}, Rejected("ck_compute_environments_name_not_empty")),
    "name-duplicate": BadRow(
        {"name": "healthy"},
        Rejected("UNIQUE constraint failed: compute_environments.name"),
        Rejected("uq_compute_environments_name"),
    ),
    # user data and tags
    "user-data-over-16KB": BadRow(
        {"user_data": base64.b64encode(b"#!/bin/sh\n" + b"x" * 13000).decode()},
        Invalid("user_data", "must be at most 16 KB of base64"),
    ),
    "user-data-not-base64": BadRow(
        {"user_data": "#!/bin/sh\necho hello"}, Invalid("user_data", "must be base64")
    ),
    "tags-not-an-object": BadRow(
        {"tags": '["team", "ml"]'}, Invalid("tags", "must be a JSON object")
    ),
    "tags-not-json": BadRow({"tags": "team=ml"}, Invalid("tags", "must be a JSON object")),
    "tags-reserved-prefix": BadRow(
        {"tags": '{"spot-controller:cluster": "other"}'},
        Invalid("tags", "keys starting with 'spot-controller:' are reserved"),
    ),
    # valid rows the cloud refuses: ERROR, retried slowly, nobody else affected
    "instance-type-not-sold": BadRow(
        {"instance_type": "GN10X.2XLARGE40"},
        LaunchRefused("InvalidParameterValue.InstanceTypeNotFound"),
    ),
    "zone-not-sold": BadRow(
        {"zone": "ap-guangzhou-1"}, LaunchRefused("InvalidParameterValue.ZoneNotSupported")
    ),
    "image-not-found": BadRow(
        {"image_id": "img-00000000"}, LaunchRefused("InvalidImageId.NotFound")
    ),
}


async def _never_launched(world: World, env_id: str) -> None:
    launched = [
        i for i in await world.instances(include_gone=True) if i["Tags"].get(ENV_TAG) == env_id
    ]
    assert launched == []


async def _flagged(fleet: Fleet, store: Store, name: str, outcome: Outcome) -> dict[str, Any]:
    """Wait for the row's status and the daemon's log line; check both name the problem."""
    want = "INVALID" if isinstance(outcome, Invalid) else "ERROR"

    async def reported() -> bool:
        row = await status_of(store, name)
        return row is not None and row["status"] == want

    await eventually(reported, within_s=10, what=f"{want} on {name!r}")
    row = await status_of(store, name)
    assert row is not None
    reason = row["status_reason"]
    if isinstance(outcome, Invalid):
        assert reason.startswith(f"invalid {outcome.field}: "), reason
        assert outcome.rule in reason, reason
        event, fields = "env_invalid", {"reason": reason}
    else:
        assert isinstance(outcome, LaunchRefused)
        assert reason.startswith("short by 1: "), reason
        assert f"{outcome.code} in " in reason, reason
        event, fields = "launch_failed", {"reason": "spec", "code": outcome.code}

    async def logged() -> bool:
        return any(
            e.get("env") == name and all(e.get(k) == v for k, v in fields.items())
            for e in fleet.daemon.events(event)
        )

    await eventually(logged, within_s=5, what=f"{event} logged for {name!r}")
    return row


@pytest.mark.parametrize(("case_id", "case"), BAD_ROWS.items(), ids=list(BAD_ROWS))
async def test_bad_row(fleet: Fleet, case_id: str, case: BadRow) -> None:
    outcome = case.expected(fleet.backend)
    values = {"name": case_id, **BASE_ROW, **case.values}
    async with connected(fleet) as (store, world):
        before = await user_rows(store)
        healthy_alive = {i["InstanceId"] for i in await world.alive(fleet.healthy_id)}
        desired = int(before[fleet.healthy_id]["desired_count"]) + 1
        expected_rows = {k: dict(v) for k, v in before.items()}
        expected_rows[fleet.healthy_id]["desired_count"] = str(desired)

        if isinstance(outcome, Rejected):
            with pytest.raises(sa.exc.DBAPIError) as refused:
                await insert_row(store, values)
            assert outcome.says in str(refused.value.orig)
            await set_desired(store, fleet.healthy_id, desired)
        else:
            await insert_row(store, values)
            await set_desired(store, fleet.healthy_id, desired)
            (bad_id, bad_row), *others = [
                (k, v) for k, v in (await user_rows(store)).items() if k not in before
            ]
            assert not others
            await _flagged(fleet, store, values["name"], outcome)
            await _never_launched(world, bad_id)
            if isinstance(outcome, LaunchRefused):  # the refused launch is on record, closed
                nodes = await store.list_nodes(bad_id)
                assert nodes
                assert {(n["state"], n["instance_id"]) for n in nodes} == {("ENDED", None)}
            expected_rows[bad_id] = bad_row  # the user's values, exactly as written

        # (b) the healthy environment still scales, without losing what it had.
        await eventually(
            lambda: converged(world, store, fleet.healthy_id, desired),
            within_s=10,
            what=f"healthy at {desired}",
        )
        assert healthy_alive <= {i["InstanceId"] for i in await world.alive(fleet.healthy_id)}
        # (c) every row as it was: the controller never writes a user's column.
        assert await user_rows(store) == expected_rows


async def test_running_environment_made_invalid_keeps_its_instances(fleet: Fleet) -> None:
    async with connected(fleet) as (store, world):
        env = await Environments(store, REGION).create(
            {**HEALTHY, "name": "victim", "desired_count": 2}
        )
        await eventually(lambda: converged(world, store, env.id, 2), within_s=10, what="victim")
        running = {i["InstanceId"] for i in await world.alive(env.id)}

        await execute(
            store, f"UPDATE compute_environments SET image_id = 'ubuntu' WHERE id = '{env.id}'"
        )
        row = await _flagged(fleet, store, "victim", Invalid("image_id", "'ubuntu' is malformed"))
        assert row["running_count"] == 2
        # Not acted on: its instances are neither terminated nor replaced, its nodes kept.
        before = await user_rows(store)
        desired = int(before[fleet.healthy_id]["desired_count"]) + 1
        await set_desired(store, fleet.healthy_id, desired)
        await eventually(
            lambda: converged(world, store, fleet.healthy_id, desired),
            within_s=10,
            what=f"healthy at {desired}",
        )
        assert {i["InstanceId"] for i in await world.alive(env.id)} == running
        nodes = await store.list_nodes(env.id)
        assert {n["instance_id"] for n in nodes} == running
        assert {n["state"] for n in nodes} == {"RUNNING"}
        assert (await user_rows(store))[env.id]["image_id"] == "ubuntu"

        # Fixed: READY again with the very same instances.
        await execute(
            store,
            f"UPDATE compute_environments SET image_id = 'img-pmqg1cw7' WHERE id = '{env.id}'",
        )
        await eventually(lambda: converged(world, store, env.id, 2), within_s=10, what="fixed")
        assert {i["InstanceId"] for i in await world.alive(env.id)} == running
