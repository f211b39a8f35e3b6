"""Which notices a recorded change produces: a table of (before, after) -> event names."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from controller.core.model import EndReason, Node, NodeState
from controller.core.notices import (
    NoticeType,
    ShortWatch,
    node_notices,
    status_notices,
    wants,
)
from controller.core.plan import EnvStatus, StatusReport

T0 = datetime(2026, 12, 1, tzinfo=UTC)
N = NoticeType
BASE = Node("node-a", "env-a", NodeState.SUBMITTED, "ap-guangzhou-3", "S2.MEDIUM4", T0)


def node(state: NodeState, **kw: object) -> Node:
    return replace(BASE, state=state, **kw)  # type: ignore[arg-type]


CREATING = node(NodeState.CREATING, instance_id="ins-1")
RUNNING = node(NodeState.RUNNING, instance_id="ins-1", running_at=T0)
DELETING = node(NodeState.DELETING, instance_id="ins-1", end_reason="scale_in", running_at=T0)


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (BASE, CREATING, [N.COMPUTE_NODE_CREATED]),
        (None, RUNNING, [N.COMPUTE_NODE_CREATED, N.COMPUTE_NODE_RUNNING]),  # adopted
        (CREATING, RUNNING, [N.COMPUTE_NODE_RUNNING]),
        (None, replace(DELETING, end_reason="orphan", running_at=None), [N.COMPUTE_NODE_DELETING]),
        (RUNNING, RUNNING, []),
        (RUNNING, DELETING, [N.COMPUTE_NODE_DELETING]),
        # seen RUNNING and scaled in by the same pass: one record, both steps
        (CREATING, DELETING, [N.COMPUTE_NODE_RUNNING, N.COMPUTE_NODE_DELETING]),
        (
            RUNNING,
            replace(DELETING, end_reason=EndReason.STOPPED.value),
            [N.COMPUTE_NODE_ABNORMAL, N.COMPUTE_NODE_DELETING],
        ),
        (
            CREATING,
            replace(DELETING, end_reason=EndReason.LAUNCH_TIMEOUT.value, running_at=None),
            [N.COMPUTE_NODE_CREATION_FAILED, N.COMPUTE_NODE_DELETING],
        ),
        (DELETING, replace(DELETING, state=NodeState.ENDED), [N.COMPUTE_NODE_DELETED]),
        (
            RUNNING,
            node(NodeState.ENDED, instance_id="ins-1", end_reason="interrupted", running_at=T0),
            [N.COMPUTE_NODE_INTERRUPTED],
        ),
        (
            RUNNING,
            node(NodeState.ENDED, instance_id="ins-1", end_reason="released", running_at=T0),
            [N.COMPUTE_NODE_RELEASED],
        ),
        (
            BASE,
            node(NodeState.ENDED, end_reason="launch_failed"),
            [N.COMPUTE_NODE_CREATION_FAILED],
        ),
    ],
)
def test_node_changes(before: Node | None, after: Node, expected: list[NoticeType]) -> None:
    notices = node_notices(before, after, "web", T0)
    assert [n.type for n in notices] == expected
    for notice in notices:
        assert notice.env_id == "env-a"
        assert notice.payload()["env_name"] == "web"
        assert notice.payload()["node_id"] == "node-a"


def report(status: EnvStatus) -> StatusReport:
    return StatusReport("env-a", status, "why", 0, 0, 0, None)


@pytest.mark.parametrize(
    ("previous", "status", "expected"),
    [
        (EnvStatus.SCALING, EnvStatus.BACKOFF, [N.COMPUTE_ENV_BACKOFF]),
        (EnvStatus.BACKOFF, EnvStatus.BACKOFF, []),  # a new reason, the same episode
        (None, EnvStatus.ERROR, [N.COMPUTE_ENV_ERROR]),
        (EnvStatus.READY, EnvStatus.INVALID, [N.COMPUTE_ENV_INVALID]),
        (EnvStatus.SCALING, EnvStatus.CAPPED, [N.COMPUTE_ENV_SPEND_CAP_REACHED]),
        (EnvStatus.BACKOFF, EnvStatus.READY, []),
    ],
)
def test_status_entries(
    previous: EnvStatus | None, status: EnvStatus, expected: list[NoticeType]
) -> None:
    assert [n.type for n in status_notices(previous, report(status), "web", T0)] == expected


def test_short_is_announced_once_after_the_delay_and_again_after_recovering() -> None:
    watch = ShortWatch(after_s=600)
    assert watch.update("env-a", "web", 1, 3, T0) == []
    assert watch.due_at() == [T0 + timedelta(seconds=600)]
    assert watch.update("env-a", "web", 1, 3, T0 + timedelta(seconds=599)) == []
    [short] = watch.update("env-a", "web", 2, 3, T0 + timedelta(seconds=600))
    assert short.type == N.COMPUTE_ENV_SHORT
    assert short.detail["short_by"] == 1
    assert watch.update("env-a", "web", 2, 3, T0 + timedelta(seconds=900)) == []
    assert watch.due_at() == []
    assert watch.update("env-a", "web", 3, 3, T0 + timedelta(seconds=901)) == []  # back
    assert watch.update("env-a", "web", 0, 3, T0 + timedelta(seconds=1000)) == []
    assert len(watch.update("env-a", "web", 0, 3, T0 + timedelta(seconds=1600))) == 1


def test_filters() -> None:
    assert wants([], [], "COMPUTE_NODE_RUNNING", "env-a")
    assert wants(["COMPUTE_NODE_RUNNING"], ["env-a"], "COMPUTE_NODE_RUNNING", "env-a")
    assert not wants(["COMPUTE_ENV_SHORT"], [], "COMPUTE_NODE_RUNNING", "env-a")
    assert not wants([], ["env-b"], "COMPUTE_NODE_RUNNING", "env-a")
