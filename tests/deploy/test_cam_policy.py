"""deploy/tencentcloud: the CAM policy allows exactly what the client calls, writes only by tag."""

from __future__ import annotations

import json
import re
from typing import Any

from controller.core.model import CLUSTER_TAG
from controller.settings import Settings
from tests.deploy.helpers import CAM_POLICY, DEPLOY, ROOT

CLIENT = ROOT / "controller" / "cloud" / "client.py"
READ_ONLY = re.compile(r"^cvm:(Describe|InquiryPrice)")


def _policy() -> dict[str, Any]:
    policy: dict[str, Any] = json.loads(CAM_POLICY.read_text())
    return policy


def _client_actions() -> set[str]:
    """Every CVM action the client sends: the first argument of each ``self._call(...)``,
    ``functools.partial(self._call, ...)`` and ``self._by_ids(...)``."""
    pattern = r'self\._(?:call|by_ids)(?:\(|,)\s*"([A-Za-z]+)"'
    return set(re.findall(pattern, CLIENT.read_text()))


def test_policy_is_cam_version_2_with_allow_statements_only() -> None:
    policy = _policy()
    assert policy["version"] == "2.0"
    assert policy["statement"]
    for statement in policy["statement"]:
        assert statement["effect"] == "allow"
        assert statement["resource"] == ["*"]
        assert all(action.startswith("cvm:") for action in statement["action"])


def test_policy_names_exactly_the_actions_the_client_calls() -> None:
    actions = {a for s in _policy()["statement"] for a in s["action"]}
    called = _client_actions()
    assert {"RunInstances", "TerminateInstances", "DescribeInstances"} <= called
    assert actions == {f"cvm:{name}" for name in called}


def test_every_write_is_bound_to_the_clusters_tag() -> None:
    cluster_tag = f"{CLUSTER_TAG}&{Settings().cluster}"
    condition_key = {
        "cvm:RunInstances": "qcs:request_tag",
        "cvm:TerminateInstances": "qcs:resource_tag",
    }
    for statement in _policy()["statement"]:
        writes = [a for a in statement["action"] if not READ_ONLY.match(a)]
        if not writes:
            assert "condition" not in statement  # CAM cannot restrict list APIs by tag
            continue
        assert len(writes) == len(statement["action"]), "mixing reads into a tag-bound statement"
        [action] = writes
        condition = statement["condition"]["for_any_value:string_equal"]
        assert condition == {condition_key[action]: [cluster_tag]}, action


def test_folder_readme_explains_every_action() -> None:
    readme = (DEPLOY / "tencentcloud" / "README.md").read_text()
    for statement in _policy()["statement"]:
        for action in statement["action"]:
            assert f"`{action}`" in readme, action
    for key in ("qcs:request_tag", "qcs:resource_tag"):
        assert key in readme
