"""The scenarios: what is done to the daemon, what is measured, and the floor it is held to.

Each group of scenarios runs in a child process of its own (fresh memory and CPU counters, one
simulator, one database) and returns plain JSON: figures for the table, details that explain
them, and timelines for the plot.
"""

from __future__ import annotations

import gc
import time
from collections import Counter
from typing import Any

import anyio

from controller.core.model import ENV_TAG
from controller.logs import get_logger
from controller.settings import DEFAULT_RATE_LIMITS
from tests.benchmarks import floors, outage, rig
from tests.benchmarks.presets import Preset, RunOptions
from tests.benchmarks.report import Figure, Target
from tests.benchmarks.session import Session
from tests.support.polling import eventually

_log = get_logger()

# Scenario names a user selects, and the child-process groups that produce them.
SCENARIOS = ("cold", "storm", "steady", "reaction", "scale", "outage")


def groups_for(selected: tuple[str, ...], preset: Preset) -> list[str]:
    """Child-process groups needed for the ``selected`` scenarios, in running order."""
    groups: list[str] = []
    if "cold" in selected:
        groups += [f"cold-{e}x{n}" for e, n in preset.cold if (e, n) != preset.storm_fleet]
    if {"cold", "storm", "steady"} & set(selected):
        groups.append("fleet")  # the storm fleet's cold start, then storms, then steady state
    if "reaction" in selected:
        groups.append("reaction")
    if "scale" in selected:
        groups += [f"scale-{e}x{n}" for e, n in preset.scale]
    if "outage" in selected:
        groups += ["outage-off", "outage-on"]
    return groups


def _parse_size(text: str) -> tuple[int, int]:
    envs, _, each = text.partition("x")
    return int(envs), int(each)


async def run_group(group: str, opts: RunOptions) -> dict[str, Any]:
    """Run one group; returns {"figures": [...], "scenarios": {...}}."""
    kind, _, size = group.partition("-")
    if kind == "cold":
        return await _cold_group(_parse_size(size), opts)
    if kind == "fleet":
        return await _fleet_group(opts)
    if kind == "reaction":
        return await _reaction_group(opts)
    if kind == "scale":
        return await _scale_group(_parse_size(size), opts)
    if kind == "outage":
        return await outage.outage_group(size == "on", opts)
    raise ValueError(f"unknown group {group!r}")


def _limits(opts: RunOptions) -> floors.RateLimits:
    """The limits the simulator enforces: Tencent's defaults."""
    return floors.RateLimits.from_mapping(DEFAULT_RATE_LIMITS)


def _calls(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    a, b = before.get("calls", {}), after.get("calls", {})
    return {
        k: b.get(k, 0) - a.get(k, 0) for k in sorted(set(a) | set(b)) if b.get(k, 0) - a.get(k, 0)
    }


def _errors(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    a, b = before.get("errors", {}), after.get("errors", {})
    return {
        k: b.get(k, 0) - a.get(k, 0) for k in sorted(set(a) | set(b)) if b.get(k, 0) - a.get(k, 0)
    }


# ---- cold start ----------------------------------------------------------------------------


async def _cold_start(
    s: Session, envs: int, each: int, sampler: rig.Sampler
) -> tuple[list[Figure], dict[str, Any]]:
    """All environments from 0 to ``each`` with one UPDATE; time until all RUNNING."""
    preset = s.opts.preset
    label = f"cold start {envs}x{each}"
    before = await s.cloud.stats()
    launches_before = len(s.daemon.probe.launches)
    t0 = time.time()
    sampler.desired = envs * each
    await s.sql.set_desired_all(each)
    await s.wait_cloud(envs * each, preset.timeout_s)
    after = await s.cloud.stats()
    # Exact: the last RunInstances reached the simulator at last_call_at, RUNNING L later.
    exact = after["last_call_at"]["RunInstances"] + s.spec.launch_latency_s
    measured = exact - t0
    t_ready = await s.wait_ready(envs, preset.timeout_s)
    launches = s.daemon.probe.launches[launches_before:]
    floor = floors.cold_start_floor_s(
        [each] * envs, _limits(s.opts), s.spec.launch_latency_s, s.spec.api_latency_ms / 1000
    )
    calls = _calls(before, after)
    details = {
        "environments": envs,
        "instances_each": each,
        "desired_total": envs * each,
        "all_running_s": round(measured, 3),
        "controller_ready_s": round(t_ready - t0, 3),
        "first_launch_sent_s": round(min(c.started for c in launches) - t0, 3)
        if launches
        else None,
        "last_launch_sent_s": round(max(c.started for c in launches) - t0, 3) if launches else None,
        "run_instances_calls": calls.get("RunInstances", 0),
        "run_instances_calls_needed": floors.launch_calls([each] * envs),
        "calls": calls,
        "errors": _errors(before, after),
        "floor_s": round(floor, 3),
        "floor_formula": "max(0, calls - 10) / 10 + api latency + launch latency",
        "launch_latency_s": s.spec.launch_latency_s,
        "api_latency_s": s.spec.api_latency_ms / 1000,
        "rate_limits": dict(DEFAULT_RATE_LIMITS),
    }
    figure = Figure(
        label,
        "time to all RUNNING",
        "s",
        measured,
        floor=floor,
        target=Target("ratio<=", 1.25),
        note=f"{details['run_instances_calls']} RunInstances; controller READY at "
        f"{details['controller_ready_s']} s",
    )
    return [figure], details


async def _cold_group(size: tuple[int, int], opts: RunOptions) -> dict[str, Any]:
    envs, each = size
    preset = opts.preset
    spec = rig.SimulatorSpec(preset.launch_latency_s, preset.api_latency_ms)
    async with Session(opts, spec) as s:
        await s.sql.create_environments(envs, 0, s.rng)
        daemon = await s.start_daemon()
        await s.wait_observed()
        await s.wait_ready(envs, 60)
        sampler = rig.Sampler(s.cloud, daemon, preset.sample_interval_s)
        async with sampler.running():
            t0 = time.time()
            figures, details = await _cold_start(s, envs, each, sampler)
            await anyio.sleep(1.0)
        details["timeline"] = sampler.timeline(t0)
        details["simulator"] = s.simulator_description()
        return {
            "figures": [f.to_json() for f in figures],
            "scenarios": {f"cold-{envs}x{each}": details},
        }


# ---- the fleet: cold start, interruption storms, steady state ------------------------------


async def _fleet_group(opts: RunOptions) -> dict[str, Any]:
    preset = opts.preset
    envs, each = preset.storm_fleet
    spec = rig.SimulatorSpec(preset.launch_latency_s, preset.api_latency_ms)
    out_figures: list[Figure] = []
    scenarios: dict[str, Any] = {}
    async with Session(opts, spec) as s:
        await s.sql.create_environments(envs, 0, s.rng)
        daemon = await s.start_daemon()
        await s.wait_observed()
        await s.wait_ready(envs, 60)
        sampler = rig.Sampler(s.cloud, daemon, preset.sample_interval_s)
        async with sampler.running():
            t0 = time.time()
            figures, details = await _cold_start(s, envs, each, sampler)
            await anyio.sleep(1.0)
        details["timeline"] = sampler.timeline(t0)
        details["simulator"] = s.simulator_description()
        out_figures += figures
        scenarios[f"cold-{envs}x{each}"] = details

        storm_figures, storm = await _storms(s, envs, each, sampler)
        out_figures += storm_figures
        scenarios["storm"] = storm

        steady_figures, steady = await _steady(s, envs * each)
        out_figures += steady_figures
        scenarios["steady"] = steady
    return {"figures": [f.to_json() for f in out_figures], "scenarios": scenarios}


async def _storms(
    s: Session, envs: int, each: int, sampler: rig.Sampler
) -> tuple[list[Figure], dict[str, Any]]:
    """Reclaim a fraction of the running fleet at once; time until all are replaced."""
    preset = s.opts.preset
    total = envs * each
    probe = s.daemon.probe
    trials: list[dict[str, Any]] = []
    timelines: list[dict[str, Any]] = []
    for _ in range(preset.storm_trials):
        await s.wait_ready(envs, preset.timeout_s)
        env_of = {i["InstanceId"]: i["Tags"].get(ENV_TAG) for i in await s.cloud.instances()}
        sampler.samples.clear()
        async with sampler.running():
            # A reclaim comes at any moment of the resync cycle: a seeded random phase.
            await anyio.sleep(s.rng.uniform(0, s.settings.resync_interval_s))
            before = await s.cloud.stats()
            sweeps_before = len(probe.sweeps)
            launches_before = len(probe.launches)
            t0 = time.time()
            reclaimed = await s.cloud.reclaim(preset.storm_fraction)
            t_cloud = await s.wait_cloud(total, preset.timeout_s)
            after = await s.cloud.stats()
            t_ready = await s.wait_ready(envs, preset.timeout_s)
            await anyio.sleep(1.0)
        measured = after["last_call_at"]["RunInstances"] + s.spec.launch_latency_s - t0
        deficits = Counter(env_of[i] for i in reclaimed)
        floor = floors.storm_floor_s(
            len(reclaimed),
            deficits.values(),
            _limits(s.opts),
            s.spec.launch_latency_s,
            s.spec.api_latency_ms / 1000,
        )
        # The first sweep started after the reclaim: the one that can see it.
        detecting = next((sw for sw in probe.sweeps[sweeps_before:] if sw.started >= t0), None)
        launches = probe.launches[launches_before:]
        trial_details = {
            "reclaimed": len(reclaimed),
            "all_replaced_s": round(measured, 3),
            "all_replaced_sampled_s": round(t_cloud - t0, 3),
            "controller_ready_s": round(t_ready - t0, 3),
            "floor_s": round(floor, 3),
            "ratio": round(measured / floor, 3),
            "detecting_sweep_started_s": round(detecting.started - t0, 3) if detecting else None,
            "detecting_sweep_duration_s": round(detecting.ended - detecting.started, 3)
            if detecting
            else None,
            "detecting_sweep_pages": floors.sweep_pages(detecting.instances) if detecting else None,
            "first_launch_sent_s": round(min(c.started for c in launches) - t0, 3)
            if launches
            else None,
            "last_launch_sent_s": round(max(c.started for c in launches) - t0, 3)
            if launches
            else None,
            "deficits": dict(sorted(deficits.items())),
            "run_instances_calls": _calls(before, after).get("RunInstances", 0),
            "run_instances_calls_needed": floors.launch_calls(deficits.values()),
            "calls": _calls(before, after),
            "errors": _errors(before, after),
        }
        trials.append(trial_details)
        timelines.append(sampler.timeline(t0))
    measured_all = [t["all_replaced_s"] for t in trials]
    floors_all = [t["floor_s"] for t in trials]
    median = sorted(range(len(trials)), key=lambda i: measured_all[i])[len(trials) // 2]
    details = {
        "fleet": total,
        "fraction": preset.storm_fraction,
        "trials": trials,
        "median_trial": median,
        "timeline": timelines[median],
        "launch_latency_s": s.spec.launch_latency_s,
        "api_latency_s": s.spec.api_latency_ms / 1000,
        "rate_limits": dict(DEFAULT_RATE_LIMITS),
        "floor_formula": (
            "max(0, pages - 40) / 40 + api latency  [DescribeInstances filtered on TERMINATING, "
            "100 a page] + max(0, calls - 10) / 10 + api latency [RunInstances] + launch latency"
        ),
    }
    figure = Figure(
        f"storm {int(preset.storm_fraction * 100)}% of {total}",
        f"time to all replaced (median of {len(trials)})",
        "s",
        measured_all[median],
        floor=floors_all[median],
        target=Target("ratio<=", 1.25),
        note="reclaim -> detecting sweep starts at "
        + ", ".join(f"{t['detecting_sweep_started_s']}" for t in trials)
        + " s",
    )
    return [figure], details


async def _steady(s: Session, instances: int) -> tuple[list[Figure], dict[str, Any]]:
    """A converged fleet, nothing changing: calls, queries and CPU over whole resync cycles."""
    preset = s.opts.preset
    probe = s.daemon.probe
    envs = preset.storm_fleet[0]
    await s.wait_ready(envs, preset.timeout_s)
    # Let the active sweeps of the last change age out, then start right after a sweep ends.
    await probe.next_sweep_end().wait()
    await probe.next_sweep_end().wait()
    before = await s.cloud.stats()
    passes_before = len(probe.passes)
    queries_before = s.daemon.store.queries
    cpu_before = rig.cpu_s()
    t0 = time.time()
    for _ in range(preset.steady_sweeps):
        await probe.next_sweep_end().wait()
    t1 = time.time()
    cpu = rig.cpu_s() - cpu_before
    after = await s.cloud.stats()
    elapsed = t1 - t0
    calls = _calls(before, after)
    passes = probe.passes[passes_before:]
    queries = s.daemon.store.queries - queries_before
    resync = s.settings.resync_interval_s
    cloud_calls = sum(calls.values())
    per_min = cloud_calls * 60.0 / elapsed
    floor = floors.steady_calls_per_min(instances, resync)
    changes = calls.get("RunInstances", 0) + calls.get("TerminateInstances", 0)
    idle = [p for p in passes if not p.fresh]
    fresh = [p for p in passes if p.fresh]
    details = {
        "instances": instances,
        "window_s": round(elapsed, 3),
        "resync_interval_s": resync,
        "calls": calls,
        "errors": _errors(before, after),
        "calls_per_min": round(per_min, 2),
        "floor_calls_per_min": round(floor, 2),
        "passes": len(passes),
        "queries": queries,
        "queries_per_pass": round(queries / len(passes), 3) if passes else None,
        "queries_per_idle_pass": _mean(p.queries for p in idle),
        "queries_per_pass_after_sweep": _mean(p.queries for p in fresh),
        "pass_s_mean": _mean(p.duration_s for p in passes),
        "pass_after_sweep_s_mean": _mean(p.duration_s for p in fresh),
        "cpu_s": round(cpu, 3),
        "cpu_s_per_min": round(cpu * 60.0 / elapsed, 3),
        "sweep_s_mean": _mean(
            sw.ended - sw.started for sw in probe.sweeps[-preset.steady_sweeps :]
        ),
    }
    label = f"steady state {instances}"
    figures = [
        Figure(
            label,
            "cloud calls per minute",
            "calls/min",
            per_min,
            floor=floor,
            target=Target("ratio<=", 1.1),
            note=f"one sweep = {floors.sweep_pages(instances)} pages every {resync:g} s",
        ),
        Figure(
            label, "RunInstances + TerminateInstances", "calls", changes, target=Target("==", 0)
        ),
        Figure(
            label,
            "database queries per pass",
            "queries",
            details["queries_per_pass"],
            note=f"idle pass {details['queries_per_idle_pass']}, after a sweep "
            f"{details['queries_per_pass_after_sweep']}",
        ),
        Figure(label, "daemon CPU per minute", "CPU s/min", details["cpu_s_per_min"]),
    ]
    return figures, details


def _mean(values: Any) -> float | None:
    data = list(values)
    return round(sum(data) / len(data), 4) if data else None


# ---- reaction ------------------------------------------------------------------------------


async def _reaction_group(opts: RunOptions) -> dict[str, Any]:
    """One UPDATE of desired_count -> the first RunInstances reaching the cloud."""
    preset = opts.preset
    spec = rig.SimulatorSpec(preset.reaction_launch_latency_s, preset.api_latency_ms)
    async with Session(opts, spec) as s:
        [name] = await s.sql.create_environments(1, 1, s.rng)
        await s.start_daemon()
        await s.wait_observed()
        await s.wait_ready(1, 60)
        delays: list[float] = []
        desired = 1
        for _ in range(preset.reaction_trials):
            await s.wait_ready(1, 60)
            # Any moment of the poll cycle: a seeded random phase.
            await anyio.sleep(s.rng.uniform(0, s.settings.poll_interval_s))
            before = (await s.cloud.stats())["calls"].get("RunInstances", 0)
            desired += 1
            t0 = time.time()
            await s.sql.set_desired(name, desired)

            async def launched(before: int = before) -> bool:
                stats = await s.cloud.stats()
                return bool(stats["calls"].get("RunInstances", 0) > before)

            await eventually(launched, within_s=30, interval_s=0.02, what="RunInstances")
            at = (await s.cloud.stats())["last_call_at"]["RunInstances"]
            delays.append(at - t0)
        p50 = floors.percentile(delays, 50)
        p99 = floors.percentile(delays, 99)
        details = {
            "trials": len(delays),
            "delays_s": [round(d, 4) for d in delays],
            "p50_s": p50,
            "p99_s": p99,
            "max_s": max(delays),
            "poll_interval_s": s.settings.poll_interval_s,
            "database": s.sql.backend,
            "simulator": s.simulator_description(),
            "launch_latency_s": spec.launch_latency_s,
        }
        label = f"reaction ({len(delays)} trials)"
        figures = [
            Figure(
                label,
                "UPDATE -> first RunInstances, p50",
                "s",
                p50,
                floor=spec.api_latency_ms / 1000,
                target=Target("<", 1.0),
                note=f"poll interval {s.settings.poll_interval_s:g} s",
            ),
            Figure(
                label,
                "UPDATE -> first RunInstances, p99",
                "s",
                p99,
                floor=spec.api_latency_ms / 1000,
                target=Target("<", 2.0),
                note=f"max {max(delays):.3f} s",
            ),
        ]
        return {"figures": [f.to_json() for f in figures], "scenarios": {"reaction": details}}


# ---- scale ---------------------------------------------------------------------------------


async def _scale_group(size: tuple[int, int], opts: RunOptions) -> dict[str, Any]:
    """Rate limits lifted, latency ~0: how the daemon's own costs grow with the fleet."""
    envs, each = size
    spec = rig.SimulatorSpec(0.0, 0.0, terminate_delay_s=0.0, rate_limits=False)
    gcw = rig.GcWatch()
    with gcw.watching():
        return await _scale_run(opts, spec, envs, each, gcw)


async def _scale_run(
    opts: RunOptions, spec: rig.SimulatorSpec, envs: int, each: int, gcw: rig.GcWatch
) -> dict[str, Any]:
    preset = opts.preset
    total = envs * each
    async with Session(opts, spec, lifted=True) as s:
        baseline = rig.peak_rss_mib()
        rss_start = rig.rss_mib()
        await s.sql.create_environments(envs, each, s.rng)
        t0 = time.time()
        cpu0 = rig.cpu_s()
        daemon = await s.start_daemon()
        probe = daemon.probe
        t_cloud = await s.wait_cloud(total, preset.timeout_s, interval_s=0.5)
        t_ready = await s.wait_ready(envs, preset.timeout_s)
        converge_cpu = rig.cpu_s() - cpu0
        converge_passes = list(probe.passes)
        peak_converge = rig.peak_rss_mib()
        rig.reset_peak()
        _log.info("bench_phase", phase="steady", instances=total)
        # Steady measurement: whole resync cycles after the last change has aged out.
        await probe.next_sweep_end().wait()
        passes_before = len(probe.passes)
        sweeps_before = len(probe.sweeps)
        cpu_before = rig.cpu_s()
        gc_before, gc_counts_before = gcw.snapshot()
        gcw.reset_longest()
        t1 = time.time()
        for _ in range(preset.scale_sweeps):
            await probe.next_sweep_end().wait()
        await anyio.sleep(min(2.0, s.settings.poll_interval_s * 2))  # the pass after it
        elapsed = time.time() - t1
        cpu = rig.cpu_s() - cpu_before
        gc_after, gc_counts_after = gcw.snapshot()
        gc_s = [b - a for a, b in zip(gc_before, gc_after, strict=True)]
        gc_n = [b - a for a, b in zip(gc_counts_before, gc_counts_after, strict=True)]
        passes = probe.passes[passes_before:]
        sweeps = probe.sweeps[sweeps_before:]
        fresh = [p for p in passes if p.fresh]
        idle = [p for p in passes if not p.fresh]
        peak_steady = rig.peak_rss_mib()
        sweep_s = _mean(sw.ended - sw.started for sw in sweeps)
        full_pass = max((p.duration_s for p in fresh), default=None)
        details = {
            "environments": envs,
            "instances": total,
            "converge_s_cloud": round(t_cloud - t0, 3),
            "converge_s_controller": round(t_ready - t0, 3),
            "converge_cpu_s": round(converge_cpu, 3),
            "converge_longest_pass_s": round(max(p.duration_s for p in converge_passes), 3)
            if converge_passes
            else None,
            "sweep_s_mean": sweep_s,
            "sweep_pages": floors.sweep_pages(total),
            "pass_after_sweep_s_max": full_pass,
            "pass_after_sweep_s_mean": _mean(p.duration_s for p in fresh),
            "plan_after_sweep_s_mean": _mean(p.plan_s for p in fresh),
            "idle_pass_s_mean": _mean(p.duration_s for p in idle),
            "idle_plan_s_mean": _mean(p.plan_s for p in idle),
            "queries_per_idle_pass": _mean(p.queries for p in idle),
            "queries_per_pass_after_sweep": _mean(p.queries for p in fresh),
            "cpu_s_per_min": round(cpu * 60 / elapsed, 3),
            "gc_s_per_min": round(sum(gc_s) * 60 / elapsed, 3),
            "gc_collections_by_generation": gc_n,
            "gc_s_by_generation": [round(x, 3) for x in gc_s],
            "gc_longest_pause_s": round(max(gcw.longest), 3),
            "gc_thresholds": list(gc.get_threshold()),
            "rss_start_mib": round(rss_start or 0.0, 1),
            "peak_rss_before_start_mib": round(baseline, 1),
            "peak_rss_converging_mib": round(peak_converge, 1),
            "peak_rss_steady_mib": round(peak_steady, 1),
            "rss_end_mib": round(rig.rss_mib() or 0.0, 1),
            "simulator": s.simulator_description(),
        }
        label = f"scale {envs} envs x {each} = {total}"
        full_cycle = None if full_pass is None or sweep_s is None else full_pass + sweep_s
        figures = [
            Figure(
                label,
                "full pass after a sweep (plan + record)",
                "s",
                full_pass,
                target=Target("<", 5.0),
                note=f"sweep of {details['sweep_pages']} pages {sweep_s} s (limits lifted); "
                f"sweep + pass {full_cycle and round(full_cycle, 3)} s",
            ),
            Figure(
                label,
                "idle pass",
                "s",
                details["idle_pass_s_mean"],
                note=f"{details['queries_per_idle_pass']} queries",
            ),
            Figure(
                label,
                "daemon CPU per minute (limits lifted)",
                "CPU s/min",
                details["cpu_s_per_min"],
                note=f"of which garbage collection {details['gc_s_per_min']} s "
                f"(longest pause {details['gc_longest_pause_s']} s)",
            ),
            Figure(
                label,
                "peak memory",
                "MiB",
                max(peak_converge, peak_steady),
                target=Target("<", 1024.0),
                note=f"steady {details['peak_rss_steady_mib']} MiB, "
                f"at start {details['rss_start_mib']} MiB",
            ),
            Figure(
                label,
                "time to converge from 0 (limits lifted)",
                "s",
                details["converge_s_controller"],
                note=f"longest pass {details['converge_longest_pass_s']} s",
            ),
        ]
        return {
            "figures": [f.to_json() for f in figures],
            "scenarios": {f"scale-{envs}x{each}": details},
        }


def growth_figures(results: dict[str, Any], preset: Preset) -> list[Figure]:
    """From the smallest to the largest scale: how pass time and memory grew with the fleet."""
    sizes = [f"scale-{e}x{n}" for e, n in preset.scale]
    if len(sizes) < 2 or not all(k in results for k in sizes):
        return []
    small, large = results[sizes[0]], results[sizes[-1]]
    factor = large["instances"] / small["instances"]
    out = []
    for key, name, unit in (
        ("pass_after_sweep_s_max", "pass after a sweep time", "s"),
        ("idle_pass_s_mean", "idle pass time", "s"),
        ("plan_after_sweep_s_mean", "plan after a sweep (CPU only) time", "s"),
        ("sweep_s_mean", "sweep time", "s"),
        ("cpu_s_per_min", "daemon CPU per minute", "CPU s/min"),
    ):
        a, b = small.get(key), large.get(key)
        if a and b:
            out.append(
                Figure(
                    f"scale growth x{factor:g}",
                    f"{name} grew",
                    "x",
                    b / a,
                    target=Target("<=", factor * 1.1),
                    note=f"{a:.3f} {unit} -> {b:.3f} {unit}; linear = x{factor:g}",
                )
            )
    base = small["rss_start_mib"]
    a = max(small["peak_rss_converging_mib"], small["peak_rss_steady_mib"]) - base
    b = max(large["peak_rss_converging_mib"], large["peak_rss_steady_mib"]) - large["rss_start_mib"]
    if a > 0 and b > 0:
        out.append(
            Figure(
                f"scale growth x{factor:g}",
                "peak memory above start grew",
                "x",
                b / a,
                target=Target("<=", factor * 1.1),
                note=f"{a:.0f} MiB -> {b:.0f} MiB above the process at start",
            )
        )
    return out
