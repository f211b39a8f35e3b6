"""Launch intents and outcomes, and what a plan means for the records: tables, no I/O."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from controller.core import launches, transitions
from controller.core.events import Event
from controller.core.instances import Instance, Offering
from controller.core.model import (
    CLUSTER_TAG,
    CREATE_NODE,
    ENV_TAG,
    TERMINATE_NODE,
    TOKEN_TAG,
    EndReason,
    Node,
    NodeState,
)
from controller.core.plan import (
    Adoption,
    LaunchOrder,
    NodeChange,
    Observation,
    Plan,
    TerminateOrder,
)
from controller.core.spec import EnvironmentSpec
from controller.errors import CapacityError

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
OFFER = Offering("ap-guangzhou-3", "S2.MEDIUM4")
SPEC = EnvironmentSpec(
    id="env-aaaaaaaa",
    name="web",
    desired_count=3,
    offerings=(OFFER,),
    image_id="img-pmqg1cw7",
    max_price="0.60",
    tags={"team": "ml"},
)


def ids(prefix: str = "node") -> Iterator[str]:
    return (f"{prefix}-{n:08d}" for n in itertools.count(1))


def intent(count: int = 2, nonce: str = "n1") -> launches.LaunchIntent:
    gen = ids()
    return launches.build_intent(
        LaunchOrder(SPEC.id, OFFER, count, "increase"),
        SPEC,
        cluster="prod",
        now=NOW,
        nonce=nonce,
        new_node_id=lambda: next(gen),
    )


def test_an_intent_carries_its_token_in_its_tags_and_one_submitted_node_per_instance() -> None:
    i = intent(3)
    request = i.launch.request
    assert request.client_token == i.launch.client_token
    assert request.client_token.startswith("env-aaaaaaaa-")
    assert len(request.client_token) <= 64
    assert dict(request.tags) == {
        "team": "ml",
        ENV_TAG: SPEC.id,
        CLUSTER_TAG: "prod",
        TOKEN_TAG: request.client_token,
    }
    assert [n.state for n in i.nodes] == [NodeState.SUBMITTED] * 3
    assert {n.launch_token for n in i.nodes} == {request.client_token}
    assert (request.zone, request.instance_type, request.count) == (
        OFFER.zone,
        OFFER.instance_type,
        3,
    )


def test_the_token_follows_the_request_and_the_nonce() -> None:
    assert intent(2, "a").launch.client_token == intent(2, "a").launch.client_token
    assert intent(2, "a").launch.client_token != intent(2, "b").launch.client_token
    assert intent(2, "a").launch.client_token != intent(3, "a").launch.client_token


def test_a_success_gives_each_submitted_node_one_new_id() -> None:
    i = intent(2)
    out = launches.resolve_success(i.launch, i.nodes, ["ins-aaaaaaaa", "ins-bbbbbbbb"], NOW)
    assert out.succeeded
    assert [(n.state, n.instance_id) for n in out.nodes] == [
        (NodeState.CREATING, "ins-aaaaaaaa"),
        (NodeState.CREATING, "ins-bbbbbbbb"),
    ]
    assert all(n.launched_at == NOW for n in out.nodes)
    assert all(n.state == NodeState.SUBMITTED for n in i.nodes), "inputs are not changed"


def test_a_partial_delivery_ends_the_nodes_left_without_an_instance() -> None:
    i = intent(3)
    out = launches.resolve_success(i.launch, i.nodes, ["ins-aaaaaaaa"], NOW)
    assert [n.state for n in out.nodes] == [NodeState.CREATING, NodeState.ENDED, NodeState.ENDED]
    assert out.nodes[1].end_reason == EndReason.LAUNCH_FAILED.value
    assert out.nodes[1].end_detail == launches.PARTIAL_DELIVERY
    assert out.instance_ids == ("ins-aaaaaaaa",)


def test_an_id_already_held_by_a_node_of_the_launch_is_not_given_twice() -> None:
    i = intent(2)
    adopted = replace(i.nodes[0], state=NodeState.RUNNING, instance_id="ins-aaaaaaaa")
    nodes = (adopted, i.nodes[1])
    out = launches.resolve_success(i.launch, nodes, ["ins-aaaaaaaa", "ins-bbbbbbbb"], NOW)
    assert [(n.id, n.instance_id) for n in out.nodes] == [(i.nodes[1].id, "ins-bbbbbbbb")]
    assert out.instance_ids == ("ins-bbbbbbbb",)


def test_a_refusal_ends_every_submitted_node_with_the_code() -> None:
    i = intent(2)
    error = CapacityError("ResourcesSoldOut.SpecifiedInstanceType", "sold out")
    out = launches.resolve_failure(i.launch, i.nodes, error, NOW)
    assert not out.succeeded
    assert {n.state for n in out.nodes} == {NodeState.ENDED}
    assert {n.end_detail for n in out.nodes} == {"ResourcesSoldOut.SpecifiedInstanceType: sold out"}


# ----- transitions ----------------------------------------------------------------------------


def node(state: NodeState, *, seen: bool = True, running: bool = True, **kw: object) -> Node:
    return Node(
        id=str(kw.pop("id", "node-00000001")),
        env_id=SPEC.id,
        state=state,
        zone=OFFER.zone,
        instance_type=OFFER.instance_type,
        created_at=NOW - timedelta(minutes=5),
        instance_id=str(kw.pop("instance_id", "ins-aaaaaaaa")),
        launched_at=NOW - timedelta(minutes=5),
        running_at=NOW - timedelta(minutes=4) if running else None,
        last_seen_at=NOW - timedelta(minutes=1) if seen else None,
        **kw,  # type: ignore[arg-type]
    )


def effects(plan: Plan, *nodes: Node, obs: Observation | None = None) -> transitions.Effects:
    gen = ids("node-new")
    return transitions.effects(
        plan, {n.id: n for n in nodes}, {SPEC.id: "web"}, obs, NOW, lambda: next(gen)
    )


def test_a_reclaim_closes_the_create_activity_and_records_a_terminate_one() -> None:
    n = node(NodeState.RUNNING)
    change = NodeChange(
        n.id, NodeState.ENDED, Event.INSTANCE_INTERRUPTED, "TERMINATING", EndReason.INTERRUPTED, "x"
    )
    out = effects(Plan(node_changes=[change]), n)
    copy = out.changed_nodes[n.id]
    assert (copy.state, copy.end_reason, copy.ended_at) == (NodeState.ENDED, "interrupted", NOW)
    assert n.state == NodeState.RUNNING, "the engine's memory is not changed"
    assert out.finished_activities == [(n.id, CREATE_NODE, "SUCCEED", "instance RUNNING")]
    [activity] = out.new_activities
    assert (activity.activity_type, activity.state, activity.ended) == (
        TERMINATE_NODE,
        "SUCCEED",
        True,
    )
    assert activity.cause == "spot instance reclaimed: x"
    assert out.ended == [(SPEC.id, EndReason.INTERRUPTED)]
    assert out.terminated == []
    assert [(line.level, line.event) for line in out.lines] == [
        ("warning", Event.INSTANCE_INTERRUPTED)
    ]


def test_a_scale_in_opens_a_terminate_activity_and_its_end_remembers_the_instance() -> None:
    n = node(NodeState.RUNNING)
    deciding = NodeChange(
        n.id, NodeState.DELETING, Event.INSTANCE_TERMINATING, None, EndReason.SCALE_IN, "lower"
    )
    out = effects(Plan(node_changes=[deciding]), n)
    assert [a.state for a in out.new_activities] == ["PROCESSING"]
    assert out.new_activities[0].cause == "scale in: lower"
    deleting = out.changed_nodes[n.id]

    gone = NodeChange(n.id, NodeState.ENDED, Event.INSTANCE_TERMINATED, None)
    out = effects(Plan(node_changes=[gone]), deleting)
    assert out.finished_activities == [(n.id, TERMINATE_NODE, "SUCCEED", "instance gone")]
    assert out.terminated == ["ins-aaaaaaaa"]
    assert out.ended == [(SPEC.id, EndReason.SCALE_IN)]


def test_a_launch_that_failed_in_the_cloud_fails_its_create_activity() -> None:
    n = node(NodeState.CREATING, running=False)
    change = NodeChange(
        n.id, NodeState.DELETING, Event.LAUNCH_FAILED, "LAUNCH_FAILED", EndReason.LAUNCH_FAILED, "e"
    )
    out = effects(Plan(node_changes=[change]), n)
    assert out.finished_activities == [(n.id, CREATE_NODE, "FAILED", "e")]


def test_only_a_first_sighting_is_recorded() -> None:
    new = node(NodeState.CREATING, seen=False, running=False, id="node-00000001")
    old = node(NodeState.RUNNING, id="node-00000002", instance_id="ins-bbbbbbbb")
    shown = {
        iid: Instance(iid, "RUNNING", OFFER.zone, OFFER.instance_type, NOW, {})
        for iid in ("ins-aaaaaaaa", "ins-bbbbbbbb")
    }
    out = effects(Plan(), new, old, obs=Observation(shown, NOW))
    assert list(out.changed_nodes) == [new.id]
    assert out.changed_nodes[new.id].last_seen_at == NOW
    assert new.last_seen_at is None


def test_an_adoption_and_an_orphan_become_new_records() -> None:
    inst = Instance(
        "ins-cccccccc", "RUNNING", OFFER.zone, OFFER.instance_type, NOW, {ENV_TAG: SPEC.id}
    )
    orphan = Instance(
        "ins-dddddddd", "RUNNING", OFFER.zone, OFFER.instance_type, NOW, {ENV_TAG: "env-gone0000"}
    )
    plan = Plan(adoptions=[Adoption(SPEC.id, inst, None)])
    plan.terminations.append(TerminateOrder(None, ("ins-dddddddd",), EndReason.ORPHAN))
    out = effects(plan, obs=Observation({inst.instance_id: inst, orphan.instance_id: orphan}, NOW))
    adopted, ending = out.new_nodes
    assert (adopted.state, adopted.origin, adopted.instance_id) == (
        NodeState.RUNNING,
        "ADOPTED",
        "ins-cccccccc",
    )
    assert (ending.state, ending.env_id, ending.end_reason) == (
        NodeState.DELETING,
        "env-gone0000",
        "orphan",
    )
    assert [line.event for line in out.lines] == [Event.ORPHAN_ADOPTED, Event.ORPHAN_TERMINATING]
