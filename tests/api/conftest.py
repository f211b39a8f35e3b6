from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from controller.simulator import Simulator
from controller.store.store import Store
from tests.support.world import World, fast_simulator, simulator_server


@pytest.fixture
def sim() -> Simulator:
    return fast_simulator()


@pytest.fixture
def sim_url(sim: Simulator) -> Iterator[str]:
    with simulator_server(sim) as base_url:
        yield base_url


@pytest.fixture
async def world(sim_url: str) -> AsyncIterator[World]:
    w = World(sim_url)
    yield w
    await w.aclose()


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    s = await Store.open(database_url, migrate_schema=True)
    yield s
    await s.close()
