"""Capped exponential backoff with jitter, per key. Pure: time and randomness are passed in."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta


def backoff_delay(failures: int, base_s: float, max_s: float, rng: random.Random) -> float:
    """Delay after ``failures`` consecutive failures (>= 1): exponential, capped, jittered.

    "Equal jitter": half the step is fixed so a pool is never retried at once, half is random so
    environments that failed together do not retry in lockstep.
    """
    step: float = min(max_s, base_s * 2.0 ** max(0, failures - 1))
    jitter: float = rng.uniform(0, step / 2)
    return step / 2 + jitter


@dataclass(frozen=True)
class Block:
    """A pool (or an environment) that must not be tried before ``until``."""

    until: datetime
    kind: str  # "capacity" | "price" | "quota" | "spec" | "auth"
    reason: str
    failures: int = 1

    @property
    def is_error(self) -> bool:
        """Errors need a human (quota, spec, credentials); capacity and price heal by themselves."""
        return self.kind in ("quota", "spec", "auth")

    def active(self, now: datetime) -> bool:
        return now < self.until


def next_block(
    previous: Block | None,
    *,
    kind: str,
    reason: str,
    now: datetime,
    base_s: float,
    max_s: float,
    rng: random.Random,
) -> Block:
    failures = (previous.failures + 1) if previous is not None else 1
    delay = backoff_delay(failures, base_s, max_s, rng)
    return Block(until=now + timedelta(seconds=delay), kind=kind, reason=reason, failures=failures)
