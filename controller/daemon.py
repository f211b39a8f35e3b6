"""``spot-controller run``: the long-lived daemon around the engine.

One task group at the top; SIGTERM/SIGINT stop intake, in-flight calls finish and their results
are recorded, and a hard deadline bounds the shutdown. If any supervised task dies, the daemon
says so and exits non-zero.
"""

from __future__ import annotations

import dataclasses
import fcntl
import gc
import os
import signal
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO

import anyio

from controller import __version__, health
from controller.api.listener import create_demo_key, simulate_settings
from controller.api.listener import prepare as prepare_api
from controller.api.listener import run as run_api
from controller.cloud.client import CvmClient
from controller.console import DEMO_PASSWORD, Console
from controller.console.auth import hash_password
from controller.core.events import Event
from controller.core.model import NodeState
from controller.errors import ConfigError, SpotControllerError, StoreUnavailable
from controller.logs import get_logger
from controller.notifications.metrics import SenderCollector
from controller.notifications.sender import Sender
from controller.reconcile.engine import Engine, EngineView
from controller.secrets import Secret
from controller.service import Environments, Market
from controller.settings import SIMULATOR_SECRET_ID, SIMULATOR_SECRET_KEY, Settings
from controller.store.database import describe_url, normalise_url
from controller.store.store import Store

log = get_logger()

#: Thresholds of Python's cyclic garbage collector for a process holding hundreds of thousands
#: of long-lived records. With the defaults (700, 10, 10), each sweep's fresh instances pushed
#: the collector into a full scan of the heap every ~2 s at 100,000 instances: 0.4 s each,
#: 13 of the daemon's 59 CPU s/min, pauses up to 0.48 s (benchmark, scale 10,000 x 10).
#: These cut it to 3 CPU s/min and 0.09 s pauses; records have no reference cycles, so
#: nothing waits longer to be freed (reference counting frees them).
GC_THRESHOLDS = (10_000, 50, 100)


def tune_process() -> None:
    """Process-wide settings of a long-running daemon (also used by the benchmark)."""
    gc.set_threshold(*GC_THRESHOLDS)


SIMULATE_HTTP_ADDR = "127.0.0.1:8080"  # run --simulate's listener when none is configured

DEMO_ENVIRONMENT = {
    "name": "demo",
    "zone": "ap-guangzhou-3",
    "instance_type": "S2.MEDIUM4",
    "image_id": "img-pmqg1cw7",
    "max_price": "0.60",
    "desired_count": 3,
    # Reads the market (one type, one zone: the same launches as PRIORITY), so the offering
    # cache asks for its zone and the console's Market page and Create form show prices.
    "allocation_strategy": "PRICE_CAPACITY_OPTIMIZED",
}


@contextmanager
def sqlite_single_daemon_lock(database_url: str) -> Iterator[None]:
    """SQLite has no row locks to share work: a second daemon on the same file must not start."""
    url = normalise_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        yield
        return
    lock_path = Path(url.database).resolve().with_name(Path(url.database).name + ".lock")
    if not lock_path.parent.is_dir():
        raise StoreUnavailable(
            f"cannot open database {describe_url(url)}: directory {lock_path.parent} does not exist"
        )
    handle: IO[str] = open(lock_path, "a+")  # noqa: SIM115 - held for the daemon's lifetime
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ConfigError(
                f"another spot-controller daemon ({holder}) is already running on "
                f"{url.database}; SQLite supports one daemon. Stop it, or use PostgreSQL "
                "for several replicas"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        yield
    finally:
        handle.close()


def simulator_settings(settings: Settings, endpoint: str) -> Settings:
    """Point the client at a local simulator; use its documented credentials if none are set."""
    secret_id = settings.secret_id if settings.secret_id else Secret(SIMULATOR_SECRET_ID)
    secret_key = settings.secret_key if settings.secret_key else Secret(SIMULATOR_SECRET_KEY)
    return dataclasses.replace(
        settings, cvm_endpoint=endpoint, secret_id=secret_id, secret_key=secret_key
    )


async def run_daemon(
    settings: Settings, *, simulate: bool = False, simulator_port: int = 9000
) -> int:
    tune_process()
    demo_console = False
    with ExitStack() as stack:
        stack.enter_context(sqlite_single_daemon_lock(settings.database_url))
        log.info(
            Event.DAEMON_STARTING,
            version=__version__,
            cluster=settings.cluster,
            database=describe_url(normalise_url(settings.database_url)),
            region=settings.region,
            simulate=simulate,
        )
        store = await Store.open(settings.database_url, migrate_schema=settings.migrate_on_start)
        try:
            if simulate:
                from controller.simulator import Simulator, SimulatorConfig
                from controller.simulator.server import background_server

                config = SimulatorConfig.default()
                if settings.secret_id and settings.secret_key:
                    config = dataclasses.replace(
                        config,
                        secret_id=settings.secret_id.reveal(),
                        secret_key=settings.secret_key.reveal(),
                    )
                sim = Simulator(config, seed=None)
                base_url = stack.enter_context(
                    background_server(sim, host="127.0.0.1", port=simulator_port)
                )
                settings = simulate_settings(simulator_settings(settings, base_url))
                settings, demo_console = simulator_console(settings)
                await create_demo_key(settings, store)
                log.info(
                    Event.SIMULATOR_STARTED, endpoint=base_url, admin=f"{base_url}/_sim/instances"
                )
                if not await store.list_environments():
                    demo = Environments(store, settings.region)
                    env = (await demo.create(DEMO_ENVIRONMENT)).to_json()
                    log.info(
                        Event.DEMO_ENVIRONMENT_CREATED,
                        env=env["name"],
                        env_id=env["id"],
                        desired=env["desired_count"],
                    )
            elif not settings.secret_id or not settings.secret_key:
                raise ConfigError(
                    "TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY must be set "
                    "(or run with --simulate)"
                )
            return await _supervise(settings, store, demo=simulate and demo_console)
        except SpotControllerError:
            raise
        except Exception as exc:
            # A supervised task died: say so loudly and exit non-zero, never linger half-alive.
            log.error(Event.DAEMON_CRASHED, error=repr(exc), exc_info=True)
            raise SpotControllerError(f"daemon crashed: {exc!r}") from exc
        finally:
            await store.close()


def simulator_console(settings: Settings) -> tuple[Settings, bool]:
    """``run --simulate`` serves the console: on 127.0.0.1:8080 (or any free port) when no
    listener is configured, with the documented demo password when no hash is, but only on
    loopback: a demo password must not be reachable from elsewhere."""
    changed = settings
    if not settings.http_addr:
        changed = dataclasses.replace(changed, http_addr=SIMULATE_HTTP_ADDR)
    has_hash = settings.console_password_hash or settings.console_readonly_password_hash
    if has_hash or not _loopback(changed.http_addr):
        return changed, False
    demo_hash = Secret(hash_password(DEMO_PASSWORD))
    return dataclasses.replace(changed, console_password_hash=demo_hash), True


def _loopback(addr: str) -> bool:
    host = addr.rpartition(":")[0].strip("[]")
    return host in ("127.0.0.1", "::1", "localhost")


def _listen(settings: Settings, *, any_port: bool) -> socket.socket | None:
    if not settings.http_addr:
        return None
    try:
        return health.bind(settings.http_addr)
    except ConfigError:
        if not any_port:
            raise
        host = settings.http_addr.rpartition(":")[0]
        return health.bind(f"{host}:0")  # the demo's port is taken: any port, logged below


async def _supervise(settings: Settings, store: Store, *, demo: bool = False) -> int:
    async with CvmClient(settings) as client:
        engine = Engine(settings, store, client)
        market = Market(engine.view.offerings)  # the console's prices: this engine's cache
        console = Console.from_settings(settings, Environments(store, settings.region), market)
        # Notifications: a task of its own, so a slow or dead target never holds up a pass.
        sender = Sender(settings, store, leading=lambda: engine.view.leader)
        stop = anyio.Event()
        # Before "started": a bad API configuration (master key, port, TLS) is one line, exit 2.
        api = prepare_api(settings, store, client) if settings.api_addr else None
        log.info(
            Event.DAEMON_STARTED,
            endpoint=settings.cvm_endpoint,
            cluster=settings.cluster,
            poll_interval_s=settings.poll_interval_s,
            resync_interval_s=settings.resync_interval_s,
        )
        listener = _listen(settings, any_port=settings.http_addr == SIMULATE_HTTP_ADDR)
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch_signals, stop, tg.cancel_scope, settings.shutdown_deadline_s)
            tg.start_soon(_heartbeat, engine.view, settings.heartbeat_interval_s)
            async with anyio.create_task_group() as work:
                work.start_soon(sender.run, stop)
                if listener is not None:
                    collectors = [SenderCollector(sender.stats)]
                    work.start_soon(health.serve, engine.view, listener, stop, console, collectors)
                    host, port = listener.getsockname()[:2]
                    addr = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
                    log.info(
                        Event.HTTP_LISTENING,
                        addr=addr,
                        paths=["/healthz", "/readyz", "/metrics", "/console/"],
                    )
                    if console is not None:
                        log.info(
                            Event.CONSOLE_ENABLED,
                            url=f"http://{addr}/console/",
                            password=f"{DEMO_PASSWORD} (the demo password of run --simulate)"
                            if demo
                            else "as configured",
                        )
                if api is not None:
                    work.start_soon(run_api, settings, *api, stop)
                await engine.run(stop=stop)
            tg.cancel_scope.cancel()
        log.info(Event.DAEMON_STOPPED, passes=engine.view.passes)
        return 0


async def _watch_signals(stop: anyio.Event, scope: anyio.CancelScope, deadline_s: float) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info(
                Event.DAEMON_STOPPING, signal=signal.Signals(signum).name, deadline_s=deadline_s
            )
            stop.set()
            break
    await anyio.sleep(deadline_s)
    log.warning(Event.SHUTDOWN_DEADLINE_REACHED, deadline_s=deadline_s)
    scope.cancel()


async def _heartbeat(view: EngineView, interval_s: float) -> None:
    while True:
        await anyio.sleep(interval_s)
        now = view.monotonic()
        counts = view.node_counts()
        in_state = {state: 0 for state in NodeState}
        for (_, state), n in counts.items():
            in_state[state] += n
        last_pass, last_sweep = view.last_pass_at, view.last_sweep_at
        log.info(
            Event.HEARTBEAT,
            passes=view.passes,
            environments=len(view.environments),
            invalid_environments=len(view.invalid),
            running=in_state[NodeState.RUNNING],
            pending=in_state[NodeState.CREATING],
            launching=in_state[NodeState.SUBMITTED],
            last_pass_age_s=round(now - last_pass, 1) if last_pass else None,
            last_sweep_age_s=round(now - last_sweep, 1) if last_sweep else None,
            store_ok=view.store_ok,
        )
