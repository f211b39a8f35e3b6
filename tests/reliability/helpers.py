"""The real ``spot-controller`` console script as a subprocess, bounded in time and stopped.

Every child gets an environment without the developer's own ``SPOT_CONTROLLER_*`` and
``TENCENTCLOUD_*`` variables, plus exactly what the test names.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from controller.settings import Settings

SPOT_CONTROLLER = str(Path(sys.executable).parent / "spot-controller")
CLI_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0


def child_environ(variables: Mapping[str, str]) -> dict[str, str]:
    """``os.environ`` without our settings, plus ``variables``; wide enough for rich tables."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SPOT_CONTROLLER_", "TENCENTCLOUD_"))
    }
    env.update({"COLUMNS": "400", "PYTHONUNBUFFERED": "1"})
    env.update(variables)
    return env


def settings_environ(**fields: Any) -> dict[str, str]:
    """Settings given by field name (``poll_interval_s=0.05``) as their environment variables."""
    return {
        Settings.__dataclass_fields__[name].metadata["env"]: str(value)
        for name, value in fields.items()
    }


def run_cli(
    args: list[str], variables: Mapping[str, str], *, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """One run of the console script; killed (and the test failed) after CLI_TIMEOUT_S."""
    return subprocess.run(
        [SPOT_CONTROLLER, *args],
        env=child_environ(variables),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


def run_cli_concurrently(
    commands: Mapping[str, list[str]], variables: Mapping[str, str], *, cwd: Path | None = None
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Several independent runs at once (each bounded by CLI_TIMEOUT_S), by key."""
    with ThreadPoolExecutor(max_workers=len(commands)) as pool:
        futures = {
            key: pool.submit(run_cli, args, variables, cwd=cwd) for key, args in commands.items()
        }
        return {key: future.result() for key, future in futures.items()}


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The single ``error: ...`` line of a refused command (exit 2, nothing on stdout)."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    assert result.stdout == "", result.stdout
    return lines[0]


class Daemon:
    """``spot-controller run`` in a subprocess; stdout and stderr are kept in files."""

    def __init__(self, variables: Mapping[str, str], workdir: Path, args: list[str]) -> None:
        self.stdout_path = workdir / "daemon.stdout"
        self.stderr_path = workdir / "daemon.stderr"
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                [SPOT_CONTROLLER, "run", *args],
                env=child_environ(variables),
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, then wait; a daemon that overstays is killed and the test fails."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"the daemon did not exit within {timeout_s} s of SIGTERM"
            ) from None

    def kill(self) -> None:
        if self.alive():
            self.process.kill()
            self.process.wait(5)

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """The JSON log lines written so far (optionally of one event)."""
        found = []
        for line in self.stdout().splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line being written right now
            if isinstance(event, dict) and (name is None or event.get("event") == name):
                found.append(event)
        return found


@contextmanager
def running_daemon(
    variables: Mapping[str, str], workdir: Path, args: list[str] | None = None
) -> Iterator[Daemon]:
    """A daemon for the duration of the block; killed on the way out if still running."""
    daemon = Daemon(variables, workdir, args or [])
    try:
        yield daemon
    finally:
        daemon.kill()
