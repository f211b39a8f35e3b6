"""The status columns of each environment, written only when they change.

A row's status is rewritten when its status, reason or counts change, and at least once a
resync interval (so ``last_reconciled_at`` shows the daemon is alive); each change is one
``env_status`` log line, and reaching READY one ``env_converged``. Entering BACKOFF, ERROR,
INVALID or CAPPED, and being short for ``short_after_s``, are notices written with the rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from controller.core.events import Event
from controller.core.notices import Notice, ShortWatch, status_notices
from controller.core.plan import EnvStatus, StatusReport
from controller.core.spec import EnvironmentSpec
from controller.errors import Blocks, CloudError
from controller.logs import get_logger
from controller.reconcile.clock import Clock
from controller.store.store import Store

log = get_logger()

StatusKey = tuple[EnvStatus, str, int, int, int, datetime | None]


class StatusWriter:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        resync_interval_s: float,
        *,
        short_after_s: float = 600.0,
        stored_status: Callable[[str], str | None] = lambda _: None,
    ) -> None:
        self.store, self.clock, self.resync_interval_s = store, clock, resync_interval_s
        self.current: dict[str, StatusKey] = {}  # env id -> what its row says now
        self._written_at: dict[str, float] = {}  # env id -> when (monotonic)
        self._short = ShortWatch(short_after_s)
        # env id -> the alarm status (BACKOFF, ERROR, ...) last announced since it was READY.
        # Seeded from the status the row had before this writer wrote it (a previous run's or
        # leader's): a status already announced is not announced again after a restart.
        self._announced: dict[str, EnvStatus | None] = {}
        self._stored_status = stored_status

    def forget(self) -> None:
        """Write every row again (a new lease: another replica may have written them)."""
        self.current.clear()
        self._written_at.clear()
        self._short.forget(list(self._short.since))
        self._announced.clear()

    def short_due_at(self) -> list[datetime]:
        return self._short.due_at()

    def _status_notices(self, rep: StatusReport, name: str, now: datetime) -> list[Notice]:
        if rep.env_id not in self._announced:
            stored = self._stored_status(rep.env_id)
            known = stored in EnvStatus.__members__
            self._announced[rep.env_id] = EnvStatus(stored) if stored and known else None
        notices = status_notices(self._announced[rep.env_id], rep, name, now)
        if notices:
            self._announced[rep.env_id] = rep.status
        elif rep.status == EnvStatus.READY:
            self._announced[rep.env_id] = None
        return notices

    def status_of(self, env_id: str) -> EnvStatus | None:
        key = self.current.get(env_id)
        return key[0] if key is not None else None

    async def write(
        self,
        reports: Sequence[StatusReport],
        now: datetime,
        specs: Mapping[str, EnvironmentSpec],
        names: Mapping[str, str],
        *,
        observed: bool = True,
    ) -> None:
        """``observed``: the reports' counts are what a sweep saw (not so before the first)."""
        rows: list[dict[str, Any]] = []
        notices: list[Notice] = []
        t = self.clock.monotonic()
        # Undone if the write fails, so its rows and notices are written by a later pass.
        kept = (
            dict(self.current),
            dict(self._written_at),
            set(self._short.announced),
            dict(self._announced),
        )
        self._short.forget([env_id for env_id in self._short.since if env_id not in specs])
        for rep in reports:
            name = names.get(rep.env_id, "")
            if observed:
                spec = specs.get(rep.env_id)
                desired = spec.desired_count if spec is not None else None
                notices += self._short.update(rep.env_id, name, rep.running, desired, now)
            key: StatusKey = (
                rep.status,
                rep.reason,
                rep.running,
                rep.pending,
                rep.launching,
                rep.next_attempt_at,
            )
            previous = self.current.get(rep.env_id)
            stale = t - self._written_at.get(rep.env_id, -1e9) > self.resync_interval_s
            if key == previous and not stale:
                continue
            if key != previous:
                self._log_change(rep, previous, specs, name)
                notices += self._status_notices(rep, name, now)
            self.current[rep.env_id] = key
            self._written_at[rep.env_id] = t
            rows.append(
                {
                    "env_id": rep.env_id,
                    "status": rep.status.value,
                    "status_reason": rep.reason,
                    "running_count": rep.running,
                    "pending_count": rep.pending,
                    "launching_count": rep.launching,
                    "next_attempt_at": rep.next_attempt_at,
                    "last_reconciled_at": now,
                }
            )
        try:
            await self.store.record_statuses(rows, notices)
        except BaseException:
            self.current, self._written_at, self._short.announced, self._announced = kept
            raise

    def _log_change(
        self,
        rep: StatusReport,
        previous: StatusKey | None,
        specs: Mapping[str, EnvironmentSpec],
        name: str,
    ) -> None:
        spec = specs.get(rep.env_id)
        log.info(
            Event.ENV_STATUS,
            env=name,
            env_id=rep.env_id,
            status=rep.status.value,
            reason=rep.reason,
            running=rep.running,
            pending=rep.pending,
            launching=rep.launching,
            desired=spec.desired_count if spec is not None else None,
        )
        if rep.status == EnvStatus.CAPPED and (previous is None or previous[0] != EnvStatus.CAPPED):
            log.warning(Event.SPEND_CAP_REACHED, env=name, env_id=rep.env_id, reason=rep.reason)
        if rep.status == EnvStatus.READY and (previous is None or previous[0] != EnvStatus.READY):
            log.info(Event.ENV_CONVERGED, env=name, env_id=rep.env_id, running=rep.running)


def unobserved_reports(
    invalid: Mapping[str, str], env_ids: Sequence[str], sweep_error: CloudError | None
) -> list[StatusReport]:
    """Before the first complete sweep nothing is decided, but each row says why."""
    reports = [
        StatusReport(env_id, EnvStatus.INVALID, reason, 0, 0, 0, None)
        for env_id, reason in invalid.items()
    ]
    if sweep_error is not None:
        if sweep_error.blocks is Blocks.ENVIRONMENT:  # the credentials were refused
            status = EnvStatus.ERROR
            reason = f"cannot observe instances: {sweep_error.code}: {sweep_error.message}"[:500]
        else:
            status = EnvStatus.NEW
            reason = f"waiting for the first complete DescribeInstances sweep ({sweep_error.code})"
        reports += [StatusReport(env_id, status, reason, 0, 0, 0, None) for env_id in env_ids]
    return reports
