"""A SIGTERM while the process is still starting (importing, opening the store) ends it at
once and cleanly: exit 0 for ``run``, 143 for another command; nothing is half done."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.reliability.helpers import SPOT_CONTROLLER, Daemon, child_environ, settings_environ

# Well inside the second or more that importing the CLI takes, well after the interpreter's
# own start.
EARLY_S = 0.3


def test_a_daemon_stopped_while_starting_exits_0(tmp_path: Path) -> None:
    variables = settings_environ(database_url=f"sqlite:///{tmp_path}/spot-controller.db")
    daemon = Daemon(variables, tmp_path, ["--simulate", "--simulator-port", "0"])
    try:
        time.sleep(EARLY_S)
        assert daemon.alive()
        assert daemon.stop() == 0, daemon.stderr()
        assert "Traceback" not in daemon.stderr()
    finally:
        daemon.kill()


def _terminated_early(command: list[str], tmp_path: Path) -> tuple[int, str]:
    """Start ``command``, SIGTERM it while it is still starting; its exit code and stderr."""
    variables = settings_environ(database_url=f"sqlite:///{tmp_path}/spot-controller.db")
    process = subprocess.Popen(
        command,
        env=child_environ(variables),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(EARLY_S)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
        return process.returncode, stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)


def test_python_m_controller_stopped_while_starting_exits_0(tmp_path: Path) -> None:
    run = [sys.executable, "-m", "controller", "run", "--simulate", "--simulator-port", "0"]
    code, stderr = _terminated_early(run, tmp_path)
    assert code == 0, stderr


def test_another_command_stopped_while_starting_exits_143(tmp_path: Path) -> None:
    code, stderr = _terminated_early([SPOT_CONTROLLER, "env", "list"], tmp_path)
    assert code == 128 + signal.SIGTERM, stderr
