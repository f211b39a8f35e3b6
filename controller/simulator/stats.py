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
    # Simulator time (epoch seconds) of the latest call of each action: lets a benchmark time
    # "a desired-count change to the first RunInstances" on the cloud's side of the wire.
    last_call_at: dict[str, float] = field(default_factory=dict)

    def record(self, action: str, code: str, now: float | None = None) -> None:
        """Count one answered call; ``code`` is ``OK`` or the error code (or ``HTTP503``)."""
        self.calls[action] += 1
        if now is not None:
            self.last_call_at[action] = now
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
            "last_call_at": dict(self.last_call_at),
            "launched_total": self.launched_total,
            "launch_failed_total": self.launch_failed_total,
            "terminated_total": self.ended["terminated"],
            "reclaimed_total": self.ended["reclaimed"],
            "released_total": self.ended["released"],
        }
