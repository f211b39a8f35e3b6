"""The API served by the real daemon (``spot-controller run``): keys made with the CLI, the
batch SDK and tccli as clients; every output, answer and table searched for the secrets."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.api.keys import DEMO_SECRET_ID, DEMO_SECRET_KEY
from tests.api.rig import Batch, Refused, free_port
from tests.reliability.fleet import FLEET_SETTINGS
from tests.reliability.helpers import Daemon, run_cli, running_daemon, settings_environ
from tests.simulator.test_sim_tccli import TCCLI
from tests.support.world import fast_simulator, simulator_server

MASTER_KEY = "mk-api-daemon-4f1e9c2b7a6d5e3f-master-key-never-printed"
START_WITHIN_S = 30.0
CONVERGE_WITHIN_S = 60.0
SPOT_ENV = {
    "EnvName": "batch-env",
    "DesiredComputeNodeCount": 2,
    "EnvData": {
        "InstanceType": "S2.MEDIUM4",
        "ImageId": "img-pmqg1cw7",
        "InstanceChargeType": "SPOTPAID",
        "InstanceMarketOptions": {"SpotOptions": {"MaxPrice": "0.60"}},
    },
}


def _wait_for_api(daemon: Daemon, endpoint: str) -> None:
    deadline = time.monotonic() + START_WITHIN_S
    while True:
        assert daemon.alive(), daemon.stderr()
        try:
            httpx.post(f"http://{endpoint}/", content=b"{}", timeout=2)
            return
        except httpx.HTTPError:
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.1)


def _until(check: Any, what: str, within_s: float = CONVERGE_WITHIN_S) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _tables(db: Path) -> str:
    """Every row of every table, as text."""
    with closing(sqlite3.connect(db)) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return repr({n: conn.execute(f'SELECT * FROM "{n}"').fetchall() for n in names})


def test_keys_from_the_cli_and_the_sdk_against_the_daemon_never_show_a_secret(
    tmp_path: Path,
) -> None:
    db = tmp_path / "spot-controller.db"
    port = free_port()
    endpoint = f"127.0.0.1:{port}"
    with simulator_server(fast_simulator(launch_delay_s=0.05)) as sim_url:
        variables = {
            "SPOT_CONTROLLER_DATABASE_URL": f"sqlite:///{db}",
            "SPOT_CONTROLLER_CVM_ENDPOINT": sim_url,
            "SPOT_CONTROLLER_API_ADDR": endpoint,
            "SPOT_CONTROLLER_API_MASTER_KEY": MASTER_KEY,
            "TENCENTCLOUD_SECRET_ID": "AKIDsimulator00000000000000000000000",
            "TENCENTCLOUD_SECRET_KEY": "simulator-secret-key-not-for-production",
            **settings_environ(**{**FLEET_SETTINGS, "log_level": "debug"}),
        }
        outputs: dict[str, str] = {}
        assert run_cli(["db", "upgrade"], variables, cwd=tmp_path).returncode == 0
        made = run_cli(["api-key", "create", "ops", "--output", "json"], variables, cwd=tmp_path)
        assert made.returncode == 0, made.stderr
        ops = json.loads(made.stdout)
        viewer = json.loads(
            run_cli(
                ["api-key", "create", "viewer", "--read-only", "--output", "json"],
                variables,
                cwd=tmp_path,
            ).stdout
        )
        secrets = {"ops secret": ops["secret_key"], "viewer secret": viewer["secret_key"]}
        assert ops["secret_id"].startswith("AKID")
        assert len(ops["secret_key"]) >= 32
        assert viewer["read_only"] is True
        twice = run_cli(["api-key", "create", "ops"], variables, cwd=tmp_path)
        assert (twice.returncode, twice.stderr.strip()) == (
            2,
            "error: name: an API key named 'ops' already exists",
        )

        with running_daemon(variables, tmp_path) as daemon:
            _wait_for_api(daemon, endpoint)
            batch = Batch(endpoint, ops["secret_id"], ops["secret_key"])
            env_id = batch._call(
                "CreateComputeEnv",
                {"ComputeEnv": SPOT_ENV, "Placement": {"Zone": "ap-guangzhou-3"}},
            )["EnvId"]

            def running() -> bool:
                shown = batch._call("DescribeComputeEnv", {"EnvId": env_id})
                outputs["DescribeComputeEnv"] = json.dumps(shown)
                return bool(shown["ComputeNodeMetrics"]["RunningCount"] == 2)

            _until(running, "2 RUNNING through DescribeComputeEnv")
            reader = Batch(endpoint, viewer["secret_id"], viewer["secret_key"])
            outputs["DescribeComputeEnvs"] = json.dumps(reader._call("DescribeComputeEnvs", {}))
            with pytest.raises(Refused) as modify:
                reader._call("ModifyComputeEnv", {"EnvId": env_id, "DesiredComputeNodeCount": 5})
            assert modify.value.code == "UnauthorizedOperation"
            outputs["refusal"] = modify.value.message

            listed = run_cli(["api-key", "list", "--output", "json"], variables, cwd=tmp_path)
            outputs["api-key list"] = listed.stdout
            assert [k["name"] for k in json.loads(listed.stdout)] == ["ops", "viewer"]
            revoked = run_cli(["api-key", "revoke", "viewer"], variables, cwd=tmp_path)
            assert revoked.returncode == 0, revoked.stderr
            with pytest.raises(Refused) as after_revoke:
                reader._call("DescribeComputeEnvs", {})
            assert after_revoke.value.code == "AuthFailure.SecretIdNotFound"
            batch._call("DeleteComputeEnv", {"EnvId": env_id})
            code = daemon.stop()
            outputs["daemon stdout"] = daemon.stdout()
            outputs["daemon stderr"] = daemon.stderr()
            audit = daemon.events("api_audit")

    assert code == 0, outputs["daemon stderr"]
    assert [(a["key_name"], a["action"], a["result"]) for a in audit] == [
        ("ops", "CreateComputeEnv", "OK"),
        ("viewer", "ModifyComputeEnv", "UnauthorizedOperation"),
        ("ops", "DeleteComputeEnv", "OK"),
    ]
    assert any(e["event"] == "api_listening" for e in daemon.events())
    shown = run_cli(["api", "audit", "--output", "json"], variables, cwd=tmp_path)
    assert [(a["key_name"], a["action"], a["result"]) for a in json.loads(shown.stdout)] == [
        ("ops", "DeleteComputeEnv", "OK"),
        ("viewer", "ModifyComputeEnv", "UnauthorizedOperation"),
        ("ops", "CreateComputeEnv", "OK"),
    ]
    outputs["api audit"] = shown.stdout + run_cli(["api", "audit"], variables, cwd=tmp_path).stdout
    outputs["tables"] = _tables(db)
    assert ops["secret_id"] in outputs["tables"]  # the keys are there, sealed
    leaks = [
        f"{what} in {where}"
        for where, text in outputs.items()
        for what, secret in {**secrets, "master key": MASTER_KEY}.items()
        if secret in text
    ]
    assert leaks == []


def _tccli(endpoint: str, home: Path, action: str, *args: str) -> Any:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "TENCENTCLOUD_SECRET_ID": DEMO_SECRET_ID,
        "TENCENTCLOUD_SECRET_KEY": DEMO_SECRET_KEY,
    }
    done = subprocess.run(
        [
            TCCLI,
            "batch",
            action,
            "--region",
            "ap-guangzhou",
            "--endpoint",
            f"http://{endpoint}",
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    try:
        return json.loads(done.stdout)
    except ValueError:
        return {"raw": done.stdout + done.stderr}


@pytest.mark.tccli
def test_tccli_batch_against_run_simulate(tmp_path: Path) -> None:
    """What the README shows: `run --simulate`, then tccli batch with the demo key."""
    port = free_port()
    endpoint = f"127.0.0.1:{port}"
    variables = {
        "SPOT_CONTROLLER_API_ADDR": endpoint,
        "SPOT_CONTROLLER_LOG_FORMAT": "json",
    }
    with running_daemon(variables, tmp_path, ["--simulate", "--simulator-port", "0"]) as daemon:
        _wait_for_api(daemon, endpoint)
        listed = _tccli(endpoint, tmp_path, "DescribeComputeEnvs")
        assert [e["EnvName"] for e in listed["ComputeEnvSet"]] == ["demo"], listed
        created = _tccli(
            endpoint,
            tmp_path,
            "CreateComputeEnv",
            "--ComputeEnv",
            json.dumps(SPOT_ENV),
            "--Placement",
            '{"Zone": "ap-guangzhou-3"}',
        )
        env_id = created["EnvId"]
        modified = _tccli(
            endpoint,
            tmp_path,
            "ModifyComputeEnv",
            "--EnvId",
            env_id,
            "--DesiredComputeNodeCount",
            "3",
        )
        assert "RequestId" in modified, modified
        batch = Batch(endpoint, DEMO_SECRET_ID, DEMO_SECRET_KEY)

        def three_running() -> bool:
            shown = batch._call("DescribeComputeEnv", {"EnvId": env_id})
            return bool(shown["ComputeNodeMetrics"]["RunningCount"] == 3)

        _until(three_running, "3 RUNNING after tccli batch ModifyComputeEnv")
        shown = _tccli(endpoint, tmp_path, "DescribeComputeEnv", "--EnvId", env_id)
        assert len(shown["ComputeNodeSet"]) == 3, shown
        activities = _tccli(endpoint, tmp_path, "DescribeComputeEnvActivities", "--EnvId", env_id)
        assert activities["TotalCount"] >= 3, activities
        node = shown["ComputeNodeSet"][0]
        ended = _tccli(
            endpoint, tmp_path, "TerminateComputeNodes", "--EnvId", env_id,
            "--ComputeNodeIds", json.dumps([node["ComputeNodeId"]]),
        )  # fmt: skip
        assert "RequestId" in ended, ended

        def two_left() -> bool:
            shown = batch._call("DescribeComputeEnv", {"EnvId": env_id})
            ids = {n["ComputeNodeInstanceId"] for n in shown["ComputeNodeSet"]}
            return bool(
                shown["DesiredComputeNodeCount"] == 2
                and shown["ComputeNodeMetrics"]["RunningCount"] == 2
                and len(ids) == 2
                and node["ComputeNodeInstanceId"] not in ids
            )

        _until(two_left, "the named node gone after tccli batch TerminateComputeNodes")
        refused = _tccli(endpoint, tmp_path, "DescribeComputeEnv", "--EnvId", "env-zzzzzzzz")
        assert "ResourceNotFound.ComputeEnv" in refused["raw"], refused
        deleted = _tccli(endpoint, tmp_path, "DeleteComputeEnv", "--EnvId", env_id)
        assert "RequestId" in deleted, deleted
        assert daemon.stop() == 0, daemon.stderr()
    assert [e["secret_id"] for e in daemon.events("api_demo_key_created")] == [DEMO_SECRET_ID]
