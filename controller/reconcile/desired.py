"""The desired side: the environment rows, parsed into specs or reasons they are invalid.

A pass reads one integer (the environment revision, bumped by triggers on users' changes)
unless it moved, and every row at least once a resync interval; a row is parsed again only
when a user changed it (parsing 10,000 rows a second cost a core).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controller.core.events import Event
from controller.core.spec import STATUS_COLUMNS, EnvironmentSpec, parse_environment
from controller.errors import ValidationFailed
from controller.logs import get_logger
from controller.store.store import Store

log = get_logger()


class DesiredState:
    def __init__(self, store: Store, region: str, resync_interval_s: float) -> None:
        self.store, self.region, self.resync_interval_s = store, region, resync_interval_s
        self.specs: dict[str, EnvironmentSpec] = {}
        self.invalid: dict[str, str] = {}  # env id -> reason naming the field
        self.names: dict[str, str] = {}  # env id -> name, also of rows since deleted
        # env id -> the status column as last read (what a previous leader or run wrote)
        self.stored_status: dict[str, str] = {}
        # env id -> (the row's user columns, its spec or the reason it is invalid)
        self._parsed: dict[str, tuple[tuple[Any, ...], EnvironmentSpec | str]] = {}
        self._invalid_logged: dict[str, str] = {}
        # The revision the rows were read at, and when (monotonic).
        self._revision: int | None = None
        self._read_at: float | None = None

    def name(self, env_id: str) -> str:
        return self.names.get(env_id, "")

    def forget_read(self) -> None:
        """Read every row at the next refresh (after a reload or a new lease)."""
        self._read_at = None

    async def refresh(self, now: float) -> bool:
        """Read the rows if they may have changed; True when a row was added, changed or gone."""
        if not await self._may_have_changed(now):
            return False
        self._revision, rows = await self.store.load_environment_rows()
        self._read_at = now
        return self._load(rows)

    async def _may_have_changed(self, now: float) -> bool:
        """Always when the revision is unknown (a database edited by hand)."""
        if (
            self._read_at is None
            or self._revision is None
            or now - self._read_at >= self.resync_interval_s
        ):
            return True
        return await self.store.environment_revision() != self._revision

    def _load(self, rows: list[dict[str, Any]]) -> bool:
        changed = len(rows) != len(self._parsed)
        specs: dict[str, EnvironmentSpec] = {}
        invalid: dict[str, str] = {}
        parsed: dict[str, tuple[tuple[Any, ...], EnvironmentSpec | str]] = {}
        self.stored_status = {row["id"]: row["status"] for row in rows}
        for row in rows:
            env_id = row["id"]
            self.names[env_id] = row["name"]
            key = tuple(v for k, v in row.items() if k not in STATUS_COLUMNS)
            cached = self._parsed.get(env_id)
            if cached is not None and cached[0] == key:
                result = cached[1]
            else:
                changed = True
                result = self._parse(row)
            parsed[env_id] = (key, result)
            if isinstance(result, str):
                invalid[env_id] = result
            else:
                specs[env_id] = result
        self._parsed = parsed
        self._log_invalid(invalid)
        self.specs, self.invalid = specs, invalid
        return changed

    def _parse(self, row: Mapping[str, Any]) -> EnvironmentSpec | str:
        try:
            return parse_environment(row, self.region)
        except ValidationFailed as exc:
            return f"invalid {exc.field}: {exc.rule}"

    def _log_invalid(self, invalid: Mapping[str, str]) -> None:
        """Once per row and reason, not every pass."""
        for env_id, reason in invalid.items():
            if self._invalid_logged.get(env_id) != reason:
                log.warning(Event.ENV_INVALID, env=self.names[env_id], env_id=env_id, reason=reason)
        self._invalid_logged = dict(invalid)
