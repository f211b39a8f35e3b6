"""The fleet as the records say it is: live nodes and unresolved launches, in memory.

Loaded from the store at start (and after a failed write), so a pass reads only the
environment rows from the database. Only the :class:`~controller.reconcile.ledger.Ledger`
changes it, after the records are written; everyone else reads it through :class:`FleetView`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from controller.core.instances import Instance
from controller.core.model import Launch, Node, NodeState

RECENTLY_ENDED_TTL_S = 600.0

_LIVE_IN_CLOUD = (NodeState.CREATING, NodeState.RUNNING)


class FleetView(Protocol):
    """What parts other than the ledger may read of the fleet."""

    @property
    def nodes(self) -> Mapping[str, Node]: ...
    @property
    def launches(self) -> Mapping[str, Launch]: ...
    @property
    def recently_ended(self) -> Mapping[str, datetime]: ...
    def busy(self) -> bool: ...
    def live_instance_ids(self) -> set[str]: ...
    def expected_instance_ids(self) -> list[str]: ...
    def counts(self) -> Counter[tuple[str, NodeState]]: ...
    def nodes_of_launch(self, token: str) -> list[Node]: ...


class FleetState:
    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.launches: dict[str, Launch] = {}
        # Instance ids we terminated, and when they were gone: never adopted back.
        self.recently_ended: dict[str, datetime] = {}
        # Node ids of each unresolved launch: resolving a launch must not scan every node
        # (10,000 launches x 100,000 nodes was most of a 100,000-instance cold start).
        self._launch_nodes: dict[str, list[str]] = {}

    # ----- reads ----------------------------------------------------------------------------

    def busy(self) -> bool:
        """Launches or terminations in flight: sweep more often."""
        return bool(self.launches) or any(
            n.state in (NodeState.CREATING, NodeState.DELETING) for n in self.nodes.values()
        )

    def live_instance_ids(self) -> set[str]:
        """Instances recorded as PENDING or RUNNING: what a probe's finds are checked against."""
        return {
            n.instance_id
            for n in self.nodes.values()
            if n.instance_id and n.state in _LIVE_IN_CLOUD
        }

    def expected_instance_ids(self) -> list[str]:
        """Instances the cloud should still show (a sweep checks by id those it missed)."""
        return [
            n.instance_id
            for n in self.nodes.values()
            if n.instance_id
            and n.state in (NodeState.CREATING, NodeState.RUNNING, NodeState.DELETING)
        ]

    def counts(self) -> Counter[tuple[str, NodeState]]:
        return Counter((n.env_id, n.state) for n in self.nodes.values())

    def nodes_of_launch(self, token: str) -> list[Node]:
        """The live nodes recorded for launch ``token``, without scanning every node."""
        ids = self._launch_nodes.get(token)
        if ids is None:  # not indexed: look once
            ids = [n.id for n in self.nodes.values() if n.launch_token == token]
            self._launch_nodes[token] = ids
        return [
            node
            for node_id in ids
            if (node := self.nodes.get(node_id)) is not None and node.launch_token == token
        ]

    # ----- writes (the ledger's, after the records) -----------------------------------------

    def load(self, nodes: Iterable[Node], launches: Iterable[Launch]) -> None:
        self.nodes = {n.id: n for n in nodes}
        self.launches = {la.client_token: la for la in launches}
        self._launch_nodes = {}
        for node in self.nodes.values():
            if node.launch_token in self.launches:
                self._launch_nodes.setdefault(node.launch_token, []).append(node.id)

    def clear(self) -> None:
        self.nodes.clear()
        self.launches.clear()
        self._launch_nodes.clear()

    def add_launch(self, launch: Launch, nodes: Sequence[Node]) -> None:
        self.launches[launch.client_token] = launch
        for node in nodes:
            self.nodes[node.id] = node
        self._launch_nodes[launch.client_token] = [node.id for node in nodes]

    def resolve_launch(self, token: str, nodes: Iterable[Node]) -> None:
        """The launch is answered: its nodes as they are now; it is no longer pending."""
        self.put(nodes)
        self.launches.pop(token, None)
        self._launch_nodes.pop(token, None)

    def put(self, nodes: Iterable[Node]) -> None:
        """Nodes as recorded: an ENDED node leaves memory (its row is history)."""
        for node in nodes:
            if node.state == NodeState.ENDED:
                self.nodes.pop(node.id, None)
                continue
            self.nodes[node.id] = node
            index = self._launch_nodes.get(node.launch_token or "")
            if index is not None and node.id not in index:
                index.append(node.id)

    def touch_seen(self, instances: Mapping[str, Instance], now: datetime) -> None:
        """When each node was last seen. Advisory: written with the node's next change."""
        for node in self.nodes.values():
            if node.instance_id and node.instance_id in instances:
                node.last_seen_at = now

    def add_recently_ended(self, instance_ids: Iterable[str], now: datetime) -> None:
        for iid in instance_ids:
            self.recently_ended[iid] = now

    def expire(self, now: datetime) -> None:
        cutoff = now - timedelta(seconds=RECENTLY_ENDED_TTL_S)
        self.recently_ended = {i: t for i, t in self.recently_ended.items() if t > cutoff}
