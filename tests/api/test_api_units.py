"""The API's pure parts: sealing secrets, planning a targeted scale-in, node states, causes."""

from __future__ import annotations

import pytest

from controller.api.keys import Cipher
from controller.api.limits import RateLimits
from controller.api.shapes import cause, metrics, node_state
from controller.errors import ConfigError, ValidationFailed
from controller.secrets import Secret
from controller.service.nodes import (
    NodeNotFound,
    NodeNotTerminable,
    NotEnoughNodes,
    plan_termination,
)

MASTER = Secret("unit-master-key-0123456789abcdefghijklmn")


def test_a_sealed_secret_opens_only_for_its_secret_id_and_master_key() -> None:
    cipher = Cipher(MASTER)
    sealed = cipher.encrypt("AKIDone", "the-secret")
    assert "the-secret" not in sealed
    assert cipher.decrypt("AKIDone", sealed) == "the-secret"
    assert cipher.decrypt("AKIDtwo", sealed) is None  # moved to another key's row
    assert Cipher(Secret("x" * 40)).decrypt("AKIDone", sealed) is None
    flipped = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    assert cipher.decrypt("AKIDone", flipped) is None
    assert cipher.decrypt("AKIDone", "v0:" + sealed[3:]) is None
    assert cipher.encrypt("AKIDone", "the-secret") != sealed  # a fresh nonce each time
    with pytest.raises(ConfigError, match="SPOT_CONTROLLER_API_MASTER_KEY must be set"):
        Cipher(Secret(""))


ROW = {"id": "env-0a1b2c3d", "desired_count": 3, "terminate_node_ids": ""}
NODES = [
    {"id": "node-aaaaaaaa", "state": "RUNNING"},
    {"id": "node-bbbbbbbb", "state": "CREATING"},
    {"id": "node-cccccccc", "state": "DELETING"},
    {"id": "node-dddddddd", "state": "SUBMITTED"},
]


def test_terminating_named_nodes_lowers_the_count_by_as_many() -> None:
    assert plan_termination(ROW, NODES, ["node-aaaaaaaa", "node-bbbbbbbb"]) == {
        "desired_count": 1,
        "terminate_node_ids": "node-aaaaaaaa,node-bbbbbbbb",
    }
    # An earlier request still alive is kept; one whose node ended is dropped.
    earlier = {**ROW, "terminate_node_ids": "node-bbbbbbbb,node-eeeeeeee"}
    assert plan_termination(earlier, NODES, ["node-aaaaaaaa"])["terminate_node_ids"] == (
        "node-bbbbbbbb,node-aaaaaaaa"
    )


@pytest.mark.parametrize(
    ("node_ids", "error", "text"),
    [
        ([], ValidationFailed, "at least one"),
        (["node-aaaaaaaa", "node-aaaaaaaa"], ValidationFailed, "named twice"),
        (["n-1"], ValidationFailed, "malformed"),
        (["node-zzzzzzzz"], NodeNotFound, "not a live node"),
        (["node-cccccccc"], NodeNotTerminable, "already terminating"),
        (["node-dddddddd"], NodeNotTerminable, "not launched yet"),
        ([f"node-{i:08d}" for i in range(101)], ValidationFailed, "at most 100"),
    ],
)
def test_a_termination_that_cannot_be_done_is_refused(
    node_ids: list[str], error: type[Exception], text: str
) -> None:
    with pytest.raises(error, match=text):
        plan_termination(ROW, NODES, node_ids)


def test_more_nodes_than_the_desired_count_is_refused() -> None:
    with pytest.raises(NotEnoughNodes, match="more than the desired count 1"):
        plan_termination({**ROW, "desired_count": 1}, NODES, ["node-aaaaaaaa", "node-bbbbbbbb"])


def test_node_states_in_batch_terms() -> None:
    assert node_state("SUBMITTED", None) == "SUBMITTED"
    assert node_state("CREATING", "PENDING") == "CREATING"
    assert node_state("RUNNING", "RUNNING") == "RUNNING"
    assert node_state("RUNNING", "STOPPED") == "ABNORMAL"
    assert node_state("CREATING", "LAUNCH_FAILED") == "CREATION_FAILED"
    assert node_state("DELETING", "TERMINATING") == "DELETING"
    counted = metrics(
        [
            {"state": "RUNNING", "cloud_state": "RUNNING", "nodes": 2},
            {"state": "RUNNING", "cloud_state": "STOPPED", "nodes": 1},
            {"state": "SUBMITTED", "cloud_state": None, "nodes": 3},
        ]
    )
    assert counted == {
        "SubmittedCount": 3,
        "CreatingCount": 0,
        "CreationFailedCount": 0,
        "CreatedCount": 0,
        "RunningCount": 2,
        "DeletingCount": 0,
        "AbnormalCount": 1,
    }


def test_causes_in_batch_words() -> None:
    assert cause("increase the capacity from 0 to 1") == "CreateComputeEnv: the capacity is 1"
    assert cause("increase the capacity from 1 to 2") == (
        "ModifyComputeEnv: increase the capacity from 1 to 2"
    )
    assert cause("scale in: desired count lowered to 1") == "scale in: desired count lowered to 1"


def test_a_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    limits = RateLimits(2.0, clock=lambda: now[0])
    assert [limits.admit("k") for _ in range(3)] == [True, True, False]
    now[0] = 0.5  # one call's worth of refill
    assert [limits.admit("k") for _ in range(2)] == [True, False]
    assert limits.admit("other")
