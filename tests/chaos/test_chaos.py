"""Chaos: faults, reclaim storms, releases, desired changes and SIGKILL, checked on ground truth.

The suite runs a short form; the long form for release checks is the same test, longer:
``SPOT_CONTROLLER_CHAOS_DURATION_S=600 pytest tests/chaos``. A failure prints the seed;
``SPOT_CONTROLLER_CHAOS_SEED=N`` replays that schedule.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.service import Environments
from controller.settings import SIMULATOR_SECRET_ID, SIMULATOR_SECRET_KEY
from controller.simulator import FaultsConfig, Simulator, SimulatorConfig
from controller.simulator.server import background_server
from controller.store.store import Store
from tests.chaos.harness import (
    DAEMON_ENV,
    Daemon,
    Ground,
    Violations,
    chaos_rng,
    convergence_bound_s,
    daemon_env,
)
from tests.chaos.notifications import NOTIFY_ENV, add_target, check_notifications
from tests.notifications.receiver import Receiver, receiving
from tests.support.polling import wait_until

DURATION_S = float(os.environ.get("SPOT_CONTROLLER_CHAOS_DURATION_S", "25"))
# Guarantee 3's window as the README states it: a resync interval + the launch timeout of the
# chaos daemons' settings (31 s of controller time).
OVERPROVISION_WINDOW_S = float(DAEMON_ENV["SPOT_CONTROLLER_RESYNC_INTERVAL_S"]) + float(
    DAEMON_ENV["SPOT_CONTROLLER_LAUNCH_TIMEOUT_S"]
)
FAULTS = {"error_rate": 0.1, "http_error_rate": 0.05, "timeout_rate": 0.05, "describe_lag_s": 2.0}
ENVIRONMENTS = {"alpha": 30, "beta": 50, "gamma": 70, "delta": 20}


@pytest.fixture
def chaos_sim() -> Iterator[str]:
    config = dataclasses.replace(
        SimulatorConfig.default(),
        launch_delay_s=0.5,
        terminate_delay_s=1.0,
        secret_id=SIMULATOR_SECRET_ID,
        secret_key=SIMULATOR_SECRET_KEY,
        faults=FaultsConfig(timeout_hang_s=3.0, **FAULTS),  # Tencent's rate limits stay on
    )
    with background_server(Simulator(config, seed=11)) as url:
        yield url


def _create_environments(database_url: str) -> dict[str, int]:
    async def create() -> dict[str, int]:
        store = await Store.open(database_url)
        try:
            ids = {}
            for name, desired in ENVIRONMENTS.items():
                row = await Environments(store, "ap-guangzhou").create(
                    {
                        "name": name,
                        "zone": "ap-guangzhou-3",
                        "instance_type": "S2.MEDIUM4",
                        "fallback_zones": "ap-guangzhou-4",
                        "image_id": "img-pmqg1cw7",
                        "max_price": "0.60",
                        "desired_count": desired,
                    }
                )
                ids[row.id] = desired
            return ids
        finally:
            await store.close()

    return asyncio.run(create())


def run_chaos(database_url: str, sim_url: str, log_dir: Path, replicas: int) -> None:
    # Every fifth delivery fails: retried, and across the kills nothing recorded is lost.
    with receiving(Receiver(fail_every=5)) as rec:
        add_target(database_url, rec)
        _run_chaos(database_url, sim_url, log_dir, replicas, rec)


def _run_chaos(
    database_url: str, sim_url: str, log_dir: Path, replicas: int, rec: Receiver
) -> None:
    seed, rng = chaos_rng()
    violations = Violations(seed)
    ground = Ground(sim_url, database_url)
    envs = _create_environments(database_url)
    for env_id, desired in envs.items():
        ground.desired_history[env_id].append((time.monotonic(), desired))
    daemons = [
        Daemon(f"daemon-{i}", daemon_env(database_url, sim_url, **NOTIFY_ENV), log_dir)
        for i in range(replicas)
    ]
    kills = 0
    try:
        for d in daemons:
            d.start()
        deadline = time.monotonic() + DURATION_S
        while time.monotonic() < deadline:
            time.sleep(rng.uniform(0.5, 2.0))
            action = rng.choices(
                ["kill", "reclaim", "release", "desired", "blind"], weights=[30, 15, 15, 25, 15]
            )[0]
            if action == "kill":
                victim = rng.choice(daemons)
                killed_at = time.monotonic()
                victim.kill()
                kills += 1
                time.sleep(rng.uniform(0.0, 1.0))
                victim.start()
                ground.controller_blind(killed_at, time.monotonic())
            elif action == "reclaim":
                ground.admin("POST", "reclaim", {"fraction": rng.uniform(0.2, 0.4)})
            elif action == "release":
                alive = [
                    i["InstanceId"]
                    for v in ground.alive_by_env().values()
                    for i in v
                    if i["InstanceState"] == "RUNNING"
                ]
                if alive:
                    picked = rng.sample(alive, min(len(alive), rng.randint(1, 5)))
                    ground.admin("POST", "release", {"instance_ids": picked})
            elif action == "desired":
                ground.set_desired(rng.choice(list(envs)), rng.randint(0, 100))
            else:
                # Calls are processed but never answered, then the daemon is killed: the
                # crash falls between RunInstances and the record of its result.
                ground.admin("PUT", "faults", {"timeout_rate": 0.8})
                ground.set_desired(rng.choice(list(envs)), rng.randint(60, 100))
                time.sleep(rng.uniform(0.5, 2.0))
                killed_at = time.monotonic()
                for d in daemons:
                    d.kill()
                kills += len(daemons)
                ground.admin("PUT", "faults", {"timeout_rate": FAULTS["timeout_rate"]})
                for d in daemons:
                    d.start()
                ground.controller_blind(killed_at, time.monotonic())
            ground.check_overprovisioning(violations, OVERPROVISION_WINDOW_S)

        # Faults stop; capacity exists: every environment converges within the stated bound.
        ground.admin(
            "PUT",
            "faults",
            {"error_rate": 0, "http_error_rate": 0, "timeout_rate": 0, "describe_lag_s": 0},
        )
        for d in daemons:
            if not d.alive():
                d.start()
        total = sum(n for (n,) in ground.sql("SELECT desired_count FROM compute_environments"))
        bound = convergence_bound_s(total)

        def converged() -> bool:
            ground.check_overprovisioning(violations, OVERPROVISION_WINDOW_S)
            return ground.converged()

        took = wait_until(converged, bound)
        if took is None:
            violations.add(f"not converged within the bound of {bound:.1f} s")
        time.sleep(float(3))  # let the orphan grace pass, then look for leaks
        ground.check_no_duplicates(violations)
        ground.check_no_leak(violations)
        ground.check_history(violations)
        if replicas > 1:
            check_one_actor_at_a_time(ground, violations)
        check_notifications(ground, rec, violations)
        for d in daemons:
            code = d.stop()
            if code != 0:
                violations.add(f"{d.name} exited {code} on SIGTERM")
        assert kills > 0
        assert not violations.found, (
            violations.report()
            + "\n\n"
            + "\n\n".join(f"--- {d.name} ---\n{d.tail()}" for d in daemons)
        )
    finally:
        for d in daemons:
            d.kill()
        ground.close()


def check_one_actor_at_a_time(ground: Ground, violations: Violations) -> None:
    """Launch intents, in time order, carry non-decreasing lease epochs, one holder each."""
    rows = ground.sql("SELECT created_at, epoch, holder FROM launches ORDER BY created_at")
    holders: dict[int, str] = {}
    last_epoch = 0
    for created_at, epoch, holder in rows:
        if epoch is None or epoch < last_epoch:
            violations.add(f"launch at {created_at} under epoch {epoch} after epoch {last_epoch}")
        if holders.setdefault(epoch, holder) != holder:
            violations.add(f"epoch {epoch} used by {holders[epoch]} and {holder}")
        last_epoch = max(last_epoch, epoch or 0)


def test_chaos_single_daemon(database_url: str, chaos_sim: str, tmp_path: Path) -> None:
    run_chaos(database_url, chaos_sim, tmp_path, replicas=1)


@pytest.mark.postgres
def test_chaos_three_replicas_on_postgresql(pg_url: str, chaos_sim: str, tmp_path: Path) -> None:
    run_chaos(pg_url, chaos_sim, tmp_path, replicas=3)
