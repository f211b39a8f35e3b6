"""The API over real HTTP, called with Tencent's own batch SDK (blocking: run in a thread).

:func:`api_endpoint` serves the API on a free loopback port in the test's event loop, next to
the engine and the simulator; :class:`Batch` is the official ``BatchClient`` for one key;
:func:`signed_post` sends a hand-made body (not JSON, tampered, stale) signed as the SDK does.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
from tencentcloud.batch.v20170312 import batch_client, models
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
    TencentCloudSDKException,
)
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

from controller.api.keys import Cipher, KeyRing
from controller.api.listener import prepare
from controller.api.server import ApiServer, serve
from controller.cloud import signing
from controller.cloud.client import CvmClient
from controller.secrets import Secret
from controller.settings import Settings
from controller.store.store import Store

MASTER_KEY = "test-master-key-0123456789abcdefghijklmnop"
STARTUP_S = 10.0


def api_settings(settings: Settings, **overrides: Any) -> Settings:
    return dataclasses.replace(
        settings,
        api_addr="127.0.0.1:0",
        api_master_key=Secret(MASTER_KEY),
        **overrides,
    )


@asynccontextmanager
async def api_endpoint(
    settings: Settings, store: Store, client: CvmClient | None = None
) -> AsyncIterator[tuple[str, ApiServer]]:
    """``host:port`` of the API served over ``store``; stopped on exit."""
    server, sock = prepare(settings, store, client)
    port = sock.getsockname()[1]
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(serve, server, sock, stop)
        deadline = time.monotonic() + STARTUP_S
        while not await _accepts(port):
            assert time.monotonic() < deadline, "API did not start"
            await anyio.sleep(0.02)
        try:
            yield f"127.0.0.1:{port}", server
        finally:
            stop.set()
            tg.cancel_scope.deadline = anyio.current_time() + 10


async def _accepts(port: int) -> bool:
    try:
        stream = await anyio.connect_tcp("127.0.0.1", port)
    except OSError:
        return False
    await stream.aclose()
    return True


async def new_key(store: Store, name: str, *, read_only: bool = False) -> tuple[str, str]:
    key, secret = await KeyRing(store, Cipher(Secret(MASTER_KEY))).create(name, read_only=read_only)
    return key.secret_id, secret.reveal()


class Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class Batch:
    """Tencent's BatchClient for one key; each call runs in a worker thread."""

    def __init__(self, endpoint: str, secret_id: str, secret_key: str) -> None:
        profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=endpoint))
        cred = credential.Credential(secret_id, secret_key)
        self.client = batch_client.BatchClient(cred, "ap-guangzhou", profile)

    def _call(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        request = getattr(models, f"{action}Request")()
        request.from_json_string(json.dumps(params))
        try:
            response = getattr(self.client, action)(request)
        except TencentCloudSDKException as exc:
            raise Refused(str(exc.code), str(exc.message)) from None
        answer: dict[str, Any] = json.loads(response.to_json_string())
        return answer

    async def __call__(self, action: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await anyio.to_thread.run_sync(self._call, action, params or {})

    async def refused(self, action: str, params: dict[str, Any] | None = None) -> Refused:
        try:
            await self(action, params)
        except Refused as exc:
            return exc
        raise AssertionError(f"{action} {params} was not refused")


async def signed_post(
    endpoint: str,
    secret_id: str,
    secret_key: str,
    action: str,
    body: bytes,
    *,
    signed_body: bytes | None = None,
    timestamp: int | None = None,
    service: str = "batch",
    content_type: str = "application/json",
) -> dict[str, Any]:
    """POST ``body`` signed (over ``signed_body`` if given) as the SDK signs; the Response."""
    ts = int(time.time()) if timestamp is None else timestamp
    headers = {
        "Host": endpoint,
        "Content-Type": content_type,
        "X-TC-Action": action,
        "X-TC-Version": "2017-03-12",
        "X-TC-Timestamp": str(ts),
        "X-TC-Region": "ap-guangzhou",
        "Authorization": signing.authorization(
            secret_id,
            secret_key,
            host=endpoint,
            content_type=content_type,
            body=body if signed_body is None else signed_body,
            timestamp=ts,
            service=service,
        ),
    }
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(f"http://{endpoint}/", content=body, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    answer: dict[str, Any] = response.json()["Response"]
    return answer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
