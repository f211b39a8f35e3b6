"""Which notifications a recorded change produces. Pure: records in, notices out.

A notice is an event for the outbox (BatchCompute's compute-environment event names, plus
spot-controller's own), derived from the very records the ledger and the status writer are
about to write, so that it is written in the same transaction: nothing is announced that was
not recorded, and nothing recorded is forgotten by a crash. Notices carry the controller's own
facts (ids, names, states, reasons), never a user's launch fields (user data, tags, keys).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from controller.core.events import Event
from controller.core.model import EndReason, Launch, Node, NodeState
from controller.core.plan import EnvStatus, Note, StatusReport


class NoticeType(StrEnum):
    # BatchCompute's compute-environment events
    COMPUTE_ENV_CREATED = "COMPUTE_ENV_CREATED"  # written by a trigger on the user's INSERT
    COMPUTE_ENV_DELETED = "COMPUTE_ENV_DELETED"  # written by a trigger on the user's DELETE
    COMPUTE_NODE_CREATED = "COMPUTE_NODE_CREATED"
    COMPUTE_NODE_CREATION_FAILED = "COMPUTE_NODE_CREATION_FAILED"
    COMPUTE_NODE_RUNNING = "COMPUTE_NODE_RUNNING"
    COMPUTE_NODE_ABNORMAL = "COMPUTE_NODE_ABNORMAL"
    COMPUTE_NODE_DELETING = "COMPUTE_NODE_DELETING"
    # spot-controller's own
    COMPUTE_NODE_DELETED = "COMPUTE_NODE_DELETED"  # terminated by the controller, gone
    COMPUTE_NODE_INTERRUPTED = "COMPUTE_NODE_INTERRUPTED"
    COMPUTE_NODE_RELEASED = "COMPUTE_NODE_RELEASED"
    COMPUTE_ENV_SHORT = "COMPUTE_ENV_SHORT"
    COMPUTE_ENV_BACKOFF = "COMPUTE_ENV_BACKOFF"
    COMPUTE_ENV_ERROR = "COMPUTE_ENV_ERROR"
    COMPUTE_ENV_INVALID = "COMPUTE_ENV_INVALID"
    COMPUTE_ENV_COMPENSATION_STARTED = "COMPUTE_ENV_COMPENSATION_STARTED"
    COMPUTE_ENV_COMPENSATION_ENDED = "COMPUTE_ENV_COMPENSATION_ENDED"
    COMPUTE_ENV_SPEND_CAP_REACHED = "COMPUTE_ENV_SPEND_CAP_REACHED"


#: Sent by ``notify test`` only, never from the outbox.
TEST_EVENT = "NOTIFICATION_TEST"

# A status the environment enters -> the notice it produces.
STATUS_NOTICES = {
    EnvStatus.BACKOFF: NoticeType.COMPUTE_ENV_BACKOFF,
    EnvStatus.ERROR: NoticeType.COMPUTE_ENV_ERROR,
    EnvStatus.INVALID: NoticeType.COMPUTE_ENV_INVALID,
    EnvStatus.CAPPED: NoticeType.COMPUTE_ENV_SPEND_CAP_REACHED,
}
NOTE_NOTICES = {
    Event.COMPENSATION_STARTED: NoticeType.COMPUTE_ENV_COMPENSATION_STARTED,
    Event.COMPENSATION_ENDED: NoticeType.COMPUTE_ENV_COMPENSATION_ENDED,
}
ENDED_NOTICES = {
    EndReason.INTERRUPTED: NoticeType.COMPUTE_NODE_INTERRUPTED,
    EndReason.RELEASED: NoticeType.COMPUTE_NODE_RELEASED,
    EndReason.LAUNCH_FAILED: NoticeType.COMPUTE_NODE_CREATION_FAILED,
}
FAILED_TO_START = (EndReason.LAUNCH_FAILED, EndReason.LAUNCH_TIMEOUT)


@dataclass(frozen=True)
class Notice:
    """One event, before it is given an id and written to the outbox."""

    type: NoticeType
    env_id: str
    env_name: str
    at: datetime
    detail: Mapping[str, object] = field(default_factory=dict)

    def payload(self) -> dict[str, object]:
        """What the outbox stores and the sender formats: plain JSON values."""
        return {"env_name": self.env_name, **self.detail}


def _node_detail(node: Node) -> dict[str, object]:
    return {
        "node_id": node.id,
        "instance_id": node.instance_id,
        "zone": node.zone,
        "instance_type": node.instance_type,
        "charge_type": node.charge_type,
        "role": node.role,
    }


def node_notices(before: Node | None, after: Node, env_name: str, at: datetime) -> list[Notice]:
    """What one node's recorded change means; ``before`` None for a new record (adopted,
    or an orphan found to terminate).

    One record may hold several steps (a pass can see a node RUNNING and scale it in at
    once), so what happened is read from the facts the record gained (an instance id, a
    running time) as well as from its state: each step gets its notice, in order.
    """
    was = before.state if before is not None else None
    now = after.state
    out: list[Notice] = []

    def add(kind: NoticeType, **extra: object) -> None:
        out.append(Notice(kind, after.env_id, env_name, at, {**_node_detail(after), **extra}))

    reason = EndReason(after.end_reason) if after.end_reason else None
    detail = after.end_detail or ""
    new_id = after.instance_id and (before is None or before.instance_id is None)
    if new_id and reason != EndReason.ORPHAN:
        add(NoticeType.COMPUTE_NODE_CREATED, origin=after.origin)
    if after.running_at is not None and (before is None or before.running_at is None):
        add(NoticeType.COMPUTE_NODE_RUNNING)
    if was == now:
        return out
    if now == NodeState.DELETING:
        if reason in FAILED_TO_START:
            add(NoticeType.COMPUTE_NODE_CREATION_FAILED, reason=reason.value, detail=detail)
        elif reason == EndReason.STOPPED:
            add(NoticeType.COMPUTE_NODE_ABNORMAL, reason=reason.value, detail=detail)
        add(
            NoticeType.COMPUTE_NODE_DELETING,
            reason=(reason or EndReason.SCALE_IN).value,
            detail=detail,
        )
    elif now == NodeState.ENDED:
        ended = ENDED_NOTICES.get(reason or EndReason.RELEASED)
        if was == NodeState.DELETING or ended is None:
            add(NoticeType.COMPUTE_NODE_DELETED, reason=reason.value if reason else "")
        else:
            add(ended, reason=(reason or EndReason.RELEASED).value, detail=detail)
    return out


def launch_failed_notice(
    launch: Launch, nodes: Sequence[Node], code: str, message: str, env_name: str, at: datetime
) -> Notice:
    """A refused RunInstances: one notice for the call, naming its nodes (a sold-out pool
    refuses a launch of 100 at once; a hundred messages would say nothing more)."""
    return Notice(
        NoticeType.COMPUTE_NODE_CREATION_FAILED,
        launch.env_id,
        env_name,
        at,
        {
            "node_ids": [n.id for n in nodes],
            "count": len(nodes),
            "zone": launch.offering.zone,
            "instance_type": launch.offering.instance_type,
            "charge_type": launch.offering.charge_type,
            "reason": EndReason.LAUNCH_FAILED.value,
            "detail": f"{code}: {message}"[:500],
        },
    )


def status_notices(
    announced: EnvStatus | None, report: StatusReport, env_name: str, at: datetime
) -> list[Notice]:
    """Entering BACKOFF, ERROR, INVALID or CAPPED, once per episode: ``announced`` is the last
    such status announced since the environment was last READY (a pool backing off flips
    between BACKOFF and SCALING at every retry; that is one episode, not one per retry)."""
    kind = STATUS_NOTICES.get(report.status)
    if kind is None or announced == report.status:
        return []
    next_attempt = report.next_attempt_at
    detail = {
        "status": report.status.value,
        "reason": report.reason,
        "running": report.running,
        "next_attempt_at": next_attempt.strftime("%Y-%m-%dT%H:%M:%SZ") if next_attempt else None,
    }
    return [Notice(kind, report.env_id, env_name, at, detail)]


def note_notices(note: Note, env_name: str, at: datetime) -> list[Notice]:
    kind = NOTE_NOTICES.get(note.event)
    if kind is None:
        return []
    detail = {k: v for k, v in note.fields.items() if k in ("count", "cause", "reason")}
    return [Notice(kind, note.env_id, env_name, at, detail)]


@dataclass
class ShortWatch:
    """When each environment fell below its desired count, and whether that was announced.

    Kept in memory by the status writer: after a restart or a takeover an environment still
    short is timed again from the first pass, so it may be announced once more.
    """

    after_s: float
    since: dict[str, datetime] = field(default_factory=dict)
    announced: set[str] = field(default_factory=set)

    def update(
        self, env_id: str, env_name: str, running: int, desired: int | None, at: datetime
    ) -> list[Notice]:
        if desired is None or running >= desired:
            self.since.pop(env_id, None)
            self.announced.discard(env_id)
            return []
        since = self.since.setdefault(env_id, at)
        if env_id in self.announced or (at - since).total_seconds() < self.after_s:
            return []
        self.announced.add(env_id)
        detail = {
            "running": running,
            "desired": desired,
            "short_by": desired - running,
            "since": since.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "after_s": self.after_s,
        }
        return [Notice(NoticeType.COMPUTE_ENV_SHORT, env_id, env_name, at, detail)]

    def due_at(self) -> list[datetime]:
        """When an environment not yet announced will have been short long enough."""
        return [
            since + timedelta(seconds=self.after_s)
            for env_id, since in self.since.items()
            if env_id not in self.announced
        ]

    def forget(self, env_ids: Sequence[str]) -> None:
        for env_id in env_ids:
            self.since.pop(env_id, None)
            self.announced.discard(env_id)


def wants(events: Sequence[str], env_ids: Sequence[str], kind: str, env_id: str) -> bool:
    """A target's filters: no events named means every event, no environment every one.

    The SQL of the environment triggers (migration 0007) applies the same rule.
    """
    return (not events or kind in events) and (not env_ids or env_id in env_ids)
