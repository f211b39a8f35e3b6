"""Injected faults of the API calls: errors, HTTP 503s, timeouts, latency and rate limits.

Pure decisions: the HTTP layer asks what should happen to a call and acts on the answer.
Every roll draws from the world's single seeded random generator, and only when its rate is
above zero, so a run with faults off consumes the same random numbers as one without them.
Rate limits are token buckets measured on the simulator's clock (burst = rate), so a fake
clock that never moves also never refills them.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field

from controller.simulator.commands import FaultsUpdate
from controller.simulator.config import FaultsConfig
from controller.simulator.limits import rate_limit_message


@dataclass
class TokenBucket:
    """``rate`` tokens per second, holding at most ``max(rate, 1)``."""

    rate: float
    tokens: float
    updated_at: float

    def take(self, now: float) -> bool:
        capacity = max(self.rate, 1.0)
        elapsed = max(0.0, now - self.updated_at)
        self.tokens = min(capacity, self.tokens + elapsed * self.rate)
        self.updated_at = max(self.updated_at, now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass
class Faults:
    """The fault settings in force and the rate limiters' buckets."""

    settings: FaultsConfig
    buckets: dict[str, TokenBucket] = field(default_factory=dict)
    # action -> (whole simulator second, calls in it): the figure Tencent's message quotes.
    calls_this_second: dict[str, tuple[int, int]] = field(default_factory=dict)

    def update(self, change: FaultsUpdate) -> None:
        for name, value in change.values.items():
            setattr(self.settings, name, value)
        if change.clear_rate_limits:
            self.settings.rate_limits = {}
            self.buckets.clear()
        if change.rate_limits is not None:
            self.settings.rate_limits.update(change.rate_limits)
            for action in change.rate_limits:
                self.buckets.pop(action, None)

    def view(self) -> dict[str, object]:
        return dataclasses.asdict(self.settings)

    def admit(self, action: str, now: float) -> bool:
        """Take a token for ``action``; False means answer RequestLimitExceeded."""
        rate = self.settings.rate_limits.get(action)
        if not rate:
            return True
        second, calls = self.calls_this_second.get(action, (int(now), 0))
        self.calls_this_second[action] = (int(now), calls + 1 if second == int(now) else 1)
        bucket = self.buckets.get(action)
        if bucket is None or bucket.rate != rate:
            bucket = TokenBucket(rate=rate, tokens=max(rate, 1.0), updated_at=now)
            self.buckets[action] = bucket
        return bucket.take(now)

    def throttled_message(self, action: str) -> str:
        """Tencent's text for a refused call of ``action``: calls this second, and the limit."""
        limit = self.settings.rate_limits.get(action) or 0.0
        _, calls = self.calls_this_second.get(action, (0, 0))
        return rate_limit_message(calls, limit)

    def roll_http_error(self, rng: random.Random) -> bool:
        return _roll(rng, self.settings.http_error_rate)

    def roll_error(self, rng: random.Random) -> bool:
        return _roll(rng, self.settings.error_rate)

    def roll_timeout(self, rng: random.Random) -> bool:
        return _roll(rng, self.settings.timeout_rate)


def _roll(rng: random.Random, rate: float) -> bool:
    if rate <= 0:
        return False
    return rng.random() < rate
