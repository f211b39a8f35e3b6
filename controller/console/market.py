"""The Market page, and the offers the create and edit forms show under Instance type.

Both read the daemon's offering cache through the service's :class:`Market` view, at request
time, and change nothing. Filters are query parameters that select rows; they are not
validated (a zone nobody sells matches nothing), the service validates what is written.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from controller.console.auth import Session
from controller.console.web import ConsoleState, RouteSpec, page
from controller.core.instances import ON_DEMAND, SPOT
from controller.service import Market
from controller.service.billing import PAY_AS_YOU_GO_MODE, SPOT_MODE

CHARGE_TYPES = {SPOT: "Spot", ON_DEMAND: "Pay-as-you-go"}


def offers(market: Market, zone: str, billing_mode: str) -> dict[str, Any]:
    """What the forms show for ``zone``: each instance type's spot price and stock class,
    and its on-demand price when the billing mode is Pay-as-you-go."""
    types = market.types_in(zone)
    return {
        "offer_zone": zone,
        "offer_types": types,
        "on_demand_shown": billing_mode == PAY_AS_YOU_GO_MODE,
        "on_demand_known": any(t.on_demand is not None for t in types),
        "known_zones": market.zones(),
    }


def _filters(request: Request) -> dict[str, str]:
    return {k: request.query_params.get(k, "").strip() for k in ("zone", "charge_type")}


def routes(state: ConsoleState) -> list[RouteSpec]:
    market, render = state.market, state.render

    def rows_context(request: Request) -> dict[str, Any]:
        chosen = _filters(request)
        shown = market.offerings(chosen["zone"] or None, chosen["charge_type"] or None)
        return {"offerings": shown, "any_known": bool(shown) or bool(market.zones())}

    async def market_page(request: Request, session: Session) -> Response:
        chosen = _filters(request)
        context = {
            **rows_context(request),
            "filters": chosen,
            "query": urlencode({k: v for k, v in chosen.items() if v}),
            "zones": market.zones(),
            "charge_types": CHARGE_TYPES,
        }
        return render("market.html", context, session=session)

    async def market_rows(request: Request, session: Session) -> Response:
        return render("market_rows.html", rows_context(request), session=session)

    async def types(request: Request, session: Session) -> Response:
        zone = request.query_params.get("zone", "").strip()
        mode = request.query_params.get("billing_mode", SPOT_MODE)
        return render("types.html", offers(market, zone, mode), session=session)

    return [
        ("/market", page(state, market_page), ["GET"]),
        ("/market/rows", page(state, market_rows), ["GET"]),
        ("/market/types", page(state, types), ["GET"]),
    ]
