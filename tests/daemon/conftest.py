from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from controller.simulator import Simulator
from tests.support.world import World, fast_simulator, simulator_server


@pytest.fixture
def sim(request: pytest.FixtureRequest) -> Simulator:
    """The simulator; ``@pytest.mark.sim(**config)`` overrides its configuration."""
    marker = request.node.get_closest_marker("sim")
    return fast_simulator(**(marker.kwargs if marker else {}))


@pytest.fixture
def sim_url(sim: Simulator) -> Iterator[str]:
    with simulator_server(sim) as base_url:
        yield base_url


@pytest.fixture
async def world(sim_url: str) -> AsyncIterator[World]:
    w = World(sim_url)
    yield w
    await w.aclose()
