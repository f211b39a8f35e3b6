"""Per-key rate limits: a token bucket per SecretId, refilled at the key's rate.

The bucket holds one second of calls, so a client may burst that many and then goes at the
rate; past it the API answers Tencent's ``RequestLimitExceeded``. Buckets live in the
process: replicas each allow the rate (documented).
"""

from __future__ import annotations

import time
from collections.abc import Callable


class RateLimits:
    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(1.0, rate)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # secret id -> (tokens, at)

    def admit(self, secret_id: str) -> bool:
        now = self._clock()
        tokens, at = self._buckets.get(secret_id, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens < 1.0:
            self._buckets[secret_id] = (tokens, now)
            return False
        self._buckets[secret_id] = (tokens - 1.0, now)
        return True
