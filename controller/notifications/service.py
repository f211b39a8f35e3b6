"""Notification targets as commands see them: add, list, remove, test. The one place their
input is checked (each field's rule) and their output masked."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from controller.core.notices import TEST_EVENT
from controller.errors import ValidationFailed
from controller.notifications import targets as t
from controller.notifications.delivery import Result, attempt
from controller.notifications.messages import OutboxEvent
from controller.store.outbox import new_event_id
from controller.store.store import Store


class Targets:
    def __init__(self, store: Store, cluster: str, timeout_s: float = 10.0) -> None:
        self.store, self.cluster, self.timeout_s = store, cluster, timeout_s

    async def add(
        self,
        name: str,
        url: str,
        kind: str,
        events: Sequence[str],
        envs: Sequence[str],
        secret: str | None,
    ) -> tuple[dict[str, Any], str | None]:
        """The new target's view, and the secret when one was generated (to show once)."""
        name, url, kind = t.validate_name(name), t.validate_url(url), t.validate_kind(kind)
        chosen = t.validate_events(events)
        secret = t.validate_secret(kind, secret)
        generated = None
        if kind == "webhook" and secret is None:
            secret = generated = t.new_secret()
        env_ids = []
        for env in envs:
            row = await self.store.get_environment(env)
            if row is None:
                raise ValidationFailed("env", f"no environment named {env!r}")
            env_ids.append(row["id"])
        values = {
            "name": name,
            "kind": kind,
            "url": url,
            "secret": secret,
            "events": t.joined(chosen),
            "env_ids": t.joined(list(dict.fromkeys(env_ids))),
        }
        await self.store.add_notification(values)
        return (await self.show(name)), generated

    async def list(self) -> list[dict[str, Any]]:
        depths = await self.store.outbox_depths()
        names = {row["id"]: row["name"] for row in await self.store.list_environments()}
        return [
            t.target_view(row, names, depths.get(row["name"], 0))
            for row in await self.store.notification_targets()
        ]

    async def show(self, name: str) -> dict[str, Any]:
        for view in await self.list():
            if view["name"] == name:
                return view
        raise ValidationFailed("name", f"no notification target named {name!r}")

    async def remove(self, name: str) -> None:
        if not await self.store.remove_notification(name):
            raise ValidationFailed("name", f"no notification target named {name!r}")

    async def test(self, name: str) -> tuple[dict[str, Any], Result]:
        """Send one test event now, straight to the target (not through the outbox)."""
        rows = await self.store.notification_targets(name)
        if not rows:
            raise ValidationFailed("name", f"no notification target named {name!r}")
        now = datetime.now(UTC)
        event = OutboxEvent(new_event_id(), TEST_EVENT, "", {"env_name": ""}, now)
        async with httpx.AsyncClient(follow_redirects=False) as http:
            result = await attempt(http, rows[0], event, self.cluster, now, self.timeout_s)
        return (await self.show(name)), result
