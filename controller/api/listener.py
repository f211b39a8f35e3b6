"""Starting the API: in the daemon (SPOT_CONTROLLER_API_ADDR) or alone (`api serve`).

Everything that can be wrong with the configuration (no master key, a taken port, a TLS
pair that does not load) is found here, before anything is served, and is one line.
"""

from __future__ import annotations

import dataclasses
import signal
import socket

import anyio

from controller.api.catalog import Catalog
from controller.api.keys import DEMO_MASTER_KEY, DEMO_SECRET_ID, Cipher, KeyRing
from controller.api.limits import RateLimits
from controller.api.server import ApiServer, bind, check_tls, serve
from controller.cloud.client import CvmClient
from controller.core.events import Event
from controller.logs import get_logger
from controller.secrets import Secret
from controller.service import Environments
from controller.settings import Settings
from controller.store.store import Store

log = get_logger()

SIMULATE_API_ADDR = "127.0.0.1:9001"


def simulate_settings(settings: Settings) -> Settings:
    """`run --simulate`: the API on 127.0.0.1:9001 unless set, the demo master key unless set."""
    return dataclasses.replace(
        settings,
        api_addr=settings.api_addr or SIMULATE_API_ADDR,
        api_master_key=settings.api_master_key or Secret(DEMO_MASTER_KEY),
    )


async def create_demo_key(settings: Settings, store: Store) -> None:
    keys = KeyRing(store, Cipher(settings.api_master_key))
    if await keys.ensure_demo_key():
        log.info(Event.API_DEMO_KEY_CREATED, name="demo", secret_id=DEMO_SECRET_ID)


def prepare(
    settings: Settings, store: Store, client: CvmClient | None
) -> tuple[ApiServer, socket.socket]:
    """The server and its bound socket; ConfigError (one line) for a bad configuration."""
    cipher = Cipher(settings.api_master_key)
    if settings.api_tls_cert:
        check_tls(settings.api_tls_cert, settings.api_tls_key)
    server = ApiServer(
        environments=Environments(store, settings.region),
        keys=KeyRing(store, cipher),
        region=settings.region,
        limits=RateLimits(settings.api_rate_limit),
        catalog=None if client is None else Catalog(client),
    )
    return server, bind(settings.api_addr)


def scheme(settings: Settings) -> str:
    return "https" if settings.api_tls_cert else "http"


async def run(
    settings: Settings, server: ApiServer, sock: socket.socket, stop: anyio.Event
) -> None:
    """Serve until ``stop``; says where it listens."""
    log.info(
        Event.API_LISTENING,
        addr=settings.api_addr,
        endpoint=f"{scheme(settings)}://{settings.api_addr}",
        rate_limit=settings.api_rate_limit,
    )
    await serve(server, sock, stop, tls_cert=settings.api_tls_cert, tls_key=settings.api_tls_key)


async def serve_alone(settings: Settings, store: Store) -> int:
    """`spot-controller api serve`: the API without the daemon, until SIGTERM or SIGINT."""
    credentials = bool(settings.secret_id and settings.secret_key)
    async with CvmClient(settings) as client:
        server, sock = prepare(settings, store, client if credentials else None)
        stop = anyio.Event()
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                    async for _ in signals:
                        stop.set()
                        return

            tg.start_soon(watch)
            await run(settings, server, sock, stop)
            tg.cancel_scope.cancel()
    return 0
