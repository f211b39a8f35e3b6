"""An engine whose parts a test steps by hand: in-process simulator, real store, manual clock.

No loops run and nothing sleeps on the wall clock: the test calls a sweep, a pass or a lease
turn, and each step returns once the calls it started have answered. The simulator is the
real one, reached through httpx's ASGI transport (a :class:`Gate` in front of it can hold
RunInstances calls in flight); the store is a real SQLite or PostgreSQL database, recording
the order of its writes so invariants can be checked against the order of the calls.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import sqlalchemy as sa

from controller.cloud.client import CvmClient
from controller.core.instances import LaunchRequest
from controller.core.model import ActivityRecord, Launch, Node, NodeState
from controller.core.notices import Notice
from controller.core.plan import Plan
from controller.errors import StoreError
from controller.ids import new_env_id
from controller.reconcile.engine import Engine
from controller.reconcile.hooks import EngineHooks
from controller.simulator import Simulator
from controller.store.schema import compute_environments
from controller.store.store import Store
from tests.support.clock import ManualClock
from tests.support.world import fast_simulator, settings_for

ENDPOINT = "http://cvm.tencentcloudapi.com"


class Gate:
    """ASGI middleware before the simulator: holds RunInstances calls while closed."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._open = anyio.Event()
        self._open.set()
        self.held = 0
        self.first_held = anyio.Event()  # set when a call is first held

    def close(self) -> None:
        self._open = anyio.Event()

    def open(self) -> None:
        self._open.set()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            action = dict(scope["headers"]).get(b"x-tc-action", b"").decode()
            if action == "RunInstances" and not self._open.is_set():
                self.held += 1
                self.first_held.set()
                try:
                    await self._open.wait()
                finally:
                    self.held -= 1
        await self.app(scope, receive, send)


class RecordingStore(Store):
    """The real store, noting the order of the engine's writes; a write can be made to fail."""

    def __init__(self, *args: Any, journal: list[tuple[str, Any]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.journal = journal
        self.fail: set[str] = set()  # names of methods whose next call raises StoreError

    def _maybe_fail(self, name: str) -> None:
        if name in self.fail:
            self.fail.discard(name)
            raise StoreError(f"{name} failed (injected by the test)")

    async def load_state(self) -> tuple[list[Node], list[Launch]]:
        self._maybe_fail("load_state")
        self.journal.append(("load", None))
        return await super().load_state()

    async def record_launch_intents(
        self, intents: Sequence[tuple[Launch, Sequence[Node], str]]
    ) -> None:
        self._maybe_fail("record_launch_intents")
        await super().record_launch_intents(intents)
        self.journal.append(("intents", [launch.client_token for launch, _, _ in intents]))

    async def record_changes(
        self,
        *,
        new_nodes: Sequence[Node] = (),
        changed_nodes: Sequence[Node] = (),
        new_activities: Sequence[ActivityRecord] = (),
        finished_activities: Sequence[tuple[str, str, str, str]] = (),
        notices: Sequence[Notice] = (),
        now: datetime,
    ) -> None:
        await (
            anyio.lowlevel.checkpoint()
        )  # let launches spawned before this write take their first step
        ended = [n.id for n in changed_nodes if n.state == NodeState.ENDED]
        self.journal.append(("changes", ended))
        self._maybe_fail("record_changes")
        await super().record_changes(
            new_nodes=new_nodes,
            changed_nodes=changed_nodes,
            new_activities=new_activities,
            finished_activities=finished_activities,
            notices=notices,
            now=now,
        )


class JournalHooks(EngineHooks):
    def __init__(self, journal: list[tuple[str, Any]]) -> None:
        self.journal = journal

    def before_launch(self, request: LaunchRequest) -> None:
        self.journal.append(("send", request.client_token))


@dataclasses.dataclass
class EngineRig:
    sim: Simulator
    gate: Gate
    store: RecordingStore
    engine: Engine
    clock: ManualClock
    journal: list[tuple[str, Any]]
    admin: httpx.AsyncClient

    async def create_env(self, desired: int, **values: Any) -> str:
        env_id = new_env_id()
        row = {
            "id": env_id,
            "name": values.pop("name", env_id),
            "zone": "ap-guangzhou-3",
            "instance_type": "S2.MEDIUM4",
            "image_id": "img-pmqg1cw7",
            "max_price": "0.60",
            "desired_count": desired,
            **values,
        }
        async with self.store.engine.begin() as conn:
            await conn.execute(sa.insert(compute_environments).values(**row))
        return env_id

    async def set_desired(self, env_id: str, desired: int) -> None:
        async with self.store.engine.begin() as conn:
            await conn.execute(
                sa.update(compute_environments)
                .where(compute_environments.c.id == env_id)
                .values(desired_count=desired)
            )

    async def sweep(self) -> None:
        await self.engine.observer.sweep()

    async def run_pass(self) -> Plan | None:
        """One pass; returns once every call it started has answered and been recorded."""
        try:
            async with anyio.create_task_group() as calls:
                self.engine.launcher.attach(calls)
                plan = await self.engine.run_pass()
        except BaseExceptionGroup as group:  # the pass's own error, as the pass loop sees it
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise
        finally:
            self.engine.launcher.attach(None)
        return plan

    async def instances(self, *, include_gone: bool = False) -> list[dict[str, Any]]:
        params = {"include_gone": "1"} if include_gone else {}
        response = await self.admin.get("/_sim/instances", params=params)
        response.raise_for_status()
        items: list[dict[str, Any]] = response.json()["instances"]
        return items

    async def alive(self) -> list[dict[str, Any]]:
        gone = ("TERMINATING", "SHUTDOWN", "LAUNCH_FAILED")
        return [i for i in await self.instances() if i["InstanceState"] not in gone]

    async def run_instances_calls(self) -> int:
        response = await self.admin.get("/_sim/stats")
        response.raise_for_status()
        calls: dict[str, int] = response.json()["calls"]
        return calls.get("RunInstances", 0)

    async def reclaim(self, instance_ids: list[str]) -> None:
        response = await self.admin.post("/_sim/reclaim", json={"instance_ids": instance_ids})
        response.raise_for_status()

    def events(self, kind: str) -> list[Any]:
        return [value for name, value in self.journal if name == kind]


@contextlib.asynccontextmanager
async def engine_rig(
    database_url: str, *, sim: dict[str, Any] | None = None, **settings: Any
) -> AsyncIterator[EngineRig]:
    """An engine over ``database_url`` and a fresh in-process simulator; closed on exit.

    Instances run at once and vanish at once unless ``sim`` says otherwise.
    """
    simulator = fast_simulator(**{"launch_delay_s": 0.0, "terminate_delay_s": 0.0, **(sim or {})})
    gate = Gate(simulator.app)
    journal: list[tuple[str, Any]] = []
    clock = ManualClock()
    base = await Store.open(database_url)
    store = RecordingStore(base.engine, journal=journal)
    try:
        config = settings_for(database_url, ENDPOINT, **settings)
        transport = httpx.ASGITransport(app=gate)
        async with (
            CvmClient(config, transport=transport) as client,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=simulator.app), base_url=ENDPOINT
            ) as admin,
        ):
            engine = Engine(config, store, client, clock=clock, hooks=JournalHooks(journal))
            yield EngineRig(simulator, gate, store, engine, clock, journal, admin)
    finally:
        await base.close()
