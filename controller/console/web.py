"""What every console page shares: templates, the session guard, CSRF, headers.

A page answers only a logged-in session (else the login page, or 401 saying why for a
fragment or a form); a form is accepted only with its session's CSRF token (else 403); a
change only from a principal that may write (else 403). The session cookie is HttpOnly,
SameSite=Strict, Secure when the request came over TLS, and scoped to /console/.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from controller.console.auth import Authenticator, LoginThrottle, Session, Sessions
from controller.console.history import History
from controller.errors import StoreError
from controller.service import EnvironmentNotFound, Environments, Market
from controller.service.billing import billing_mode_of

PREFIX = "/console"
SESSION_COOKIE = "spot_console_session"
LOGIN_COOKIE = "spot_console_login"  # the login form's CSRF token, before any session
CSRF_FIELD = "csrf_token"
# Scripts only from the package; matplotlib's SVG styles its paths with style attributes.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _when(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%SZ")
    return "" if value is None else str(value)


def _clock(value: Any) -> str:
    """The time of day (UTC) alone, for the market's recent times; the date goes in a title."""
    return value.strftime("%H:%M:%SZ") if isinstance(value, datetime) else _when(value)


def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("controller.console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["when"] = _when
    env.filters["clock"] = _clock
    env.globals["billing_mode_of"] = billing_mode_of
    env.globals["prefix"] = PREFIX
    return env


@dataclass
class ConsoleState:
    """The console's parts, shared by its handlers."""

    environments: Environments
    authenticator: Authenticator
    sessions: Sessions
    history: History
    throttle: LoginThrottle
    session_s: float
    templates: jinja2.Environment
    market: Market

    @classmethod
    def create(
        cls,
        environments: Environments,
        authenticator: Authenticator,
        session_s: float,
        history: History,
        market: Market,
    ) -> ConsoleState:
        return cls(
            environments=environments,
            authenticator=authenticator,
            sessions=Sessions(session_s),
            history=history,
            throttle=LoginThrottle(),
            session_s=session_s,
            templates=_templates(),
            market=market,
        )

    def render(
        self,
        name: str,
        context: Mapping[str, Any],
        status_code: int = 200,
        session: Session | None = None,
    ) -> HTMLResponse:
        values = {
            "session": session,
            "csrf_token": session.csrf_token if session else "",
            "can_write": bool(session and session.principal.can_write),
            **context,
        }
        html = self.templates.get_template(name).render(values)
        return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def refused(status_code: int, why: str) -> Response:
    return PlainTextResponse(why + "\n", status_code=status_code, headers=SECURITY_HEADERS)


def set_session_cookie(
    request: Request, response: Response, session: Session, max_age: int
) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        session.id,
        max_age=max_age,
        path=PREFIX + "/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


Handler = Callable[[Request, Session], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]
RouteSpec = tuple[str, Endpoint, list[str]]  # path, endpoint, methods


def page(state: ConsoleState, handler: Handler) -> Endpoint:
    """A page or fragment read by GET: a session is needed; without one, the login page."""

    async def endpoint(request: Request) -> Response:
        session = state.sessions.get(request.cookies.get(SESSION_COOKIE))
        if session is None:
            if request.headers.get("x-console-fragment"):
                return refused(401, "not logged in (or the session expired): log in again")
            target = quote(
                request.url.path + (f"?{request.url.query}" if request.url.query else "")
            )
            return RedirectResponse(f"{PREFIX}/login?next={target}", status_code=303)
        return await _answered(handler, request, session)

    return endpoint


def action(state: ConsoleState, handler: Handler, *, write: bool = True) -> Endpoint:
    """A form sent by POST: a session, its CSRF token, and (``write``) the right to change."""

    async def endpoint(request: Request) -> Response:
        session = state.sessions.get(request.cookies.get(SESSION_COOKIE))
        if session is None:
            return refused(401, "not logged in (or the session expired): nothing was changed")
        form = await request.form()
        token = form.get(CSRF_FIELD)
        if not session.csrf_ok(token if isinstance(token, str) else None):
            return refused(403, "CSRF token missing or wrong: reload the page; nothing was changed")
        if write and not session.principal.can_write:
            return refused(403, "read-only login: changes are refused; nothing was changed")
        return await _answered(handler, request, session)

    return endpoint


async def _answered(handler: Handler, request: Request, session: Session) -> Response:
    """The handler's answer; an environment gone or a database down is said plainly."""
    try:
        return await handler(request, session)
    except EnvironmentNotFound as exc:
        return refused(404, f"no environment {exc.name_or_id!r} (deleted meanwhile?)")
    except StoreError as exc:
        return refused(503, f"the database did not answer: {exc}")
