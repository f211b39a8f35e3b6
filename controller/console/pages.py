"""The console's pages: the list, the create form, an environment's detail, edit and delete.

Each handler calls the service and renders its views; a ValidationFailed is shown beside the
field it names, with the form as it was sent, and nothing is written.
"""

from __future__ import annotations

from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from controller.console import forms
from controller.console.auth import Session
from controller.console.chart import render_svg
from controller.console.market import offers
from controller.console.web import PREFIX, ConsoleState, RouteSpec, action, page, refused
from controller.core.events import Event
from controller.errors import ValidationFailed
from controller.logs import get_logger
from controller.service import EnvironmentView
from controller.service.billing import PAY_AS_YOU_GO_MODE, SPOT_MODE, with_billing_mode

log = get_logger()
EVENTS_PER_PAGE = 20
TABS = {"events": "Event log", "instances": "Instance list"}


def _errors(exc: ValidationFailed) -> dict[str, str]:
    """The error keyed by the form field it names; an unknown field is the form's own."""
    return {exc.field if exc.field in forms.FIELDS else "_form": str(exc)}


def _env_url(view: EnvironmentView, rest: str = "") -> str:
    return f"{PREFIX}/environments/{view.id}{rest}"


def routes(state: ConsoleState) -> list[RouteSpec]:
    envs = state.environments
    render = state.render

    async def find(request: Request) -> EnvironmentView:
        return await envs.show(request.path_params["env_id"])

    async def environments(request: Request, session: Session) -> Response:
        return render("list.html", {"envs": await envs.list()}, session=session)

    async def rows(request: Request, session: Session) -> Response:
        return render("rows.html", {"envs": await envs.list()}, session=session)

    async def new(request: Request, session: Session) -> Response:
        values = {f: "" for f in forms.FIELDS} | {"billing_mode": SPOT_MODE}
        return _form(session, "create.html", values, {})

    def _form(
        session: Session,
        template: str,
        values: dict[str, str],
        errors: dict[str, str],
        status_code: int = 200,
        **more: Any,
    ) -> Response:
        context = {
            "values": values,
            "errors": errors,
            "required": forms.REQUIRED,
            "optional": forms.OPTIONAL,
            "modes": forms.BILLING_MODES,
            **offers(state.market, values.get("zone", ""), values.get("billing_mode", "")),
            **more,
        }
        return render(template, context, status_code=status_code, session=session)

    async def create(request: Request, session: Session) -> Response:
        values = forms.submitted(await request.form())
        try:
            mode, fields = forms.to_create(values)
            created = await envs.create(with_billing_mode(fields, mode))
        except ValidationFailed as exc:
            return _form(session, "create.html", values, _errors(exc), 422)
        log.info(Event.CONSOLE_CHANGE, action="create", env=created.name, env_id=created.id)
        return RedirectResponse(f"{PREFIX}/environments", status_code=303)

    async def detail(request: Request, session: Session) -> Response:
        return await _detail(request, session, await find(request))

    async def _detail(
        request: Request,
        session: Session,
        view: EnvironmentView,
        tab: Any = None,
        scale_error: str = "",
    ) -> Response:
        tab = tab or request.query_params.get("tab", "events")
        tab = tab if tab in TABS else "events"
        context: dict[str, Any] = {"env": view, "tab": tab, "tabs": TABS}
        context.update(await _tab(view, tab, request))
        samples = state.history.series(view.id)
        context["chart"] = await anyio.to_thread.run_sync(render_svg, samples)
        context["scale_error"] = scale_error
        status_code = 422 if scale_error else 200
        return render("detail.html", context, status_code=status_code, session=session)

    async def _tab(view: EnvironmentView, tab: str, request: Request) -> dict[str, Any]:
        if tab == "instances":
            show_all = request.query_params.get("all") == "1"
            nodes = await envs.nodes(view.id, include_ended=show_all)
            return {"nodes": tuple(reversed(nodes)), "show_all": show_all}
        page_no = _page_number(request)
        found = await envs.activities(
            view.id, EVENTS_PER_PAGE + 1, offset=(page_no - 1) * EVENTS_PER_PAGE
        )
        return {
            "activities": found[:EVENTS_PER_PAGE],
            "page": page_no,
            "has_next": len(found) > EVENTS_PER_PAGE,
        }

    async def fragment(request: Request, session: Session) -> Response:
        view = await find(request)
        part = request.path_params["part"]
        if part == "summary":
            return render("summary.html", {"env": view}, session=session)
        if part not in TABS:
            return refused(404, f"no part {part!r}")
        context = {"env": view, **await _tab(view, part, request)}
        return render(f"{part}.html", context, session=session)

    async def scale(request: Request, session: Session) -> Response:
        view = await find(request)
        form = await request.form()
        desired = str(form.get("desired_count", "")).strip()
        tab = form.get("tab")
        try:
            scaled = await envs.scale(view.id, desired)
        except ValidationFailed as exc:  # beside the count, the page as it was
            return await _detail(request, session, view, tab, f"Nothing was changed: {exc}")
        log.info(Event.CONSOLE_CHANGE, action="scale", env=view.name, desired=scaled.desired_count)
        back = f"?tab={tab}" if isinstance(tab, str) and tab in TABS else ""
        return RedirectResponse(_env_url(view, back), status_code=303)

    async def edit_form(request: Request, session: Session) -> Response:
        view = await find(request)
        return _form(session, "edit.html", forms.shown(view), {}, env=view)

    async def edit(request: Request, session: Session) -> Response:
        view = await find(request)
        current = forms.shown(view)
        values = forms.submitted(await request.form())
        changes = forms.to_changes(current, values)
        mode = values.get("billing_mode") or SPOT_MODE
        was = current["billing_mode"]
        if (
            mode == SPOT_MODE
            and was == PAY_AS_YOU_GO_MODE
            and "on_demand_percentage" not in changes
        ):
            changes["on_demand_percentage"] = "0"  # back to spot: nothing on demand above the base
        try:
            if mode != was or "on_demand_percentage" in changes:
                changes = with_billing_mode(changes, mode)
            updated = await envs.update(view.id, changes)
        except ValidationFailed as exc:
            return _form(session, "edit.html", values, _errors(exc), 422, env=view)
        log.info(Event.CONSOLE_CHANGE, action="update", env=updated.name, fields=sorted(changes))
        return RedirectResponse(_env_url(updated), status_code=303)

    async def delete_form(request: Request, session: Session) -> Response:
        view = await find(request)
        alive = len(await envs.nodes(view.id))
        return render("delete.html", {"env": view, "alive": alive}, session=session)

    async def delete(request: Request, session: Session) -> Response:
        view = await find(request)
        deleted = await envs.delete(view.id)
        log.info(Event.CONSOLE_CHANGE, action="delete", env=deleted.name, env_id=deleted.id)
        return RedirectResponse(f"{PREFIX}/environments", status_code=303)

    base = "/environments/{env_id:str}"
    return [
        ("/environments", page(state, environments), ["GET"]),
        ("/environments/rows", page(state, rows), ["GET"]),
        ("/environments/new", page(state, new), ["GET"]),
        ("/environments", action(state, create), ["POST"]),
        (base, page(state, detail), ["GET"]),
        (base + "/parts/{part:str}", page(state, fragment), ["GET"]),
        (base + "/scale", action(state, scale), ["POST"]),
        (base + "/edit", page(state, edit_form), ["GET"]),
        (base + "/edit", action(state, edit), ["POST"]),
        (base + "/delete", page(state, delete_form), ["GET"]),
        (base + "/delete", action(state, delete), ["POST"]),
    ]


def _page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    return int(raw) if raw.isdigit() and 0 < int(raw) < 100_000 else 1
