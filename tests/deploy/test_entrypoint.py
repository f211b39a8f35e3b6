"""The image's ENTRYPOINT and every command line of the deployment files, run for real.

No Docker here: what the container would run is run directly, as the same console script the
image installs. The compose stack is replayed on loopback (SQLite instead of PostgreSQL), which
proves its commands, credentials and health checks fit together.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from controller.cli import main
from tests.deploy.helpers import (
    DEFAULT_SHUTDOWN_DEADLINE_S,
    compose,
    dockerfile_instructions,
    free_port,
    healthcheck_python,
    k8s_objects,
    unit_entries,
)


def _console_script() -> str:
    beside = Path(sys.executable).with_name("spot-controller")
    found = str(beside) if beside.exists() else shutil.which("spot-controller")
    assert found, "the spot-controller console script is not installed (pip install -e .)"
    return found


def _clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without any setting of ours, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SPOT_CONTROLLER_", "TENCENTCLOUD_"))
    }
    return {**env, **extra}


def _command_lines() -> dict[str, list[str]]:
    """Every spot-controller argument list the deployment files run, by where it comes from."""
    lines = {
        "Dockerfile CMD": yaml.safe_load(dict(dockerfile_instructions())["CMD"]),
    }
    for name, service in compose()["services"].items():
        if "command" in service:
            lines[f"compose {name}"] = service["command"]
    for where in (("Deployment", "spot-controller"), ("Job", "spot-controller-migrate")):
        [container] = k8s_objects()[where]["spec"]["template"]["spec"]["containers"]
        lines["/".join(where)] = container["args"]
    [exec_start] = [v for k, v in unit_entries()["Service"] if k == "ExecStart"]
    binary, *args = exec_start.split()
    assert binary.endswith("/spot-controller")
    lines["systemd ExecStart"] = args
    return lines


def test_entrypoint_runs_directly() -> None:
    for argv in ([_console_script(), "--help"], [sys.executable, "-m", "controller", "--help"]):
        result = subprocess.run(argv, capture_output=True, text=True, env=_clean_env(), timeout=60)
        assert result.returncode == 0, (argv, result.stderr)
        assert "Usage:" in result.stdout


def test_every_command_line_of_the_deployment_files_is_accepted() -> None:
    """An unknown subcommand or option makes click exit 2 even with --help; 0 means all known."""
    lines = _command_lines()
    assert lines["Dockerfile CMD"] == ["run"]
    runner = CliRunner()
    for where, args in lines.items():
        result = runner.invoke(main, [*args, "--help"])
        assert result.exit_code == 0, (where, args, result.output)


def test_migration_command_applies_the_schema(tmp_path: Path) -> None:
    [container] = k8s_objects()[("Job", "spot-controller-migrate")]["spec"]["template"]["spec"][
        "containers"
    ]
    url = f"sqlite:///{tmp_path / 'spot.db'}"
    result = subprocess.run(
        [_console_script(), *container["args"]],
        capture_output=True,
        text=True,
        env=_clean_env(SPOT_CONTROLLER_DATABASE_URL=url),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "database at head" in result.stdout


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _wait_for(url: str, status: int, timeout_s: float, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + timeout_s
    last: int | str = "no answer"
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"exited with {proc.returncode} before {url} answered"
        try:
            last = _get(url)
            if last == status:
                return
        except OSError as exc:
            last = str(exc)
        time.sleep(0.2)
    raise AssertionError(f"{url}: expected {status}, last {last}")


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_compose_stack_replayed_on_loopback(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    services = compose()["services"]
    sim_port, http_port = free_port(), free_port()
    database = f"sqlite:///{tmp_path / 'spot.db'}"

    sim_args = list(services["simulator"]["command"])
    sim_args[sim_args.index("--host") + 1] = "127.0.0.1"
    compose_sim_port = sim_args[sim_args.index("--port") + 1]
    sim_args[sim_args.index("--port") + 1] = str(sim_port)
    simulator = subprocess.Popen(
        [_console_script(), *sim_args],
        env=_clean_env(**services["simulator"]["environment"]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    processes.append(simulator)

    # The compose controller environment, with the service names replaced by loopback.
    env = dict(services["controller"]["environment"])
    env["SPOT_CONTROLLER_CVM_ENDPOINT"] = env["SPOT_CONTROLLER_CVM_ENDPOINT"].replace(
        f"simulator:{compose_sim_port}", f"127.0.0.1:{sim_port}"
    )
    env["SPOT_CONTROLLER_DATABASE_URL"] = database
    env["SPOT_CONTROLLER_HTTP_ADDR"] = f"127.0.0.1:{http_port}"

    migrate = subprocess.run(
        [_console_script(), *services["migrate"]["command"]],
        env=_clean_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrate.returncode == 0, migrate.stderr

    # The simulator's own compose health check, against the simulator.
    sim_check = services["simulator"]["healthcheck"]["test"]
    assert sim_check[:3] == ["CMD", "python", "-c"]
    sim_code = sim_check[3].replace(f":{compose_sim_port}/", f":{sim_port}/")
    deadline = time.monotonic() + 30
    while subprocess.run([sys.executable, "-c", sim_code], capture_output=True).returncode:
        assert simulator.poll() is None, "the simulator exited"
        assert time.monotonic() < deadline, "the simulator's health check never passed"
        time.sleep(0.2)

    log_path = tmp_path / "controller.log"
    with log_path.open("w") as log:
        controller = subprocess.Popen(
            [_console_script(), *services["controller"]["command"]],
            env=_clean_env(**env),
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    processes.append(controller)
    # Ready means: database migrated and a complete DescribeInstances sweep of the simulator,
    # i.e. the controller's signature was accepted with the compose credentials.
    _wait_for(f"http://127.0.0.1:{http_port}/readyz", 200, 30, controller)

    # The image's HEALTHCHECK, pointed at this listener by the same variable the image sets.
    check = subprocess.run(
        [sys.executable, "-c", healthcheck_python()],
        env=_clean_env(SPOT_CONTROLLER_HTTP_ADDR=f"0.0.0.0:{http_port}"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert check.returncode == 0, check.stderr

    controller.send_signal(signal.SIGTERM)
    assert controller.wait(timeout=DEFAULT_SHUTDOWN_DEADLINE_S + 10) == 0
    assert "daemon_stopped" in log_path.read_text()
