"""Serving the simulator over loopback: in a background thread for tests, or in the foreground.

Tests need real sockets (the official SDK speaks only HTTP through ``requests``) yet must
stop what they start, promptly: :func:`background_server` binds a free port itself, so the URL
is known before uvicorn starts, and bounds both startup and shutdown. :func:`serve` runs in the
foreground with a ticker that advances the world even when nobody calls, so that
``/_sim/instances`` watchers and scenario events see time pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import anyio
import uvicorn

from controller.errors import SpotControllerError
from controller.simulator.simulator import Simulator
from controller.simulator.tls import CertPair

STARTUP_TIMEOUT_S = 10.0
SHUTDOWN_TIMEOUT_S = 5.0
TICK_S = 0.2


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _url(host: str, port: int, scheme: str = "http") -> str:
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


@contextlib.contextmanager
def background_server(
    sim: Simulator,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    startup_timeout_s: float = STARTUP_TIMEOUT_S,
    shutdown_timeout_s: float = SHUTDOWN_TIMEOUT_S,
    tls: CertPair | None = None,
) -> Iterator[str]:
    """Serve ``sim.app`` with uvicorn in a daemon thread; yield its base URL.

    ``port=0`` picks a free port. With ``tls`` the URL is https. On exit the server stops
    within ``shutdown_timeout_s`` (calls still hanging on a timeout fault are cancelled).
    """
    sock = _bind(host, port)
    actual_port = sock.getsockname()[1]
    config = uvicorn.Config(
        sim.app,
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=max(1, int(shutdown_timeout_s / 2)),
        ssl_certfile=None if tls is None else str(tls.cert),
        ssl_keyfile=None if tls is None else str(tls.key),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run,
        kwargs={"sockets": [sock]},
        name=f"cvm-simulator-{actual_port}",
        daemon=True,
    )
    try:
        thread.start()
        deadline = time.monotonic() + startup_timeout_s
        while not server.started:
            if not thread.is_alive():
                raise SpotControllerError(f"simulator server on port {actual_port} failed to start")
            if time.monotonic() > deadline:
                raise SpotControllerError(
                    f"simulator server on port {actual_port} did not start in {startup_timeout_s} s"
                )
            time.sleep(0.01)
        yield _url(host, actual_port, "http" if tls is None else "https")
    finally:
        server.should_exit = True
        thread.join(shutdown_timeout_s)
        if thread.is_alive():
            server.force_exit = True
            thread.join(1.0)
        sock.close()


def serve(
    sim: Simulator,
    host: str = "127.0.0.1",
    port: int = 9000,
    *,
    tick_s: float = TICK_S,
    log_level: str = "info",
    access_log: bool = True,
    tls: CertPair | None = None,
    on_tick: Callable[[], None] | None = None,
) -> None:
    """Serve in the foreground until SIGINT/SIGTERM, advancing the world every ``tick_s``
    (and calling ``on_tick`` then: a market trace's next rows).

    ``access_log=False`` drops uvicorn's line per request, which costs more CPU than a
    simulated call itself under a benchmark's thousands of calls per second.
    """
    config = uvicorn.Config(
        sim.app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=access_log,
        lifespan="off",
        ssl_certfile=None if tls is None else str(tls.cert),
        ssl_keyfile=None if tls is None else str(tls.key),
    )
    server = uvicorn.Server(config)

    async def main() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(_tick, sim, tick_s, on_tick)
            await server.serve()
            group.cancel_scope.cancel()

    asyncio.run(main())


async def _tick(sim: Simulator, tick_s: float, on_tick: Callable[[], None] | None) -> None:
    while True:
        sim.advance()
        if on_tick is not None:
            on_tick()
        await anyio.sleep(tick_s)
