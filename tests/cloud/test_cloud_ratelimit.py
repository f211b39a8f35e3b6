"""The per-action token bucket on a virtual clock: rate, burst, FIFO fairness, isolation."""

from __future__ import annotations

import itertools

import anyio
import pytest

from controller.cloud.ratelimit import DEFAULT_RATE, RateLimiter
from tests.cloud.cloud_fakes import VirtualClock, make_settings


def _limiter(clock: VirtualClock, rates: dict[str, float]) -> RateLimiter:
    return RateLimiter(rates, clock=clock.time, sleep=clock.sleep)


def _max_in_window(times: list[float], window: float) -> int:
    """Most calls in any closed window of ``window`` seconds."""
    best = 0
    for i, start in enumerate(times):
        best = max(best, sum(1 for t in times[i:] if t <= start + window + 1e-9))
    return best


async def test_burst_of_50_at_10_per_second_is_spread_over_4_seconds(clock: VirtualClock) -> None:
    limiter = _limiter(clock, {"RunInstances": 10.0})
    granted: list[float] = []

    async def call() -> None:
        await limiter.acquire("RunInstances")
        granted.append(clock.now)

    async def storm() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(call)

    await clock.run(storm)
    granted.sort()
    assert len(granted) == 50
    # One second of calls goes at once (the burst), the other 40 at the steady 10/s.
    assert granted[:10] == [0.0] * 10
    assert granted[-1] == pytest.approx(4.0)
    assert all(b - a == pytest.approx(0.1) for a, b in itertools.pairwise(granted[9:]))
    # A token bucket never allows more than burst + rate * window in any window.
    assert _max_in_window(granted, 1.0) <= 10 + 10
    assert _max_in_window(granted, 2.0) <= 10 + 20


async def test_idle_bucket_refills_to_one_second_of_calls_and_no_more(clock: VirtualClock) -> None:
    limiter = _limiter(clock, {"A": 5.0})
    granted: list[float] = []

    async def main() -> None:
        await clock.sleep(100.0)  # idle for a long time: the bucket holds 5, not 500
        for _ in range(7):
            await limiter.acquire("A")
            granted.append(clock.now)

    await clock.run(main)
    assert granted[:5] == [100.0] * 5
    assert granted[5:] == [pytest.approx(100.2), pytest.approx(100.4)]


async def test_waiters_are_served_in_arrival_order(clock: VirtualClock) -> None:
    limiter = _limiter(clock, {"RunInstances": 10.0})
    order: list[str] = []

    async def call(name: str) -> None:
        await limiter.acquire("RunInstances")
        order.append(name)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for i in range(30):
                tg.start_soon(call, f"a{i}")
                await anyio.lowlevel.checkpoint()
            await clock.sleep(0.05)
            for i in range(3):
                tg.start_soon(call, f"b{i}")
                await anyio.lowlevel.checkpoint()

    await clock.run(main)
    assert order == [f"a{i}" for i in range(30)] + ["b0", "b1", "b2"]


async def test_a_storm_cannot_starve_a_later_caller(clock: VirtualClock) -> None:
    """Five workers hammer the limiter forever; a caller arriving later waits only for the
    calls queued before it, not for the storm's later calls."""
    limiter = _limiter(clock, {"RunInstances": 10.0})
    waited: list[float] = []

    async def hammer() -> None:
        while True:
            await limiter.acquire("RunInstances")

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(hammer)
            await clock.sleep(3.0)
            for _ in range(3):
                start = clock.now
                await limiter.acquire("RunInstances")
                waited.append(clock.now - start)
            tg.cancel_scope.cancel()

    await clock.run(main)
    # Five hammer calls are queued ahead at most: 0.5 s at 10/s, whatever the storm does next.
    assert len(waited) == 3
    assert max(waited) <= 0.6 + 1e-9


async def test_actions_have_independent_buckets(clock: VirtualClock) -> None:
    limiter = _limiter(clock, {"RunInstances": 1.0, "DescribeInstances": 40.0})
    describe_at: list[float] = []

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(limiter.acquire, "RunInstances")
            await anyio.lowlevel.checkpoint()
            for _ in range(40):
                await limiter.acquire("DescribeInstances")
                describe_at.append(clock.now)

    await clock.run(main)
    assert describe_at == [0.0] * 40
    assert clock.now == pytest.approx(19.0)  # the 20 launches took 19 s, alone


async def test_unnamed_action_uses_default_rate() -> None:
    limiter = RateLimiter({"RunInstances": 10.0})
    assert limiter.rate_of("RunInstances") == 10.0
    assert limiter.rate_of("DescribeZoneInstanceConfigInfos") == DEFAULT_RATE


def test_from_settings_takes_the_configured_rates() -> None:
    settings = make_settings(rate_limits={"RunInstances": 3.0})
    limiter = RateLimiter.from_settings(settings)
    assert limiter.rate_of("RunInstances") == 3.0
    assert limiter.rates == {"RunInstances": 3.0}


@pytest.mark.parametrize("rate", [0.0, -1.0, float("nan")])
def test_non_positive_rate_is_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="RunInstances"):
        RateLimiter({"RunInstances": rate})


async def test_cancelled_waiter_never_makes_the_limiter_faster(clock: VirtualClock) -> None:
    limiter = _limiter(clock, {"A": 10.0})
    granted: list[float] = []

    async def main() -> None:
        for _ in range(10):
            await limiter.acquire("A")  # the burst
        with anyio.move_on_after(0):  # a wait cancelled at once
            await limiter.acquire("A")
        for _ in range(3):
            await limiter.acquire("A")
            granted.append(clock.now)

    await clock.run(main)
    assert all(t >= 0.2 - 1e-9 for t in granted)
