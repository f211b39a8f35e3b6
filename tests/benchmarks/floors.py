"""The physical floor: how fast any controller could converge under the cloud's rate limits.

Pure arithmetic, no I/O. Tencent limits each action with a token bucket per account; the
simulator mirrors it (burst = one second of calls, then ``rate`` calls per second, bucket full
when idle). So the n-th call of a burst can be admitted no earlier than ``(n - burst) / rate``
seconds after the first: 100 RunInstances calls at 10/s take 9 s, not 10 s, because the first
10 go at once. Every floor below is built from that, plus one API round trip per dependent
step and the launch latency (RunInstances answered -> instance RUNNING), which no controller
can shorten.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

#: Instances per RunInstances call and ids per TerminateInstances call (Tencent's caps), and
#: instances per DescribeInstances page.
BATCH = 100
PAGE = 100


@dataclass(frozen=True)
class RateLimits:
    """Calls per second per action; the bucket holds one second of calls."""

    run_per_s: float = 10.0
    terminate_per_s: float = 10.0
    describe_per_s: float = 40.0

    @classmethod
    def from_mapping(cls, rates: Mapping[str, float]) -> RateLimits:
        return cls(
            run_per_s=rates.get("RunInstances", 10.0),
            terminate_per_s=rates.get("TerminateInstances", 10.0),
            describe_per_s=rates.get("DescribeInstances", 40.0),
        )


def burst(rate: float) -> int:
    """Calls a full bucket admits at once: one second of calls (at least one)."""
    return max(1, int(rate))


def calls_time_s(calls: int, rate: float) -> float:
    """Earliest time after the first call at which the last of ``calls`` calls is admitted."""
    if calls <= 0:
        return 0.0
    return max(0, calls - burst(rate)) / rate


def launch_calls(deficits: Iterable[int], batch: int = BATCH) -> int:
    """RunInstances calls to launch each environment's deficit, ``batch`` instances a call.

    Per environment, because one call launches one spec (an environment's zone, type, image).
    """
    return sum(math.ceil(d / batch) for d in deficits if d > 0)


def sweep_pages(instances: int, page: int = PAGE) -> int:
    """DescribeInstances calls to list ``instances``: at least one, even for none."""
    return max(1, math.ceil(instances / page))


def cold_start_floor_s(
    deficits: Iterable[int], limits: RateLimits, launch_latency_s: float, rtt_s: float
) -> float:
    """From a desired-count change to every instance RUNNING.

    The controller already knows the fleet (a sweep is not needed to launch into an empty
    environment): the floor is the RunInstances calls at the rate limit, one round trip, and
    the launch latency of the last batch.
    """
    calls = launch_calls(deficits)
    return calls_time_s(calls, limits.run_per_s) + rtt_s + launch_latency_s


def storm_floor_s(
    reclaimed: int,
    deficits: Iterable[int],
    limits: RateLimits,
    launch_latency_s: float,
    rtt_s: float,
) -> float:
    """From a reclaim of ``reclaimed`` instances at once to all of them replaced and RUNNING.

    Tencent does not push interruptions: a controller must list them. The cheapest listing is
    a DescribeInstances filtered on ``instance-state=TERMINATING``, one page per 100 reclaimed
    instances (a full sweep of the fleet costs more); then the replacements' RunInstances
    calls, each step one round trip, and the launch latency.
    """
    detect = calls_time_s(sweep_pages(reclaimed), limits.describe_per_s) + rtt_s
    launch = calls_time_s(launch_calls(deficits), limits.run_per_s) + rtt_s
    return detect + launch + launch_latency_s


def steady_calls_per_min(instances: int, resync_interval_s: float) -> float:
    """The minimum cost of watching a converged fleet: one paged sweep per resync interval."""
    return sweep_pages(instances) * 60.0 / resync_interval_s


def ratio(measured: float | None, floor: float | None) -> float | None:
    """``measured / floor``; None when either is unknown or the floor is zero."""
    if measured is None or floor is None or floor <= 0:
        return None
    return measured / floor


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100), linear between closest ranks (numpy's default)."""
    data = sorted(values)
    if not data:
        return None
    if len(data) == 1:
        return data[0]
    position = (len(data) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (position - low)
