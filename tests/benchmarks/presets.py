"""Sizes and timings of a benchmark run, and the options of one scenario group."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# ---- presets -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preset:
    """Sizes and timings of a run. ``full`` is the benchmark; ``tiny`` is the smoke test's."""

    name: str
    launch_latency_s: float  # RunInstances answered -> RUNNING
    api_latency_ms: float  # every API call, one way (the simulator's latency fault)
    cold: tuple[tuple[int, int], ...]  # (environments, instances each)
    storm_fleet: tuple[int, int]
    storm_fraction: float
    storm_trials: int
    reaction_trials: int
    reaction_launch_latency_s: float
    steady_sweeps: int  # the steady-state window, in resync intervals
    scale: tuple[tuple[int, int], ...]
    scale_sweeps: int
    # The outage (capacity issue): (environments, instances each) lose every spot pool for
    # outage_s after steady_s of spot; compensate_after_s of the environments' policy.
    outage_fleet: tuple[int, int] = (4, 50)
    outage_s: float = 300.0
    outage_steady_s: float = 30.0
    outage_compensate_after_s: int = 10
    settings: dict[str, Any] = field(default_factory=dict)  # daemon settings overrides
    sample_interval_s: float = 0.2
    timeout_s: float = 900.0


FULL = Preset(
    name="full",
    launch_latency_s=10.0,
    api_latency_ms=50.0,
    cold=((100, 10), (10, 1000)),
    storm_fleet=(10, 1000),
    storm_fraction=0.3,
    storm_trials=3,
    reaction_trials=60,
    reaction_launch_latency_s=0.5,
    steady_sweeps=6,
    scale=((1000, 10), (10000, 10)),
    scale_sweeps=3,
)

TINY = Preset(
    name="tiny",
    launch_latency_s=0.3,
    api_latency_ms=5.0,
    cold=((2, 100),),
    storm_fleet=(2, 100),
    storm_fraction=0.3,
    storm_trials=1,
    reaction_trials=3,
    reaction_launch_latency_s=0.1,
    steady_sweeps=1,
    scale=((4, 2), (8, 2)),
    scale_sweeps=1,
    outage_fleet=(2, 6),
    outage_s=6.0,
    outage_steady_s=1.0,
    outage_compensate_after_s=1,
    settings={"poll_interval_s": 0.2, "resync_interval_s": 1.0},
    sample_interval_s=0.05,
    timeout_s=60.0,
)

PRESETS = {p.name: p for p in (FULL, TINY)}


@dataclass(frozen=True)
class RunOptions:
    preset: Preset
    seed: int
    simulator_mode: str  # process | thread
    database_url: str | None  # None: a SQLite file
    workdir: Path
    daemon_env: dict[str, str] = field(default_factory=dict)  # SPOT_CONTROLLER_* overrides
