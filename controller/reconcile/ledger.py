"""The ledger: records first, memory after. The only writer of the fleet state.

Every change to what the engine believes (a launch intended or answered, a node changed,
adopted or ended) is written to the store in one transaction and only then applied to
:class:`FleetState`. If the write fails nothing in memory changed, so memory is never ahead of
the records; the pass then reloads from the records and waits for a fresh sweep.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from controller.core.events import Event
from controller.core.instances import Instance
from controller.core.launches import LaunchIntent, LaunchOutcome
from controller.core.transitions import Effects
from controller.logs import get_logger
from controller.reconcile.fleet import FleetState
from controller.store.store import Store

log = get_logger()


class Ledger:
    def __init__(self, store: Store, fleet: FleetState) -> None:
        self.store, self._fleet = store, fleet

    async def load(self) -> None:
        """Read the durable records: live nodes and unresolved launches."""
        nodes, pending = await self.store.load_state()
        self._fleet.load(nodes, pending)
        log.info(Event.STATE_LOADED, nodes=len(self._fleet.nodes), pending_launches=len(pending))

    def expire(self, now: datetime) -> None:
        """Instances ended long enough ago that no sweep shows them any more."""
        self._fleet.expire(now)

    def forget(self) -> None:
        """The lease is lost: what memory holds may be out of date the moment another acts."""
        self._fleet.clear()

    async def record_intents(self, intents: Sequence[LaunchIntent]) -> None:
        """Intent before action: a launch is sent only after this returns."""
        await self.store.record_launch_intents([(i.launch, i.nodes, i.cause) for i in intents])
        for intent in intents:
            self._fleet.add_launch(intent.launch, intent.nodes)

    async def record_outcome(
        self, outcome: LaunchOutcome, request_id: str | None, now: datetime
    ) -> None:
        token = outcome.launch.client_token
        error = outcome.error
        if error is None:
            await self.store.record_launch_succeeded(token, request_id, outcome.nodes, now)
        else:
            await self.store.record_launch_failed(
                token, error.code, error.message, error.request_id, outcome.nodes, now
            )
        self._fleet.resolve_launch(token, outcome.nodes)

    async def record_effects(
        self, effects: Effects, now: datetime, seen: Mapping[str, Instance]
    ) -> None:
        """A plan's node changes, adoptions and orphans; ``seen``: what the pass observed."""
        changed = list(effects.changed_nodes.values())
        await self.store.record_changes(
            new_nodes=effects.new_nodes,
            changed_nodes=changed,
            new_activities=effects.new_activities,
            finished_activities=effects.finished_activities,
            now=now,
        )
        self._fleet.put(changed)
        self._fleet.put(effects.new_nodes)
        self._fleet.add_recently_ended(effects.terminated, now)
        self._fleet.touch_seen(seen, now)
