"""What a what-if run prints: the side-by-side table (or JSON) and the plot."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from controller.errors import ConfigError
from controller.whatif.replay import RunResult

FLOOR = "hindsight floor"
COLUMNS = (
    ("strategy", "strategy"),
    ("cost (CNY)", "cost_cny"),
    ("CNY/instance-h", "cost_per_instance_hour"),
    ("x floor", "vs_floor"),
    ("interruptions", "interruptions"),
    ("per 100 instance-h", "interruptions_per_100_instance_hours"),
    ("coverage", "coverage"),
    ("on-demand h", "on_demand_hours"),
    ("instance-h", "instance_hours"),
)


def rows(results: Sequence[RunResult], floor_cny: float) -> list[dict[str, Any]]:
    """One row per strategy, then the floor's; ``vs_floor`` is cost / floor."""
    out = []
    for r in results:
        row = r.summary()
        row["vs_floor"] = round(r.cost_cny / floor_cny, 3) if floor_cny else None
        out.append(row)
    if results:
        desired_hours = results[0].desired * results[0].duration_s / 3600
        out.append(
            {
                "strategy": FLOOR,
                "cost_cny": round(floor_cny, 2),
                "cost_per_instance_hour": round(floor_cny / desired_hours, 4)
                if desired_hours
                else 0.0,
                "vs_floor": 1.0,
                "interruptions": None,
                "interruptions_per_100_instance_hours": None,
                "coverage": 1.0,
                "on_demand_hours": None,
                "instance_hours": round(desired_hours, 1),
            }
        )
    return out


def plot(results: Sequence[RunResult], path: Path) -> None:
    """Running vs desired, and the spend so far, over time: one line per strategy."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError(
            "plot: matplotlib is not installed (pip install 'spot-controller[plot]')"
        ) from None
    fig, (counts, spend) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for r in results:
        hours = [s.t_s / 3600 for s in r.series]
        counts.plot(hours, [s.running for s in r.series], label=r.strategy, linewidth=1)
        spend.plot(hours, [s.spend_cny for s in r.series], label=r.strategy, linewidth=1)
    if results:
        first = results[0]
        counts.plot(
            [s.t_s / 3600 for s in first.series],
            [s.desired for s in first.series],
            label="desired",
            linestyle="--",
            color="black",
        )
    counts.set_ylabel("running instances")
    counts.legend(fontsize="small")
    spend.set_ylabel("spend so far (CNY)")
    spend.set_xlabel("hours into the trace")
    spend.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
