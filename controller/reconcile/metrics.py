"""Monotonic event counts for /metrics: launches by result, instances launched and ended.

Each part adds to the counts of the events it sees (the launcher its answers, the pass the
endings it records); nobody subtracts. Scrapes read them through the engine's view.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal

from controller.core.instances import SPOT
from controller.core.model import Node


def hourly_price(node: Node) -> Decimal:
    """What a node costs an hour: the price it was bought at; a spot node of unknown price at
    its bid (spot is never bought above it); an unpriced pay-as-you-go node at 0."""
    if node.hourly_price:
        return Decimal(node.hourly_price)
    if node.charge_type == SPOT and node.max_price:
        return Decimal(node.max_price)
    return Decimal(0)


class Usage:
    """Instance-seconds and spend of ended instances, by (env id, charge type); the alive
    part is added at scrape time, so the sum only grows."""

    def __init__(self) -> None:
        self.ended: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])

    def add_ended(self, node: Node) -> None:
        if node.running_at is None or node.ended_at is None:
            return
        seconds = max(0.0, (node.ended_at - node.running_at).total_seconds())
        entry = self.ended[(node.env_id, node.charge_type)]
        entry[0] += seconds
        entry[1] += seconds / 3600 * float(hourly_price(node))

    def totals(self, alive: Iterator[Node], now: datetime) -> dict[tuple[str, str], list[float]]:
        out = {key: list(value) for key, value in self.ended.items()}
        for node in alive:
            if node.running_at is None or node.state.value == "ENDED":
                continue
            seconds = max(0.0, (now - node.running_at).total_seconds())
            entry = out.setdefault((node.env_id, node.charge_type), [0.0, 0.0])
            entry[0] += seconds
            entry[1] += seconds / 3600 * float(hourly_price(node))
        return out


class Counters:
    def __init__(self) -> None:
        # (metric, env id, label) -> count; metric is launches, launched or ended
        self._counts: Counter[tuple[str, str, str]] = Counter()
        self.usage = Usage()

    def add(self, metric: str, env_id: str, label: str, n: int = 1) -> None:
        self._counts[(metric, env_id, label)] += n

    def items(self) -> Iterator[tuple[tuple[str, str, str], int]]:
        yield from sorted(self._counts.items())
