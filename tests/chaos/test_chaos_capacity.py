"""Chaos for the capacity policy: spot gone from every pool and back, on ground truth.

A daemon runs against a simulator server; environments compensate with pay-as-you-go. In the
first cycles the spot stock of all their pools drops to 0 (every spot instance reclaimed) and
comes back; in the last, the spot quota is 0 (``LimitExceeded.SpotQuota``), every spot
instance is reclaimed, and the daemon is SIGKILLed while it compensates and again on the way
back. At every sample the simulator's instances must satisfy guarantee 6 (never above desired
+ budget, spend never above the cap), and each phase must finish within the bound the README
states (plus a takeover after a kill); then nothing leaked or doubled.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from controller.service import Environments
from controller.settings import SIMULATOR_SECRET_ID, SIMULATOR_SECRET_KEY
from controller.simulator import Simulator, SimulatorConfig
from controller.simulator.server import background_server
from controller.store.store import Store
from tests.chaos.harness import (
    DAEMON_ENV,
    Daemon,
    Ground,
    Violations,
    daemon_env,
    takeover_s,
)
from tests.support.polling import wait_until

POOLS = [("ap-guangzhou-3", "S2.MEDIUM4"), ("ap-guangzhou-4", "S2.MEDIUM4")]
AFTER_S, BUDGET, LAUNCH_DELAY_S, TERMINATE_DELAY_S = 2, 3, 0.5, 1.0
# name -> (desired, max_hourly_spend or None)
ENVIRONMENTS = {"comp-a": (12, None), "comp-b": (20, None), "comp-capped": (10, "4.00")}
CYCLES = 3  # the last one: spot quota 0 and daemon kills


@pytest.fixture
def capacity_sim() -> Iterator[str]:
    config = dataclasses.replace(
        SimulatorConfig.default(),
        launch_delay_s=LAUNCH_DELAY_S,
        terminate_delay_s=TERMINATE_DELAY_S,
        secret_id=SIMULATOR_SECRET_ID,
        secret_key=SIMULATOR_SECRET_KEY,
    )
    with background_server(Simulator(config, seed=5)) as url:
        yield url


def _create(database_url: str) -> dict[str, tuple[int, Decimal | None]]:
    async def create() -> dict[str, tuple[int, Decimal | None]]:
        store = await Store.open(database_url)
        try:
            ids = {}
            for name, (desired, cap) in ENVIRONMENTS.items():
                row = await Environments(store, "ap-guangzhou").create(
                    {
                        "name": name,
                        "zone": POOLS[0][0],
                        "instance_type": POOLS[0][1],
                        "fallback_zones": POOLS[1][0],
                        "image_id": "img-pmqg1cw7",
                        "max_price": "0.30",
                        "desired_count": desired,
                        "compensate_with_on_demand": True,
                        "compensate_after_s": AFTER_S,
                        "disruption_budget": BUDGET,
                        "max_hourly_spend": cap,
                    }
                )
                ids[row.id] = (desired, Decimal(cap) if cap else None)
            return ids
        finally:
            await store.close()

    return asyncio.run(create())


def _settings(name: str) -> float:
    return float(DAEMON_ENV[f"SPOT_CONTROLLER_{name}"])


def compensation_bound_s() -> float:
    """Guarantee 6: the reclaim seen (a sweep), the first spot failures, compensate_after_s,
    one pass, the launch, and the sweep that sees them run; plus the visibility grace."""
    resync, backoff = _settings("RESYNC_INTERVAL_S"), _settings("BACKOFF_MAX_S")
    return AFTER_S + 3 * resync + backoff + LAUNCH_DELAY_S + _settings("VISIBILITY_GRACE_S") + 3.0


def way_back_bound_s(compensating: int) -> float:
    """Guarantee 6: ceil(C / budget) batches of backoff + launch + sweep + terminate."""
    resync, backoff = _settings("RESYNC_INTERVAL_S"), _settings("BACKOFF_MAX_S")
    batch = backoff + LAUNCH_DELAY_S + 2 * resync + TERMINATE_DELAY_S
    return math.ceil(compensating / BUDGET) * batch + backoff + 5.0


def _set_spot(ground: Ground, **values: int) -> None:
    for zone, instance_type in POOLS:
        ground.admin("PUT", "market", {"zone": zone, "instance_type": instance_type, **values})


def _spot_gone(ground: Ground, cycle: int) -> None:
    """Stock cut in the first cycles; in the last, no spot quota and every spot reclaimed."""
    if cycle < CYCLES - 1:
        _set_spot(ground, stock=0)  # every spot instance of these pools is reclaimed
    else:
        _set_spot(ground, quota=0)
        ground.admin("POST", "reclaim", {"fraction": 1.0})


def _spot_back(ground: Ground, cycle: int) -> None:
    _set_spot(ground, **({"stock": 5000} if cycle < CYCLES - 1 else {"quota": 5000}))


def _kill_and_restart(daemon: Daemon, cycle: int) -> float:
    """SIGKILL in the last cycle; the seconds the phase's bound grows by (a takeover)."""
    if cycle < CYCLES - 1:
        return 0.0
    time.sleep(0.5)
    daemon.kill()
    daemon.start()
    return takeover_s()


def _check(ground: Ground, envs: dict[str, tuple[int, Decimal | None]], v: Violations) -> None:
    alive = ground.alive_by_env()
    for env_id, (desired, cap) in envs.items():
        mine = alive.get(env_id, [])
        if len(mine) > desired + BUDGET:
            v.add(f"{env_id}: {len(mine)} alive > desired {desired} + budget {BUDGET}")
        spend = sum(Decimal(str(i["Price"])) for i in mine)
        if cap is not None and spend > cap:
            v.add(f"{env_id}: spend {spend} CNY/h > cap {cap}")


def _charges(ground: Ground, env_id: str) -> list[str]:
    return sorted(i["InstanceChargeType"] for i in ground.alive_by_env().get(env_id, []))


def _covered(ground: Ground, envs: dict[str, tuple[int, Decimal | None]]) -> bool:
    """Uncapped environments at desired, RUNNING; the capped one as far as its cap allows."""
    alive = ground.alive_by_env()
    for env_id, (desired, cap) in envs.items():
        running = [i for i in alive.get(env_id, []) if i["InstanceState"] == "RUNNING"]
        if cap is None and len(running) < desired:
            return False
        if cap is not None and not running:
            return False
    return True


def _all_spot(ground: Ground, envs: dict[str, tuple[int, Decimal | None]]) -> bool:
    return ground.converged() and all(
        set(_charges(ground, env_id)) == {"SPOTPAID"} for env_id in envs
    )


def test_chaos_spot_sold_out_everywhere_and_back(
    database_url: str, capacity_sim: str, tmp_path: Path
) -> None:
    violations = Violations(seed=5)
    ground = Ground(capacity_sim, database_url)
    envs = _create(database_url)
    daemon = Daemon("daemon-0", daemon_env(database_url, capacity_sim), tmp_path)

    def sample(check: object) -> object:
        def run() -> bool:
            _check(ground, envs, violations)
            return bool(check())  # type: ignore[operator]

        return run

    try:
        daemon.start()
        if wait_until(sample(lambda: _all_spot(ground, envs)), 60.0) is None:
            violations.add("did not converge to spot at the start")
        for cycle in range(CYCLES):
            _spot_gone(ground, cycle)
            bound = compensation_bound_s() + _kill_and_restart(daemon, cycle)
            took = wait_until(sample(lambda: _covered(ground, envs)), bound)
            if took is None:
                violations.add(f"cycle {cycle}: not compensated within {bound:.1f} s")
            print(f"cycle {cycle}: covered after {took} s (bound {bound:.1f} s)")
            compensating = sum(
                _charges(ground, env_id).count("POSTPAID_BY_HOUR") for env_id in envs
            )
            if cycle == 0 and compensating == 0:
                violations.add("no pay-as-you-go instance was launched while spot was gone")
            _spot_back(ground, cycle)
            bound = way_back_bound_s(compensating) + _kill_and_restart(daemon, cycle)
            took = wait_until(sample(lambda: _all_spot(ground, envs)), bound)
            if took is None:
                violations.add(f"cycle {cycle}: {compensating} not replaced within {bound:.1f} s")
            print(f"cycle {cycle}: {compensating} replaced after {took} s (bound {bound:.1f} s)")
        time.sleep(3.0)  # the orphan grace, then look for leaks and duplicates
        ground.check_no_duplicates(violations)
        ground.check_no_leak(violations)
        ground.check_history(violations)
        code = daemon.stop()
        if code != 0:
            violations.add(f"daemon exited {code} on SIGTERM")
        assert not violations.found, violations.report() + "\n\n" + daemon.tail()
    finally:
        daemon.kill()
        ground.close()
