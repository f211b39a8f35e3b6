"""Benchmark spot-controller against the floor set by Tencent Cloud's rate limits.

    python tests/benchmarks/bench.py [--scenario NAME ...] [--seed N] [--out DIR]
                                     [--database-url URL] [--simulator process|thread]
                                     [--preset full|tiny]

Scenarios: cold (cold start), storm (interruption storm), steady (steady state), reaction
(UPDATE -> first RunInstances), scale (rate limits lifted, 10,000 and 100,000 instances).
The real daemon (engine, client, store, default settings) runs against the CVM simulator
with Tencent's default rate limits enforced by the simulator (RunInstances and
TerminateInstances 10/s, DescribeInstances 40/s) and a launch latency; each figure is reported
with the floor those limits allow and the ratio. Each group of scenarios runs in a child
process of its own, so memory and CPU figures are the daemon's alone.

Writes to DIR (default tests/benchmarks/results): results.json, results.md (README-ready)
and convergence.svg (desired vs running over time for the cold starts and the storm); prints
the table on stdout and progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `tests.benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import anyio

from controller.errors import ConfigError
from tests.benchmarks import presets, report, rig, scenarios

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results"
TEARDOWN_TIMEOUT_S = 30.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=scenarios.SCENARIOS,
        help="run only this scenario (repeatable); default: all",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of every random choice")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    parser.add_argument(
        "--database-url",
        default=None,
        help="PostgreSQL server URL (a database is created and dropped per scenario group); "
        "default: a SQLite file in a temporary directory",
    )
    parser.add_argument(
        "--simulator",
        choices=("process", "thread"),
        default="process",
        help="simulator in its own process (default) or in a thread of the daemon's process",
    )
    parser.add_argument("--preset", choices=sorted(presets.PRESETS), default="full")
    parser.add_argument("--keep-logs", action="store_true", help="copy daemon logs to DIR/logs")
    parser.add_argument(
        "--daemon-setting",
        action="append",
        metavar="NAME=VALUE",
        help="a daemon setting other than its default, e.g. resync_interval_s=3 (what-if runs; "
        "repeatable)",
    )
    parser.add_argument(
        "--render",
        type=Path,
        metavar="RESULTS_JSON",
        help="only write the table, results.md and the plot again from a results.json",
    )
    # Internal: one scenario group in a child process.
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _options(args: argparse.Namespace, workdir: Path) -> presets.RunOptions:
    return presets.RunOptions(
        preset=presets.PRESETS[args.preset],
        seed=args.seed,
        simulator_mode=args.simulator,
        database_url=args.database_url,
        workdir=workdir,
        daemon_env=daemon_env(args.daemon_setting),
    )


def daemon_env(assignments: list[str] | None) -> dict[str, str]:
    """``--daemon-setting resync_interval_s=3`` as the daemon's ``SPOT_CONTROLLER_*`` variables."""
    names = {f.name: f.metadata["env"] for f in dataclasses.fields(rig.Settings)}
    environ: dict[str, str] = {}
    for item in assignments or []:
        name, sep, value = item.partition("=")
        if not sep or name not in names:
            raise SystemExit(
                f"--daemon-setting {item!r}: expected NAME=VALUE, NAME one of "
                + ", ".join(sorted(names))
            )
        environ[names[name]] = value
    try:
        rig.Settings.from_env(environ)  # a malformed value stops here, naming the variable
    except ConfigError as exc:
        raise SystemExit(f"--daemon-setting: {exc}") from None
    return environ


def run_child(args: argparse.Namespace) -> int:
    """One scenario group, in this (child) process: the daemon logs JSON lines on stdout."""
    from controller import logs
    from controller.logs import get_logger

    # SIGTERM (the parent, or a user) unwinds normally, so the simulator process is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    # The process as `spot-controller run` sets it up, where the daemon has such a hook.
    from controller import daemon

    tune = getattr(daemon, "tune_process", None)
    if callable(tune):
        tune()
    # Experiments only: the daemon's collector thresholds, e.g. SPOT_BENCH_GC_THRESHOLD=700,10,10
    if os.environ.get("SPOT_BENCH_GC_THRESHOLD"):
        gc.set_threshold(*(int(x) for x in os.environ["SPOT_BENCH_GC_THRESHOLD"].split(",")))
    logs.configure("json", os.environ.get("SPOT_BENCH_LOG_LEVEL", "info"))  # experiments: debug
    assert args.child_out is not None
    assert args.workdir is not None
    opts = _options(args, args.workdir)

    async def main() -> None:
        result = await scenarios.run_group(args.child, opts)
        assert args.child_out is not None
        args.child_out.write_text(json.dumps(result))
        # The result is safe; should the event loop's teardown hang, do not wait for it.
        leftovers = [
            repr(t.get_coro()) for t in asyncio.all_tasks() if t is not asyncio.current_task()
        ]
        if leftovers:
            get_logger().warning("bench_leftover_tasks", tasks=leftovers[:20], count=len(leftovers))
        watchdog = threading.Timer(TEARDOWN_TIMEOUT_S, _teardown_hung, args=(leftovers,))
        watchdog.daemon = True
        watchdog.start()

    anyio.run(main)
    return 0


def _teardown_hung(leftovers: list[str]) -> None:
    print(
        json.dumps({"event": "bench_teardown_hung", "tasks": leftovers[:20]}),
        flush=True,
    )
    os._exit(0)


def kind_of(figure: report.Figure) -> str:
    """The scenario a figure belongs to: the first word of its label (cold, storm, ...)."""
    return figure.scenario.split()[0]


def run_parent(args: argparse.Namespace) -> int:
    preset = presets.PRESETS[args.preset]
    selected = tuple(args.scenario or scenarios.SCENARIOS)
    groups = scenarios.groups_for(selected, preset)
    started = time.monotonic()
    load_before = rig.machine()["loadavg"]
    figures: list[report.Figure] = []
    details: dict[str, Any] = {}
    failures: list[str] = []
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="spot-bench-") as tmp:
        for group in groups:
            workdir = Path(tmp) / group
            workdir.mkdir()
            child_out = workdir / "result.json"
            command = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--child",
                group,
                "--child-out",
                str(child_out),
                "--workdir",
                str(workdir),
                "--seed",
                str(args.seed),
                "--preset",
                args.preset,
                "--simulator",
                args.simulator,
            ]
            if args.database_url:
                command += ["--database-url", args.database_url]
            for item in args.daemon_setting or []:
                command += ["--daemon-setting", item]
            log_path = workdir / "daemon.log"
            print(f"[bench] {group} ...", file=sys.stderr, flush=True)
            t = time.monotonic()
            with log_path.open("wb") as log:
                code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode
            if code != 0 or not child_out.exists():
                failures.append(group)
                tail = log_path.read_text(errors="replace").splitlines()[-30:]
                print(f"[bench] {group} FAILED (exit {code}):", file=sys.stderr)
                print("\n".join(tail), file=sys.stderr)
            else:
                data = json.loads(child_out.read_text())
                figures += [report.figure_from_json(f) for f in data["figures"]]
                details.update(data["scenarios"])
                print(f"[bench] {group} done in {time.monotonic() - t:.0f} s", file=sys.stderr)
            if args.keep_logs:
                logs = args.out / "logs"
                logs.mkdir(exist_ok=True)
                for name in ("daemon.log", "simulator.log"):
                    if (workdir / name).exists():
                        shutil.copy(workdir / name, logs / f"{group}-{name}")
    figures += scenarios.growth_figures(details, preset)
    figures = [f for f in figures if kind_of(f) in selected]
    result = build_result(args, preset, figures, details, started, load_before)
    write_outputs(args.out, result, figures, details, preset)
    print(header(result))
    print(report.table(figures))
    print(
        f"\nwritten: {args.out / 'results.json'}, {args.out / 'results.md'}, "
        f"{args.out / 'convergence.svg'}",
        file=sys.stderr,
    )
    if failures:
        print(f"[bench] failed groups: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


def build_result(
    args: argparse.Namespace,
    preset: presets.Preset,
    figures: list[report.Figure],
    details: dict[str, Any],
    started: float,
    load_before: list[float],
) -> dict[str, Any]:
    settings = rig.Settings.from_env(daemon_env(args.daemon_setting), **preset.settings)
    mach = rig.machine()
    mach["loadavg_before"] = load_before
    mach["loadavg_after"] = mach.pop("loadavg")
    return {
        "schema": report.SCHEMA,
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "python tests/benchmarks/bench.py " + shlex.join(_public_argv(args)),
        "seed": args.seed,
        "preset": preset.name,
        "duration_s": round(time.monotonic() - started, 1),
        "machine": mach,
        "simulator": {
            "mode": args.simulator,
            "description": (
                "separate process (spot-controller simulator serve --config FILE), "
                "over loopback HTTP"
                if args.simulator == "process"
                else "in-process (uvicorn thread), over loopback HTTP"
            ),
            "rate_limits": dict(settings.rate_limits),
            "launch_latency_s": preset.launch_latency_s,
            "api_latency_ms": preset.api_latency_ms,
        },
        "database": "postgresql" if args.database_url else "sqlite (file in a temporary dir)",
        "daemon_settings": {
            "poll_interval_s": settings.poll_interval_s,
            "resync_interval_s": settings.resync_interval_s,
            "launch_batch_max": settings.launch_batch_max,
            "max_inflight_calls": settings.max_inflight_calls,
        },
        "figures": [f.to_json() for f in figures],
        "scenarios": details,
        "plot": "convergence.svg",
    }


def _public_argv(args: argparse.Namespace) -> list[str]:
    argv: list[str] = []
    for name in args.scenario or []:
        argv += ["--scenario", name]
    argv += ["--seed", str(args.seed)]
    if args.preset != "full":
        argv += ["--preset", args.preset]
    if args.simulator != "process":
        argv += ["--simulator", args.simulator]
    if args.database_url:
        argv += ["--database-url", args.database_url]
    for item in args.daemon_setting or []:
        argv += ["--daemon-setting", item]
    return argv


def header(result: dict[str, Any]) -> str:
    m = result["machine"]
    sim = result["simulator"]
    limits = ", ".join(f"{k} {v:g}/s" for k, v in sim["rate_limits"].items())
    return "\n".join(
        [
            f"spot-controller benchmark ({result['preset']}, seed {result['seed']}, "
            f"{result['duration_s']:.0f} s)",
            f"machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory_gib']} GiB, Python "
            f"{m['python']}, load {m['loadavg_before']} -> {m['loadavg_after']}",
            f"simulator: {sim['description']}; rate limits {limits}; launch latency "
            f"{sim['launch_latency_s']:g} s; API latency {sim['api_latency_ms']:g} ms",
            f"database: {result['database']}; daemon settings: "
            + ", ".join(f"{k} {v}" for k, v in result["daemon_settings"].items()),
            "",
        ]
    )


def plot_panels(details: dict[str, Any], preset: presets.Preset) -> list[report.Panel]:
    panels = []
    for envs, each in preset.cold:
        d = details.get(f"cold-{envs}x{each}")
        if d and d.get("timeline"):
            panels.append(
                report.Panel(
                    f"cold start {envs} x {each}", d["timeline"], d["floor_s"], d["all_running_s"]
                )
            )
    storm = details.get("storm")
    if storm and storm.get("timeline"):
        median = storm["trials"][storm["median_trial"]]
        panels.append(
            report.Panel(
                f"storm: {median['reclaimed']} of {storm['fleet']} reclaimed (median trial)",
                storm["timeline"],
                median["floor_s"],
                median["all_replaced_s"],
            )
        )
    return panels


def write_outputs(
    out: Path,
    result: dict[str, Any],
    figures: list[report.Figure],
    details: dict[str, Any],
    preset: presets.Preset,
) -> None:
    (out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    panels = plot_panels(details, preset)
    (out / "convergence.svg").write_text(
        report.svg(panels, title="spot-controller: desired vs running (Tencent rate limits)")
    )
    (out / "results.md").write_text(readme_section(out, result, figures))


def readme_section(out: Path, result: dict[str, Any], figures: list[report.Figure]) -> str:
    """The README's performance section: how it was measured, the table, the plot."""
    plot = out / "convergence.svg"
    try:
        plot_link = plot.resolve().relative_to(HERE.parents[1]).as_posix()
    except ValueError:  # written outside the repository
        plot_link = plot.name
    m = result["machine"]
    sim = result["simulator"]
    return "\n".join(
        [
            "## Performance",
            "",
            "`tests/benchmarks/bench.py` runs the real daemon (engine, client, store, default "
            "settings) against the CVM simulator enforcing Tencent's default rate limits "
            "(RunInstances and TerminateInstances 10/s, DescribeInstances 40/s, a bucket of one "
            "second of calls) with a launch latency of "
            f"{sim['launch_latency_s']:g} s and {sim['api_latency_ms']:g} ms per API call. Each "
            "figure is compared with the floor those limits allow: the calls a scenario needs at "
            "the rate limit (the first second's calls at once), one API round trip per dependent "
            "step, and the launch latency. No controller can do better than the floor.",
            "",
            f"Measured {result['generated_at']} on {m['nproc']} CPUs ({m['cpu']}), "
            f"{m['memory_gib']} GiB, Python {m['python']}, {m['os']} (load average "
            f"{m['loadavg_before'][0]} before, {m['loadavg_after'][0]} after); simulator "
            f"{sim['description']}; database {result['database']}; "
            f"{result['duration_s']:.0f} s in all. Reproduce:",
            "",
            "```sh",
            f".venv/bin/{result['command']}",
            "```",
            "",
            report.markdown(figures),
            "",
            report.notes_markdown(figures),
            "",
            f"![desired vs running over time, cold start and storm]({plot_link})",
            "",
        ]
    )


def render(args: argparse.Namespace) -> int:
    """Write the outputs again from a results.json (after a change of presentation)."""
    result = json.loads(args.render.read_text())
    preset = presets.PRESETS[result["preset"]]
    figures = [report.figure_from_json(f) for f in result["figures"]]
    result["figures"] = [f.to_json() for f in figures]
    args.out.mkdir(parents=True, exist_ok=True)
    write_outputs(args.out, result, figures, result["scenarios"], preset)
    print(header(result))
    print(report.table(figures))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return run_child(args)
    if args.render:
        return render(args)
    return run_parent(args)


if __name__ == "__main__":
    sys.exit(main())
