"""The real daemon (a subprocess) and the real CLI: nothing recorded is lost to a SIGKILL, and
``notify`` adds, shows (masked), tests and removes targets."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from controller.notifications.service import Targets
from controller.service import Environments
from controller.store.store import Store
from tests.notifications.receiver import Receiver, receiving
from tests.reliability.fleet import daemon_environ
from tests.reliability.helpers import (
    CLI_TIMEOUT_S,
    SPOT_CONTROLLER,
    child_environ,
    one_line_error,
    run_cli,
    running_daemon,
)
from tests.support.polling import eventually
from tests.support.world import ENVIRONMENT, World, converged

NOTIFY = {
    "notify_poll_interval_s": 0.05,
    "notify_backoff_base_s": 0.05,
    "notify_backoff_max_s": 0.2,
}


async def _seed(url: str, hook: str) -> str:
    store = await Store.open(url)
    try:
        await Targets(store, "default").add("hook", hook, "webhook", [], [], "k")
        return (await Environments(store, "ap-guangzhou").create({**ENVIRONMENT})).id
    finally:
        await store.close()


async def test_nothing_recorded_is_lost_across_a_sigkill(
    database_url: str, sim_url: str, world: World, tmp_path: Path
) -> None:
    rec = Receiver(fail_next=10**9)  # down: every event waits in the outbox
    with receiving(rec):
        env_id = await _seed(database_url, rec.url)
        variables = daemon_environ(database_url, sim_url, **NOTIFY)
        store = await Store.open(database_url)
        try:
            with running_daemon(variables, tmp_path) as first:
                await eventually(
                    lambda: converged(world, store, env_id, 2), within_s=30, what="2 running"
                )

                async def queued() -> bool:
                    # the env's CREATED, and each node's CREATED and RUNNING
                    return (await store.outbox_depths()).get("hook", 0) >= 5 and bool(rec.requests)

                await eventually(queued, what="events queued while the receiver fails")
                first.kill()  # SIGKILL: no graceful anything
            assert (await store.outbox_depths())["hook"] >= 5
            rec.fail_next = 0  # the receiver is back
            with running_daemon(variables, tmp_path) as second:

                async def drained() -> bool:
                    return not await store.outbox_depths()

                await eventually(drained, within_s=30, what="the outbox drained after restart")
                assert second.stop() == 0, second.stderr()
            nodes = await store.list_nodes(env_id)
        finally:
            await store.close()
    ids: dict[tuple[str, str], set[str]] = defaultdict(set)
    for event in rec.events():
        ids[(event["event"], event["detail"].get("node_id", ""))].add(event["id"])
    assert ids[("COMPUTE_ENV_CREATED", "")], "the environment's creation"
    for node in nodes:
        if node["running_at"] is not None:
            assert ids[("COMPUTE_NODE_CREATED", node["id"])], node
            assert ids[("COMPUTE_NODE_RUNNING", node["id"])], node
    # At least once, never as two different events: a duplicate carries the same id.
    assert all(len(found) == 1 for found in ids.values()), ids
    assert all(r.signature_ok("k") for r in rec.delivered())


def _cli(args: list[str], url: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    variables = {"SPOT_CONTROLLER_DATABASE_URL": url}
    if stdin is None:
        return run_cli(args, variables)
    return subprocess.run(
        [SPOT_CONTROLLER, *args],
        env=child_environ(variables),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


def test_notify_commands(sqlite_url: str) -> None:
    asyncio.run(_seed_env(sqlite_url))
    with receiving() as rec:
        added = _cli(
            ["notify", "add", "hook", "--url", rec.url + "?token=tok-1234567890"], sqlite_url
        )
        assert added.returncode == 0, added.stderr
        [line] = [x for x in added.stdout.splitlines() if x.startswith("signing secret: ")]
        secret = line.removeprefix("signing secret: ")
        assert len(secret) >= 40
        tested = _cli(["notify", "test", "hook"], sqlite_url)
        assert tested.returncode == 0, tested.stderr
        [req] = rec.delivered()
        assert req.signature_ok(secret)
        assert req.json()["event"] == "NOTIFICATION_TEST"
    robot = _cli(
        [
            "notify",
            "add",
            "ding",
            "--kind",
            "dingtalk",
            "--secret-stdin",
            "--url",
            "https://oapi.dingtalk.com/robot/send?access_token=abc123secret",
            "--events",
            "COMPUTE_ENV_SHORT,compute_env_error",
            "--env",
            "web",
        ],
        sqlite_url,
        stdin="SECdingsecret\n",
    )
    assert robot.returncode == 0, robot.stderr
    listed = _cli(["notify", "list", "--output", "json"], sqlite_url)
    assert listed.returncode == 0, listed.stderr
    views = {v["name"]: v for v in json.loads(listed.stdout)}
    assert views["ding"]["url"] == "https://oapi.dingtalk.com/robot/send?access_token=***"
    assert views["ding"]["events"] == ["COMPUTE_ENV_SHORT", "COMPUTE_ENV_ERROR"]
    assert views["ding"]["environments"] == ["web"]
    assert views["ding"]["signed"] is True
    assert views["hook"]["delivered"] == 0  # a test is not an outbox delivery
    table = _cli(["notify", "list"], sqlite_url).stdout
    for secret_text in ("abc123secret", "SECdingsecret", "tok-1234567890", secret):
        assert secret_text not in listed.stdout
        assert secret_text not in table
    removed = _cli(["notify", "remove", "ding"], sqlite_url)
    assert removed.returncode == 0, removed.stderr
    assert [
        v["name"]
        for v in json.loads(_cli(["notify", "list", "--output", "json"], sqlite_url).stdout)
    ] == ["hook"]


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["notify", "add", "x", "--url", "ftp://h/x"], "url"),
        (["notify", "add", "Bad Name", "--url", "http://h/x"], "name"),
        (["notify", "add", "x", "--url", "http://h/x", "--events", "NOPE"], "events"),
        (["notify", "add", "x", "--url", "http://h/x", "--env", "missing"], "env"),
        (["notify", "remove", "nobody"], "name"),
        (["notify", "test", "nobody"], "name"),
    ],
)
def test_bad_notify_input_is_one_line_naming_the_field(
    sqlite_url: str, args: list[str], field: str
) -> None:
    line = one_line_error(_cli(args, sqlite_url))
    assert line.startswith(f"error: {field}:") or f" {field}" in line, line
    assert _cli(["notify", "list", "--output", "json"], sqlite_url).stdout.strip() == "[]"


def test_a_wecom_robot_takes_no_secret(sqlite_url: str) -> None:
    url = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k"
    result = _cli(
        ["notify", "add", "w", "--kind", "wecom", "--url", url, "--secret-stdin"], sqlite_url, "s\n"
    )
    assert "secret" in one_line_error(result)


async def _seed_env(url: str) -> None:
    store = await Store.open(url)
    try:
        await Environments(store, "ap-guangzhou").create({**ENVIRONMENT})
    finally:
        await store.close()
