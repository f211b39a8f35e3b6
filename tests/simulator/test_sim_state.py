"""The pure core: the world's state machine, timers and token buckets, without HTTP."""

from __future__ import annotations

from dataclasses import replace

import pytest

from controller.simulator import SimulatorConfig
from controller.simulator.commands import MarketUpdate, ReclaimOrder
from controller.simulator.faults import TokenBucket
from controller.simulator.instance import LaunchSpec, State, instance_names
from controller.simulator.state import World
from controller.tencentapi.errors import ApiError
from tests.simulator.helpers import IMAGE, REGION, START, TYPE, ZONE

SPEC = LaunchSpec(region=REGION, zone=ZONE, instance_type=TYPE, image_id=IMAGE, max_price=0.6)


def world(**changes: object) -> World:
    config = SimulatorConfig(secret_id="AKIDtest", secret_key="k")
    for name, value in changes.items():
        setattr(config, name, value)
    return World(config, seed=1, now=START)


def test_transitions_fire_exactly_at_their_due_time() -> None:
    w = world()
    [instance_id] = w.launch(SPEC, START, "r1")
    instance = w.instances[instance_id]
    states = []
    for now in (2.999, 3.0, 10.0, 10.999, 11.0):
        if now == 10.0:
            w.terminate(REGION, [instance_id], START + 10, "r2")
        w.advance(START + now)
        states.append(instance.state)
    assert states == [
        State.PENDING,
        State.RUNNING,
        State.TERMINATING,
        State.TERMINATING,
        State.TERMINATED,
    ]
    assert instance.latest_operation_request_id == "r2"
    assert instance.ended_at == START + 11


def test_a_clock_going_backwards_changes_nothing() -> None:
    w = world()
    [instance_id] = w.launch(SPEC, START, "r1")
    w.advance(START - 100)
    assert w.instances[instance_id].state == State.PENDING
    assert w.now == START


def test_a_terminated_instance_is_not_reclaimed_later() -> None:
    w = world(reclaim_rate_per_hour=1.0)
    ids = w.launch(replace(SPEC, count=20), START, "r1")
    w.advance(START + 3)
    w.terminate(REGION, list(ids), START + 3, "r2")
    w.advance(START + 10 * 3600)
    assert {w.instances[i].end_reason for i in ids} == {"terminated"}


def test_a_stock_cut_counts_pending_instances_but_reclaims_only_running_ones() -> None:
    w = world()
    running = w.launch(replace(SPEC, count=3), START, "r1")
    w.advance(START + 3)
    pending = w.launch(replace(SPEC, count=2), START + 3, "r2")
    result = w.update_market(MarketUpdate(ZONE, TYPE, stock=1), START + 3)
    reclaimed = result["reclaimed"]
    assert isinstance(reclaimed, list)
    assert sorted(reclaimed) == sorted(running)
    assert {w.instances[i].state for i in pending} == {State.PENDING}


def test_reclaim_by_fraction_rounds_half_up() -> None:
    w = world()
    w.launch(replace(SPEC, count=3), START, "r1")
    w.advance(START + 3)
    assert len(w.reclaim(ReclaimOrder(fraction=0.5), START + 3)) == 2


def test_refusals_raise_api_errors() -> None:
    w = world()
    with pytest.raises(ApiError) as raised:
        w.launch(replace(SPEC, max_price=0.01), START, "r1")
    assert raised.value.code == "InvalidParameterValue.InsufficientPrice"
    with pytest.raises(ApiError) as raised:
        w.pool_for("ap-shanghai", ZONE, TYPE)
    assert raised.value.code == "InvalidZone.MismatchRegion"


def test_token_bucket() -> None:
    bucket = TokenBucket(rate=2.0, tokens=2.0, updated_at=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [True, True, False]
    assert bucket.take(0.5)
    assert not bucket.take(0.5)
    assert [bucket.take(100.0) for _ in range(3)] == [True, True, False]  # burst = rate
    slow = TokenBucket(rate=0.5, tokens=1.0, updated_at=0.0)
    assert slow.take(0.0)
    assert not slow.take(1.0)
    assert slow.take(2.0)


@pytest.mark.parametrize(
    ("name", "count", "expected"),
    [
        (None, 2, ["未命名", "未命名"]),
        ("web", 1, ["web"]),
        ("web", 3, ["web1", "web2", "web3"]),
        ("node-{R:10}", 2, ["node-10", "node-11"]),
        ("odd{R:x}", 2, ["odd{R:x}1", "odd{R:x}2"]),
    ],
)
def test_instance_names(name: str | None, count: int, expected: list[str]) -> None:
    assert instance_names(name, count) == expected
