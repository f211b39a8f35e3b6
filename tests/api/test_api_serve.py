"""`spot-controller api serve`: the API apart from the daemon, on the same database, over
https when SPOT_CONTROLLER_API_TLS_CERT / _KEY are set; its configuration errors are one line."""

from __future__ import annotations

import json
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from tencentcloud.batch.v20170312 import batch_client, models
from tencentcloud.common import credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

from controller.simulator.tls import self_signed
from tests.api.rig import free_port
from tests.reliability.helpers import SPOT_CONTROLLER, child_environ, one_line_error, run_cli

MASTER_KEY = "mk-api-serve-0123456789abcdefghijklmnopqrstuv"
START_WITHIN_S = 30.0


def test_api_serve_over_tls_answers_the_sdk(tmp_path: Path) -> None:
    pair = self_signed(tmp_path / "tls")
    port = free_port()
    variables = {
        "SPOT_CONTROLLER_DATABASE_URL": f"sqlite:///{tmp_path / 'spot-controller.db'}",
        "SPOT_CONTROLLER_API_ADDR": f"127.0.0.1:{port}",
        "SPOT_CONTROLLER_API_MASTER_KEY": MASTER_KEY,
        "SPOT_CONTROLLER_API_TLS_CERT": str(pair.cert),
        "SPOT_CONTROLLER_API_TLS_KEY": str(pair.key),
        "SPOT_CONTROLLER_LOG_FORMAT": "json",
    }
    assert run_cli(["db", "upgrade"], variables, cwd=tmp_path).returncode == 0
    key = json.loads(
        run_cli(["api-key", "create", "ops", "--output", "json"], variables, cwd=tmp_path).stdout
    )
    env = [
        "env", "create", "by-cli", "--zone", "ap-guangzhou-3", "--instance-type", "S2.MEDIUM4",
        "--image-id", "img-pmqg1cw7", "--max-price", "0.5", "--desired", "0",
    ]  # fmt: skip
    assert run_cli(env, variables, cwd=tmp_path).returncode == 0
    out = (tmp_path / "serve.stdout").open("wb")
    server = subprocess.Popen(
        [SPOT_CONTROLLER, "api", "serve"],
        env=child_environ(variables),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    trust = ssl.create_default_context(cafile=str(pair.cert))
    try:
        deadline = time.monotonic() + START_WITHIN_S
        while True:
            assert server.poll() is None, (tmp_path / "serve.stdout").read_text()
            try:
                httpx.post(f"https://127.0.0.1:{port}/", verify=trust, timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "api serve did not start"
                time.sleep(0.1)
        with pytest.raises(httpx.HTTPError):  # plain http to the TLS port is not served
            httpx.post(f"http://127.0.0.1:{port}/", timeout=5)

        profile = ClientProfile(
            httpProfile=HttpProfile(endpoint=f"127.0.0.1:{port}", certification=str(pair.cert))
        )
        client = batch_client.BatchClient(
            credential.Credential(key["secret_id"], key["secret_key"]), "ap-guangzhou", profile
        )
        answer = client.DescribeComputeEnvs(models.DescribeComputeEnvsRequest())
        assert [e.EnvName for e in answer.ComputeEnvSet] == ["by-cli"]
    finally:
        server.terminate()
        assert server.wait(15) == 0, (tmp_path / "serve.stdout").read_text()
        out.close()
    text = (tmp_path / "serve.stdout").read_text()
    lines = [json.loads(line) for line in text.splitlines()]
    [listening] = [e for e in lines if e["event"] == "api_listening"]
    assert listening["endpoint"] == f"https://127.0.0.1:{port}"
    assert MASTER_KEY not in (tmp_path / "serve.stdout").read_text()


def test_api_configuration_errors_are_one_line(tmp_path: Path) -> None:
    base = {"SPOT_CONTROLLER_DATABASE_URL": f"sqlite:///{tmp_path / 'spot-controller.db'}"}
    assert run_cli(["db", "upgrade"], base, cwd=tmp_path).returncode == 0
    cases = {
        "no addr": ({}, ["api", "serve"], "SPOT_CONTROLLER_API_ADDR must be set"),
        "no master key": (
            {"SPOT_CONTROLLER_API_ADDR": f"127.0.0.1:{free_port()}"},
            ["api", "serve"],
            "SPOT_CONTROLLER_API_MASTER_KEY must be set",
        ),
        "short master key": (
            {"SPOT_CONTROLLER_API_MASTER_KEY": "short"},
            ["api-key", "list"],
            "SPOT_CONTROLLER_API_MASTER_KEY: must be at least 32 characters",
        ),
        "bad addr": (
            {"SPOT_CONTROLLER_API_ADDR": "nine-thousand"},
            ["api", "serve"],
            "SPOT_CONTROLLER_API_ADDR: must be host:port",
        ),
        "cert without key": (
            {"SPOT_CONTROLLER_API_TLS_CERT": str(tmp_path)},
            ["api", "serve"],
            "must be set together",
        ),
        "create without master key": ({}, ["api-key", "create", "x"], "MASTER_KEY must be set"),
        "bad key name": (
            {"SPOT_CONTROLLER_API_MASTER_KEY": MASTER_KEY},
            ["api-key", "create", "a b"],
            "name: must be 1 to 64 letters",
        ),
        "revoke unknown": (
            {"SPOT_CONTROLLER_API_MASTER_KEY": MASTER_KEY},
            ["api-key", "revoke", "nobody"],
            "no live API key named 'nobody'",
        ),
    }
    for case, (extra, args, expected) in cases.items():
        line = one_line_error(run_cli(args, {**base, **extra}, cwd=tmp_path))
        assert expected in line, (case, line)
