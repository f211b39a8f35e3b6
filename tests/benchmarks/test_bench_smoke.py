"""The benchmark runs end to end, and its bookkeeping is right. Never its speed.

The arithmetic (floors from the rate limits, ratios, percentiles, targets, growth) is checked
on fixed numbers; one tiny run of the real command (cold start, storm and steady state of
200 instances against the simulator) checks that the pieces fit: the JSON schema, floors in
the JSON recomputed from the inputs it records, the table on stdout, the SVG plot.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from controller.settings import DEFAULT_RATE_LIMITS
from tests.benchmarks import floors, outage, presets, report, scenarios

BENCH = Path(__file__).resolve().parent / "bench.py"
TENCENT = floors.RateLimits.from_mapping(DEFAULT_RATE_LIMITS)


# ---- the arithmetic ------------------------------------------------------------------------


def test_rate_limits_are_tencents_defaults() -> None:
    assert floors.RateLimits(run_per_s=10, terminate_per_s=10, describe_per_s=40) == TENCENT


@pytest.mark.parametrize(
    ("calls", "rate", "expected"),
    [(0, 10, 0.0), (1, 10, 0.0), (10, 10, 0.0), (11, 10, 0.1), (100, 10, 9.0), (100, 40, 1.5)],
)
def test_calls_time_is_the_token_bucket_schedule(calls: int, rate: float, expected: float) -> None:
    """A full bucket admits one second of calls at once, then ``rate`` per second."""
    assert floors.calls_time_s(calls, rate) == pytest.approx(expected)


def test_calls_are_counted_per_environment_100_at_a_time() -> None:
    assert floors.launch_calls([10] * 100) == 100  # 100 environments x 10: a call each
    assert floors.launch_calls([1000] * 10) == 100
    assert floors.launch_calls([250, 0, 1, -3]) == 4
    assert [floors.sweep_pages(n) for n in (0, 1, 100, 101, 10_000)] == [1, 1, 1, 2, 100]


def test_floors_of_the_issue_scenarios() -> None:
    # Cold start: 100 RunInstances at 10/s (10 at once, 90 more in 9 s) + RTT + latency.
    assert floors.cold_start_floor_s([10] * 100, TENCENT, 10.0, 0.05) == pytest.approx(19.05)
    assert floors.cold_start_floor_s([1000] * 10, TENCENT, 10.0, 0.05) == pytest.approx(19.05)
    # Storm: 3,000 reclaimed in 10 environments -> 30 TERMINATING pages (within the burst of
    # 40), 30 launches (10 at once, 20 in 2 s), two round trips, the launch latency.
    assert floors.storm_floor_s(3000, [300] * 10, TENCENT, 10.0, 0.05) == pytest.approx(12.1)
    # 305 lost in one environment needs 4 calls, not 3.05.
    assert floors.launch_calls([305]) == 4
    # Steady state: 10,000 instances = 100 pages every 10 s.
    assert floors.steady_calls_per_min(10_000, 10.0) == pytest.approx(600.0)
    assert floors.steady_calls_per_min(10, 10.0) == pytest.approx(6.0)


def test_percentiles_interpolate_between_ranks() -> None:
    data = [float(x) for x in range(1, 101)]
    assert floors.percentile(data, 50) == pytest.approx(50.5)
    assert floors.percentile(data, 99) == pytest.approx(99.01)
    assert floors.percentile([3.0], 99) == 3.0
    assert floors.percentile([], 50) is None


def test_figures_compute_ratio_and_target() -> None:
    f = report.Figure(
        "cold start 1x1", "t", "s", 24.0, floor=20.0, target=report.Target("ratio<=", 1.25)
    )
    assert f.ratio == pytest.approx(1.2)
    assert f.met is True
    slow = report.Figure("cold start 1x1", "t", "s", 26.0, floor=20.0, target=f.target)
    assert slow.met is False
    assert report.Figure("r", "p50", "s", 0.99, target=report.Target("<", 1.0)).met is True
    assert report.Figure("r", "p50", "s", 1.0, target=report.Target("<", 1.0)).met is False
    assert report.Figure("s", "runs", "calls", 0, target=report.Target("==", 0)).met is True
    assert report.Figure("s", "cpu", "s", 1.0).met is None
    assert report.Figure("s", "x", "s", 1.0, floor=0.0).ratio is None
    back = report.figure_from_json(json.loads(json.dumps(f.to_json())))
    assert back == f


def test_growth_is_judged_against_linear() -> None:
    small = {
        "instances": 10_000,
        "pass_after_sweep_s_max": 0.2,
        "idle_pass_s_mean": 0.1,
        "sweep_s_mean": 1.0,
        "rss_start_mib": 80.0,
        "peak_rss_converging_mib": 180.0,
        "peak_rss_steady_mib": 150.0,
    }
    large = {
        **small,
        "instances": 100_000,
        "pass_after_sweep_s_max": 2.5,  # x12.5: worse than linear
        "idle_pass_s_mean": 0.5,
        "sweep_s_mean": 10.0,
        "peak_rss_converging_mib": 1080.0,  # 1000 above start: x10
    }
    preset = presets.FULL
    details = {
        f"scale-{preset.scale[0][0]}x{preset.scale[0][1]}": small,
        f"scale-{preset.scale[1][0]}x{preset.scale[1][1]}": large,
    }
    grown = {f.name: f for f in scenarios.growth_figures(details, preset)}
    assert grown["pass after a sweep time grew"].measured == pytest.approx(12.5)
    assert grown["pass after a sweep time grew"].met is False
    assert grown["idle pass time grew"].met is True
    assert grown["peak memory above start grew"].measured == pytest.approx(10.0)
    assert grown["peak memory above start grew"].met is True


def test_the_svg_plot_is_well_formed() -> None:
    timeline = {"t_s": [0.0, 1.0, 2.0], "desired": [5, 5, 5], "running": [0, 2, 5]}
    text = report.svg([report.Panel("a", timeline, 1.5, 2.0)], title="t")
    root = ET.fromstring(text)
    assert root.tag.endswith("svg")
    assert len(root.findall(".//{http://www.w3.org/2000/svg}polyline")) == 2


# ---- one tiny run of the real command ------------------------------------------------------


def test_tiny_run_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = [
        sys.executable,
        str(BENCH),
        "--preset",
        "tiny",
        "--scenario",
        "cold",
        "--scenario",
        "storm",
        "--scenario",
        "steady",
        "--seed",
        "3",
        "--out",
        str(out),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "scenario" in done.stdout
    assert "cold start 2x100" in done.stdout

    result: dict[str, Any] = json.loads((out / "results.json").read_text())
    assert result["schema"] == report.SCHEMA
    for key in ("generated_at", "command", "seed", "preset", "machine", "simulator", "database"):
        assert key in result
    assert result["seed"] == 3
    assert result["simulator"]["mode"] == "process"
    assert "separate process" in result["simulator"]["description"]
    assert {"nproc", "python", "memory_gib"} <= set(result["machine"])
    assert result["simulator"]["rate_limits"]["RunInstances"] == 10

    figures = result["figures"]
    kinds = {f["scenario"].split()[0] for f in figures}
    assert kinds == {"cold", "storm", "steady"}
    for f in figures:
        assert set(f) >= {"scenario", "name", "unit", "measured", "floor", "ratio", "target", "met"}
        assert f["measured"] is not None
        if f["floor"]:
            assert f["ratio"] == pytest.approx(f["measured"] / f["floor"])
        if f["target"] is not None:
            assert f["met"] in (True, False)

    # Floors in the JSON are recomputed from the inputs the JSON records.
    cold = result["scenarios"]["cold-2x100"]
    limits = floors.RateLimits.from_mapping(cold["rate_limits"])
    expected = floors.cold_start_floor_s(
        [cold["instances_each"]] * cold["environments"],
        limits,
        cold["launch_latency_s"],
        cold["api_latency_s"],
    )
    assert cold["floor_s"] == pytest.approx(expected, abs=1e-3)
    assert cold["run_instances_calls_needed"] == 2
    assert cold["run_instances_calls"] >= 2
    assert cold["all_running_s"] >= cold["floor_s"] - 0.05  # nothing beats the floor

    storm = result["scenarios"]["storm"]
    for trial in storm["trials"]:
        assert sum(trial["deficits"].values()) == trial["reclaimed"] == 60
        expected = floors.storm_floor_s(
            trial["reclaimed"],
            trial["deficits"].values(),
            floors.RateLimits.from_mapping(storm["rate_limits"]),
            storm["launch_latency_s"],
            storm["api_latency_s"],
        )
        assert trial["floor_s"] == pytest.approx(expected, abs=1e-3)
        assert trial["ratio"] == pytest.approx(trial["all_replaced_s"] / trial["floor_s"], rel=2e-3)

    steady = result["scenarios"]["steady"]
    assert steady["floor_calls_per_min"] == pytest.approx(
        floors.steady_calls_per_min(steady["instances"], steady["resync_interval_s"]), abs=0.01
    )
    assert steady["calls"].get("RunInstances", 0) == 0

    svg = (out / "convergence.svg").read_text()
    root = ET.fromstring(svg)
    assert len(root.findall(".//{http://www.w3.org/2000/svg}polyline")) >= 4  # two panels
    markdown = (out / "results.md").read_text()
    assert "| scenario | figure | measured | floor | ratio | target | met |" in markdown
    assert "convergence.svg" in markdown


# ---- the outage scenario's arithmetic ------------------------------------------------------


def test_outage_coverage_and_times_from_samples() -> None:
    rec = outage.OutageRecorder(cloud=None, env_ids={"env-a": 2, "env-b": 2}, interval_s=1.0)  # type: ignore[arg-type]
    # t: 0 all spot; 1-2 the reclaim (nothing runs); 3 env-a covered by pay-as-you-go; 4 both.
    for t, a, b, od in [(0, 2, 2, 0), (1, 0, 0, 0), (2, 0, 0, 0), (3, 2, 0, 2), (4, 2, 2, 4)]:
        spot = {"env-a": 2, "env-b": 2} if t == 0 else {}
        rec.samples.append(outage.OutageSample(float(t), {"env-a": a, "env-b": b}, spot, od, 0.0))
    assert rec.coverage(0.0, 4.0) == pytest.approx((4 + 0 + 0 + 2) / 16)
    dropped = rec.first(0.0, lambda s: not rec.covered(s))
    assert dropped == 1.0
    assert rec.first(dropped, rec.covered) == 3.0
    assert rec.integral(0.0, 4.0, lambda s: s.on_demand_alive) == 2.0
    assert rec.all_spot(rec.samples[0])
    assert not rec.all_spot(rec.samples[-1])
    assert outage.default_budget(50) == 5
    assert outage.default_budget(3) == 1
