"""Tencent's tccli as a subprocess against ``simulator serve``, over http and over https.

tccli takes about two seconds a call to start, so these are marked ``tccli`` (deselect with
``-m 'not tccli'``). tccli trusts only certifi's bundle (the SDK passes ``certifi.where()`` as
``verify``, so neither ``--verify`` nor ``REQUESTS_CA_BUNDLE`` reach it): the https cases put a
``certifi`` whose bundle adds the simulator's certificate first on ``PYTHONPATH``, which is
what the README tells a rehearsing user to do.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import certifi
import pytest

from controller.settings import SIMULATOR_SECRET_ID, SIMULATOR_SECRET_KEY
from controller.simulator import Simulator, SimulatorConfig
from controller.simulator.server import background_server
from controller.simulator.tls import self_signed

pytestmark = pytest.mark.tccli
# A test dependency (pyproject's [test] extra): the venv's own, else one on PATH.
TCCLI = str(Path(sys.executable).with_name("tccli"))
if not Path(TCCLI).exists():
    TCCLI = shutil.which("tccli") or TCCLI


def _sim() -> Simulator:
    config = SimulatorConfig(
        secret_id=SIMULATOR_SECRET_ID,
        secret_key=SIMULATOR_SECRET_KEY,
        launch_delay_s=0,
        terminate_delay_s=0,
        power_delay_s=0,
    )
    return Simulator(config, seed=5)


@pytest.fixture(params=["http", "https"])
def endpoint(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, dict[str, str]]]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),  # tccli reads and writes ~/.tccli
        "TENCENTCLOUD_SECRET_ID": SIMULATOR_SECRET_ID,
        "TENCENTCLOUD_SECRET_KEY": SIMULATOR_SECRET_KEY,
    }
    if request.param == "http":
        with background_server(_sim()) as url:
            yield url, env  # http://127.0.0.1:PORT: tccli then speaks http
        return
    pair = self_signed(tmp_path / "tls")
    shim = tmp_path / "shim" / "certifi"
    shim.mkdir(parents=True)
    bundle = tmp_path / "shim" / "bundle.pem"
    bundle.write_text(Path(certifi.where()).read_text() + pair.cert.read_text())
    (shim / "__init__.py").write_text(
        f"def where():\n    return {str(bundle)!r}\n\n\ndef contents():\n"
        "    return open(where()).read()\n"
    )
    env["PYTHONPATH"] = str(shim.parent)
    with background_server(_sim(), tls=pair) as url:
        yield url.removeprefix("https://"), env  # 127.0.0.1:PORT, as a user types it


def tccli(endpoint: tuple[str, dict[str, str]], action: str, *args: str) -> Any:
    url, env = endpoint
    done = subprocess.run(
        [TCCLI, "cvm", action, "--region", "ap-guangzhou", "--endpoint", url, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    out = done.stdout.strip()
    try:
        return json.loads(out)
    except ValueError:
        return {"raw": out + done.stderr}


def test_rehearsal(endpoint: tuple[str, dict[str, str]]) -> None:
    regions = tccli(endpoint, "DescribeRegions")
    assert "ap-beijing" in {r["Region"] for r in regions["RegionSet"]}, regions
    zones = tccli(endpoint, "DescribeZones")
    assert zones["ZoneSet"][0]["Zone"] == "ap-guangzhou-3"
    images = tccli(endpoint, "DescribeImages", "--ImageIds", '["img-pmqg1cw7"]')
    assert images["ImageSet"][0]["OsName"].startswith("TencentOS")
    configs = tccli(
        endpoint,
        "DescribeZoneInstanceConfigInfos",
        "--Filters",
        '[{"Name": "instance-charge-type", "Values": ["SPOTPAID"]}, '
        '{"Name": "zone", "Values": ["ap-guangzhou-3"]}]',
    )
    assert {i["InstanceType"] for i in configs["InstanceTypeQuotaSet"]} >= {"S2.MEDIUM4"}
    launched = tccli(
        endpoint,
        "RunInstances",
        "--InstanceChargeType",
        "SPOTPAID",
        "--Placement",
        '{"Zone": "ap-guangzhou-3"}',
        "--InstanceType",
        "S2.MEDIUM4",
        "--ImageId",
        "img-pmqg1cw7",
        "--InstanceMarketOptions",
        '{"MarketType": "spot", "SpotOptions": {"MaxPrice": "0.6"}}',
        "--HostName",
        "rehearsal",
    )
    [iid] = launched["InstanceIdSet"]
    [inst] = tccli(endpoint, "DescribeInstances", "--InstanceIds", f'["{iid}"]')["InstanceSet"]
    assert (inst["HostName"], inst["InstanceState"]) == ("rehearsal", "RUNNING")
    assert "RequestId" in tccli(endpoint, "StopInstances", "--InstanceIds", f'["{iid}"]')
    status = tccli(endpoint, "DescribeInstancesStatus", "--InstanceIds", f'["{iid}"]')
    assert status["InstanceStatusSet"][0]["InstanceState"] == "STOPPED"
    # tccli asks in Chinese by default: the refusal comes back in Chinese
    refused = tccli(endpoint, "RebootInstances", "--InstanceIds", f'["{iid}"]')
    assert "UnsupportedOperation.InstanceStateStopped" in refused["raw"]
    assert "请求不支持已关机的实例" in refused["raw"]
    assert "RequestId" in tccli(endpoint, "TerminateInstances", "--InstanceIds", f'["{iid}"]')
    quota = tccli(endpoint, "DescribeAccountQuota")
    assert quota["AccountQuotaOverview"]["Region"] == "ap-guangzhou"
