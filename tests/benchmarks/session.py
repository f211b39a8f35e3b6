"""One scenario group's world: a simulator, a database, a user's SQL and the daemon."""

from __future__ import annotations

import contextlib
import random
from typing import Any

from tests.benchmarks import rig
from tests.benchmarks.presets import RunOptions
from tests.support.polling import eventually, holds


class Session:
    """Simulator + database + daemon + admin client + user SQL for one group."""

    def __init__(self, opts: RunOptions, spec: rig.SimulatorSpec, *, lifted: bool = False):
        self.opts = opts
        self.spec = spec
        self.lifted = lifted
        self.rng = random.Random(opts.seed)

    async def __aenter__(self) -> Session:
        self._stack = contextlib.AsyncExitStack()
        stack = self._stack
        self.base_url = stack.enter_context(
            rig.simulator(
                self.spec,
                mode=self.opts.simulator_mode,
                seed=self.opts.seed,
                workdir=self.opts.workdir,
            )
        )
        self.database_url = await stack.enter_async_context(
            rig.database(self.opts.database_url, self.opts.workdir)
        )
        self.sql = rig.UserSql(self.database_url)
        self.cloud = rig.Cloud(self.base_url)
        stack.push_async_callback(self.cloud.aclose)
        self.settings = rig.daemon_settings(
            self.database_url,
            self.base_url,
            lifted=self.lifted,
            environ=self.opts.daemon_env,
            **self.opts.preset.settings,
        )
        return self

    async def start_daemon(self) -> rig.Daemon:
        self.daemon = await self._stack.enter_async_context(rig.daemon(self.settings))
        return self.daemon

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def wait_observed(self) -> None:
        view = self.daemon.engine.view
        await eventually(
            lambda: holds(view.observed and view.passes > 0),
            within_s=30,
            interval_s=0.02,
            what="the first sweep",
        )

    async def wait_ready(self, envs: int, timeout_s: float) -> float:
        return await eventually(
            lambda: _eq(self.sql.ready(), envs),
            within_s=timeout_s,
            interval_s=0.1,
            what=f"{envs} environments READY",
        )

    async def wait_cloud(self, running: int, timeout_s: float, interval_s: float = 0.05) -> float:
        async def done() -> bool:
            stats = await self.cloud.stats()
            by_state = stats.get("alive_by_state", {})
            return by_state.get("RUNNING", 0) == running and stats.get("alive", 0) == running

        return await eventually(
            done, within_s=timeout_s, interval_s=interval_s, what=f"{running} RUNNING"
        )

    def simulator_description(self) -> str:
        if self.opts.simulator_mode == "thread":
            return "in-process (uvicorn thread of the benchmark process), over loopback HTTP"
        return "separate process (spot-controller simulator serve), over loopback HTTP"


async def _eq(value: Any, expected: int) -> bool:
    return bool(await value == expected)
