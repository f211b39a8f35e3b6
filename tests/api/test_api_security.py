"""Who may call: no key, an unknown or revoked key, a tampered body, a stale timestamp, a
read-only key that tries to write, a burst over the rate limit. Each is refused with Tencent's
code and nothing is written; the audit log records the keys' mutating calls."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from controller.api.keys import Cipher, KeyRing
from controller.api.limits import RateLimits
from controller.secrets import Secret
from controller.store.store import Store
from tests.api.rig import MASTER_KEY, Batch, api_endpoint, api_settings, new_key, signed_post
from tests.api.test_api_bad_input import spot
from tests.support.world import settings_for

LIST = b"{}"


async def _count_envs(store: Store) -> int:
    return len(await store.list_environments())


async def test_unauthenticated_and_forged_calls_are_refused(
    database_url: str, sim_url: str, store: Store
) -> None:
    settings = api_settings(settings_for(database_url, sim_url))
    async with api_endpoint(settings, store) as (endpoint, _):
        secret_id, secret_key = await new_key(store, "ops")
        create = json.dumps(spot()).encode()

        async with httpx.AsyncClient(timeout=10) as http:
            unsigned = await http.post(
                f"http://{endpoint}/",
                content=create,
                headers={"Content-Type": "application/json", "X-TC-Action": "CreateComputeEnv"},
            )
        error = unsigned.json()["Response"]["Error"]
        assert error["Code"] == "MissingParameter"
        assert "Authorization" in error["Message"]

        unknown = await signed_post(endpoint, "AKIDnobody", secret_key, "CreateComputeEnv", create)
        assert unknown["Error"]["Code"] == "AuthFailure.SecretIdNotFound"

        wrong_secret = await signed_post(endpoint, secret_id, "not-it", "CreateComputeEnv", create)
        assert wrong_secret["Error"]["Code"] == "AuthFailure.SignatureFailure"

        # A body changed after signing: e.g. the desired count raised on the way.
        tampered = create.replace(b'"DesiredComputeNodeCount": 2', b'"DesiredComputeNodeCount": 9')
        assert tampered != create
        forged = await signed_post(
            endpoint, secret_id, secret_key, "CreateComputeEnv", tampered, signed_body=create
        )
        assert forged["Error"]["Code"] == "AuthFailure.SignatureFailure"

        # A request captured and replayed more than 5 minutes later.
        stale = int(time.time()) - 301
        replayed = await signed_post(
            endpoint, secret_id, secret_key, "CreateComputeEnv", create, timestamp=stale
        )
        assert replayed["Error"]["Code"] == "AuthFailure.SignatureExpire"
        future = int(time.time()) + 400
        early = await signed_post(
            endpoint, secret_id, secret_key, "CreateComputeEnv", create, timestamp=future
        )
        assert early["Error"]["Code"] == "AuthFailure.SignatureExpire"

        assert await _count_envs(store) == 0
        assert await store.list_audit() == []  # no key was established: nothing to audit

        # The same key, signing properly, is let in.
        made = await signed_post(endpoint, secret_id, secret_key, "CreateComputeEnv", create)
        assert made["EnvId"].startswith("env-")
        assert await _count_envs(store) == 1


async def test_a_revoked_key_is_refused_at_once(
    database_url: str, sim_url: str, store: Store
) -> None:
    settings = api_settings(settings_for(database_url, sim_url))
    async with api_endpoint(settings, store) as (endpoint, _):
        batch = Batch(endpoint, *await new_key(store, "leaving"))
        assert (await batch("DescribeComputeEnvs"))["TotalCount"] == 0
        await KeyRing(store, Cipher(Secret(MASTER_KEY))).revoke("leaving")
        refused = await batch.refused("DescribeComputeEnvs")
        assert refused.code == "AuthFailure.SecretIdNotFound"
        assert "revoked" in refused.message
        refused = await batch.refused("CreateComputeEnv", spot())
        assert refused.code == "AuthFailure.SecretIdNotFound"
        assert await _count_envs(store) == 0
        keys = await KeyRing(store, Cipher(Secret(MASTER_KEY))).list()
        assert [(k.name, k.revoked_at is not None) for k in keys] == [("leaving", True)]


async def test_a_key_sealed_under_another_master_key_cannot_call(
    database_url: str, sim_url: str, store: Store
) -> None:
    """A key row copied from another installation (or the master key changed) opens nothing."""
    other = KeyRing(store, Cipher(Secret("another-master-key-0123456789abcdefghij")))
    key, secret = await other.create("elsewhere")
    settings = api_settings(settings_for(database_url, sim_url))
    async with api_endpoint(settings, store) as (endpoint, _):
        refused = await Batch(endpoint, key.secret_id, secret.reveal()).refused(
            "DescribeComputeEnvs"
        )
        assert refused.code == "AuthFailure.SecretIdNotFound"


async def test_a_read_only_key_may_describe_and_nothing_else(
    database_url: str, sim_url: str, store: Store
) -> None:
    settings = api_settings(settings_for(database_url, sim_url))
    async with api_endpoint(settings, store) as (endpoint, _):
        writer = Batch(endpoint, *await new_key(store, "writer"))
        reader = Batch(endpoint, *await new_key(store, "reader", read_only=True))
        env_id = (await writer("CreateComputeEnv", spot(ComputeEnv__DesiredComputeNodeCount=0)))[
            "EnvId"
        ]
        assert [e["EnvId"] for e in (await reader("DescribeComputeEnvs"))["ComputeEnvSet"]] == [
            env_id
        ]
        assert (await reader("DescribeComputeEnv", {"EnvId": env_id}))["EnvId"] == env_id
        before = await store.get_environment(env_id)
        for action, params in [
            ("ModifyComputeEnv", {"EnvId": env_id, "DesiredComputeNodeCount": 3}),
            ("CreateComputeEnv", spot(ComputeEnv__EnvName="other")),
            ("DeleteComputeEnv", {"EnvId": env_id}),
            ("TerminateComputeNodes", {"EnvId": env_id, "ComputeNodeIds": ["node-0a1b2c3d"]}),
        ]:
            refused = await reader.refused(action, params)
            assert refused.code == "UnauthorizedOperation", (action, refused)
            assert "read-only" in refused.message
        assert await store.get_environment(env_id) == before
        assert await _count_envs(store) == 1
        audit = [
            (a["key_name"], a["action"], a["result"]) for a in reversed(await store.list_audit())
        ]
        assert audit == [
            ("writer", "CreateComputeEnv", "OK"),
            ("reader", "ModifyComputeEnv", "UnauthorizedOperation"),
            ("reader", "CreateComputeEnv", "UnauthorizedOperation"),
            ("reader", "DeleteComputeEnv", "UnauthorizedOperation"),
            ("reader", "TerminateComputeNodes", "UnauthorizedOperation"),
        ]


async def test_a_burst_over_the_rate_limit_is_refused_per_key(
    database_url: str, sim_url: str, store: Store
) -> None:
    settings = api_settings(settings_for(database_url, sim_url), api_rate_limit=5.0)
    async with api_endpoint(settings, store) as (endpoint, server):
        server.limits = RateLimits(5.0, clock=lambda: 0.0)  # time stands still: no refill
        busy = Batch(endpoint, *await new_key(store, "busy"))
        calm = Batch(endpoint, *await new_key(store, "calm"))
        results: list[Any] = []
        for _ in range(8):
            try:
                await busy("DescribeComputeEnvs")
                results.append("OK")
            except Exception as exc:
                results.append(getattr(exc, "code", exc))
        assert results == ["OK"] * 5 + ["RequestLimitExceeded"] * 3
        refused = await busy.refused("CreateComputeEnv", spot())
        assert refused.code == "RequestLimitExceeded"
        assert "5 calls per second" in refused.message
        assert (await calm("DescribeComputeEnvs"))["TotalCount"] == 0  # its own bucket
        assert await _count_envs(store) == 0
