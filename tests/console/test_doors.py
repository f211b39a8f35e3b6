"""Who gets in: no session, no CSRF token, a read-only login, logout, expiry, cookie flags.

Plain HTTP (httpx) against the console's routes over the real service and database; each
refusal is checked to say why and to leave the rows as they were.
"""

from __future__ import annotations

from typing import Any

import httpx
from starlette.applications import Starlette

from controller.console import Console, off
from controller.console.auth import LOGIN_FAILURES_ALLOWED, READ_ONLY, Sessions
from controller.service import Environments
from controller.settings import Settings
from tests.console.rig import PASSWORD, READ_ONLY_PASSWORD, asgi_console, csrf_of, logged_in
from tests.support.world import ENVIRONMENT


async def _rows(envs: Environments) -> list[dict[str, Any]]:
    return [e.to_json() for e in await envs.list()]


async def test_no_session_is_refused_everywhere_and_nothing_changes(
    http: httpx.AsyncClient, envs: Environments
) -> None:
    env = await envs.create(ENVIRONMENT)
    before = await _rows(envs)
    for path in ("/environments", f"/environments/{env.id}", "/environments/new"):
        page = await http.get(path)
        assert page.status_code == 303, path
        assert page.headers["location"].startswith("/console/login?next=")
    fragment = await http.get("/environments/rows", headers={"X-Console-Fragment": "1"})
    assert fragment.status_code == 401
    assert "not logged in" in fragment.text
    posts = {
        "/environments": {"name": "x", "desired_count": "1"},
        f"/environments/{env.id}/scale": {"desired_count": "9"},
        f"/environments/{env.id}/edit": {"max_price": "0.9"},
        f"/environments/{env.id}/delete": {},
    }
    for path, data in posts.items():
        answer = await http.post(path, data={**data, "csrf_token": "guess"})
        assert answer.status_code == 401, path
        assert "nothing was changed" in answer.text
    assert await _rows(envs) == before


async def test_a_form_without_its_csrf_token_is_refused_and_writes_nothing(
    http: httpx.AsyncClient, envs: Environments
) -> None:
    env = await envs.create(ENVIRONMENT)
    before = await _rows(envs)
    token = await logged_in(http)
    for sent in ({}, {"csrf_token": "not-" + token}):
        create = await http.post("/environments", data={**sent, "name": "other", **_EXAMPLE})
        assert create.status_code == 403
        assert "CSRF token missing or wrong" in create.text
        scale = await http.post(f"/environments/{env.id}/scale", data={**sent, "desired_count": 7})
        assert scale.status_code == 403
        delete = await http.post(f"/environments/{env.id}/delete", data=sent)
        assert delete.status_code == 403
    assert await _rows(envs) == before
    # With the token, the same request goes through.
    scaled = await http.post(
        f"/environments/{env.id}/scale", data={"csrf_token": token, "desired_count": 7}
    )
    assert scaled.status_code == 303
    assert (await envs.show(env.id)).desired_count == 7


async def test_the_login_form_needs_its_own_token(http: httpx.AsyncClient) -> None:
    await http.get("/login")  # sets the login cookie
    answer = await http.post("/login", data={"password": PASSWORD})
    assert answer.status_code == 403
    assert "spot_console_session" not in answer.headers.get("set-cookie", "")


async def test_a_read_only_login_sees_all_and_changes_nothing(
    http: httpx.AsyncClient, envs: Environments
) -> None:
    env = await envs.create(ENVIRONMENT)
    before = await _rows(envs)
    form = await http.get("/login")
    await http.post(
        "/login", data={"csrf_token": csrf_of(form.text), "password": READ_ONLY_PASSWORD}
    )
    listing = await http.get("/environments")
    assert listing.status_code == 200
    assert env.id in listing.text
    assert "Read-only login" in listing.text
    detail = await http.get(f"/environments/{env.id}?tab=instances")
    assert detail.status_code == 200
    token = csrf_of(detail.text)  # the logout form's: a read-only session has one too
    for path, data in {
        "/environments": {"name": "other", **_EXAMPLE},
        f"/environments/{env.id}/scale": {"desired_count": "5"},
        f"/environments/{env.id}/edit": {"name": "renamed", **_EXAMPLE},
        f"/environments/{env.id}/delete": {},
    }.items():
        answer = await http.post(path, data={**data, "csrf_token": token})
        assert answer.status_code == 403, path
        assert "read-only login" in answer.text
    assert await _rows(envs) == before


async def test_the_session_cookie_is_httponly_strict_and_secure_over_tls(
    envs: Environments,
) -> None:
    for base, secure in (("http://console.test", False), ("https://console.test", True)):
        async with asgi_console(envs, base) as http:
            form = await http.get("/login")
            answer = await http.post(
                "/login", data={"csrf_token": csrf_of(form.text), "password": PASSWORD}
            )
            cookie = next(
                c for c in answer.headers.get_list("set-cookie") if "spot_console_session=" in c
            )
            flags = {part.strip().lower() for part in cookie.split(";")}
            assert {"httponly", "samesite=strict", "path=/console/"} <= flags
            assert ("secure" in flags) is secure


async def test_logout_ends_the_session(http: httpx.AsyncClient) -> None:
    token = await logged_in(http)
    session = http.cookies["spot_console_session"]
    out = await http.post("/logout", data={"csrf_token": token})
    assert out.status_code == 303
    http.cookies.set("spot_console_session", session, path="/console/")  # replayed
    assert (await http.get("/environments")).status_code == 303


def test_a_session_expires_after_its_lifetime() -> None:
    now = [1000.0]
    sessions = Sessions(lifetime_s=60, clock=lambda: now[0])
    session = sessions.start(READ_ONLY)
    now[0] += 59
    assert sessions.get(session.id) == session
    now[0] += 1
    assert sessions.get(session.id) is None


async def test_wrong_passwords_are_refused_then_throttled(http: httpx.AsyncClient) -> None:
    for _ in range(LOGIN_FAILURES_ALLOWED):
        form = await http.get("/login")
        wrong = await http.post("/login", data={"csrf_token": csrf_of(form.text), "password": "no"})
        assert wrong.status_code == 401
        assert "Wrong password" in wrong.text
    form = await http.get("/login")
    right = await http.post("/login", data={"csrf_token": csrf_of(form.text), "password": PASSWORD})
    assert right.status_code == 429
    assert "spot_console_session" not in right.headers.get("set-cookie", "")


async def test_the_console_is_off_without_a_hash(envs: Environments) -> None:
    assert Console.from_settings(Settings.from_env({}), envs) is None
    app = Starlette(routes=[off()])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://c") as c:
        answer = await c.get("/console/environments")
    assert answer.status_code == 404
    assert "SPOT_CONTROLLER_CONSOLE_PASSWORD_HASH" in answer.text


_EXAMPLE = {
    "zone": "ap-guangzhou-3",
    "billing_mode": "spot",
    "instance_type": "S2.MEDIUM4",
    "image_id": "img-pmqg1cw7",
    "max_price": "0.60",
    "desired_count": "2",
}
