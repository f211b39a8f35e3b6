"""The admin API under ``/_sim``: look inside the simulated world and push it around.

Not Tencent's: plain JSON, no authentication, never subject to injected faults or to the
describe lag. A bad payload gets HTTP 400 with ``{"error": {"field": ..., "message": ...}}``.

- ``GET  /_sim/instances[?include_gone=1]`` -> ``{"instances": [instance view, ...]}`` in
  creation order; ``Tags`` is a ``{key: value}`` dict; gone instances (only with
  ``include_gone``) have ``InstanceState`` ``TERMINATED``, ``EndedTime`` and ``EndReason``
  (``terminated`` | ``reclaimed`` | ``released``; ``LaunchFailed`` tells whether it had
  failed to launch before it was terminated).
- ``POST /_sim/reclaim`` ``{"instance_ids": [...]}`` | ``{"count": N}`` | ``{"fraction": F}``
  (+ optional ``zone``, ``instance_type``) -> ``{"reclaimed": [ids]}``.
- ``POST /_sim/release`` ``{"instance_ids": [...]}`` -> ``{"released": [ids]}``.
- ``GET  /_sim/market`` -> ``{"pools": [pool view, ...]}``.
- ``PUT  /_sim/market`` ``{"zone", "instance_type", "price"?, "stock"?, "quota"?, "cpu"?,
  "memory"?, "on_demand_price"?}`` -> ``{"pool": pool view, "reclaimed": [ids]}``.
- ``GET|PUT /_sim/faults`` ``{"error_rate"?, "http_error_rate"?, "timeout_rate"?,
  "timeout_hang_s"?, "latency_ms"?, "describe_lag_s"?, "rate_limits"?}`` -> ``{"faults": {...}}``.
- ``GET  /_sim/stats`` -> counters (see :meth:`World.stats_view`).
- ``POST /_sim/reset`` -> ``{"reset": true}``: back to the configuration, instances cleared.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from controller.errors import ValidationFailed
from controller.simulator import commands

if TYPE_CHECKING:
    from controller.simulator.simulator import Simulator
    from controller.simulator.state import World

Endpoint = Callable[[Request], Awaitable[Response]]


def routes(sim: Simulator) -> list[Route]:
    def guarded(work: Callable[[World, Any], dict[str, Any]], *, parse: bool) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            payload: Any = None
            try:
                if parse:
                    payload = _json(await request.body())
                with sim.lock:
                    world = sim.advance_locked()
                    return JSONResponse(work(world, payload))
            except ValidationFailed as exc:
                return JSONResponse(
                    {"error": {"field": exc.field, "message": exc.rule}}, status_code=400
                )

        return endpoint

    async def list_instances(request: Request) -> Response:
        include_gone = request.query_params.get("include_gone", "").lower() in ("1", "true", "yes")
        with sim.lock:
            world = sim.advance_locked()
            source = world.instances if include_gone else world.alive
            return JSONResponse({"instances": [i.view() for i in source.values()]})

    async def reset(request: Request) -> Response:
        sim.reset()
        return JSONResponse({"reset": True})

    def command(action: str) -> Callable[[World, Any], dict[str, Any]]:
        return lambda world, payload: world.apply(commands.parse(action, payload), world.now)

    def pools(world: World, _: Any) -> dict[str, Any]:
        return {"pools": [pool.view() for pool in world.pools.values()]}

    def faults(world: World, _: Any) -> dict[str, Any]:
        return {"faults": world.faults.view()}

    def stats(world: World, _: Any) -> dict[str, Any]:
        return world.stats_view()

    return [
        Route("/_sim/instances", list_instances, methods=["GET"]),
        Route("/_sim/reclaim", guarded(command("reclaim"), parse=True), methods=["POST"]),
        Route("/_sim/release", guarded(command("release"), parse=True), methods=["POST"]),
        Route("/_sim/market", guarded(pools, parse=False), methods=["GET"]),
        Route("/_sim/market", guarded(command("market"), parse=True), methods=["PUT"]),
        Route("/_sim/faults", guarded(faults, parse=False), methods=["GET"]),
        Route("/_sim/faults", guarded(command("faults"), parse=True), methods=["PUT"]),
        Route("/_sim/stats", guarded(stats, parse=False), methods=["GET"]),
        Route("/_sim/reset", reset, methods=["POST"]),
    ]


def _json(body: bytes) -> Any:
    try:
        payload = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationFailed("body", f"not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise ValidationFailed("body", "must be a JSON object")
    return payload
