"""Desired vs running (and hourly spend) per environment over time, for the detail chart.

The rows hold only the present; this sampler, the one writer of the series, reads them every
``interval_s`` through the service and keeps ``keep_s`` of samples in memory. The chart thus
covers the time since this daemon started (at most ``keep_s``), on every replica alike. Only
changes are kept (a step chart needs nothing else), so a steady environment costs two samples.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import anyio

from controller.core.events import Event
from controller.errors import SpotControllerError
from controller.logs import get_logger
from controller.service import Environments

log = get_logger()

SAMPLE_INTERVAL_S = 10.0
KEEP_S = 6 * 3600.0


@dataclass(frozen=True, slots=True)
class Sample:
    at: float  # unix time
    desired: int
    running: int
    hourly_spend: Decimal | None


class History:
    def __init__(
        self,
        environments: Environments,
        interval_s: float = SAMPLE_INTERVAL_S,
        keep_s: float = KEEP_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.environments, self.interval_s, self.clock = environments, interval_s, clock
        self._maxlen = max(2, int(keep_s / interval_s) + 1)
        self._series: dict[str, deque[Sample]] = {}  # the changes
        self._last: dict[str, Sample] = {}  # the latest sample, changed or not

    def series(self, env_id: str) -> list[Sample]:
        """The changes, and the last values again at the last sample's time (the step's end)."""
        kept = list(self._series.get(env_id, ()))
        last = self._last.get(env_id)
        if last is not None and kept and last.at > kept[-1].at:
            kept.append(last)
        return kept

    async def sample(self) -> None:
        views = await self.environments.list()
        now = self.clock()
        for view in views:
            sample = Sample(now, view.desired_count, view.running_count, view.hourly_spend)
            series = self._series.setdefault(view.id, deque(maxlen=self._maxlen))
            if not series or _values(series[-1]) != _values(sample):
                series.append(sample)
            self._last[view.id] = sample
        for gone in self._series.keys() - {v.id for v in views}:
            del self._series[gone]
            self._last.pop(gone, None)

    async def run(self, stop: anyio.Event) -> None:
        failing = False
        while not stop.is_set():
            try:
                await self.sample()
                failing = False
            except SpotControllerError as exc:  # the database is down: the chart has a gap
                if not failing:
                    log.warning(Event.CONSOLE_SAMPLE_FAILED, error=str(exc))
                failing = True
            with anyio.move_on_after(self.interval_s):
                await stop.wait()


def _values(sample: Sample) -> tuple[int, int, Decimal | None]:
    return sample.desired, sample.running, sample.hourly_spend
