"""deploy/systemd: a hardened unit systemd accepts, and an environment file of real settings."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from controller.settings import Settings
from tests.deploy.helpers import (
    DEFAULT_SHUTDOWN_DEADLINE_S,
    ENV_EXAMPLE,
    SETTINGS_ENV,
    UNIT,
    env_file_values,
    unit_entries,
)

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed here"
)


def _service() -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for key, value in unit_entries()["Service"]:
        values.setdefault(key, []).append(value)
    return values


def _one(key: str) -> str:
    [value] = _service()[key]
    return value


def _seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|s|min|m)?", value)
    assert match, value
    factor = {"ms": 0.001, "s": 1, "min": 60, "m": 60, None: 1}[match.group(2)]
    return float(match.group(1)) * factor


def _unit_runnable_here(tmp_path: Path) -> Path:
    """The unit with ExecStart's binary pointed at this checkout's console script.

    verify checks that the binary exists; /opt/spot-controller is where the guide installs it.
    """
    installed = Path(sys.executable).with_name("spot-controller")
    text = UNIT.read_text()
    assert "ExecStart=/opt/spot-controller/bin/spot-controller run" in text
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace("/opt/spot-controller/bin/spot-controller", str(installed)))
    return copy


def test_unit_has_its_sections_and_runs_the_daemon() -> None:
    sections = unit_entries()
    assert set(sections) == {"Unit", "Service", "Install"}
    assert _one("ExecStart").endswith("/spot-controller run")
    assert _one("Type") == "exec"
    assert ("WantedBy", "multi-user.target") in sections["Install"]


def test_unit_runs_as_a_dedicated_user_and_restarts_on_failure() -> None:
    assert _one("User") == "spot-controller"
    assert _one("Group") == "spot-controller"
    assert _one("Restart") == "on-failure"


def test_unit_is_hardened() -> None:
    service = _service()
    expected = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes",
        "ProtectControlGroups": "yes",
    }
    for key, value in expected.items():
        assert service.get(key) == [value], key
    # Empty: no capability at all.
    assert service["CapabilityBoundingSet"] == [""]
    assert set(_one("RestrictAddressFamilies").split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}


def test_state_directory_holds_the_sqlite_default() -> None:
    assert _one("StateDirectory") == "spot-controller"
    assert _one("WorkingDirectory") == "/var/lib/spot-controller"
    # The daemon's default URL is relative: it lands in the working directory.
    assert Settings().database_url == "sqlite+aiosqlite:///spot-controller.db"
    url = env_file_values()["SPOT_CONTROLLER_DATABASE_URL"]
    assert url == "sqlite:////var/lib/spot-controller/spot-controller.db"


def test_credentials_come_from_a_root_only_environment_file() -> None:
    assert _one("EnvironmentFile") == "/etc/spot-controller/env"
    text = UNIT.read_text()
    # Documented where the file is installed: 0600, root-owned.
    assert "0600" in text
    assert "root" in text
    assert "TENCENTCLOUD_SECRET" not in "".join(v for v in _service().get("Environment", []))


def test_stop_waits_longer_than_the_shutdown_deadline() -> None:
    assert _one("KillSignal") == "SIGTERM"
    assert _seconds(_one("TimeoutStopSec")) > DEFAULT_SHUTDOWN_DEADLINE_S


def test_env_example_names_only_real_settings_with_valid_values() -> None:
    named = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", ENV_EXAMPLE.read_text(), re.M))
    assert named <= SETTINGS_ENV, named - SETTINGS_ENV
    values = env_file_values()
    assert {"TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY"} <= set(values)
    assert all("REPLACE_WITH" in values[k] for k in values if "SECRET" in k)
    settings = Settings.from_env(values)
    assert settings.http_addr.endswith(":8080")


@needs_systemd_analyze
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    assert SYSTEMD_ANALYZE is not None
    unit = _unit_runnable_here(tmp_path)
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    # verify exits 0 on an unknown key, only warning about it: a typo must fail this test.
    problems = [
        line
        for line in result.stderr.splitlines()
        if UNIT.name in line and re.search(r"Unknown|Failed|Invalid|not safe|ignoring", line)
    ]
    assert not problems, problems


@needs_systemd_analyze
def test_systemd_analyze_security_rates_the_unit_ok(tmp_path: Path) -> None:
    assert SYSTEMD_ANALYZE is not None
    unit = _unit_runnable_here(tmp_path)
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0 and "--offline" in result.stderr:
        pytest.skip("this systemd-analyze cannot rate a unit file offline (systemd < 250)")
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    assert match, result.stdout[-2000:] + result.stderr
    # 0 is fully locked down, 10 is no sandbox; systemd calls <= 2.0 "OK".
    assert float(match.group(1)) <= 2.0
