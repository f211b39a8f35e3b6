"""Bad requests get Batch's error code, a message naming the field, and change nothing."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa

from controller.cloud.client import CvmClient
from controller.store.schema import metadata
from controller.store.store import Store
from tests.api.rig import Batch, api_endpoint, api_settings, new_key, signed_post
from tests.api.test_api_sdk import SPOT_ENV
from tests.support.world import settings_for


def spot(**changes: Any) -> dict[str, Any]:
    """Tencent's example spot request with ``changes`` at dotted paths (None deletes)."""
    request = copy.deepcopy(SPOT_ENV)
    request.pop("ClientToken")
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        node = request
        for part in parents:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return request


ENV = "env-00000000"  # replaced by the existing environment's id
BAD_CREATES = [
    (
        "desired -1",
        spot(ComputeEnv__DesiredComputeNodeCount=-1),
        "InvalidParameterValue.ComputeEnv",
    ),
    (
        "desired 2001",
        spot(ComputeEnv__DesiredComputeNodeCount=2001),
        "InvalidParameterValue.ComputeEnv",
    ),
    ("no EnvName", spot(ComputeEnv__EnvName=None), "MissingParameter"),
    ("no Placement", spot(Placement=None), "MissingParameter"),
    ("no ImageId", spot(ComputeEnv__EnvData__ImageId=None), "MissingParameter"),
    (
        "unknown type",
        spot(ComputeEnv__EnvData__InstanceType="S2.GIGANTIC99"),
        "InvalidParameterValue.InstanceType",
    ),
    (
        "malformed type",
        spot(ComputeEnv__EnvData__InstanceType="s2-medium"),
        "InvalidParameterValue.InstanceType",
    ),
    (
        "zone in another region",
        spot(Placement__Zone="ap-shanghai-2"),
        "InvalidParameterValue.InvalidZoneMismatchRegion",
    ),
    ("malformed zone", spot(Placement__Zone="guangzhou"), "InvalidParameterValue.UnavailableZone"),
    (
        "MaxPrice abc",
        spot(ComputeEnv__EnvData__InstanceMarketOptions__SpotOptions__MaxPrice="abc"),
        "InvalidParameterValue.ComputeEnv",
    ),
    (
        "MaxPrice 0",
        spot(ComputeEnv__EnvData__InstanceMarketOptions__SpotOptions__MaxPrice="0"),
        "InvalidParameterValue.ComputeEnv",
    ),
    (
        "MaxPrice a number",
        spot(ComputeEnv__EnvData__InstanceMarketOptions__SpotOptions__MaxPrice=0.6),
        "InvalidParameter",
    ),
    (
        "SPOTPAID without a bid",
        spot(ComputeEnv__EnvData__InstanceMarketOptions=None),
        "MissingParameter",
    ),
    (
        "charge type PREPAID",
        spot(ComputeEnv__EnvData__InstanceChargeType="PREPAID"),
        "InvalidParameterValue.UnsupportedBatchInstanceChargeType",
    ),
    (
        "type and types",
        spot(ComputeEnv__EnvData__InstanceTypes=["S5.MEDIUM4"]),
        "InvalidParameter.InvalidParameterCombination",
    ),
    (
        "empty types",
        spot(ComputeEnv__EnvData__InstanceType=None, ComputeEnv__EnvData__InstanceTypes=[]),
        "InvalidParameterValue.InstanceTypesEmpty",
    ),
    (
        "eleven types",
        spot(
            ComputeEnv__EnvData__InstanceType=None,
            ComputeEnv__EnvData__InstanceTypes=[f"S{i}.MEDIUM4" for i in range(11)],
        ),
        "InvalidParameterValue.InstanceType",
    ),
    (
        "repeated type",
        spot(
            ComputeEnv__EnvData__InstanceType=None,
            ComputeEnv__EnvData__InstanceTypes=["S2.MEDIUM4", "S2.MEDIUM4"],
        ),
        "InvalidParameterValue.InstanceTypeDuplicate",
    ),
    ("name too long", spot(ComputeEnv__EnvName="x" * 61), "InvalidParameter.EnvNameTooLong"),
    ("name with a slash", spot(ComputeEnv__EnvName="a/b"), "InvalidParameterValue.ComputeEnv"),
    ("name taken", spot(ComputeEnv__EnvName="taken"), "InvalidParameterValue.ComputeEnv"),
    (
        "malformed image",
        spot(ComputeEnv__EnvData__ImageId="img-bad"),
        "InvalidParameter.ImageIdMalformed",
    ),
    (
        "description too long",
        spot(ComputeEnv__EnvDescription="d" * 1001),
        "InvalidParameter.EnvDescriptionTooLong",
    ),
    (
        "system disk too small",
        spot(ComputeEnv__EnvData__SystemDisk={"DiskSize": 5}),
        "InvalidParameter.CvmParameters",
    ),
    (
        "unknown disk type",
        spot(ComputeEnv__EnvData__DataDisks=[{"DiskType": "FLOPPY", "DiskSize": 10}]),
        "InvalidParameter.CvmParameters",
    ),
    (
        "bandwidth 500",
        spot(ComputeEnv__EnvData__InternetAccessible={"InternetMaxBandwidthOut": 500}),
        "InvalidParameter.CvmParameters",
    ),
    (
        "type options by category",
        spot(
            ComputeEnv__EnvData__InstanceType=None,
            ComputeEnv__EnvData__InstanceTypeOptions={
                "CPU": 2,
                "Memory": 4,
                "InstanceCategories": ["GPU"],
            },
        ),
        "InvalidParameterValue.ComputeEnv",
    ),
    (
        "type options beside a type",
        spot(ComputeEnv__EnvData__InstanceTypeOptions={"CPU": 2, "Memory": 4}),
        "InvalidParameter.InvalidParameterCombination",
    ),
    (
        "type options without memory",
        spot(
            ComputeEnv__EnvData__InstanceType=None,
            ComputeEnv__EnvData__InstanceTypeOptions={"CPU": 2},
        ),
        "MissingParameter",
    ),
    (
        "password",
        spot(ComputeEnv__EnvData__LoginSettings={"Password": "Hunter2!Hunter2"}),
        "InvalidParameterValue.ComputeEnv",
    ),
    (
        "mounts",
        spot(ComputeEnv__MountDataDisks=[{"LocalPath": "/data"}]),
        "InvalidParameterValue.ComputeEnv",
    ),
    (
        "reserved tag",
        spot(ComputeEnv__Tags=[{"Key": "spot-controller:env", "Value": "x"}]),
        "InvalidParameterValue.ComputeEnv",
    ),
    ("EnvType THPC", spot(ComputeEnv__EnvType="THPC_QUEUE"), "InvalidParameterValue.ComputeEnv"),
    ("ClientToken too long", {**spot(), "ClientToken": "t" * 65}, "InvalidParameter"),
]
BAD_CALLS = [
    ("unknown env", "DescribeComputeEnv", {"EnvId": "env-zzzzzzzz"}, "ResourceNotFound.ComputeEnv"),
    (
        "malformed env id",
        "DescribeComputeEnv",
        {"EnvId": "env-ABC"},
        "InvalidParameter.EnvIdMalformed",
    ),
    ("no env id", "DescribeComputeEnv", {}, "MissingParameter"),
    (
        "modify unknown env",
        "ModifyComputeEnv",
        {"EnvId": "env-zzzzzzzz", "DesiredComputeNodeCount": 1},
        "ResourceNotFound.ComputeEnv",
    ),
    (
        "modify malformed id",
        "ModifyComputeEnv",
        {"EnvId": "web", "DesiredComputeNodeCount": 1},
        "InvalidParameter.EnvIdMalformed",
    ),
    (
        "modify desired -1",
        "ModifyComputeEnv",
        {"EnvId": ENV, "DesiredComputeNodeCount": -1},
        "InvalidParameterValue.ComputeEnv",
    ),
    (
        "modify desired 2001",
        "ModifyComputeEnv",
        {"EnvId": ENV, "DesiredComputeNodeCount": 2001},
        "InvalidParameterValue.ComputeEnv",
    ),
    ("modify nothing", "ModifyComputeEnv", {"EnvId": ENV}, "InvalidParameterAtLeastOneAttribute"),
    (
        "modify unknown type",
        "ModifyComputeEnv",
        {"EnvId": ENV, "EnvData": {"InstanceTypes": ["S2.GIGANTIC99"]}},
        "InvalidParameterValue.InstanceType",
    ),
    (
        "modify name too long",
        "ModifyComputeEnv",
        {"EnvId": ENV, "EnvName": "n" * 61},
        "InvalidParameter.EnvNameTooLong",
    ),
    (
        "delete unknown env",
        "DeleteComputeEnv",
        {"EnvId": "env-zzzzzzzz"},
        "ResourceNotFound.ComputeEnv",
    ),
    (
        "EnvIds and Filters",
        "DescribeComputeEnvs",
        {"EnvIds": [ENV], "Filters": [{"Name": "zone", "Values": ["ap-guangzhou-3"]}]},
        "InvalidParameter.InvalidParameterCombination",
    ),
    ("Limit 101", "DescribeComputeEnvs", {"Limit": 101}, "InvalidParameterValue"),
    ("Offset -1", "DescribeComputeEnvs", {"Offset": -1}, "InvalidParameterValue"),
    (
        "unknown filter",
        "DescribeComputeEnvs",
        {"Filters": [{"Name": "colour", "Values": ["blue"]}]},
        "InvalidFilter",
    ),
    (
        "activities filter",
        "DescribeComputeEnvActivities",
        {"EnvId": ENV, "Filters": {"Name": "state", "Values": ["x"]}},
        "InvalidFilter",
    ),
    (
        "unknown node",
        "TerminateComputeNodes",
        {"EnvId": ENV, "ComputeNodeIds": ["node-zzzzzzzz"]},
        "ResourceNotFound.ComputeNode",
    ),
    (
        "malformed node",
        "TerminateComputeNode",
        {"EnvId": ENV, "ComputeNodeId": "n1"},
        "InvalidParameter.ComputeNodeIdMalformed",
    ),
    (
        "repeated node",
        "TerminateComputeNodes",
        {"EnvId": ENV, "ComputeNodeIds": ["node-zzzzzzzz"] * 2},
        "InvalidParameterValue.ComputeEnv",
    ),
    (
        "attach",
        "AttachInstances",
        {"EnvId": ENV, "Instances": [{"InstanceId": "ins-0a1b2c3d"}]},
        "UnsupportedOperation",
    ),
    (
        "detach",
        "DetachInstances",
        {"EnvId": ENV, "InstanceIds": ["ins-0a1b2c3d"]},
        "UnsupportedOperation",
    ),
    ("a job action", "DescribeJobs", {}, "UnsupportedOperation"),
]


async def _everything(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table: what must not change."""
    tables = {}
    async with store.engine.connect() as conn:
        for table in metadata.sorted_tables:
            if table.name in ("api_audit", "controller_leases"):
                continue
            rows = await conn.execute(sa.select(table))
            tables[table.name] = sorted(tuple(str(v) for v in r) for r in rows)
    return tables


@asynccontextmanager
async def serving(
    database_url: str, sim_url: str, store: Store
) -> AsyncIterator[tuple[Batch, str, str, tuple[str, str]]]:
    """The API, a key, and one environment (``taken``, desired 0). Not a fixture: the server's
    task group must be entered and left in the test's own task."""
    settings = api_settings(settings_for(database_url, sim_url))
    async with CvmClient(settings) as cvm, api_endpoint(settings, store, cvm) as (endpoint, _):
        key = await new_key(store, "ops")
        batch = Batch(endpoint, *key)
        taken = spot(ComputeEnv__EnvName="taken", ComputeEnv__DesiredComputeNodeCount=0)
        env_id = (await batch("CreateComputeEnv", taken))["EnvId"]
        yield batch, env_id, endpoint, key


RAW = [
    # (the SDK drops a field its models do not know, with a warning: sent by hand)
    (
        "unknown field",
        "CreateComputeEnv",
        json.dumps(spot(ComputeEnv__Colour="blue")).encode(),
        {},
        "UnknownParameter",
    ),
    ("unknown top field", "DescribeComputeEnvs", b'{"Colour": "blue"}', {}, "UnknownParameter"),
    ("not JSON", "DescribeComputeEnvs", b"{not json", {}, "InvalidParameter"),
    ("a JSON array", "DescribeComputeEnvs", b"[]", {}, "InvalidParameter"),
    ("unknown action", "CreateComputeEnvironment", b"{}", {}, "InvalidAction"),
    (
        "form body",
        "DescribeComputeEnvs",
        b"a=1",
        {"content_type": "application/x-www-form-urlencoded"},
        "UnsupportedOperation",
    ),
    (
        "cvm's signature scope",
        "DescribeComputeEnvs",
        b"{}",
        {"service": "cvm"},
        "AuthFailure.SignatureFailure",
    ),
    (
        "over 1 MiB",
        "CreateComputeEnv",
        b'{"x": "' + b"a" * (1024 * 1024) + b'"}',
        {},
        "RequestSizeLimitExceeded",
    ),
]


async def test_bad_requests_are_refused_with_batch_codes_and_change_nothing(
    database_url: str, sim_url: str, store: Store
) -> None:
    """Every case of the tables above, against one server (a failure names its case)."""
    async with serving(database_url, sim_url, store) as (batch, env_id, endpoint, key):
        before = await _everything(store)
        for case, request_, code in BAD_CREATES:
            refused = await batch.refused("CreateComputeEnv", request_)
            assert refused.code == code, (case, refused)
            assert "`" in refused.message, (case, refused)  # names the field
            assert await _everything(store) == before, case
        for case, action, params, code in BAD_CALLS:
            params = {
                k: (env_id if v == ENV else [env_id] if v == [ENV] else v)
                for k, v in params.items()
            }
            refused = await batch.refused(action, params)
            assert refused.code == code, (case, refused)
            assert await _everything(store) == before, case
        for case, action, body, options, code in RAW:
            answer = await signed_post(endpoint, *key, action, body, **options)
            assert answer["Error"]["Code"] == code, (case, answer)
            assert answer["RequestId"] == answer["RequestId"].lower()
            assert await _everything(store) == before, case
    assert len(BAD_CREATES) + len(BAD_CALLS) + len(RAW) >= 50
