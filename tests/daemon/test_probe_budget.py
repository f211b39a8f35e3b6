"""How often the reconciler probes for reclaimed instances: pure arithmetic, no I/O."""

from __future__ import annotations

import pytest

from controller.reconcile.observer import probe_interval


@pytest.mark.parametrize(
    ("fleet", "expected"),
    [
        (0, 100.0),  # one page per 10 s sweep: a probe every 100 s is a tenth of that
        (100, 100.0),
        (1_000, 10.0),  # ten pages: the resync interval itself
        (10_000, 1.0),  # a hundred pages: every second costs 60 calls/min on top of 600
        (100_000, 1.0),  # never more often than the setting
    ],
)
def test_probes_cost_at_most_a_tenth_of_the_sweeps(fleet: int, expected: float) -> None:
    assert probe_interval(1.0, 10.0, fleet) == pytest.approx(expected)


def test_probing_off() -> None:
    assert probe_interval(0.0, 10.0, 10_000) is None
