"""The simulator object: a world, a clock, a lock and the ASGI app that serves them.

Time moves only when someone looks: :meth:`Simulator.advance` fires every transition due by
``clock()`` and runs at the start of each request, so an in-process simulator needs no
background task and a test that moves a fake clock sees exactly the transitions it expects.
The lock makes each request's effects atomic even when the app runs in a server thread while
the test thread inspects the world.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from controller.simulator.app import build_app
from controller.simulator.config import SimulatorConfig
from controller.simulator.state import World


class Simulator:
    """A faithful CVM API 3.0 simulator; ``app`` is its ASGI app.

    ``clock`` returns wall-clock seconds (``time.time`` by default); request timestamps are
    checked against it and every delay is measured on it. ``seed`` fixes every random
    choice, so the same seed, clock readings and calls give the same responses and ids;
    ``None`` seeds from the operating system (a different run each time).
    """

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        seed: int | None = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = (config if config is not None else SimulatorConfig.default()).copy()
        self.config.validate()
        self.seed = seed
        self.clock = clock
        self.lock = threading.RLock()
        self._generation = 0
        self._world = World(self.config, seed=seed, now=clock())
        self.app = build_app(self)

    @property
    def world(self) -> World:
        """The current world (replaced by :meth:`reset`)."""
        return self._world

    def advance(self) -> None:
        """Apply every time-based transition due by ``clock()``."""
        self.advance_locked()

    def advance_locked(self) -> World:
        """Advance and return the world; reentrant, so callers may already hold the lock."""
        with self.lock:
            self._world.advance(self.clock())
            return self._world

    def reset(self) -> None:
        """Back to the configuration: pools, faults, seed and scenario restart; no instances."""
        with self.lock:
            self._generation += 1
            self._world = World(
                self.config, seed=self.seed, now=self.clock(), generation=self._generation
            )
