"""Chaos harness: real daemons as subprocesses, a faulty simulator, SIGKILL at random moments.

Invariants are read from ground truth: the simulator's instances (``include_gone=1``) and the
database rows. A failing run names the seed that reproduces its schedule.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from controller.core.model import CLUSTER_TAG, ENV_TAG
from controller.settings import SIMULATOR_SECRET_ID, SIMULATOR_SECRET_KEY
from controller.store.database import create_engine

# Daemon settings for chaos: fast loops, short timeouts, a short lease so failover is quick.
DAEMON_ENV = {
    "SPOT_CONTROLLER_POLL_INTERVAL_S": "0.2",
    "SPOT_CONTROLLER_RESYNC_INTERVAL_S": "1.0",
    "SPOT_CONTROLLER_BACKOFF_BASE_S": "0.5",
    "SPOT_CONTROLLER_BACKOFF_MAX_S": "3.0",
    "SPOT_CONTROLLER_ERROR_RETRY_S": "3.0",
    "SPOT_CONTROLLER_ORPHAN_GRACE_S": "2.0",
    "SPOT_CONTROLLER_VISIBILITY_GRACE_S": "4.0",
    "SPOT_CONTROLLER_LAUNCH_TIMEOUT_S": "30.0",
    "SPOT_CONTROLLER_CVM_TIMEOUT_S": "1.0",
    "SPOT_CONTROLLER_CVM_CONNECT_TIMEOUT_S": "1.0",
    "SPOT_CONTROLLER_CVM_MAX_ATTEMPTS": "3",
    "SPOT_CONTROLLER_CVM_RETRY_BASE_S": "0.05",
    "SPOT_CONTROLLER_CVM_RETRY_MAX_S": "0.5",
    "SPOT_CONTROLLER_LEASE_DURATION_S": "3.0",
    "SPOT_CONTROLLER_LEASE_RENEW_DEADLINE_S": "2.0",
    "SPOT_CONTROLLER_LEASE_RETRY_S": "0.5",
    "SPOT_CONTROLLER_SHUTDOWN_DEADLINE_S": "5.0",
    "SPOT_CONTROLLER_LOG_FORMAT": "json",
    "TENCENTCLOUD_SECRET_ID": SIMULATOR_SECRET_ID,
    "TENCENTCLOUD_SECRET_KEY": SIMULATOR_SECRET_KEY,
}


def leak_bound_s() -> float:
    """Guarantee 2's bound with the chaos settings: the orphan grace, a resync interval, and
    the calls that resolve or terminate (every attempt of one call timing out)."""
    env = DAEMON_ENV
    attempts = float(env["SPOT_CONTROLLER_CVM_MAX_ATTEMPTS"])
    call_s = float(env["SPOT_CONTROLLER_CVM_TIMEOUT_S"]) * attempts
    return (
        float(env["SPOT_CONTROLLER_ORPHAN_GRACE_S"])
        + 2 * float(env["SPOT_CONTROLLER_RESYNC_INTERVAL_S"])
        + call_s
    )


def takeover_s() -> float:
    """From a daemon's start to its first act: the dead holder's lease expires, then a sweep."""
    env = DAEMON_ENV
    return (
        float(env["SPOT_CONTROLLER_LEASE_DURATION_S"])
        + float(env["SPOT_CONTROLLER_LEASE_RETRY_S"])
        + 2 * float(env["SPOT_CONTROLLER_RESYNC_INTERVAL_S"])
    )


def convergence_bound_s(instances: int) -> float:
    """Guarantee 4, for the settings above: from faults stopping to every environment converged.

    lease takeover + first complete sweep + one backoff cap + the visibility grace (an instance
    that vanished before it was seen) + launch calls at 10/s + boot + the sweep that sees them
    running, plus the timeouts of calls caught mid-fault.
    """
    env = DAEMON_ENV
    lease = float(env["SPOT_CONTROLLER_LEASE_DURATION_S"])
    resync = float(env["SPOT_CONTROLLER_RESYNC_INTERVAL_S"])
    backoff = float(env["SPOT_CONTROLLER_BACKOFF_MAX_S"])
    timeout = float(env["SPOT_CONTROLLER_CVM_TIMEOUT_S"]) * float(
        env["SPOT_CONTROLLER_CVM_MAX_ATTEMPTS"]
    )
    visibility = float(env["SPOT_CONTROLLER_VISIBILITY_GRACE_S"])
    launch_calls = -(-instances // 100) / 10.0
    return lease + 3 * resync + backoff + visibility + launch_calls + 2 * timeout + 1.0 + 5.0


class Daemon:
    """One ``spot-controller run`` subprocess with its own log file."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "controller", "run"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """SIGTERM, then wait; SIGKILL if the deadline passes. The exit code of SIGTERM."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            return None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def daemon_env(database_url: str, sim_url: str, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SPOT_CONTROLLER_", "TENCENTCLOUD_"))
    }
    env.update(DAEMON_ENV)
    env["SPOT_CONTROLLER_DATABASE_URL"] = database_url
    env["SPOT_CONTROLLER_CVM_ENDPOINT"] = sim_url
    env.update(extra)
    return env


@dataclass
class Violations:
    seed: int
    found: list[str] = field(default_factory=list)

    def add(self, message: str) -> None:
        if len(self.found) < 50:
            self.found.append(message)

    def report(self) -> str:
        return (
            f"chaos seed {self.seed} (rerun with SPOT_CONTROLLER_CHAOS_SEED={self.seed}):\n"
            + "\n".join(self.found)
        )


class Ground:
    """The simulator's ground truth and the database, read synchronously."""

    def __init__(self, sim_url: str, database_url: str, cluster: str = "default") -> None:
        self.http = httpx.Client(base_url=sim_url, timeout=10)
        self.database_url = database_url
        self.cluster = cluster
        # env id -> (time, desired) history, to evaluate the over-provisioning bound.
        self.desired_history: dict[str, deque[tuple[float, int]]] = defaultdict(deque)
        # (from, to) monotonic: a daemon was killed and the controller could not act (down,
        # then taking the lease over and sweeping again). No controller scales in meanwhile.
        self.blind: list[tuple[float, float]] = []

    def close(self) -> None:
        self.http.close()

    def admin(self, method: str, path: str, payload: dict[str, Any]) -> Any:
        response = self.http.request(method, f"/_sim/{path}", json=payload)
        response.raise_for_status()
        return response.json()

    def instances(self, include_gone: bool = False) -> list[dict[str, Any]]:
        params = {"include_gone": "1"} if include_gone else {}
        response = self.http.get("/_sim/instances", params=params)
        response.raise_for_status()
        items = response.json()["instances"]
        return [i for i in items if i["Tags"].get(CLUSTER_TAG) == self.cluster]

    def alive_by_env(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for inst in self.instances():
            if inst["InstanceState"] in ("PENDING", "RUNNING"):
                out[inst["Tags"].get(ENV_TAG, "")].append(inst)
        return out

    def sql(self, query: str, **params: Any) -> list[Any]:
        async def run() -> list[Any]:
            engine = create_engine(self.database_url)
            try:
                async with engine.begin() as conn:
                    result = await conn.execute(sa.text(query), params)
                    return list(result.all()) if result.returns_rows else []
            finally:
                await engine.dispose()

        return asyncio.run(run())

    def set_desired(self, env_id: str, desired: int) -> None:
        self.desired_history[env_id].append((time.monotonic(), desired))
        self.sql(
            "UPDATE compute_environments SET desired_count = :n WHERE id = :id",
            n=desired,
            id=env_id,
        )

    def controller_blind(self, killed_at: float, restarted_at: float) -> None:
        """A kill: the controller acts again a takeover after the restart, not before."""
        self.blind.append((killed_at, restarted_at + takeover_s()))

    def window_start(self, now: float, window_s: float) -> float:
        """``window_s`` of time the controller could act, counted back from ``now``."""
        merged: list[list[float]] = []
        for begin, end in sorted(b for b in self.blind if b[0] < now):
            if merged and begin <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([begin, end])
        t, remaining = now, window_s
        for begin, end in reversed(merged):
            gap = t - min(end, t)
            if gap >= remaining:
                return t - remaining
            remaining -= gap
            t = min(t, begin)
        return t - remaining

    def max_desired_since(self, env_id: str, since: float) -> int:
        history = self.desired_history[env_id]
        in_force = [d for t, d in history if t >= since]
        before = [d for t, d in history if t < since]
        if before:
            in_force.append(before[-1])
        return max(in_force) if in_force else 0

    def check_overprovisioning(self, violations: Violations, window_s: float) -> None:
        """Guarantee 3 on ground truth: alive <= the largest desired count of the window."""
        now = time.monotonic()
        for env_id, alive in self.alive_by_env().items():
            if env_id not in self.desired_history:
                continue
            bound = self.max_desired_since(env_id, self.window_start(now, window_s))
            if len(alive) > bound:
                violations.add(
                    f"over-provisioned: {env_id} has {len(alive)} alive, "
                    f"bound {bound} (max desired in the last {window_s:g} s)\n"
                    + self._overprovision_detail(env_id, alive, now)
                )

    def _overprovision_detail(self, env_id: str, alive: list[dict[str, Any]], now: float) -> str:
        """What a failure report needs to tell a controller bug from a slow machine."""
        records = {
            row[0]: f"{row[1]}@{row[2]}"
            for row in self.sql(
                "SELECT instance_id, state, launch_token FROM compute_nodes "
                "WHERE env_id = :env AND instance_id IS NOT NULL",
                env=env_id,
            )
        }
        history = [(round(t - now, 1), d) for t, d in self.desired_history[env_id]][-6:]
        blind = [(round(b - now, 1), round(e - now, 1)) for b, e in self.blind][-4:]
        newest = sorted(alive, key=lambda i: i.get("CreatedTime") or "")[-8:]
        lines = [f"    desired (s ago, n): {history}; blind: {blind}"]
        lines += [
            f"    {i['InstanceId']} {i['InstanceState']} created {i.get('CreatedTime')} "
            f"token {i.get('ClientToken')} record {records.get(i['InstanceId'], 'NONE')}"
            for i in newest
        ]
        return "\n".join(lines)

    def check_no_duplicates(self, violations: Violations) -> None:
        """Guarantee 1: every instance comes from a recorded launch, at most count per token."""
        launches = {row[0]: row[1] for row in self.sql("SELECT client_token, count FROM launches")}
        per_token: dict[str, int] = defaultdict(int)
        for inst in self.instances(include_gone=True):
            per_token[inst.get("ClientToken") or ""] += 1
        for token, n in per_token.items():
            if token not in launches:
                violations.add(f"{n} instance(s) launched with unrecorded token {token!r}")
            elif n > launches[token]:
                violations.add(f"token {token}: {n} instances for a launch of {launches[token]}")

    def check_no_leak(self, violations: Violations) -> None:
        """Guarantee 2 (and 5): every alive instance is recorded, live, for a live environment,
        within the guarantee's bound (a launch answered just before a kill is resolved by the
        next sweep of the new holder)."""
        deadline = time.monotonic() + leak_bound_s()
        found = self.leaks()
        while found and time.monotonic() < deadline:
            time.sleep(0.2)
            found = self.leaks()
        for message in found:
            violations.add(message)

    def leaks(self) -> list[str]:
        nodes = {
            row[0]: (row[1], row[2])
            for row in self.sql(
                "SELECT instance_id, env_id, state FROM compute_nodes WHERE instance_id IS NOT NULL"
            )
        }
        envs = {row[0] for row in self.sql("SELECT id FROM compute_environments")}
        found = []
        for inst in self.instances():
            if inst["InstanceState"] == "TERMINATING":
                continue
            record = nodes.get(inst["InstanceId"])
            if record is None:
                found.append(f"leak: {inst['InstanceId']} ({inst['InstanceState']}) has no record")
            elif record[1] == "ENDED" or record[0] not in envs:
                found.append(f"leak: {inst['InstanceId']} alive but recorded {record}")
        return found

    def check_history(self, violations: Violations) -> None:
        """Guarantee 5: every instance the cloud ever ran has a node record with activities."""
        recorded = {
            row[0]
            for row in self.sql(
                "SELECT instance_id FROM compute_nodes WHERE instance_id IS NOT NULL"
            )
        }
        for inst in self.instances(include_gone=True):
            if inst["InstanceId"] not in recorded:
                violations.add(f"{inst['InstanceId']} ({inst.get('EndReason')}) never recorded")
        silent = self.sql(
            "SELECT n.id FROM compute_nodes n WHERE NOT EXISTS "
            "(SELECT 1 FROM activities a WHERE a.node_id = n.id)"
        )
        if silent:
            violations.add(f"{len(silent)} node(s) without any activity: {silent[:5]}")

    def converged(self) -> bool:
        desired = dict(self.sql("SELECT id, desired_count FROM compute_environments"))
        alive = self.alive_by_env()
        return all(
            sum(i["InstanceState"] == "RUNNING" for i in alive.get(env_id, [])) == n
            and len(alive.get(env_id, [])) == n
            for env_id, n in desired.items()
        )


def chaos_rng() -> tuple[int, random.Random]:
    seed = int(os.environ.get("SPOT_CONTROLLER_CHAOS_SEED") or random.randrange(1, 10**6))
    return seed, random.Random(seed)
