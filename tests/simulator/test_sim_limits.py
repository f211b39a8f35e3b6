"""The simulator's own table of Tencent's rate limits, and the client kept under it.

The simulator used to copy the controller client's defaults, so a client tuned past Tencent's
limit was never throttled in rehearsal. These tests fail the day a client default rises above
what Tencent documents, and prove the simulator throttles at its own figure with Tencent's text.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from controller import settings
from controller.cloud import client, ratelimit
from controller.simulator import Simulator, SimulatorConfig
from controller.simulator.api import ACTIONS
from controller.simulator.limits import TENCENT_RATE_LIMITS
from tests.simulator.helpers import FakeClock, in_process


def test_every_action_has_a_documented_limit() -> None:
    assert set(ACTIONS) <= set(TENCENT_RATE_LIMITS)
    assert TENCENT_RATE_LIMITS["RunInstances"] == 10
    assert TENCENT_RATE_LIMITS["DescribeInstances"] == 40


def _actions_the_client_calls() -> set[str]:
    source = Path(inspect.getfile(client)).read_text()
    return {action for action in ACTIONS if f'"{action}"' in source}


def test_the_client_defaults_stay_at_or_under_tencents_limits() -> None:
    for action, rate in settings.DEFAULT_RATE_LIMITS.items():
        assert rate <= TENCENT_RATE_LIMITS[action], action
    called = _actions_the_client_calls()
    assert {"RunInstances", "DescribeInstances", "DescribeZoneInstanceConfigInfos"} <= called
    # an action the client calls without naming it runs at the client's default rate
    for action in called - set(settings.DEFAULT_RATE_LIMITS):
        assert TENCENT_RATE_LIMITS[action] >= ratelimit.DEFAULT_RATE, action


def test_the_default_config_carries_the_table_not_the_client_defaults() -> None:
    assert SimulatorConfig.default().faults.rate_limits == dict(TENCENT_RATE_LIMITS)


async def test_throttling_at_tencents_figure_with_tencents_text() -> None:
    clock = FakeClock()
    config = SimulatorConfig.default()
    sim = Simulator(config, seed=3, clock=clock)
    async with in_process(sim, clock) as cvm:
        results = [await cvm.call("RunInstances", {}) for _ in range(12)]
    codes = [r.get("Error", {}).get("Code", "OK") for r in results]
    # a frozen clock never refills: the 10 tokens of one second, then refusals
    assert codes[:10] == ["MissingParameter"] * 10
    assert codes[10:] == ["RequestLimitExceeded"] * 2
    message = results[11]["Error"]["Message"]
    match = re.search(r"equals to `(\d+)` in a second.*frequency limit `(\d+)`", message)
    assert match is not None, message
    assert match.groups() == ("12", "10")
