"""Secrets never show: an end-to-end run of the real daemon, every output searched.

The SecretId, SecretKey, session token, a database password and a secret inside user data are
set to distinctive values; the daemon runs against the simulator (which checks signatures
with the same key) until the environment converges, then stops on SIGTERM. Everything it and
the CLI printed, the health endpoints and the controller's columns in the database are
searched for those values.

The simulator's own refusal of tampered, expired and unsigned requests is tested in
tests/simulator/test_sim_wire.py::test_auth_failures (and, through the official SDK, in
tests/simulator/test_sim_sdk.py).
"""

from __future__ import annotations

import base64
import json
import socket
import sqlite3
import subprocess
import time
from contextlib import closing
from pathlib import Path

import httpx

from controller.core.model import ENV_TAG
from tests.reliability.fleet import FLEET_SETTINGS
from tests.reliability.helpers import (
    run_cli,
    run_cli_concurrently,
    running_daemon,
    settings_environ,
)
from tests.support.world import fast_simulator, simulator_server

SECRET_ID = "AKIDreliabilityc0ffee0000000000000001"
SECRET_KEY = "sk-reliability-7d1f0c9b-secret-key-never-printed"
SESSION_TOKEN = "tok-reliability-93ab42e1-session-token-never-printed"
DB_PASSWORD = "pw-reliability-5e2c71aa-database-password"
USER_DATA_SECRET = "ud-reliability-0f9e3b77-api-token-inside-user-data"
USER_DATA = f"#!/bin/sh\nexport API_TOKEN={USER_DATA_SECRET}\nexec /opt/worker\n"
USER_DATA_B64 = base64.b64encode(USER_DATA.encode()).decode()
FORBIDDEN = {
    "SecretId": SECRET_ID,
    "SecretKey": SECRET_KEY,
    "session token": SESSION_TOKEN,
    "database password": DB_PASSWORD,
    "user data secret": USER_DATA_SECRET,
    "user data (base64)": USER_DATA_B64,
}
CONVERGE_WITHIN_S = 30.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _leaks(texts: dict[str, str]) -> list[str]:
    return [
        f"{what} in {where}"
        for where, text in texts.items()
        for what, secret in FORBIDDEN.items()
        if secret in text
    ]


def _controller_columns(db: Path) -> dict[str, str]:
    """The columns the controller writes, as text, per table."""
    queries = {
        "compute_environments": "SELECT status, status_reason FROM compute_environments",
        "compute_nodes": "SELECT state, cloud_state, end_reason, end_detail FROM compute_nodes",
        "activities": "SELECT state, cause, state_reason FROM activities",
        "launches": "SELECT state, error_code, error_message FROM launches",
    }
    with closing(sqlite3.connect(db)) as conn:
        return {table: repr(conn.execute(sql).fetchall()) for table, sql in queries.items()}


def _converged(sim_url: str, db: Path, want: int) -> bool:
    """The simulator runs ``want`` instances of the environment and its row says READY."""
    instances = httpx.get(f"{sim_url}/_sim/instances", timeout=5).json()["instances"]
    running = [i for i in instances if i["InstanceState"] == "RUNNING" and ENV_TAG in i["Tags"]]
    with closing(sqlite3.connect(db)) as conn:
        row = conn.execute(
            "SELECT status, running_count FROM compute_environments WHERE name = 'web'"
        ).fetchone()
    return len(running) == want and row == ("READY", want)


def test_no_secret_in_any_output_of_an_end_to_end_run(tmp_path: Path) -> None:
    db = tmp_path / "spot-controller.db"
    (tmp_path / "user-data.sh").write_text(USER_DATA)
    http_port = _free_port()
    outputs: dict[str, str] = {}
    sim = fast_simulator(
        secret_id=SECRET_ID,
        secret_key=SECRET_KEY,
        session_token=SESSION_TOKEN,
        launch_delay_s=0.05,
    )
    with simulator_server(sim) as sim_url:
        variables = {
            "SPOT_CONTROLLER_DATABASE_URL": f"sqlite:///{db}",
            "SPOT_CONTROLLER_CVM_ENDPOINT": sim_url,
            "SPOT_CONTROLLER_HTTP_ADDR": f"127.0.0.1:{http_port}",
            "TENCENTCLOUD_SECRET_ID": SECRET_ID,
            "TENCENTCLOUD_SECRET_KEY": SECRET_KEY,
            "TENCENTCLOUD_SESSION_TOKEN": SESSION_TOKEN,
            **settings_environ(**{**FLEET_SETTINGS, "log_level": "debug"}),
        }

        def record(results: dict[str, subprocess.CompletedProcess[str]]) -> dict[str, str]:
            for key, result in results.items():
                assert result.returncode == 0, (key, result.stderr)
                outputs[f"`{key}` stdout"] = result.stdout
                outputs[f"`{key}` stderr"] = result.stderr
            return {key: result.stdout for key, result in results.items()}

        create = [
            *("env", "create", "web", "--zone", "ap-guangzhou-3", "--instance-type"),
            *("S2.MEDIUM4", "--image-id", "img-pmqg1cw7", "--max-price", "0.60"),
            *("--desired", "2", "--user-data-file", str(tmp_path / "user-data.sh")),
        ]
        record({"db upgrade": run_cli(["db", "upgrade"], variables, cwd=tmp_path)})
        record({"env create": run_cli(create, variables, cwd=tmp_path)})
        with running_daemon(variables, tmp_path) as daemon:
            deadline = time.monotonic() + CONVERGE_WITHIN_S
            while not _converged(sim_url, db, 2):
                assert daemon.alive(), daemon.stderr()
                assert time.monotonic() < deadline, "the environment did not converge"
                time.sleep(0.1)
            for path in ("/healthz", "/readyz", "/metrics"):
                response = httpx.get(f"http://127.0.0.1:{http_port}{path}", timeout=5)
                assert response.status_code == 200, (path, response.text)
                outputs[f"GET {path}"] = response.text
            printed = record(
                run_cli_concurrently(
                    {
                        "env list": ["env", "list"],
                        "env show --output json": ["env", "show", "web", "--output", "json"],
                        "config": ["config"],
                        "--help": ["--help"],
                        "run --help": ["run", "--help"],
                    },
                    variables,
                    cwd=tmp_path,
                )
            )
            code = daemon.stop()
            outputs["daemon stdout"] = daemon.stdout()
            outputs["daemon stderr"] = daemon.stderr()

    assert code == 0, outputs["daemon stderr"]
    assert "Traceback" not in outputs["daemon stderr"]
    outputs.update(_controller_columns(db))

    # The secrets were really in play: signed calls were accepted, user data was sent and
    # recorded in the launch request (the one place it must be, to re-send the same launch).
    shown = json.loads(printed["env show --output json"])
    assert (shown["status"], shown["running_count"]) == ("READY", 2)
    assert "READY" in printed["env list"]
    assert shown["user_data"] == f"<{len(USER_DATA_B64)} characters of base64, not shown>"
    with closing(sqlite3.connect(db)) as conn:
        (request,) = conn.execute("SELECT request FROM launches").fetchone()
    assert json.loads(request)["user_data"] == USER_DATA_B64
    assert "TENCENTCLOUD_SESSION_TOKEN" in printed["config"]
    assert "run" in printed["--help"]
    assert '"event": "daemon_stopped"' in outputs["daemon stdout"]

    assert _leaks(outputs) == []


def test_database_password_never_shown(tmp_path: Path) -> None:
    """PostgreSQL here trusts local users, so a password is checked where it can show: the
    configuration and the refusals of a database that cannot be reached."""
    url = f"postgresql://spot:{DB_PASSWORD}@127.0.0.1:{_free_port()}/spot"
    variables = {
        "SPOT_CONTROLLER_DATABASE_URL": url,
        "TENCENTCLOUD_SECRET_ID": SECRET_ID,
        "TENCENTCLOUD_SECRET_KEY": SECRET_KEY,
        "TENCENTCLOUD_SESSION_TOKEN": SESSION_TOKEN,
    }
    commands = {
        "config": ["config"],
        "config --output json": ["config", "--output", "json"],
        "env list": ["env", "list"],
        "db current": ["db", "current"],
        "run": ["run"],
    }
    results = run_cli_concurrently(commands, variables, cwd=tmp_path)
    outputs = {key: r.stdout + r.stderr for key, r in results.items()}
    for key in ("config", "config --output json"):
        assert results[key].returncode == 0, results[key].stderr
    shown = json.loads(results["config --output json"].stdout)
    (database,) = [r["value"] for r in shown if r["env"] == "SPOT_CONTROLLER_DATABASE_URL"]
    assert database == url.replace(DB_PASSWORD, "***")

    for key in ("env list", "db current", "run"):
        result = results[key]
        assert (result.returncode, "Traceback" in result.stderr) == (2, False), result.stderr
        (line,) = result.stderr.splitlines()
        assert line.startswith("error: cannot open database postgresql+asyncpg://spot:***@")
        # Only the daemon prints something first: its start, with the URL masked.
        assert result.stdout == "" or '"event": "daemon_starting"' in result.stdout

    assert _leaks(outputs) == []
