"""The API's HTTP edge: ``POST /`` as Tencent serves it, for the ``batch`` service.

A call passes these gates in order, each refusing with Tencent's code and nothing written:
the body cap (1 MiB), JSON, the signature's timestamp, the key (unknown or revoked), the
signature over the raw body, version and region, the action, the key's rights (read-only keys
call ``Describe*`` only), the key's rate limit; then the action runs. Every mutating call of
an authenticated key is written to the audit log (table and a log line) with its result.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from controller import listening
from controller.api.actions import ACTIONS, ENV_ID, JOB_ACTIONS, MUTATING, Call
from controller.api.catalog import Catalog
from controller.api.keys import KeyRing, LiveKey
from controller.api.limits import RateLimits
from controller.core.events import Event
from controller.errors import ConfigError, StoreError
from controller.logs import get_logger
from controller.service import Environments
from controller.tencentapi import wire
from controller.tencentapi.auth import read_authorization, verify
from controller.tencentapi.errors import ApiError
from controller.tencentapi.params import Params

log = get_logger()

SERVICE = "batch"
VERSION = "2017-03-12"
MAX_BODY_BYTES = 1024 * 1024
GRACEFUL_SHUTDOWN_S = 2


@dataclass
class ApiServer:
    """Everything a call needs; one per listener."""

    environments: Environments
    keys: KeyRing
    region: str
    limits: RateLimits
    catalog: Catalog | None = None
    wall_clock: Callable[[], float] = time.time

    async def answer(self, headers: dict[str, str], body: bytes | None) -> bytes:
        """The envelope for one call (``body`` None: it was over the cap)."""
        request_id = wire.new_request_id()
        action = headers.get("x-tc-action", "")
        key: LiveKey | None = None
        env_id: str | None = None
        try:
            if body is None:
                raise ApiError(
                    "RequestSizeLimitExceeded",
                    f"The request body is larger than {MAX_BODY_BYTES} bytes (1 MiB).",
                )
            wire.check_content_type(headers, server="spot-controller API")
            key = await self._authenticate(headers, body)
            self._check_call(headers, action, key)
            data = wire.parse_body(body)
            named = data.get("EnvId")
            env_id = named if isinstance(named, str) and ENV_ID.match(named) else None
            params = Params(data)
            response = await ACTIONS[action](Call(self.environments, self.catalog), params)
            env_id = env_id or response.get("EnvId")
            result = "OK"
        except ApiError as exc:
            response = wire.error_fields(exc, headers.get("x-tc-language"))
            result = exc.code
            if key is None:
                log.warning(
                    Event.API_REFUSED, action=action or "-", code=exc.code, request_id=request_id
                )
        except StoreError as exc:
            response = wire.error_fields(
                ApiError("InternalError", f"The database did not answer: {exc}"), None
            )
            result = "InternalError"
        except Exception as exc:  # a bug: answered as Tencent would, and said loudly
            log.error(Event.API_FAILED, action=action, request_id=request_id, error=repr(exc))
            response = wire.error_fields(
                ApiError("InternalError", "An internal error occurred; see the server's log."),
                None,
            )
            result = "InternalError"
        if key is not None and action in MUTATING:
            await self._audit(key, action, env_id, request_id, result)
        return wire.envelope(response, request_id)

    async def _authenticate(self, headers: dict[str, str], body: bytes) -> LiveKey:
        signed = read_authorization(headers, now=self.wall_clock())
        key = await self.keys.find(signed.secret_id)
        if key is None:
            raise ApiError(
                "AuthFailure.SecretIdNotFound",
                "The SecretId is not found, or its key was revoked (`spot-controller api-key "
                "list`).",
            )
        verify(signed, key.secret_key.reveal(), headers, body, service=SERVICE)
        return key

    def _check_call(self, headers: dict[str, str], action: str, key: LiveKey) -> None:
        version = headers.get("x-tc-version")
        if not version:
            raise ApiError(
                "MissingParameter", "The request is missing a required parameter `Version`."
            )
        if version != VERSION:
            raise ApiError(
                "NoSuchVersion", f"The version `{version}` of batch does not exist; use {VERSION}."
            )
        region = headers.get("x-tc-region")
        if region and region != self.region:
            raise ApiError(
                "UnsupportedRegion",
                f"This server manages the region {self.region!r}, not {region!r}.",
            )
        if not action:
            raise ApiError(
                "MissingParameter", "The request is missing a required parameter `Action`."
            )
        if action in JOB_ACTIONS:
            raise ApiError(
                "UnsupportedOperation",
                f"{action} is a job or task-template action; spot-controller serves compute "
                f"environments only: {', '.join(sorted(ACTIONS))}.",
            )
        if action not in ACTIONS:
            raise ApiError("InvalidAction", f"The action `{action}` is not supported.")
        if key.read_only and not action.startswith("Describe"):
            raise ApiError(
                "UnauthorizedOperation",
                f"The API key {key.name!r} is read-only: it may call Describe* actions only, "
                f"not {action}.",
            )
        if not self.limits.admit(key.secret_id):
            raise ApiError(
                "RequestLimitExceeded",
                f"The API key {key.name!r} is over its rate limit of {self.limits.rate:g} calls "
                "per second; retry later.",
            )

    async def _audit(
        self, key: LiveKey, action: str, env_id: str | None, request_id: str, result: str
    ) -> None:
        entry = {
            "key_name": key.name,
            "action": action,
            "env_id": env_id,
            "request_id": request_id,
            "result": result,
        }
        log.info(Event.API_AUDIT, **entry)
        try:
            await self.keys.store.record_audit(entry)
        except StoreError as exc:
            log.error(Event.API_AUDIT, error=str(exc), **entry)


async def _read_capped(request: Request) -> bytes | None:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def build_app(server: ApiServer) -> Starlette:
    async def call(request: Request) -> Response:
        body = await _read_capped(request)
        headers = {k.lower(): v for k, v in request.headers.items()}
        return Response(await server.answer(headers, body), media_type=wire.JSON)

    async def other_method(request: Request) -> Response:
        error = ApiError(
            "UnsupportedOperation",
            f"The API takes POST with a JSON body and TC3-HMAC-SHA256, not {request.method}.",
        )
        return Response(
            wire.envelope(wire.error_fields(error, None), wire.new_request_id()),
            media_type=wire.JSON,
        )

    return Starlette(
        routes=[
            Route("/", call, methods=["POST"]),
            Route("/", other_method, methods=["GET", "PUT", "DELETE", "PATCH"]),
        ]
    )


def bind(addr: str) -> socket.socket:
    """Bind ``host:port`` now, so a taken port is a clear one-line error at start."""
    return listening.bind(addr, "SPOT_CONTROLLER_API_ADDR")


def check_tls(cert: str, key: str) -> None:
    """A certificate and key that load, or one line naming the variables."""
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"SPOT_CONTROLLER_API_TLS_CERT / SPOT_CONTROLLER_API_TLS_KEY: cannot load: {exc}"
        ) from None


async def serve(
    server: ApiServer,
    sock: socket.socket,
    stop: anyio.Event,
    *,
    tls_cert: str = "",
    tls_key: str = "",
) -> None:
    """Serve the API on a bound socket until ``stop`` is set."""
    config = uvicorn.Config(
        build_app(server),
        log_level="critical",  # our own lines say what happens (uvicorn's would not parse)
        access_log=False,
        lifespan="off",
        # An SDK keeps its connection open: closed after this long, not waited for forever.
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        ssl_certfile=tls_cert or None,
        ssl_keyfile=tls_key or None,
    )
    uv = listening.QuietServer(config)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: uv.serve(sockets=[sock]))
            await stop.wait()
            uv.should_exit = True
    finally:
        sock.close()
