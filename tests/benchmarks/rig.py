"""The benchmark rig: a simulator, a database, a user's SQL and one real, instrumented daemon.

The daemon is the real :class:`~controller.reconcile.engine.Engine` with the real client, store
and settings, running in this process (so its CPU time and memory are this process's). The
simulator runs in a process of its own (``spot-controller simulator serve``) reached over
loopback, so its work stays out of the daemon's figures; ``thread`` mode serves it from a thread
of this process instead, as the test suite does. Desired counts are changed the way a user
would, with plain SQL on a connection of its own. Instrumentation is the engine's own hooks
(:class:`~controller.reconcile.hooks.EngineHooks`: a sweep, a pass, a plan, a RunInstances
call), which do nothing in production; nothing is patched.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import random
import resource
import socket
import sqlite3
import string
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import httpx
import sqlalchemy as sa

from controller.cloud.client import CvmClient
from controller.core.instances import LaunchRequest
from controller.core.plan import Observation, Plan, Snapshot
from controller.daemon import simulator_settings
from controller.reconcile.engine import Engine
from controller.reconcile.hooks import EngineHooks
from controller.settings import SIMULATOR_SECRET_ID, SIMULATOR_SECRET_KEY, Settings
from controller.simulator import Simulator, SimulatorConfig
from controller.simulator.market import default_pools
from controller.simulator.server import background_server
from controller.store import migrate
from controller.store.database import create_engine
from controller.store.store import Store

REGION = "ap-guangzhou"
IMAGE_ID = "img-pmqg1cw7"
MAX_PRICE = "0.60"  # above every default spot price: bids never fail
POOL_SIZE = 1_000_000  # stock and quota of every pool: capacity is never the bottleneck
LIFTED_RATE = 1_000_000.0  # "no rate limit" on the client side (its limiter needs a rate)
SIM_START_TIMEOUT_S = 30.0
_ID_ALPHABET = string.ascii_lowercase + string.digits


# ---- the simulator -------------------------------------------------------------------------


@dataclass(frozen=True)
class SimulatorSpec:
    """What the simulated cloud looks like for a scenario."""

    launch_latency_s: float
    api_latency_ms: float
    terminate_delay_s: float = 1.0
    rate_limits: bool = True  # Tencent's defaults enforced; False: lifted

    def config(self) -> dict[str, Any]:
        """The ``--config`` JSON of ``spot-controller simulator serve``."""
        faults: dict[str, Any] = {"latency_ms": self.api_latency_ms}
        if not self.rate_limits:
            faults["rate_limits"] = None  # none at all
        return {
            "auth_enabled": True,
            "secret_id": SIMULATOR_SECRET_ID,
            "secret_key": SIMULATOR_SECRET_KEY,
            "region": REGION,
            "launch_delay_s": self.launch_latency_s,
            "terminate_delay_s": self.terminate_delay_s,
            "markets": [
                {"zone": z, "instance_type": t, "price": p, "stock": POOL_SIZE, "quota": POOL_SIZE}
                for z, t, p in default_pools()
            ],
            "faults": faults,
        }


def pools_of_region() -> list[tuple[str, str]]:
    """The (zone, instance type) pools the environments are spread over."""
    return [(z, t) for z, t, _ in default_pools() if z.startswith(REGION + "-")]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def simulator(spec: SimulatorSpec, *, mode: str, seed: int, workdir: Path) -> Iterator[str]:
    """Start the simulator; yield its base URL.

    ``process``: ``python -m controller simulator serve --config FILE --quiet`` (the CLI of
    the README), stopped with SIGTERM. ``thread``: the same app served by uvicorn in a thread
    of this process.
    """
    config_path = workdir / "simulator.json"
    config_path.write_text(json.dumps(spec.config(), indent=1))
    if mode == "thread":
        config = SimulatorConfig.from_file(config_path)
        with background_server(Simulator(config, seed=seed)) as url:
            yield url
        return
    port = _free_port()
    log = (workdir / "simulator.log").open("wb")
    command = [
        sys.executable,
        "-m",
        "controller",
        "simulator",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--seed",
        str(seed),
        "--config",
        str(config_path),
        "--quiet",
    ]
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SIM_START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"simulator exited with {proc.returncode}: see {log.name}")
            try:
                httpx.get(f"{url}/_sim/stats", timeout=1.0).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError("simulator did not start in time") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


class Cloud:
    """The simulator's admin API: ground truth and the storm button."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=60)

    async def stats(self) -> dict[str, Any]:
        response = await self.http.get("/_sim/stats")
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    async def instances(self) -> list[dict[str, Any]]:
        response = await self.http.get("/_sim/instances")
        response.raise_for_status()
        items: list[dict[str, Any]] = response.json()["instances"]
        return items

    async def reclaim(self, fraction: float) -> list[str]:
        response = await self.http.post("/_sim/reclaim", json={"fraction": fraction})
        response.raise_for_status()
        ids: list[str] = response.json()["reclaimed"]
        return ids

    async def aclose(self) -> None:
        await self.http.aclose()


# ---- the database --------------------------------------------------------------------------


def _pg_dsn(url: str) -> str:
    """A libpq DSN for asyncpg (which knows no SQLAlchemy driver names)."""
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.asynccontextmanager
async def database(base_url: str | None, workdir: Path) -> AsyncIterator[str]:
    """A migrated, empty database for one run: a SQLite file in ``workdir`` by default, or a
    fresh PostgreSQL database created next to ``base_url`` and dropped afterwards."""
    if not base_url:
        url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
        await _migrate(url)
        yield url
        return
    name = f"spot_bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(_pg_dsn(base_url), timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = sa.make_url(base_url).set(database=name).render_as_string(hide_password=False)
    try:
        await _migrate(url)
        yield url
    finally:
        admin = await asyncpg.connect(_pg_dsn(base_url), timeout=10)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def _migrate(url: str) -> None:
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


class UserSql:
    """A user at a SQL prompt: plain statements on a connection the daemon does not share.

    SQLite through the standard library's driver (in a worker thread, so the daemon's event
    loop keeps running), PostgreSQL through asyncpg.
    """

    def __init__(self, url: str) -> None:
        parsed = sa.make_url(url)
        self.backend = parsed.get_backend_name()
        self.path = parsed.database or ""
        self.dsn = _pg_dsn(url) if self.backend == "postgresql" else ""

    async def execute(self, sql: str, rows: Sequence[Sequence[Any]] = ((),)) -> None:
        """Run ``sql`` (``?`` placeholders) once per row, in one transaction."""
        if self.backend == "sqlite":
            await anyio.to_thread.run_sync(self._sqlite, sql, rows)
            return
        conn = await asyncpg.connect(self.dsn, timeout=10)
        try:
            async with conn.transaction():
                await conn.executemany(_numbered(sql), [tuple(r) for r in rows])
        finally:
            await conn.close()

    async def scalar(self, sql: str) -> Any:
        if self.backend == "sqlite":
            return await anyio.to_thread.run_sync(self._sqlite_scalar, sql)
        conn = await asyncpg.connect(self.dsn, timeout=10)
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()

    def _sqlite(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        conn = sqlite3.connect(self.path, timeout=5.0)
        try:
            with conn:
                conn.executemany(sql, rows)
        finally:
            conn.close()

    def _sqlite_scalar(self, sql: str) -> Any:
        conn = sqlite3.connect(self.path, timeout=5.0)
        try:
            return conn.execute(sql).fetchone()[0]
        finally:
            conn.close()

    async def create_environments(self, count: int, desired: int, rng: random.Random) -> list[str]:
        """``count`` environments spread over the region's pools; their names, in order."""
        pools = pools_of_region()
        ids: set[str] = set()
        while len(ids) < count:
            ids.add("env-" + "".join(rng.choice(_ID_ALPHABET) for _ in range(8)))
        rows = []
        names = []
        for i, env_id in enumerate(sorted(ids)):
            zone, instance_type = pools[i % len(pools)]
            name = f"bench-{i:05d}"
            names.append(name)
            rows.append((env_id, name, zone, instance_type, IMAGE_ID, MAX_PRICE, desired))
        await self.execute(
            "INSERT INTO compute_environments "
            "(id, name, zone, instance_type, image_id, max_price, desired_count) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        return names

    async def set_desired_all(self, desired: int) -> None:
        await self.execute(f"UPDATE compute_environments SET desired_count = {int(desired)}")

    async def set_desired(self, name: str, desired: int) -> None:
        await self.execute(
            "UPDATE compute_environments SET desired_count = ? WHERE name = ?", [(desired, name)]
        )

    async def ready(self) -> int:
        """Environments the controller reports READY at their desired count."""
        value = await self.scalar(
            "SELECT count(*) FROM compute_environments "
            "WHERE status = 'READY' AND running_count = desired_count"
        )
        return int(value)


def _numbered(sql: str) -> str:
    """``?`` placeholders as asyncpg's ``$1, $2, ...``."""
    parts = sql.split("?")
    return "".join(p + (f"${i + 1}" if i < len(parts) - 1 else "") for i, p in enumerate(parts))


# ---- the daemon and its instruments --------------------------------------------------------


def daemon_settings(
    database_url: str,
    base_url: str,
    *,
    lifted: bool,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """The daemon's default settings, against the simulator; rate limits lifted if asked.

    ``environ`` holds ``SPOT_CONTROLLER_*`` variables, read as the daemon reads its own.
    """
    if lifted:
        overrides["rate_limits"] = {
            action: LIFTED_RATE
            for action in (
                "RunInstances",
                "TerminateInstances",
                "DescribeInstances",
                "DescribeInstancesStatus",
            )
        }
    settings = Settings.from_env(dict(environ or {}), database_url=database_url, **overrides)
    return simulator_settings(settings, base_url)


@dataclass
class PassRecord:
    at: float  # wall clock
    duration_s: float
    fresh: bool  # consumed a new sweep
    queries: int
    plan_s: float


@dataclass
class SweepRecord:
    started: float  # wall clock
    ended: float
    instances: int


@dataclass
class CallRecord:
    started: float
    ended: float
    count: int


@dataclass
class Probe(EngineHooks):
    """Timings of the engine's sweeps, passes and RunInstances calls, taken at its hooks."""

    sweeps: list[SweepRecord] = field(default_factory=list)
    passes: list[PassRecord] = field(default_factory=list)
    launches: list[CallRecord] = field(default_factory=list)
    plan_s: float = 0.0
    planned_observation: bool = False  # the pass's plan had a new sweep to consume
    sweep_events: list[anyio.Event] = field(default_factory=list)

    store: Store | None = None  # whose query count each pass is charged with
    _sweep_started: float = 0.0
    _pass_at: float = 0.0
    _pass_started: float = 0.0
    _pass_queries: int = 0
    _plan_started: float = 0.0
    _launch_started: dict[str, float] = field(default_factory=dict)

    def before_sweep(self) -> None:
        self._sweep_started = time.time()

    def after_sweep(self, observation: Observation) -> None:
        self.sweeps.append(
            SweepRecord(self._sweep_started, time.time(), len(observation.instances))
        )
        events, self.sweep_events = self.sweep_events, []
        for event in events:
            event.set()

    def before_pass(self) -> None:
        self.plan_s = 0.0
        self.planned_observation = False
        self._pass_queries = self.store.queries if self.store else 0
        self._pass_at = time.time()
        self._pass_started = time.perf_counter()

    def after_pass(self, plan: Plan | None) -> None:
        queries = (self.store.queries if self.store else 0) - self._pass_queries
        self.passes.append(
            PassRecord(
                self._pass_at,
                time.perf_counter() - self._pass_started,
                self.planned_observation,
                queries,
                self.plan_s,
            )
        )

    def before_plan(self, snapshot: Snapshot) -> None:
        # The snapshot carries an observation only when the pass consumes a new sweep.
        obs = snapshot.observation
        self.planned_observation = obs is not None and obs.complete
        self._plan_started = time.perf_counter()

    def after_plan(self, snapshot: Snapshot) -> None:
        self.plan_s += time.perf_counter() - self._plan_started

    def before_launch(self, request: LaunchRequest) -> None:
        self._launch_started[request.client_token] = time.time()

    def after_launch(self, request: LaunchRequest) -> None:
        started = self._launch_started.pop(request.client_token, time.time())
        self.launches.append(CallRecord(started, time.time(), request.count))

    def next_sweep_end(self) -> anyio.Event:
        event = anyio.Event()
        self.sweep_events.append(event)
        return event


@dataclass
class Daemon:
    engine: Engine
    store: Store
    probe: Probe
    settings: Settings

    def controller_running(self) -> int:
        return sum(
            n for (_, state), n in self.engine.view.node_counts().items() if state == "RUNNING"
        )


@contextlib.asynccontextmanager
async def daemon(settings: Settings) -> AsyncIterator[Daemon]:
    """The engine running in this process, as ``spot-controller run`` runs it."""
    store = await Store.open(settings.database_url)
    try:
        async with CvmClient(settings) as client:
            probe = Probe(store=store)
            engine = Engine(settings, store, client, hooks=probe)
            await engine.load()
            stop = anyio.Event()
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: engine.run(stop=stop))
                try:
                    yield Daemon(engine, store, probe, settings)
                finally:
                    stop.set()
                    tg.cancel_scope.deadline = anyio.current_time() + 30
    finally:
        await store.close()


# ---- the ground truth over time ------------------------------------------------------------


@dataclass
class Sample:
    t: float  # wall clock
    desired: int
    running: int  # RUNNING in the cloud (ground truth)
    pending: int
    terminating: int
    controller_running: int  # RUNNING as the controller's records say


@dataclass
class Sampler:
    """Samples the cloud's ground truth (and the controller's view) while a scenario runs."""

    cloud: Cloud
    daemon: Daemon
    interval_s: float
    desired: int = 0
    samples: list[Sample] = field(default_factory=list)
    _scope: anyio.CancelScope | None = None

    async def sample(self) -> Sample:
        stats = await self.cloud.stats()
        by_state = stats.get("alive_by_state", {})
        s = Sample(
            time.time(),
            self.desired,
            by_state.get("RUNNING", 0),
            by_state.get("PENDING", 0),
            by_state.get("TERMINATING", 0),
            self.daemon.controller_running(),
        )
        self.samples.append(s)
        return s

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Sampler]:
        async def loop() -> None:
            while True:
                await self.sample()
                await anyio.sleep(self.interval_s)

        async with anyio.create_task_group() as tg:
            tg.start_soon(loop)
            try:
                yield self
            finally:
                tg.cancel_scope.cancel()

    def timeline(self, t0: float, *, max_points: int = 400) -> dict[str, list[float]]:
        """Columns relative to ``t0``, thinned to at most ``max_points`` rows."""
        rows = [s for s in self.samples if s.t >= t0 - 2.0]
        step = max(1, len(rows) // max_points + (1 if len(rows) % max_points else 0))
        kept = rows[::step]
        if rows and kept[-1] is not rows[-1]:
            kept.append(rows[-1])
        return {
            "t_s": [round(s.t - t0, 3) for s in kept],
            "desired": [s.desired for s in kept],
            "running": [s.running for s in kept],
            "pending": [s.pending for s in kept],
            "terminating": [s.terminating for s in kept],
            "controller_running": [s.controller_running for s in kept],
        }


# ---- the process's own resources -----------------------------------------------------------


@dataclass
class GcWatch:
    """Time this process spends in the cyclic garbage collector, by generation."""

    seconds: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    counts: list[int] = field(default_factory=lambda: [0, 0, 0])
    longest: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    _started: float = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        generation = int(info.get("generation", 0))
        took = time.perf_counter() - self._started
        self.seconds[generation] += took
        self.counts[generation] += 1
        self.longest[generation] = max(self.longest[generation], took)

    def snapshot(self) -> tuple[list[float], list[int]]:
        return list(self.seconds), list(self.counts)

    def reset_longest(self) -> None:
        self.longest = [0.0, 0.0, 0.0]

    @contextlib.contextmanager
    def watching(self) -> Iterator[GcWatch]:
        gc.callbacks.append(self)
        try:
            yield self
        finally:
            gc.callbacks.remove(self)


def cpu_s() -> float:
    """CPU seconds (user + system) of this process, every thread included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _status_kib(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_mib() -> float | None:
    kib = _status_kib("VmRSS")
    return None if kib is None else kib / 1024


def peak_rss_mib() -> float:
    """Peak resident memory of this process (since start, or since :func:`reset_peak`)."""
    kib = _status_kib("VmHWM")
    if kib is None:
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024


def reset_peak() -> bool:
    """Restart the peak-memory count (Linux: ``echo 5 > /proc/self/clear_refs``)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_gib = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    import platform

    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "memory_gib": memory_gib,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "os": f"{platform.system()} {platform.release()}",
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def workdir(prefix: str) -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix=prefix)
