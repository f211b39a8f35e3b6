"""The simulator's ASGI app: Tencent's API at ``POST /`` and the admin API under ``/_sim``.

A call goes through the same gates as at Tencent, in this order: (faults) latency and HTTP
503; signature; action, version and region; rate limit; (fault) InternalError; then the
action itself, after which a timeout fault may hang the answer. State is touched only under
the simulator's lock and never across an ``await``, so a call's effects are atomic.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from controller.simulator import admin, api
from controller.simulator.stats import OK
from controller.tencentapi import wire
from controller.tencentapi.auth import authenticate
from controller.tencentapi.errors import ApiError

if TYPE_CHECKING:
    from controller.simulator.simulator import Simulator
    from controller.simulator.state import World

JSON = wire.JSON  # exactly: the SDK only parses errors under this content type
SERVICE = "cvm"
_UNAVAILABLE = (
    b"<html><head><title>503 Service Temporarily Unavailable</title></head><body>"
    b"<center><h1>503 Service Temporarily Unavailable</h1></center></body></html>"
)
_HANG_POLL_S = 0.05


@dataclass(frozen=True)
class Answer:
    """What to send back: the JSON body, and how long to hang first (a timeout fault)."""

    body: bytes
    hang_s: float = 0.0


def build_app(sim: Simulator) -> Starlette:
    async def cloud_api(request: Request) -> Response:
        body = await request.body()
        action = request.headers.get("x-tc-action", "")
        with sim.lock:
            world = sim.advance_locked()
            latency_s = world.faults.settings.latency_ms / 1000.0
            unavailable = world.faults.roll_http_error(world.rng)
            if unavailable:
                world.stats.faults["http_error"] += 1
                world.stats.record(action or "-", "HTTP503", world.now)
        if latency_s > 0:
            await anyio.sleep(latency_s)
        if unavailable:
            return Response(_UNAVAILABLE, status_code=503, media_type="text/html")
        with sim.lock:
            world = sim.advance_locked()
            answer = answer_call(world, action, request.headers, body)
        if answer.hang_s > 0:
            await _hang(request, answer.hang_s)
        return Response(answer.body, media_type=JSON)

    async def unsupported_method(request: Request) -> Response:
        with sim.lock:
            world = sim.advance_locked()
            error = ApiError(
                "UnsupportedOperation",
                f"The simulator accepts POST with a JSON body and TC3-HMAC-SHA256 only, not "
                f"{request.method} (CVM also takes GET and the HmacSHA1/HmacSHA256 signature).",
            )
            answer = error_answer(world, request.headers.get("x-tc-action", "-"), error)
        return Response(answer.body, media_type=JSON)

    routes = [
        Route("/", cloud_api, methods=["POST"]),
        Route("/", unsupported_method, methods=["GET", "PUT", "DELETE", "PATCH"]),
        *admin.routes(sim),
    ]
    return Starlette(routes=routes)


def answer_call(world: World, action: str, headers: Headers, body: bytes) -> Answer:
    """Run one API call against ``world`` and build Tencent's envelope around the result."""
    now = world.now
    request_id = world.new_request_id()
    response: dict[str, Any]
    try:
        config = world.config
        _check_transport(headers, config.session_token)
        if config.auth_enabled:
            authenticate(
                headers,
                body,
                secrets={config.secret_id: config.secret_key},
                now=now,
                service=SERVICE,
            )
        region = _check_headers(world, action, headers)
        if not world.faults.admit(action, now):
            world.stats.faults["throttled"] += 1
            raise ApiError("RequestLimitExceeded", world.faults.throttled_message(action))
        if world.faults.roll_error(world.rng):
            world.stats.faults["error"] += 1
            raise ApiError("InternalError", "An internal error occurred, please retry later.")
        params = wire.parse_body(body)
        response = api.handle(world, action, params, api.Context(region, now, request_id))
        code = OK
    except ApiError as exc:
        response = wire.error_fields(exc, headers.get("x-tc-language"))
        code = exc.code
    world.stats.record(action or "-", code, now)
    hang_s = 0.0
    if world.faults.roll_timeout(world.rng):
        world.stats.faults["timeout"] += 1
        hang_s = world.faults.settings.timeout_hang_s
    return Answer(wire.envelope(response, request_id), hang_s)


def error_answer(world: World, action: str, error: ApiError) -> Answer:
    """Tencent's envelope for an error raised before any call could be parsed."""
    world.stats.record(action, error.code, world.now)
    return Answer(wire.envelope(wire.error_fields(error, None), world.new_request_id()))


def _check_transport(headers: Headers, session_token: str) -> None:
    """Content-Type and credentials the simulator can take, refused as CVM refuses them.

    A form body is the v1 (HmacSHA1/HmacSHA256) signature, which the simulator does not
    implement; any other type is not JSON. A session token must be the configured one
    (``session_token``); with none configured, any token is a bad one.
    """
    wire.check_content_type(headers, server="simulator")
    token = headers.get("x-tc-token")
    if token and not hmac.compare_digest(token, session_token):
        raise ApiError(
            "AuthFailure.TokenFailure",
            "The `X-TC-Token` is not valid: it is not the simulator's configured session token.",
        )


def _check_headers(world: World, action: str, headers: Headers) -> str:
    """Validate action, version and region; return the region."""
    if not action:
        raise ApiError("MissingParameter", "The request is missing a required parameter `Action`.")
    if action not in api.ACTIONS:
        raise ApiError("InvalidAction", f"The action `{action}` is not supported.")
    version = headers.get("x-tc-version")
    if not version:
        raise ApiError("MissingParameter", "The request is missing a required parameter `Version`.")
    if version != api.VERSION:
        raise ApiError("NoSuchVersion", f"The version `{version}` of CVM does not exist.")
    region = headers.get("x-tc-region")
    if not region:
        raise ApiError("MissingParameter", "The request is missing a required parameter `Region`.")
    if region not in world.regions():
        raise ApiError("UnsupportedRegion", f"The region `{region}` is not supported.")
    return region


async def _hang(request: Request, seconds: float) -> None:
    """Sleep ``seconds``, or less if the client hangs up first (so servers stop promptly)."""
    deadline = anyio.current_time() + seconds
    while (remaining := deadline - anyio.current_time()) > 0:
        if await request.is_disconnected():
            return
        await anyio.sleep(min(_HANG_POLL_S, remaining))
