"""The ledger: records first, memory after. The only writer of the fleet state.

Every change to what the engine believes (a launch intended or answered, a node changed,
adopted or ended) is written to the store in one transaction and only then applied to
:class:`FleetState`. If the write fails nothing in memory changed, so memory is never ahead of
the records; the pass then reloads from the records and waits for a fresh sweep.

The notifications a change produces (:mod:`controller.core.notices`) are worked out here, from
memory as it was and the records as they will be, and written in the same transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from controller.core.events import Event
from controller.core.instances import Instance
from controller.core.launches import LaunchIntent, LaunchOutcome
from controller.core.model import CREATE_NODE, ActivityRecord, Node, NodeState
from controller.core.notices import Notice, launch_failed_notice, node_notices, note_notices
from controller.core.plan import Note
from controller.core.transitions import Effects
from controller.logs import get_logger
from controller.reconcile.fleet import FleetState
from controller.store.store import Store

log = get_logger()

RESTORED_CAUSE = "restored: the record of this live instance was deleted outside the controller"


class Ledger:
    def __init__(
        self, store: Store, fleet: FleetState, env_name: Callable[[str], str] = lambda _: ""
    ) -> None:
        self.store, self._fleet, self._env_name = store, fleet, env_name

    def _node_notices(self, nodes: Sequence[Node], now: datetime) -> list[Notice]:
        return [
            notice
            for node in nodes
            for notice in node_notices(
                self._fleet.nodes.get(node.id), node, self._env_name(node.env_id), now
            )
        ]

    async def load(self) -> None:
        """Read the durable records: live nodes and unresolved launches."""
        nodes, pending = await self.store.load_state()
        self._fleet.load(nodes, pending)
        log.info(Event.STATE_LOADED, nodes=len(self._fleet.nodes), pending_launches=len(pending))

    async def restore_missing(self, now: datetime) -> list[Node]:
        """Rewrite the rows of live nodes deleted by hand, from memory; the nodes restored.

        Cheap when nothing is missing: one grouped count. Memory is never ahead of the
        records, so an environment with fewer live rows than live nodes in memory has lost
        rows (or a write is landing right now: only nodes with no row at all are restored).
        """
        in_memory: dict[str, list[Node]] = defaultdict(list)
        for node in self._fleet.nodes.values():
            in_memory[node.env_id].append(node)
        counts = await self.store.live_node_counts()
        short = [env for env, nodes in in_memory.items() if counts.get(env, 0) < len(nodes)]
        if not short:
            return []
        candidates = [n for env in short for n in in_memory[env]]
        present = await self.store.existing_node_ids([n.id for n in candidates])
        missing = [n for n in candidates if n.id not in present]
        if missing:
            activities = [
                ActivityRecord(
                    n.env_id,
                    CREATE_NODE,
                    "SUCCEED" if n.state == NodeState.RUNNING else "PROCESSING",
                    RESTORED_CAUSE,
                    node_id=n.id,
                    instance_id=n.instance_id,
                    ended=n.state == NodeState.RUNNING,
                )
                for n in missing
            ]
            await self.store.record_changes(new_nodes=missing, new_activities=activities, now=now)
        return missing

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
            notices = self._node_notices(outcome.nodes, now)
            await self.store.record_launch_succeeded(token, request_id, outcome.nodes, now, notices)
        else:
            name = self._env_name(outcome.launch.env_id)
            failed = [
                launch_failed_notice(
                    outcome.launch, outcome.nodes, error.code, error.message, name, now
                )
            ]
            await self.store.record_launch_failed(
                token,
                error.code,
                error.message,
                error.request_id,
                outcome.nodes,
                now,
                failed if outcome.nodes else [],
            )
        self._fleet.resolve_launch(token, outcome.nodes)

    async def record_effects(
        self,
        effects: Effects,
        now: datetime,
        seen: Mapping[str, Instance],
        notes: Sequence[Note] = (),
    ) -> None:
        """A plan's node changes, adoptions and orphans; ``seen``: what the pass observed;
        ``notes``: its capacity events (compensation started or ended)."""
        changed = list(effects.changed_nodes.values())
        notices = self._node_notices([*changed, *effects.new_nodes], now)
        for note in notes:
            notices += note_notices(note, self._env_name(note.env_id), now)
        await self.store.record_changes(
            new_nodes=effects.new_nodes,
            changed_nodes=changed,
            new_activities=effects.new_activities,
            finished_activities=effects.finished_activities,
            notices=notices,
            now=now,
        )
        self._fleet.put(changed)
        self._fleet.put(effects.new_nodes)
        self._fleet.add_recently_ended(effects.terminated, now)
        self._fleet.touch_seen(seen, now)
