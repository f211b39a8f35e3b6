"""The web console: BatchCompute's compute-environment pages, served under /console/.

Server-rendered (jinja2 templates and a little JavaScript shipped in this package: nothing
is loaded from outside, no build step), mounted on the health and metrics listener
(SPOT_CONTROLLER_HTTP_ADDR). Every page calls the service layer, as the CLI does. Off unless
a password hash is configured; a read-only password sees everything and changes nothing.
"""

from __future__ import annotations

from pathlib import Path

import anyio
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from controller.console import login, pages
from controller.console.auth import Authenticator, from_hashes
from controller.console.history import SAMPLE_INTERVAL_S, History
from controller.console.market import routes as market_routes
from controller.console.web import PREFIX, ConsoleState, refused
from controller.service import Environments, Market
from controller.settings import Settings

STATIC = Path(__file__).with_name("static")
DEMO_PASSWORD = "spot-demo"  # run --simulate only, on loopback; documented in the README


class Console:
    def __init__(
        self,
        environments: Environments,
        authenticator: Authenticator,
        session_s: float,
        sample_interval_s: float = SAMPLE_INTERVAL_S,
        market: Market | None = None,
    ) -> None:
        history = History(environments, sample_interval_s)
        self.state = ConsoleState.create(
            environments, authenticator, session_s, history, market or Market()
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, environments: Environments, market: Market | None = None
    ) -> Console | None:
        """The console the settings configure; None when no credential is (it is off).
        ``market`` reads the daemon's offering cache (without it, no price is known)."""
        authenticator = from_hashes(
            settings.console_password_hash.reveal(),
            settings.console_readonly_password_hash.reveal(),
        )
        if not authenticator.enabled:
            return None
        return cls(environments, authenticator, settings.console_session_s, market=market)

    def mount(self) -> Mount:
        routes: list[BaseRoute] = [Route("/", _to_list)]
        for path, endpoint, methods in (
            *login.routes(self.state),
            *pages.routes(self.state),
            *market_routes(self.state),
        ):
            routes.append(Route(path, endpoint, methods=methods))
        routes.append(Mount("/static", app=StaticFiles(directory=STATIC), name="static"))
        return Mount(PREFIX, routes=routes)

    async def run(self, stop: anyio.Event) -> None:
        """What the console does in the background: sample the chart's series."""
        await self.state.history.run(stop)


async def _to_list(request: Request) -> Response:
    return RedirectResponse(f"{PREFIX}/environments", status_code=303)


def off() -> Mount:
    """/console/ when no password hash is configured: 404, saying how to turn it on."""

    async def console_off(request: Request) -> Response:
        return refused(
            404,
            "the console is off: set SPOT_CONTROLLER_CONSOLE_PASSWORD_HASH (see "
            "`spot-controller console hash-password`)",
        )

    return Mount(PREFIX, routes=[Route("/{path:path}", console_off)])
