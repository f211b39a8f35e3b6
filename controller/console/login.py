"""Logging in and out.

The login form carries a token that must match a cookie set with it (there is no session to
hold one yet), so another site cannot log a browser in under its own password. Failed
attempts per client address are limited; a success starts a fresh session.
"""

from __future__ import annotations

import hmac
import secrets

import anyio
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from controller.console.auth import Session
from controller.console.web import (
    CSRF_FIELD,
    LOGIN_COOKIE,
    PREFIX,
    SECURITY_HEADERS,
    SESSION_COOKIE,
    ConsoleState,
    RouteSpec,
    action,
    set_session_cookie,
)
from controller.core.events import Event
from controller.logs import get_logger

log = get_logger()
LOGIN_TOKEN_S = 3600


def _next(request: Request, form_value: object = None) -> str:
    """Where to go after logging in: a console path only, never another site."""
    target = form_value if isinstance(form_value, str) else request.query_params.get("next", "")
    if target.startswith(PREFIX + "/") and not target.startswith("//"):
        return target
    return f"{PREFIX}/environments"


def _login_page(
    state: ConsoleState, request: Request, error: str = "", status_code: int = 200
) -> Response:
    token = secrets.token_urlsafe(32)
    response = state.render(
        "login.html",
        {"login_token": token, "next": _next(request), "error": error},
        status_code=status_code,
    )
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=LOGIN_TOKEN_S,
        path=PREFIX + "/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


def routes(state: ConsoleState) -> list[RouteSpec]:
    async def login_form(request: Request) -> Response:
        return _login_page(state, request)

    async def login(request: Request) -> Response:
        form = await request.form()
        client = request.client.host if request.client else "?"
        token, cookie = form.get(CSRF_FIELD), request.cookies.get(LOGIN_COOKIE, "")
        if not isinstance(token, str) or not cookie or not hmac.compare_digest(token, cookie):
            return _login_page(state, request, "The form expired: please try again.", 403)
        if state.throttle.blocked(client):
            log.warning(Event.CONSOLE_LOGIN_FAILED, client=client, reason="throttled")
            return _login_page(state, request, "Too many failed logins: wait a few minutes.", 429)
        password = form.get("password")
        secret = password if isinstance(password, str) else ""
        # argon2 takes tens of milliseconds of CPU: off the event loop.
        principal = await anyio.to_thread.run_sync(state.authenticator.check, secret)
        if principal is None:
            state.throttle.failed(client)
            log.warning(Event.CONSOLE_LOGIN_FAILED, client=client, reason="wrong password")
            return _login_page(state, request, "Wrong password.", 401)
        state.sessions.end(request.cookies.get(SESSION_COOKIE))
        session = state.sessions.start(principal)
        log.info(Event.CONSOLE_LOGIN, client=client, principal=principal.name)
        response = RedirectResponse(_next(request, form.get("next")), status_code=303)
        set_session_cookie(request, response, session, int(state.session_s))
        response.delete_cookie(LOGIN_COOKIE, path=PREFIX + "/")
        return response

    async def logout(request: Request, session: Session) -> Response:
        state.sessions.end(session.id)
        response = RedirectResponse(f"{PREFIX}/login", status_code=303, headers=SECURITY_HEADERS)
        response.delete_cookie(SESSION_COOKIE, path=PREFIX + "/")
        return response

    return [
        ("/login", login_form, ["GET"]),
        ("/login", login, ["POST"]),
        ("/logout", action(state, logout, write=False), ["POST"]),
    ]
