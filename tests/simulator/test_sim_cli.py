"""``simulator serve``: bad input is refused; the real command serves until SIGINT."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from click.testing import CliRunner

from controller.simulator.cli import simulator

SERVE = "from controller.simulator.cli import simulator; simulator()"


def test_a_bad_config_file_is_refused_with_exit_code_2(tmp_path: Path) -> None:
    path = tmp_path / "sim.toml"
    path.write_text("launch_delay_s = 'soon'\n")
    result = CliRunner().invoke(simulator, ["serve", "--config", str(path)])
    assert result.exit_code == 2
    assert f"error: {path}: launch_delay_s: expected a number" in result.output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_serve_runs_until_sigint(tmp_path: Path) -> None:
    path = tmp_path / "sim.json"
    path.write_text('{"scenario": [{"at_s": 0, "action": "faults", "latency_ms": 1}]}')
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            SERVE,
            "serve",
            "--port",
            str(port),
            "--seed",
            "3",
            "--config",
            str(path),
            "--no-auth",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 15
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=2) as http:
            while True:
                try:
                    stats = http.get("/_sim/stats").json()
                    break
                except httpx.TransportError:
                    assert process.poll() is None, process.communicate()
                    assert time.monotonic() < deadline, "the simulator did not start"
                    time.sleep(0.05)
            assert [e["action"] for e in stats["scenario"]] == ["faults"]
            response = http.post(
                "/",
                json={},
                headers={
                    "X-TC-Action": "DescribeInstances",
                    "X-TC-Version": "2017-03-12",
                    "X-TC-Region": "ap-guangzhou",
                },
            )
            assert response.json()["Response"]["TotalCount"] == 0
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=10)
        assert process.returncode == 0, stderr
        assert f"CVM simulator on http://127.0.0.1:{port}" in stderr.decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
