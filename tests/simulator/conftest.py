"""Fixtures of the simulator tests: a fake clock, a fast config, an in-process client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from controller.simulator import Simulator, SimulatorConfig
from tests.simulator.helpers import Cvm, FakeClock, in_process


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def config() -> SimulatorConfig:
    """The default market without rate limits (a frozen fake clock never refills them)."""
    config = SimulatorConfig.default()
    config.secret_id = "AKIDtest"
    config.secret_key = "test-key"
    config.faults.rate_limits = {}
    return config


@pytest.fixture
def sim(config: SimulatorConfig, clock: FakeClock) -> Simulator:
    return Simulator(config, seed=1, clock=clock)


@pytest.fixture
async def cvm(sim: Simulator, clock: FakeClock) -> AsyncIterator[Cvm]:
    async with in_process(sim, clock) as client:
        yield client
