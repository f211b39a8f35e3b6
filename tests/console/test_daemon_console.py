"""The console as a user meets it: ``run --simulate`` logs its URL and demo password, a real
daemon serves it; ``console hash-password`` reads stdin; the settings refuse a bad hash."""

from __future__ import annotations

import json
import re
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from controller.console import DEMO_PASSWORD
from controller.console.auth import PasswordHashes, verify_password
from controller.errors import ConfigError
from controller.settings import Settings
from tests.console.rig import csrf_of
from tests.reliability.helpers import SPOT_CONTROLLER, Daemon, child_environ, settings_environ
from tests.support.polling import wait_until


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _console_line(daemon: Daemon) -> dict[str, str] | None:
    for line in daemon.stdout().splitlines():
        if '"console_enabled"' in line:
            parsed: dict[str, str] = json.loads(line)
            return parsed
    return None


def test_run_simulate_serves_the_console_with_the_demo_password(tmp_path: Path) -> None:
    addr = f"127.0.0.1:{_free_port()}"
    variables = settings_environ(
        database_url=f"sqlite:///{tmp_path}/spot-controller.db", http_addr=addr, log_format="json"
    )
    daemon = Daemon(variables, tmp_path, ["--simulate", "--simulator-port", "0"])
    try:
        assert wait_until(lambda: _console_line(daemon) is not None, 30), daemon.stderr()
        line = _console_line(daemon)
        assert line is not None
        assert line["url"] == f"http://{addr}/console/"
        assert DEMO_PASSWORD in line["password"]
        with httpx.Client(base_url=line["url"].rstrip("/"), timeout=10) as http:
            form = http.get("/login")
            wrong = http.post("/login", data={"csrf_token": csrf_of(form.text), "password": "x"})
            assert wrong.status_code == 401
            form = http.get("/login")
            token = csrf_of(form.text)
            answer = http.post("/login", data={"csrf_token": token, "password": DEMO_PASSWORD})
            assert answer.status_code == 303

            def demo_listed() -> bool:
                return 'data-env="demo"' in http.get("/environments").text

            assert wait_until(demo_listed, 30), "the demo environment is not on the list"

            def priced() -> bool:  # the daemon's own offering cache reaches the form
                offers = http.get("/market/types", params={"zone": "ap-guangzhou-3"}).text
                return 'data-type="S2.MEDIUM4"' in offers

            assert wait_until(priced, 30), "no price for the demo's zone in the Create form"
            market = http.get("/market", params={"charge_type": "SPOTPAID"}).text
            assert 'data-offering="ap-guangzhou-3/S2.MEDIUM4/SPOTPAID"' in market
        assert daemon.stop() == 0, daemon.stderr()
    finally:
        daemon.kill()


def test_a_configured_hash_is_used_and_the_demo_password_is_not(tmp_path: Path) -> None:
    addr = f"127.0.0.1:{_free_port()}"
    chosen = _hash("a-password-of-my-own")
    variables = settings_environ(
        database_url=f"sqlite:///{tmp_path}/spot-controller.db",
        http_addr=addr,
        log_format="json",
        console_password_hash=chosen,
    )
    daemon = Daemon(variables, tmp_path, ["--simulate", "--simulator-port", "0"])
    try:
        assert wait_until(lambda: _console_line(daemon) is not None, 30), daemon.stderr()
        line = _console_line(daemon)
        assert line is not None
        assert line["password"] == "as configured"
        with httpx.Client(base_url=f"http://{addr}/console", timeout=10) as http:
            for password, status in ((DEMO_PASSWORD, 401), ("a-password-of-my-own", 303)):
                form = http.get("/login")
                answer = http.post(
                    "/login", data={"csrf_token": csrf_of(form.text), "password": password}
                )
                assert answer.status_code == status, password
        assert daemon.stop() == 0, daemon.stderr()
    finally:
        daemon.kill()


def _hash(password: str, *args: str) -> str:
    result = subprocess.run(
        [SPOT_CONTROLLER, "console", "hash-password", *args],
        input=password + "\n",
        env=child_environ({}),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()[-1]


def test_hash_password_reads_stdin_and_prints_the_hash_alone_on_its_last_line() -> None:
    hashed = _hash("correct horse battery")
    assert re.fullmatch(r"\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+\$\S+", hashed)
    assert verify_password(hashed, "correct horse battery")
    assert not verify_password(hashed, "correct horse")
    assert Settings.from_env({"SPOT_CONTROLLER_CONSOLE_PASSWORD_HASH": hashed})


def test_hash_password_refuses_a_short_password() -> None:
    result = subprocess.run(
        [SPOT_CONTROLLER, "console", "hash-password"],
        input="short\n",
        env=child_environ({}),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip() == "error: password: must be at least 8 characters"


@pytest.mark.parametrize(
    "variable",
    ["SPOT_CONTROLLER_CONSOLE_PASSWORD_HASH", "SPOT_CONTROLLER_CONSOLE_READONLY_PASSWORD_HASH"],
)
def test_a_password_instead_of_a_hash_is_refused_naming_the_variable(variable: str) -> None:
    with pytest.raises(ConfigError, match=f"^{variable}: must be an argon2"):
        Settings.from_env({variable: "hunter2"})


def test_a_bcrypt_hash_verifies() -> None:
    import bcrypt

    hashed = bcrypt.hashpw(b"bcrypt-password", bcrypt.gensalt(rounds=4)).decode()
    Settings.from_env({"SPOT_CONTROLLER_CONSOLE_READONLY_PASSWORD_HASH": hashed})
    hashes = PasswordHashes(read_only=hashed)
    principal = hashes.check("bcrypt-password")
    assert principal is not None
    assert not principal.can_write
    assert hashes.check("other") is None
