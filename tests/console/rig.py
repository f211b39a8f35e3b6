"""A console served by the health listener of a running engine, against the simulator.

The same parts the daemon wires (``health.serve`` with a ``Console`` over the service), on
loopback and a free port, on the test's database; stopped on exit, within bounds.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import httpx

from controller import health
from controller.console import Console
from controller.console.auth import from_hashes, hash_password
from controller.service import Environments, Market
from controller.store.store import Store
from tests.support.world import (
    World,
    fast_simulator,
    running_engine,
    settings_for,
    simulator_server,
)

PASSWORD = "console-test-password"
READ_ONLY_PASSWORD = "console-read-only-password"
# Hashed once per test session: argon2 is slow on purpose.
_HASHES: dict[str, str] = {}


def hashed(password: str) -> str:
    if password not in _HASHES:
        _HASHES[password] = hash_password(password)
    return _HASHES[password]


@dataclass
class Rig:
    url: str  # the console's base, http://127.0.0.1:PORT/console
    store: Store
    world: World
    environments: Environments
    sim: Any  # the simulator itself: its market is the ground truth of prices and stock


@asynccontextmanager
async def console_rig(
    database_url: str, *, session_s: float = 3600.0, sim: Any = None, **overrides: Any
) -> AsyncIterator[Rig]:
    """``overrides`` are the engine's settings (e.g. a long backoff to look at)."""
    simulator = sim or fast_simulator()
    with simulator_server(simulator) as sim_url:
        settings = settings_for(database_url, sim_url, **overrides)
        store = await Store.open(database_url)
        world = World(sim_url)
        try:
            environments = Environments(store, settings.region)
            auth = from_hashes(hashed(PASSWORD), hashed(READ_ONLY_PASSWORD))
            async with running_engine(settings, store) as engine:
                market = Market(engine.view.offerings)  # as the daemon wires it
                console = Console(environments, auth, session_s, 0.5, market)
                sock = health.bind("127.0.0.1:0")
                port = sock.getsockname()[1]
                stop = anyio.Event()
                async with anyio.create_task_group() as tg:
                    tg.start_soon(health.serve, engine.view, sock, stop, console)
                    try:
                        url = f"http://127.0.0.1:{port}/console"
                        yield Rig(url, store, world, environments, simulator)
                    finally:
                        stop.set()
                        tg.cancel_scope.deadline = anyio.current_time() + 10
        finally:
            await world.aclose()
            await store.close()


CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


async def logged_in(http: httpx.AsyncClient, password: str = PASSWORD) -> str:
    """Log ``http`` in through the login form; the session's CSRF token."""
    form = await http.get("/login")
    answer = await http.post(
        "/login", data={"csrf_token": csrf_of(form.text), "password": password}
    )
    assert answer.status_code == 303, answer.text
    page = await http.get("/environments/new")
    assert page.status_code == 200
    return csrf_of(page.text)


def asgi_console(envs: Environments, base: str = "http://console.test") -> httpx.AsyncClient:
    """The console's routes alone, over the service, called in process (no engine, no port)."""
    from starlette.applications import Starlette

    auth = from_hashes(hashed(PASSWORD), hashed(READ_ONLY_PASSWORD))
    app = Starlette(routes=[Console(envs, auth, session_s=3600).mount()])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"{base}/console")
