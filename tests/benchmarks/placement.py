"""Benchmark the placement strategies on the shipped 24-hour market trace.

    python tests/benchmarks/placement.py [--trace FILE] [--step S] [--out DIR]

Three environments of 50 instances each (the same four 2-vCPU types in three ap-guangzhou
zones, each listing them in its own order) share one market: the shipped trace
(tests/data/market-24h.csv, ``spot-controller simulator trace --seed 16``). Each strategy is
replayed with the real planner and engine (``controller.whatif``), and compared with the
hindsight floor: cost, cost per instance-hour, interruptions per 100 instance-hours,
coverage, the offering cache's calls per minute, and the wall time of the replay.
Writes placement.json and placement.md to DIR (default tests/benchmarks/results).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import anyio

from controller import logs
from controller.core.placement import STRATEGIES
from controller.simulator import trace as traces
from controller.whatif import floor, replay, report

HERE = Path(__file__).resolve().parent
TRACE = HERE.parent / "data" / "market-24h.csv"
ZONES = ("ap-guangzhou-3", "ap-guangzhou-4", "ap-guangzhou-6")
TYPES = ("S5.MEDIUM4", "SA2.MEDIUM4", "SA5.MEDIUM4", "S6.MEDIUM4")
DESCRIBE_LIMIT_PER_MIN = 20 * 60  # DescribeZoneInstanceConfigInfos: 20 calls/s
PCO = "PRICE_CAPACITY_OPTIMIZED"


def environments() -> list[dict[str, object]]:
    envs = []
    for i, name in enumerate(("bench-a", "bench-b", "bench-c")):
        zones = ZONES[i:] + ZONES[:i]
        types = TYPES[i:] + TYPES[:i]
        envs.append(
            {
                "name": name,
                "zone": zones[0],
                "fallback_zones": ",".join(zones[1:]),
                "instance_type": types[0],
                "fallback_instance_types": ",".join(types[1:]),
                "image_id": "img-pmqg1cw7",
                "max_price": "0.60",
                "desired_count": 50,
            }
        )
    return envs


async def replay_all(
    market: traces.Trace, step_s: float
) -> tuple[list[replay.RunResult], dict[str, float]]:
    results, walls = [], {}
    runs: list[tuple[str, str, dict[str, object]]] = [(s, s, {}) for s in STRATEGIES]
    # and the strategy with its zones balanced, the way to spread a storm's damage
    runs.append((f"{PCO} + EQUALITY", PCO, {"zone_balance": "EQUALITY"}))
    for label, strategy, overrides in runs:
        started = time.perf_counter()
        result = await replay.run(
            market, environments(), strategy, step_s=step_s, label=label, overrides=overrides
        )
        results.append(result)
        walls[label] = time.perf_counter() - started
        print(f"{label}: {walls[label]:.1f} s", file=sys.stderr)
    return results, walls


HEADER = (
    "| strategy | CNY | CNY/instance-h | x floor | interruptions /100 h | coverage "
    "| cache calls/min | replay s |"
)


def main(trace_path: Path, step_s: float, out: Path) -> None:
    market = traces.load(trace_path)
    results, walls = anyio.run(replay_all, market, step_s)
    rows = report.rows(results, floor.floor_cost(market, environments(), "ap-guangzhou"))
    minutes = market.duration_s / 60
    for row, r in zip(rows, results, strict=False):
        row["replay_wall_s"] = round(walls[r.strategy], 1)
        row["offering_calls_per_min"] = round(r.offering_calls / minutes, 2)
    lines = [HEADER, "|" + "---|" * 8]
    for row in rows:
        per_100 = row["interruptions_per_100_instance_hours"]
        lines.append(
            f"| {row['strategy']} | {row['cost_cny']} | {row['cost_per_instance_hour']} | "
            f"{row['vs_floor']} | {'' if per_100 is None else per_100} | "
            f"{row['coverage']} | {row.get('offering_calls_per_min', '')} | "
            f"{row.get('replay_wall_s', '')} |"
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / "placement.json").write_text(json.dumps(rows, indent=2) + "\n")
    (out / "placement.md").write_text("\n".join(lines) + "\n")
    report.plot(results, out / "placement.png")
    print("\n".join(lines))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trace", type=Path, default=TRACE)
    parser.add_argument("--step", type=float, default=replay.DEFAULT_STEP_S)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    logs.configure(level="error")
    main(args.trace, args.step, args.out)
