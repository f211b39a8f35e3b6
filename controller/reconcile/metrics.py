"""Monotonic event counts for /metrics: launches by result, instances launched and ended.

Each part adds to the counts of the events it sees (the launcher its answers, the pass the
endings it records); nobody subtracts. Scrapes read them through the engine's view.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator


class Counters:
    def __init__(self) -> None:
        # (metric, env id, label) -> count; metric is launches, launched or ended
        self._counts: Counter[tuple[str, str, str]] = Counter()

    def add(self, metric: str, env_id: str, label: str, n: int = 1) -> None:
        self._counts[(metric, env_id, label)] += n

    def items(self) -> Iterator[tuple[tuple[str, str, str], int]]:
        yield from sorted(self._counts.items())
