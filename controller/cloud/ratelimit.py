"""Client-side rate limits per CVM action, shared by the whole process.

Tencent limits each action per account (RunInstances 10/s, DescribeInstances 40/s, ...) and
answers ``RequestLimitExceeded`` beyond it. Staying under the limit on our side is cheaper than
being throttled and retrying, and keeps one busy environment from spending the account's budget.

Each action has a token bucket holding one second of calls. It is implemented as a reservation
schedule (GCRA): ``acquire`` books its slot synchronously, before its first await, so callers are
served strictly in arrival order (FIFO) and a storm of calls from one caller delays a later caller
by at most the storm's length, never indefinitely. Build one limiter per process and hand it to
every client: two limiters would each allow the full rate.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import anyio

from controller.settings import Settings

#: Calls per second for an action ``rate_limits`` does not name. Tencent's documented default
#: for most CVM actions is 20/s; DescribeZoneInstanceConfigInfos and InquiryPriceRunInstances
#: are called rarely, so this only has to stay under the account limit.
DEFAULT_RATE = 20.0
_EPSILON_S = 1e-9


@dataclass
class _Bucket:
    """GCRA state: ``tat`` is the theoretical arrival time of the next call at the steady rate."""

    interval_s: float  # 1 / rate
    burst: int  # calls allowed back to back: one second of calls
    tat: float


class RateLimiter:
    """Token bucket per action, FIFO among waiters, on an injectable clock.

    ``clock`` must be monotonic (seconds) and ``sleep`` must sleep on that clock; tests pass a
    virtual clock so a 5-second schedule runs in milliseconds.
    """

    def __init__(
        self,
        rates: Mapping[str, float],
        *,
        default_rate: float = DEFAULT_RATE,
        clock: Callable[[], float] = anyio.current_time,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        for action, rate in {**rates, "<default>": default_rate}.items():
            if not rate > 0:
                raise ValueError(f"rate of {action} must be greater than 0, got {rate!r}")
        self._rates = MappingProxyType(dict(rates))
        self._default_rate = default_rate
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[str, _Bucket] = {}

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        clock: Callable[[], float] = anyio.current_time,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> RateLimiter:
        return cls(settings.rate_limits, clock=clock, sleep=sleep)

    @property
    def rates(self) -> Mapping[str, float]:
        return self._rates

    def rate_of(self, action: str) -> float:
        """Calls per second allowed for ``action``."""
        return self._rates.get(action, self._default_rate)

    def _bucket(self, action: str) -> _Bucket:
        bucket = self._buckets.get(action)
        if bucket is None:
            rate = self.rate_of(action)
            bucket = _Bucket(interval_s=1.0 / rate, burst=max(1, int(rate)), tat=self._clock())
            self._buckets[action] = bucket
        return bucket

    def reserve(self, action: str) -> float:
        """Book the next slot of ``action`` and return how long to wait for it (seconds).

        Synchronous on purpose: booking order is arrival order, which is what makes the limiter
        fair. A booked slot is spent even if its caller is cancelled while waiting, which can only
        make the limiter slower than the rate, never faster.
        """
        bucket = self._bucket(action)
        now = self._clock()
        tat = max(bucket.tat, now)
        # The slot may start up to (burst - 1) intervals before the steady schedule.
        start = tat - (bucket.burst - 1) * bucket.interval_s
        bucket.tat = tat + bucket.interval_s
        delay = start - now
        # Sums of intervals drift by ulps; a nanosecond early is not a burst.
        return delay if delay > _EPSILON_S else 0.0

    async def acquire(self, action: str) -> None:
        """Wait until ``action`` may be called once more; always yields to the event loop."""
        delay = self.reserve(action)
        if delay > 0:
            await self._sleep(delay)
        else:
            await anyio.lowlevel.checkpoint()
