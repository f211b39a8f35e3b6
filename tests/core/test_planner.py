"""The planning rules as tables of snapshot -> plan. Pure: no database, no HTTP, no clock."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from controller.core.backoff import Block
from controller.core.instances import Instance, LaunchRequest, Offering
from controller.core.model import (
    CLUSTER_TAG,
    ENV_TAG,
    TOKEN_TAG,
    EndReason,
    Launch,
    Node,
    NodeState,
)
from controller.core.plan import EnvStatus, Observation, Plan, Policy, Snapshot
from controller.core.planner import plan
from controller.core.spec import EnvironmentSpec

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
P1 = Offering("ap-guangzhou-3", "S2.MEDIUM4")
P2 = Offering("ap-guangzhou-3", "S5.MEDIUM4")
_seq = iter(range(10**6))


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def env(
    desired: int, env_id: str = "env-aaaaaaaa", offerings: Sequence[Offering] = (P1,)
) -> EnvironmentSpec:
    return EnvironmentSpec(
        id=env_id,
        name=env_id,
        desired_count=desired,
        offerings=tuple(offerings),
        image_id="img-pmqg1cw7",
        max_price="0.6",
    )


def node(
    state: NodeState,
    env_id: str = "env-aaaaaaaa",
    *,
    cloud: str | None = None,
    launched: float = 600,
    seen: bool = True,
    **kw: Any,
) -> Node:
    n = next(_seq)
    return Node(
        id=f"node-{n:08d}",
        env_id=env_id,
        state=state,
        zone=P1.zone,
        instance_type=P1.instance_type,
        created_at=ago(launched),
        instance_id=None if state == NodeState.SUBMITTED else f"ins-{n:08d}",
        launched_at=None if state == NodeState.SUBMITTED else ago(launched),
        last_seen_at=ago(5) if seen and state != NodeState.SUBMITTED else None,
        cloud_state=cloud
        if cloud is not None
        else {NodeState.RUNNING: "RUNNING", NodeState.CREATING: "PENDING"}.get(state),
        **kw,
    )


def instance(
    n: Node | None = None,
    state: str = "RUNNING",
    *,
    iid: str | None = None,
    env_id: str = "env-aaaaaaaa",
    created: float = 600,
    token: str | None = None,
) -> Instance:
    tags = {ENV_TAG: n.env_id if n else env_id, CLUSTER_TAG: "default"}
    if token:
        tags[TOKEN_TAG] = token
    return Instance(
        instance_id=iid or (n.instance_id if n and n.instance_id else "ins-x"),
        state=state,
        zone=P1.zone,
        instance_type=P1.instance_type,
        created_time=ago(created),
        tags=tags,
    )


def launch(count: int, env_id: str = "env-aaaaaaaa", token: str = "tok-1") -> Launch:
    req = LaunchRequest(
        zone=P1.zone,
        instance_type=P1.instance_type,
        image_id="img-pmqg1cw7",
        max_price="0.6",
        count=count,
        client_token=token,
        tags={},
    )
    return Launch(token, env_id, P1, count, req, ago(1))


def snap(
    envs: Sequence[EnvironmentSpec] = (),
    nodes: Sequence[Node] = (),
    *,
    observed: Sequence[Instance] | None = None,
    launches: Sequence[Launch] = (),
    in_flight: Sequence[str] = (),
    invalid: Mapping[str, str] | None = None,
    blocks: Mapping[tuple[str | None, Offering], Block] | None = None,
    holds: Mapping[str, Block] | None = None,
    obs_started: float = 1,
    terminate_requested: Mapping[str, datetime] | None = None,
    recently_ended: Sequence[str] = (),
) -> Snapshot:
    obs = None
    if observed is not None:
        obs = Observation({i.instance_id: i for i in observed}, ago(obs_started))
    return Snapshot(
        now=NOW,
        environments={e.id: e for e in envs},
        invalid=dict(invalid or {}),
        nodes=list(nodes),
        launches=list(launches),
        launches_in_flight=frozenset(in_flight),
        observation=obs,
        blocks=dict(blocks or {}),
        holds=dict(holds or {}),
        recently_ended=frozenset(recently_ended),
        terminate_requested=dict(terminate_requested or {}),
        policy=Policy(
            launch_batch_max=100,
            launch_timeout_s=300,
            orphan_grace_s=30,
            visibility_grace_s=60,
            terminate_retry_s=10,
        ),
    )


def launched(p: Plan) -> list[tuple[str, Offering, int]]:
    return [(o.env_id, o.offering, o.count) for o in p.launches]


def status(p: Plan, env_id: str = "env-aaaaaaaa") -> tuple[EnvStatus, str]:
    report = next(s for s in p.statuses if s.env_id == env_id)
    return report.status, report.reason


# ----- scale out ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("desired", "alive", "launching", "expected"),
    [
        (3, 0, 0, [3]),
        (250, 0, 0, [100, 100, 50]),  # batches of the InstanceCount limit
        (5, 2, 0, [3]),
        (5, 2, 3, []),  # in flight counts: never launch twice for one deficit
        (5, 0, 4, [1]),
        (0, 0, 0, []),
        (3, 3, 0, []),
    ],
)
def test_launches_cover_exactly_the_deficit(
    desired: int, alive: int, launching: int, expected: list[int]
) -> None:
    nodes = [node(NodeState.RUNNING) for _ in range(alive)]
    launches = [launch(launching)] if launching else []
    p = plan(snap([env(desired)], nodes, launches=launches, in_flight=["tok-1"]))
    assert [c for _, _, c in launched(p)] == expected


def test_pending_instances_count_as_alive() -> None:
    nodes = [node(NodeState.CREATING) for _ in range(3)]
    p = plan(snap([env(3)], nodes))
    assert launched(p) == []
    assert status(p)[0] == EnvStatus.SCALING


def test_ready_when_running_equals_desired() -> None:
    p = plan(snap([env(2)], [node(NodeState.RUNNING), node(NodeState.RUNNING)]))
    assert status(p) == (EnvStatus.READY, "2 of 2 running")


# ----- scale in ----------------------------------------------------------------------------


def test_scale_in_terminates_unhealthy_then_pending_then_newest() -> None:
    old = node(NodeState.RUNNING, launched=900)
    new = node(NodeState.RUNNING, launched=100)
    pend = node(NodeState.CREATING, launched=50, cloud="PENDING")
    sick = node(NodeState.RUNNING, launched=1000, cloud="STOPPED")
    p = plan(snap([env(1)], [old, new, pend, sick]))
    victims = [c.node_id for c in p.node_changes if c.state == NodeState.DELETING]
    assert victims == [sick.id, pend.id, new.id]
    # The pending one cannot be terminated yet (the cloud refuses PENDING); the others can.
    terminated = [i for t in p.terminations for i in t.instance_ids]
    assert sorted(terminated) == sorted([sick.instance_id, new.instance_id])
    assert all(t.reason == EndReason.SCALE_IN for t in p.terminations)


def test_scale_to_zero_terminates_everything_in_batches_of_100() -> None:
    nodes = [node(NodeState.RUNNING) for _ in range(250)]
    p = plan(snap([env(0)], nodes))
    assert [len(t.instance_ids) for t in p.terminations] == [100, 100, 50]


def test_surplus_from_in_flight_launch_waits_for_it() -> None:
    p = plan(snap([env(1)], [node(NodeState.RUNNING)], launches=[launch(2)], in_flight=["tok-1"]))
    # alive 1 + launching 2 > desired 1, but only alive instances can be terminated
    assert [c.node_id for c in p.node_changes if c.state == NodeState.DELETING] != []
    assert launched(p) == []


def test_recent_terminate_is_not_repeated() -> None:
    n = node(NodeState.DELETING, cloud="RUNNING", end_reason="scale_in")
    p = plan(snap([env(0)], [n], terminate_requested={n.instance_id: ago(2)}))
    assert p.terminations == []
    p = plan(snap([env(0)], [n], terminate_requested={n.instance_id: ago(30)}))
    assert [t.instance_ids for t in p.terminations] == [(n.instance_id,)]


# ----- observation -------------------------------------------------------------------------


def test_interrupted_and_released_instances_are_replaced() -> None:
    reclaimed = node(NodeState.RUNNING)
    released = node(NodeState.RUNNING)
    gone_after_terminating = node(NodeState.RUNNING, cloud="TERMINATING")
    ok = node(NodeState.RUNNING)
    observed = [instance(reclaimed, "TERMINATING"), instance(ok)]
    p = plan(snap([env(4)], [reclaimed, released, gone_after_terminating, ok], observed=observed))
    ends = {c.node_id: c.end_reason for c in p.node_changes if c.state == NodeState.ENDED}
    assert ends == {
        reclaimed.id: EndReason.INTERRUPTED,
        released.id: EndReason.RELEASED,
        gone_after_terminating.id: EndReason.INTERRUPTED,
    }
    assert [c for _, _, c in launched(p)] == [3]


def test_a_probe_shows_what_is_being_reclaimed_and_judges_nothing_else() -> None:
    # A partial observation (a probe filtered on instance-state) lists only going instances:
    # the reclaimed one is replaced at once; the others it does not show stay as they are,
    # and an unrecorded instance it shows is neither adopted nor terminated.
    reclaimed = node(NodeState.RUNNING)
    unseen = node(NodeState.RUNNING)
    creating = node(NodeState.CREATING, launched=400)
    stranger = instance(iid="ins-stranger", state="TERMINATING", env_id="env-gone")
    pending = launch(1, token="tok-9")
    probe = Observation(
        {i.instance_id: i for i in (instance(reclaimed, "TERMINATING"), stranger)},
        ago(1),
        complete=False,
    )
    base = snap([env(4)], [reclaimed, unseen, creating], launches=[pending])
    p = plan(dataclasses.replace(base, observation=probe))
    assert [(c.node_id, c.state, c.end_reason) for c in p.node_changes] == [
        (reclaimed.id, NodeState.ENDED, EndReason.INTERRUPTED)
    ]
    assert [c for _, _, c in launched(p)] == [1]
    assert p.resends == []
    assert p.resolutions == []
    assert p.adoptions == []
    assert p.terminations == []


def test_new_instance_not_yet_visible_is_not_judged_gone() -> None:
    fresh = node(NodeState.CREATING, launched=5, seen=False)
    p = plan(snap([env(1)], [fresh], observed=[]))
    assert p.node_changes == []
    assert launched(p) == []


def test_instance_never_visible_past_the_grace_is_gone_and_replaced() -> None:
    lost = node(NodeState.CREATING, launched=90, seen=False)
    p = plan(snap([env(1)], [lost], observed=[]))
    assert [(c.state, c.end_reason) for c in p.node_changes] == [
        (NodeState.ENDED, EndReason.RELEASED)
    ]
    assert [c for _, _, c in launched(p)] == [1]


def test_pending_past_launch_timeout_and_launch_failed_are_terminated_and_replaced() -> None:
    stuck = node(NodeState.CREATING, launched=400)
    failed = node(NodeState.CREATING, launched=10)
    observed = [instance(stuck, "PENDING"), instance(failed, "LAUNCH_FAILED")]
    p = plan(snap([env(2)], [stuck, failed], observed=observed))
    reasons = {c.node_id: c.end_reason for c in p.node_changes}
    assert reasons == {stuck.id: EndReason.LAUNCH_TIMEOUT, failed.id: EndReason.LAUNCH_FAILED}
    assert [c for _, _, c in launched(p)] == [2]
    # LAUNCH_FAILED can be terminated now; PENDING must wait until the cloud accepts it.
    assert [t.instance_ids for t in p.terminations] == [(failed.instance_id,)]


@pytest.mark.parametrize(
    ("node_state", "cloud_state", "terminated_now"),
    [
        # stopped from the console (or StopInstances) while the controller counted it running
        (NodeState.RUNNING, "STOPPED", True),
        # still stopping: CVM refuses TerminateInstances until it is STOPPED
        (NodeState.RUNNING, "STOPPING", False),
        # stopped before the controller ever saw it running
        (NodeState.CREATING, "STOPPED", True),
    ],
)
def test_a_stopped_instance_is_not_alive_it_is_replaced_and_terminated(
    node_state: NodeState, cloud_state: str, terminated_now: bool
) -> None:
    healthy = node(NodeState.RUNNING)
    stopped = node(node_state, launched=100)
    observed = [instance(healthy), instance(stopped, cloud_state)]
    p = plan(snap([env(2)], [healthy, stopped], observed=observed))
    [change] = p.node_changes
    assert (change.node_id, change.state, change.event, change.cloud_state) == (
        stopped.id,
        NodeState.DELETING,
        "instance_stopped",
        cloud_state,
    )
    assert change.end_reason == EndReason.STOPPED
    assert cloud_state in change.detail
    assert launched(p) == [("env-aaaaaaaa", P1, 1)]  # the replacement, in the same plan
    terminated = [i for t in p.terminations for i in t.instance_ids]
    assert terminated == ([stopped.instance_id] if terminated_now else [])


def test_a_deleting_stopped_instance_is_terminated_once_it_settles() -> None:
    n = node(NodeState.DELETING, cloud="STOPPING", end_reason=EndReason.STOPPED.value)
    p = plan(snap([env(0)], [n], observed=[instance(n, "STOPPED")]))
    assert [t.instance_ids for t in p.terminations] == [(n.instance_id,)]
    assert [t.reason for t in p.terminations] == [EndReason.STOPPED]


@pytest.mark.parametrize("cloud_state", ["REBOOTING", "STARTING"])
def test_rebooting_or_starting_stays_alive_and_is_not_terminated(cloud_state: str) -> None:
    n = node(NodeState.RUNNING)
    p = plan(snap([env(1)], [n], observed=[instance(n, cloud_state)]))
    assert [(c.state, c.event) for c in p.node_changes] == [
        (NodeState.RUNNING, "instance_observed")
    ]
    assert (launched(p), p.terminations) == ([], [])


def test_running_transition_recorded() -> None:
    n = node(NodeState.CREATING, launched=10)
    p = plan(snap([env(1)], [n], observed=[instance(n, "RUNNING")]))
    assert [(c.state, c.event) for c in p.node_changes] == [(NodeState.RUNNING, "instance_running")]
    assert status(p)[0] == EnvStatus.READY


def test_deleting_node_ends_when_gone() -> None:
    n = node(NodeState.DELETING, cloud="TERMINATING", end_reason="scale_in")
    p = plan(snap([env(0)], [n], observed=[]))
    assert [(c.state, c.event) for c in p.node_changes] == [
        (NodeState.ENDED, "instance_terminated")
    ]


# ----- crash recovery, adoption, orphans ----------------------------------------------------


def test_pending_launch_resolved_from_tags_when_all_instances_visible() -> None:
    la = launch(2, token="tok-9")
    observed = [
        instance(iid="ins-00000001", token="tok-9"),
        instance(iid="ins-00000002", token="tok-9"),
    ]
    subs = [node(NodeState.SUBMITTED, launch_token="tok-9") for _ in range(2)]
    p = plan(snap([env(2)], subs, observed=observed, launches=[la]))
    assert [(r.client_token, r.instance_ids) for r in p.resolutions] == [
        ("tok-9", ("ins-00000001", "ins-00000002"))
    ]
    assert p.resends == []
    assert p.adoptions == []
    assert launched(p) == []


def test_pending_launch_not_visible_is_resent_with_its_token() -> None:
    la = launch(2, token="tok-9")
    subs = [node(NodeState.SUBMITTED, launch_token="tok-9") for _ in range(2)]
    p = plan(snap([env(2)], subs, observed=[], launches=[la]))
    assert [r.client_token for r in p.resends] == ["tok-9"]
    assert launched(p) == []


def test_launch_in_flight_is_neither_resent_nor_resolved() -> None:
    la = launch(1, token="tok-9")
    p = plan(
        snap(
            [env(1)],
            [node(NodeState.SUBMITTED, launch_token="tok-9")],
            observed=[instance(iid="ins-00000001", token="tok-9")],
            launches=[la],
            in_flight=["tok-9"],
        )
    )
    assert p.resends == []
    assert p.resolutions == []
    assert p.adoptions == []


def test_untracked_instance_of_live_env_is_adopted_and_counted() -> None:
    stray = instance(iid="ins-0000abcd", env_id="env-aaaaaaaa")
    p = plan(snap([env(1)], [], observed=[stray]))
    assert [(a.env_id, a.instance.instance_id) for a in p.adoptions] == [
        ("env-aaaaaaaa", "ins-0000abcd")
    ]
    assert launched(p) == []


def test_instance_of_deleted_env_terminated_after_grace() -> None:
    young = instance(iid="ins-young000", env_id="env-gone0000", created=10)
    old = instance(iid="ins-old00000", env_id="env-gone0000", created=100)
    p = plan(snap([], [], observed=[young, old]))
    assert [(t.env_id, t.instance_ids, t.reason) for t in p.terminations] == [
        (None, ("ins-old00000",), EndReason.ORPHAN)
    ]


def test_recorded_nodes_of_deleted_env_are_terminated() -> None:
    nodes = [node(NodeState.RUNNING, env_id="env-gone0000") for _ in range(2)]
    p = plan(snap([], nodes))
    assert {c.end_reason for c in p.node_changes} == {EndReason.ENV_DELETED}
    assert len(p.terminations[0].instance_ids) == 2


def test_recently_ended_and_terminating_instances_are_not_adopted() -> None:
    observed = [instance(iid="ins-ended000"), instance(iid="ins-dying000", state="TERMINATING")]
    p = plan(snap([env(2)], [], observed=observed, recently_ended=["ins-ended000"]))
    assert p.adoptions == []


# ----- backoff, fallback, errors, invalid rows ----------------------------------------------


def test_blocked_pool_falls_back_to_next_pool() -> None:
    blocks = {(None, P1): Block(NOW + timedelta(seconds=30), "capacity", "sold out")}
    p = plan(snap([env(2, offerings=(P1, P2))], blocks=blocks))
    assert launched(p) == [("env-aaaaaaaa", P2, 2)]


def test_all_pools_blocked_reports_backoff_with_next_attempt() -> None:
    until = NOW + timedelta(seconds=30)
    blocks = {
        (None, P1): Block(until, "capacity", "ResourceInsufficient in P1"),
        ("env-aaaaaaaa", P2): Block(until + timedelta(seconds=5), "price", "outbid"),
    }
    p = plan(snap([env(2, offerings=(P1, P2))], blocks=blocks))
    assert launched(p) == []
    report = p.statuses[0]
    assert report.status == EnvStatus.BACKOFF
    assert report.next_attempt_at == until
    assert "short by 2" in report.reason


def test_expired_block_is_retried() -> None:
    blocks = {(None, P1): Block(NOW - timedelta(seconds=1), "capacity", "sold out")}
    assert launched(plan(snap([env(1)], blocks=blocks))) == [("env-aaaaaaaa", P1, 1)]


def test_price_block_is_per_environment() -> None:
    blocks = {("env-aaaaaaaa", P1): Block(NOW + timedelta(seconds=30), "price", "outbid")}
    p = plan(snap([env(1), env(1, "env-bbbbbbbb")], blocks=blocks))
    assert launched(p) == [("env-bbbbbbbb", P1, 1)]


def test_quota_on_every_pool_is_an_error_status() -> None:
    blocks = {("env-aaaaaaaa", P1): Block(NOW + timedelta(seconds=300), "quota", "SpotQuota")}
    p = plan(snap([env(1)], blocks=blocks))
    assert status(p)[0] == EnvStatus.ERROR


def test_held_environment_does_not_launch() -> None:
    holds = {"env-aaaaaaaa": Block(NOW + timedelta(seconds=300), "auth", "authentication failed")}
    p = plan(snap([env(3), env(1, "env-bbbbbbbb")], holds=holds))
    assert launched(p) == [("env-bbbbbbbb", P1, 1)]
    assert status(p) == (EnvStatus.ERROR, "authentication failed")


def test_invalid_row_is_reported_and_others_keep_working() -> None:
    kept = node(NodeState.RUNNING, env_id="env-bad00000")
    p = plan(snap([env(1)], [kept], invalid={"env-bad00000": "invalid zone: malformed"}))
    assert launched(p) == [("env-aaaaaaaa", P1, 1)]
    assert status(p, "env-bad00000") == (EnvStatus.INVALID, "invalid zone: malformed")
    assert p.terminations == []  # an invalid row never costs the user their instances


def test_plan_is_deterministic() -> None:
    nodes = [node(NodeState.RUNNING) for _ in range(5)]
    s = snap([env(2)], nodes)
    assert plan(s) == plan(s)
