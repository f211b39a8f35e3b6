"""Counters of what the simulated API was asked and answered, for tests and dashboards."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

OK = "OK"


@dataclass
class Stats:
    """Every API call counted by action and by answer (``OK`` or the error code)."""

    calls: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    by_action_and_code: dict[str, Counter[str]] = field(default_factory=dict)
    faults: Counter[str] = field(default_factory=Counter)
    launched_total: int = 0
    launch_failed_total: int = 0
    ended: Counter[str] = field(default_factory=Counter)

    def record(self, action: str, code: str) -> None:
        """Count one answered call; ``code`` is ``OK`` or the error code (or ``HTTP503``)."""
        self.calls[action] += 1
        if code != OK:
            self.errors[code] += 1
        self.by_action_and_code.setdefault(action, Counter())[code] += 1

    def view(self) -> dict[str, object]:
        return {
            "calls": dict(self.calls),
            "errors": dict(self.errors),
            "calls_by_action_and_code": {
                action: dict(codes) for action, codes in self.by_action_and_code.items()
            },
            "faults": dict(self.faults),
            "launched_total": self.launched_total,
            "launch_failed_total": self.launch_failed_total,
            "terminated_total": self.ended["terminated"],
            "reclaimed_total": self.ended["reclaimed"],
            "released_total": self.ended["released"],
        }
